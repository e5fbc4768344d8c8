package upgrade

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The previous release's commit is found in the history; a commit that
// is not (a shallow clone) is reported loudly, and CI makes it a failure.
func TestPreviousReleaseInHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sha := previousRelease(t)
	if msg, missing := missingFromHistory(ctx, sha); missing {
		if required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	msg, missing := missingFromHistory(ctx, strings.Repeat("0", 40))
	if !missing || !strings.Contains(msg, "IS NOT IN THIS REPOSITORY'S HISTORY") || !strings.Contains(msg, "git fetch --unshallow") {
		t.Errorf("a commit outside the history: missing=%v, message %q", missing, msg)
	}
	for _, tc := range []struct {
		ci, req string
		want    bool
	}{{"", "", false}, {"true", "", true}, {"", "1", true}, {"false", "0", false}} {
		t.Setenv("CI", tc.ci)
		t.Setenv("UAMIRROR_UPGRADE_REQUIRE", tc.req)
		if got := required(); got != tc.want {
			t.Errorf("CI=%q UAMIRROR_UPGRADE_REQUIRE=%q: required() = %v, want %v", tc.ci, tc.req, got, tc.want)
		}
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/uamirror/uamirror/redundancy"
)

func TestVersionPrintsProtocols(t *testing.T) {
	out, _, code := runCLI(t, "version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"uamirror ", "gopcua ", "pair protocol 2 (runs beside protocols 1–2"} {
		if !strings.Contains(out, want) {
			t.Errorf("version output %q lacks %q", out, want)
		}
	}
}

func TestStatusPrintsVersions(t *testing.T) {
	cur := redundancy.Local("v0.2.0")
	st := redundancy.Status{Node: "a", Role: redundancy.PairActive, Active: "a", Version: cur, PairProtocol: 1,
		Members: []redundancy.MemberStatus{
			{ID: "a", Role: redundancy.RoleNode, Link: "self", Version: redundancy.MemberVersion{ID: "a", VersionInfo: cur, Source: "self"}},
			{ID: "b", Role: redundancy.RoleNode, Link: "up", Version: redundancy.MemberVersion{ID: "b",
				VersionInfo: redundancy.VersionInfo{Version: "v0.1.0", Protocol: 1, MinProtocol: 1}, Source: "peer link"}},
			{ID: "arb", Role: redundancy.RoleArbiter, Link: "unknown", Version: redundancy.MemberVersion{ID: "arb", Source: "unknown"}},
		}}
	var b bytes.Buffer
	printStatus(&b, st)
	for _, want := range []string{"VERSION", "v0.2.0 protocol 1-2", "v0.1.0 protocol 1", "? (not heard yet)",
		"pair protocol: 1 (this node v0.2.0 (protocol 1–2)); mixed versions"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
	// A v0.1.0 node's status carries no version.
	b.Reset()
	printStatus(&b, redundancy.Status{Node: "b", Role: redundancy.PairStandby})
	if !strings.Contains(b.String(), "not announced (this node runs v0.1.0 or older)") {
		t.Errorf("legacy status:\n%s", b.String())
	}
}

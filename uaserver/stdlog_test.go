package uaserver

import (
	"bytes"
	"context"
	"log"
	"strings"
	"testing"
	"time"
)

// TestStartPrintsNothing: gopcua's start-up lines ("New Node Set…",
// "doing objects.", "Started listening on…") no longer reach the standard
// logger; other lines still do, with the logger's own format.
func TestStartPrintsNothing(t *testing.T) {
	var buf bytes.Buffer
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(&buf)
	log.SetFlags(0)
	defer func() { log.SetOutput(prev); log.SetFlags(flags) }()

	s, err := New(Config{Vars: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("the standard logger got %d bytes from a server's start, e.g. %q", buf.Len(), firstLine(buf.String()))
	}
	quietStdLog(func() { log.Printf("doing objects."); log.Printf("keep me %d", 1) })
	if got := buf.String(); got != "keep me 1\n" {
		t.Fatalf("filtered output %q, want only the unrelated line", got)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

package redundancy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestProbeDataDir: a writable directory passes and leaves nothing
// behind; one that cannot take a file fails with the reason.
func TestProbeDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := probeDataDir(dir); err != nil {
		t.Fatalf("writable dir: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the probe left %d files", len(left))
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := probeDataDir(notDir); err == nil {
		t.Error("a data dir that is a file passed the probe")
	}
}

// copyV1Store puts the raft-boltdb v1 store of testdata/raft-v1 into a
// new data directory.
func copyV1Store(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "raft-v1", raftStoreV1))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, raftStoreV1), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkV1State asserts that s holds what testdata/raft-v1 holds.
func checkV1State(t *testing.T, s *raftboltdb.BoltStore) {
	t.Helper()
	first, err1 := s.FirstIndex()
	last, err2 := s.LastIndex()
	if err := errors.Join(err1, err2); err != nil || first != 1 || last != 5 {
		t.Fatalf("log indexes %d…%d (%v), want 1…5", first, last, err)
	}
	for i := uint64(1); i <= 5; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
		if want := fmt.Sprintf("v1-%d", i); l.Term != 2 || l.Type != raft.LogCommand || string(l.Data) != want {
			t.Errorf("log %d: term %d type %v data %q, want term 2, a command, %q", i, l.Term, l.Type, l.Data, want)
		}
	}
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 3 {
		t.Errorf("CurrentTerm %d (%v), want 3", term, err)
	}
	if cand, err := s.Get([]byte("LastVoteCand")); err != nil || string(cand) != "b" {
		t.Errorf("LastVoteCand %q (%v), want b", cand, err)
	}
}

// TestRaftStoreMigratesV1: a data directory written with raft-boltdb v1
// opens with v2 and keeps its state (log, term, vote); the v1 file is kept
// aside; the next open does not migrate again and keeps later writes.
func TestRaftStoreMigratesV1(t *testing.T) {
	dir := copyV1Store(t)
	s, err := openRaftStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkV1State(t, s)
	if err := s.StoreLog(&raft.Log{Index: 6, Term: 3, Type: raft.LogCommand, Data: []byte("v2-6")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{raftStoreFile: true, raftStoreV1Done: true, raftStoreV1: false, raftStoreTmpFile: false} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s exists: %v, want %v", name, err == nil, want)
		}
	}
	s, err = openRaftStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if last, err := s.LastIndex(); err != nil || last != 6 {
		t.Errorf("after reopening: last index %d (%v), want 6 (the write after the migration)", last, err)
	}
	checkV1StateUpTo5(t, s)
}

// checkV1StateUpTo5 checks the migrated entries after later writes.
func checkV1StateUpTo5(t *testing.T, s *raftboltdb.BoltStore) {
	t.Helper()
	var l raft.Log
	if err := s.GetLog(5, &l); err != nil || string(l.Data) != "v1-5" {
		t.Errorf("log 5 after reopening: %q (%v), want v1-5", l.Data, err)
	}
}

// TestRaftStoreMigrationRedone: a migration that stopped half-way (a
// partial v2 file under its temporary name) is redone from the v1 file;
// one that stopped after the v2 file was in place only sets the v1 file
// aside.
func TestRaftStoreMigrationRedone(t *testing.T) {
	t.Run("partial temporary file", func(t *testing.T) {
		dir := copyV1Store(t)
		if err := os.WriteFile(filepath.Join(dir, raftStoreTmpFile), []byte("half a database"), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := openRaftStore(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkV1State(t, s)
	})
	t.Run("v1 file not yet set aside", func(t *testing.T) {
		dir := copyV1Store(t)
		if err := migrateRaftStore(dir); err != nil {
			t.Fatal(err)
		}
		// Put the v1 file back as if the last rename had not happened.
		if err := os.Rename(filepath.Join(dir, raftStoreV1Done), filepath.Join(dir, raftStoreV1)); err != nil {
			t.Fatal(err)
		}
		s, err := openRaftStore(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkV1State(t, s)
		if _, err := os.Stat(filepath.Join(dir, raftStoreV1)); err == nil {
			t.Error("the v1 file is still in place")
		}
	})
	t.Run("fresh data directory", func(t *testing.T) {
		dir := t.TempDir()
		s, err := openRaftStore(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		has, err := raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
		if err != nil || has {
			t.Errorf("a fresh store has state: %v (%v)", has, err)
		}
	})
}

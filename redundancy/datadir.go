package redundancy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"
)

// dataDirProbeInterval is how often a member checks that its data
// directory takes writes.
const dataDirProbeInterval = 2 * time.Second

// probeDataDir writes, syncs and removes a small file in dir: the raft
// log and stable store need exactly that to work. It returns the first
// error (ENOSPC on a full disk, EACCES or EROFS on an unwritable one).
func probeDataDir(dir string) error {
	p := filepath.Join(dir, ".uamirror-probe")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(make([]byte, 4096))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(p)
	return errors.Join(werr, serr, cerr, rerr)
}

// dataDirLoop probes the data directory until ctx ends and keeps the
// outcome for Status (a member whose disk is full cannot persist the
// pair's log: it is not READY, and says why). It logs each change.
func (n *Node) dataDirLoop(ctx context.Context) {
	t := time.NewTicker(dataDirProbeInterval)
	defer t.Stop()
	for {
		err := probeDataDir(n.cfg.DataDir)
		var msg string
		if err != nil {
			msg = fmt.Sprintf("data directory %s does not take writes: %v", n.cfg.DataDir, err)
		}
		if old := n.dataDirErr.Swap(&msg); old == nil || *old != msg {
			switch {
			case msg != "":
				n.log.Error("data directory failing", zap.String("dir", n.cfg.DataDir), zap.Error(err))
			case old != nil:
				n.log.Info("data directory takes writes again", zap.String("dir", n.cfg.DataDir))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dataDirProblem returns the last probe's failure, or "".
func (n *Node) dataDirProblem() string {
	if p := n.dataDirErr.Load(); p != nil {
		return *p
	}
	return ""
}

// The raft log and stable store in the data directory. uamirror wrote
// raftStoreV1 with raft-boltdb v1 (boltdb, archived); it now keeps the
// store in raftStoreFile with raft-boltdb/v2 (bbolt) and migrates a v1
// store once, with raftboltdb.MigrateToV2, keeping the v1 file as
// raftStoreV1Done.
const (
	raftStoreFile    = "raft-v2.db"
	raftStoreV1      = "raft.db"
	raftStoreV1Done  = "raft.db.v1-migrated"
	raftStoreTmpFile = "raft-v2.db.migrating"
)

// openRaftStore opens the raft store in dir, first migrating a store that
// raft-boltdb v1 wrote. A migration that stopped half-way (a crash) is
// redone from the v1 file, which is renamed only after the v2 file is in
// place and synced. log may be nil.
func openRaftStore(dir string, log *zap.Logger) (*raftboltdb.BoltStore, error) {
	if log == nil {
		log = zap.NewNop()
	}
	path := filepath.Join(dir, raftStoreFile)
	v1 := filepath.Join(dir, raftStoreV1)
	_, err := os.Stat(path)
	switch {
	case err == nil:
		// Already v2. A v1 file still beside it is a migration that
		// stopped before renaming it: finish that.
		if _, err := os.Stat(v1); err == nil {
			if err := os.Rename(v1, filepath.Join(dir, raftStoreV1Done)); err != nil {
				return nil, fmt.Errorf("raft store: setting the migrated v1 store aside: %w", err)
			}
		}
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(v1); err == nil {
			if err := migrateRaftStore(dir); err != nil {
				return nil, err
			}
			log.Info("migrated the raft store to raft-boltdb v2 (bbolt)", zap.String("dir", dir),
				zap.String("from", raftStoreV1), zap.String("to", raftStoreFile), zap.String("v1_kept_as", raftStoreV1Done))
		}
	default:
		return nil, fmt.Errorf("raft store: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		return nil, fmt.Errorf("raft store %s: %w", path, err)
	}
	return store, nil
}

// migrateRaftStore copies the v1 store of dir into a new v2 file.
func migrateRaftStore(dir string) error {
	tmp := filepath.Join(dir, raftStoreTmpFile)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("raft store migration: removing a half-done %s: %w", tmp, err)
	}
	st, err := raftboltdb.MigrateToV2(filepath.Join(dir, raftStoreV1), tmp)
	if err != nil {
		return fmt.Errorf("raft store migration from %s to raft-boltdb v2: %w", raftStoreV1, err)
	}
	if err := errors.Join(st.Sync(), st.Close()); err != nil {
		return fmt.Errorf("raft store migration: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, raftStoreFile)); err != nil {
		return fmt.Errorf("raft store migration: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("raft store migration: %w", err)
	}
	if err := os.Rename(filepath.Join(dir, raftStoreV1), filepath.Join(dir, raftStoreV1Done)); err != nil {
		return fmt.Errorf("raft store migration: setting the v1 store aside: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

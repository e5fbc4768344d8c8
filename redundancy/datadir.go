package redundancy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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

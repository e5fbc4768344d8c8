package diagnostics_test

import (
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/uamirror/uamirror/diagnostics"
)

func TestRoleFields(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	var role atomic.Value
	var epoch atomic.Uint64
	role.Store("standby")
	epoch.Store(4)
	log := zap.New(diagnostics.RoleFields(core, func() (string, uint64) { return role.Load().(string), epoch.Load() })).
		With(zap.String("node", "a"))
	pair := log.Named("pair").With(zap.String("node", "a")) // a component adds node again
	pair.Info("one")
	role.Store("active")
	epoch.Store(5)
	pair.Warn("two")
	pair.Warn("three", zap.Uint64("epoch", 9))                   // the call site's epoch wins
	pair.With(zap.String("role", "node")).Info("member started") // so does a With field
	log.Debug("four")

	type want struct {
		role  string
		epoch uint64
	}
	wants := []want{{"standby", 4}, {"active", 5}, {"active", 9}, {"node", 5}, {"active", 5}}
	entries := logs.All()
	if len(entries) != len(wants) {
		t.Fatalf("%d entries", len(entries))
	}
	for i, e := range entries {
		m := e.ContextMap()
		if m["role"] != wants[i].role || m["epoch"] != wants[i].epoch || m["node"] != "a" {
			t.Errorf("%q: fields %v, want role %s epoch %d node a", e.Message, m, wants[i].role, wants[i].epoch)
		}
		n, r, ep := 0, 0, 0
		for _, f := range e.Context {
			switch f.Key {
			case "node":
				n++
			case "role":
				r++
			case "epoch":
				ep++
			}
		}
		if n != 1 || r != 1 || ep != 1 {
			t.Errorf("%q: node×%d role×%d epoch×%d, want each once", e.Message, n, r, ep)
		}
	}
}

func TestRoleFieldsLevel(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	calls := 0
	log := zap.New(diagnostics.RoleFields(core, func() (string, uint64) { calls++; return "active", 1 }))
	log.Info("dropped")
	log.Warn("kept")
	if logs.Len() != 1 || calls != 1 {
		t.Errorf("%d entries, role asked %d times; want 1 and 1 (not for disabled levels)", logs.Len(), calls)
	}
}

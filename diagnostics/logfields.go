package diagnostics

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// RoleFunc reports a member's current role (active, standby, arbiter)
// and the epoch it knows. It is called for every log entry written, from
// any goroutine: it must be cheap (atomics, no locks held across calls
// into the logger) and must not log.
type RoleFunc func() (role string, epoch uint64)

// RoleFields wraps core so that every entry gets "role" and "epoch"
// fields read from fn when the entry is written, so a line logged right
// after a switchover carries the new role. A field of the same name
// given at the call site (or added with With) wins. With also drops a
// field that repeats one already added with the same value (components
// that each add "node" then give one "node" key, not two).
func RoleFields(core zapcore.Core, fn RoleFunc) zapcore.Core {
	return &roleCore{Core: core, fn: fn}
}

type roleCore struct {
	zapcore.Core
	fn   RoleFunc
	with []zapcore.Field // fields added with With, to find repeats
}

func (c *roleCore) With(fields []zapcore.Field) zapcore.Core {
	var keep []zapcore.Field
	for _, f := range fields {
		if !c.has(f) {
			keep = append(keep, f)
		}
	}
	with := append(append([]zapcore.Field(nil), c.with...), keep...)
	return &roleCore{Core: c.Core.With(keep), fn: c.fn, with: with}
}

// has reports whether f repeats a field added with With.
func (c *roleCore) has(f zapcore.Field) bool {
	for _, w := range c.with {
		if w.Equals(f) {
			return true
		}
	}
	return false
}

func (c *roleCore) hasKey(key string, fields []zapcore.Field) bool {
	for _, f := range fields {
		if f.Key == key {
			return true
		}
	}
	for _, f := range c.with {
		if f.Key == key {
			return true
		}
	}
	return false
}

func (c *roleCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *roleCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	role, epoch := c.fn()
	out := make([]zapcore.Field, 0, len(fields)+2)
	if !c.hasKey("role", fields) {
		out = append(out, zap.String("role", role))
	}
	if !c.hasKey("epoch", fields) {
		out = append(out, zap.Uint64("epoch", epoch))
	}
	return c.Core.Write(ent, append(out, fields...))
}

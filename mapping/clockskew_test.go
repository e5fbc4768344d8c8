package mapping

import (
	"testing"
	"time"
)

// TestClockSkew: engine.clock_skew is read, defaults to 2s, counts in
// the config hash only when set, and must not be negative.
func TestClockSkew(t *testing.T) {
	const base = "servers:\n  - {name: a, endpoints: [\"opc.tcp://127.0.0.1:4840\"]}\n  - {name: b, endpoints: [\"opc.tcp://127.0.0.1:4841\"]}\n" +
		"mappings:\n  - {source: {server: a, node: \"ns=1;s=x\"}, target: {server: b, node: \"ns=1;s=x\"}}\n"
	parse := func(extra string) *Config {
		t.Helper()
		c, err := ParseYAML([]byte(base+extra), "t.yml")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	def, set := parse(""), parse("engine: {clock_skew: 10m}\n")
	if got := def.EngineSettings().ClockSkew; got != 2*time.Second {
		t.Errorf("default clock_skew %v, want 2s", got)
	}
	if got := set.EngineSettings().ClockSkew; got != 10*time.Minute {
		t.Errorf("clock_skew %v, want 10m", got)
	}
	if def.Hash() == set.Hash() {
		t.Error("clock_skew does not count in the config hash")
	}
	if parse("engine: {clock_skew: 2s}\n").Hash() != def.Hash() {
		t.Error("clock_skew: 2s (the default, written out) changes the hash")
	}
	if err := parse("engine: {clock_skew: -1s}\n").Validate(); err == nil {
		t.Error("a negative clock_skew validates")
	}
}

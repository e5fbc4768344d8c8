package mapping

import (
	"strings"
	"testing"
	"time"
)

func TestCanonical(t *testing.T) {
	yes, no := true, false
	base := func() Mapping {
		return Mapping{
			ID:     "0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a10",
			Source: NodeRef{"plc", "ns=2;s=a"},
			Target: NodeRef{"scada", "ns=2;s=b"},
		}
	}
	tests := []struct {
		name string
		edit func(m *Mapping)
		same bool
	}{
		{"pos", func(m *Mapping) { m.Pos = Pos{"x.yml", 7} }, true},
		{"explicit read", func(m *Mapping) { m.Direction = Read }, true},
		{"explicit enabled", func(m *Mapping) { m.Enabled = &yes }, true},
		{"explicit hold", func(m *Mapping) { m.OnBad = Hold }, true},
		{"upper-case id", func(m *Mapping) { m.ID = strings.ToUpper(m.ID) }, true},
		{"node spelling", func(m *Mapping) { m.Source.Node = "ns=02;s=a" }, true},
		{"guid case", func(m *Mapping) { m.Source.Node = "ns=2;g=72962b91-fa75-4ae6-8d28-b404dc7daf63" }, false},
		{"empty convert", func(m *Mapping) { m.Convert = &Conversion{} }, true},
		{"convert defaults", func(m *Mapping) { m.Convert = &Conversion{Rounding: RoundReject, Overflow: Reject} }, true},
		{"disabled", func(m *Mapping) { m.Enabled = &no }, false},
		{"write", func(m *Mapping) { m.Direction = Write }, false},
		{"status", func(m *Mapping) { m.OnBad = WriteStatus }, false},
		{"group", func(m *Mapping) { m.Group = "g" }, false},
		{"deadband", func(m *Mapping) { m.Deadband = &Deadband{DeadbandAbsolute, 0} }, false},
		{"sampling", func(m *Mapping) { m.SamplingInterval = time.Millisecond }, false},
		{"queue", func(m *Mapping) { m.QueueSize = 1 }, false},
		{"convert to", func(m *Mapping) { m.Convert = &Conversion{To: "Int16"} }, false},
		{"other id", func(m *Mapping) { m.ID = "0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a11" }, false},
		{"other server", func(m *Mapping) { m.Target.Server = "scada2" }, false},
	}
	b := base()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.edit(&m)
			if got := string(m.Canonical()) == string(b.Canonical()); got != tt.same {
				t.Errorf("same = %v, want %v:\n%s\nvs\n%s", got, tt.same, m.Canonical(), b.Canonical())
			}
			if got := m.Hash() == b.Hash(); got != tt.same {
				t.Errorf("hash same = %v, want %v", got, tt.same)
			}
		})
	}
	// The scaling defaults too, and -0 is 0.
	s1 := base()
	s1.Scaling = &Scaling{RawLow: 0, RawHigh: 1, EngLow: 0, EngHigh: 1}
	s2 := base()
	s2.Scaling = &Scaling{RawLow: negZero(), RawHigh: 1, EngLow: 0, EngHigh: 1, OutOfRange: Clamp}
	if s1.Hash() != s2.Hash() {
		t.Errorf("scaling defaults differ:\n%s\n%s", s1.Canonical(), s2.Canonical())
	}
	if len(b.Hash()) != 64 {
		t.Errorf("Hash() = %q, want 64 hex digits", b.Hash())
	}
}

// negZero returns -0.0 (a constant expression cannot).
func negZero() float64 {
	z := 0.0
	return -z
}

func TestConfigHash(t *testing.T) {
	a, err := Load("testdata/good/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Load("testdata/good/full.yml")

	// Order of servers, groups and mappings, Pos and File do not count.
	b.Servers[0], b.Servers[2] = b.Servers[2], b.Servers[0]
	b.Groups[0], b.Groups[1] = b.Groups[1], b.Groups[0]
	b.Mappings[0], b.Mappings[2] = b.Mappings[2], b.Mappings[0]
	b.File = "other.yml"
	b.Mappings[1].Pos = Pos{}
	if a.Hash() != b.Hash() {
		t.Error("hash depends on order, Pos or File")
	}
	// Defaults spelled out do not count.
	b.Engine = Engine{}
	a.Engine = DefaultEngine()
	if a.Hash() != b.Hash() {
		t.Error("hash depends on how engine defaults are spelled")
	}
	b.Servers[0].Timeouts = DefaultTimeouts() // was zero (historian_2)
	if a.Hash() != b.Hash() {
		t.Error("hash depends on how timeout defaults are spelled")
	}
	for name, edit := range map[string]func(c *Config){
		"endpoint order": func(c *Config) {
			s := c.Server("plc")
			s.Endpoints[0], s.Endpoints[1] = s.Endpoints[1], s.Endpoints[0]
		},
		"password env": func(c *Config) { c.Server("plc").Auth.PasswordEnv = "X" },
		"group":        func(c *Config) { c.Group("slow").QueueSize = 2 },
		"engine":       func(c *Config) { c.Engine.WriteBatch = 1 },
		"mapping":      func(c *Config) { c.Mappings[0].QueueSize = 99 },
		"no mapping":   func(c *Config) { c.Mappings = c.Mappings[1:] },
	} {
		c, _ := Load("testdata/good/full.yml")
		h := c.Hash()
		edit(c)
		if c.Hash() == h {
			t.Errorf("%s: hash did not change", name)
		}
	}
}

func TestDiff(t *testing.T) {
	m := func(id, node string) Mapping {
		return Mapping{ID: id, Source: NodeRef{"a", node}, Target: NodeRef{"b", node}}
	}
	const (
		id1 = "00000000-0000-4000-8000-000000000001"
		id2 = "00000000-0000-4000-8000-000000000002"
		id3 = "00000000-0000-4000-8000-000000000003"
		id4 = "00000000-0000-4000-8000-000000000004"
	)
	old := &Config{Mappings: []Mapping{m(id1, "i=1"), m(id2, "i=2"), m(id3, "i=3")}}
	changed := m(id2, "i=22")
	respelled := m(strings.ToUpper(id3), "ns=0;i=3")
	respelled.Direction = Read
	respelled.Pos = Pos{"x", 1}
	cur := &Config{Mappings: []Mapping{m(id4, "i=4"), changed, respelled}}

	d := Diff(old, cur)
	ids := func(ms []Mapping) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.ID)
		}
		return strings.Join(s, ",")
	}
	if ids(d.Added) != id4 || ids(d.Changed) != id2 || ids(d.Removed) != id1 {
		t.Errorf("Diff = added %s, changed %s, removed %s", ids(d.Added), ids(d.Changed), ids(d.Removed))
	}
	if d.Changed[0].Source.Node != "i=22" {
		t.Error("Changed does not hold the new version")
	}
	if d.Empty() || d.String() != "1 added, 1 changed, 1 removed" {
		t.Errorf("String() = %q", d.String())
	}
	if d := Diff(old, old); !d.Empty() || d.String() != "no changes" {
		t.Errorf("Diff(old, old) = %v", d)
	}
	if d := Diff(nil, old); len(d.Added) != 3 || len(d.Removed) != 0 {
		t.Errorf("Diff(nil, old) = %v", d)
	}
	if d := Diff(old, nil); len(d.Removed) != 3 || len(d.Added) != 0 {
		t.Errorf("Diff(old, nil) = %v", d)
	}
}

// TestDiffSettings: a change outside the mappings is named, so that an
// engine-only apply does not say "no changes".
func TestDiffSettings(t *testing.T) {
	base := func() *Config {
		return &Config{
			Servers: []Server{{Name: "plc", Endpoints: []string{"opc.tcp://127.0.0.1:4840"}}, {Name: "scada", Endpoints: []string{"opc.tcp://127.0.0.1:4841"}}},
			Groups:  []Group{{Name: "fast", PublishingInterval: 50 * time.Millisecond}},
		}
	}
	tests := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"nothing", func(*Config) {}, "no changes"},
		{"engine", func(c *Config) { c.Engine.WriteBatch = 200 }, "0 added, 0 changed, 0 removed; changed: engine"},
		{"engine default spelled out", func(c *Config) { c.Engine.WriteBatch = 1000 }, "no changes"},
		{"server endpoint", func(c *Config) { c.Servers[1].Endpoints = []string{"opc.tcp://127.0.0.1:9"} },
			"0 added, 0 changed, 0 removed; changed: server scada"},
		{"group interval and a new server", func(c *Config) {
			c.Groups[0].PublishingInterval = time.Second
			c.Servers = append(c.Servers, Server{Name: "mes", Endpoints: []string{"opc.tcp://127.0.0.1:7"}})
		}, "0 added, 0 changed, 0 removed; changed: server mes, group fast"},
		{"group removed", func(c *Config) { c.Groups = nil }, "0 added, 0 changed, 0 removed; changed: group fast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(c)
			if got := Diff(base(), c).String(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

package mapping

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

func TestParseYAMLPositions(t *testing.T) {
	c, err := Load("testdata/good/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	const f = "testdata/good/full.yml"
	checks := []struct {
		name string
		got  Pos
		line int
	}{
		{"servers[0]", c.Servers[0].Pos, 3},
		{"servers[1]", c.Servers[1].Pos, 19},
		{"servers[2]", c.Servers[2].Pos, 27},
		{"groups[0]", c.Groups[0].Pos, 33},
		{"groups[1]", c.Groups[1].Pos, 37},
		{"mappings[0]", c.Mappings[0].Pos, 40},
		{"mappings[1]", c.Mappings[1].Pos, 60},
		{"mappings[2]", c.Mappings[2].Pos, 64},
	}
	for _, ck := range checks {
		if ck.got != (Pos{File: f, Line: ck.line}) {
			t.Errorf("%s: Pos = %+v, want line %d", ck.name, ck.got, ck.line)
		}
	}
	if c.File != f {
		t.Errorf("File = %q", c.File)
	}
}

func TestParseYAMLValues(t *testing.T) {
	c, err := Load("testdata/good/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Server("plc")
	if s == nil {
		t.Fatal("no server plc")
	}
	if got := s.Timeouts; got != (Timeouts{3 * time.Second, 2 * time.Second, 500 * time.Millisecond, 2 * time.Minute, 5 * time.Second}) {
		t.Errorf("timeouts = %+v", got)
	}
	if s.Auth != (Auth{Type: "username", Username: "mirror", PasswordEnv: "PLC_PASSWORD"}) {
		t.Errorf("auth = %+v", s.Auth)
	}
	m := c.Mappings[0]
	if m.Deadband == nil || *m.Deadband != (Deadband{DeadbandAbsolute, 0.1}) {
		t.Errorf("deadband = %+v", m.Deadband)
	}
	if m.Scaling == nil || *m.Scaling != (Scaling{0, 27648, -50, 150, Reject}) {
		t.Errorf("scaling = %+v", m.Scaling)
	}
	if m.Convert == nil || *m.Convert != (Conversion{"Float", RoundTruncate, Clamp}) {
		t.Errorf("convert = %+v", m.Convert)
	}
	if m.SamplingInterval != 10*time.Millisecond || m.QueueSize != 3 || !m.IsEnabled() || m.OnBad != WriteStatus {
		t.Errorf("mapping = %+v", m)
	}
	if c.Mappings[1].Deadband.Value != 1e-7 {
		t.Errorf("deadband 1e-7 read as %v", c.Mappings[1].Deadband.Value)
	}
	if c.Mappings[2].IsEnabled() {
		t.Error("mappings[2] should be disabled")
	}
	if c.Engine != (Engine{500, 2, 200, 250 * time.Millisecond, 100 * time.Millisecond, 30 * time.Second, 0}) {
		t.Errorf("engine = %+v", c.Engine)
	}
}

func TestParseYAMLAnchors(t *testing.T) {
	c, err := Load("testdata/good/anchors.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mappings) != 3 {
		t.Fatalf("%d mappings", len(c.Mappings))
	}
	if got := c.Servers[1].Timeouts.Connect; got != 2*time.Second {
		t.Errorf("aliased timeouts: connect = %v", got)
	}
	for i, want := range []struct {
		target string
		db     float64
	}{{"ns=2;s=x1", 1}, {"ns=2;s=x2", 1}, {"ns=2;s=x3", 2}} {
		m := c.Mappings[i]
		if m.Source != (NodeRef{"a", "ns=2;s=x1"}) || m.Target.Node != want.target {
			t.Errorf("mappings[%d] = %+v -> %+v", i, m.Source, m.Target)
		}
		if m.Deadband == nil || m.Deadband.Value != want.db || m.Deadband.Type != DeadbandAbsolute {
			t.Errorf("mappings[%d].deadband = %+v", i, m.Deadband)
		}
	}
	// Merged-in mappings must not share the anchor's deadband pointer.
	if c.Mappings[0].Deadband == c.Mappings[1].Deadband {
		t.Error("mappings share a Deadband")
	}
}

func TestParseYAMLEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "---\n", "~\n"} {
		c, err := ParseYAML([]byte(in), "e.yml")
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if len(c.Servers)+len(c.Mappings) != 0 || c.File != "e.yml" {
			t.Errorf("%q: %+v", in, c)
		}
	}
}

func TestParseYAMLErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // full error text
		err  error
	}{
		{"top level list", "- a\n", "x.yml:1: must be a mapping (key: value), not a list", ErrInvalidValue},
		{"top level scalar", "hello\n", `x.yml:1: must be a mapping (key: value), not a single value (value "hello")`, ErrInvalidValue},
		{"servers not a list", "servers: {a: 1}\n", "x.yml:1: servers: must be a list, not a mapping (key: value)", ErrInvalidValue},
		{"clipped key", "groups:\n  - name: g\n    publishing: 1s\n",
			`x.yml:3: groups[0].publishing: unknown key "publishing"; did you mean "publishing_interval"?`, ErrUnknownKey},
		{"non-scalar key", "? [a]\n: 1\n", "x.yml:1: keys must be plain words, not a list", ErrInvalidValue},
		{"bad merge", "servers:\n  - <<: 5\n", "x.yml:2: servers[0]: << needs a mapping or a list of mappings, not a single value", ErrInvalidValue},
		{"unknown alias", "servers: *nope\n", "x.yml:1: unknown anchor 'nope' referenced", ErrSyntax},
		{"bare duration", "engine: {retry_min: 100}\n", `x.yml:1: engine.retry_min: a duration needs a unit, e.g. "100ms" or "5s" (value "100")`, ErrInvalidValue},
		{"float for int", "engine: {write_batch: 1.5}\n", `x.yml:1: engine.write_batch: must be a whole number (value "1.5")`, ErrInvalidValue},
		{"quoted number", "mappings:\n  - deadband: {type: absolute, value: \"1\"}\n", `x.yml:2: mappings[0].deadband.value: must be a number (value "1")`, ErrInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseYAML([]byte(tt.in), "x.yml")
			if err == nil {
				t.Fatalf("no error: %+v", c)
			}
			if c != nil {
				t.Error("config returned with an error")
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error does not wrap %v", tt.err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
		})
	}
}

func TestSecretNeverEchoed(t *testing.T) {
	in := "servers:\n  - name: a\n    auth: {type: username, username: u, password: hunter2, Password: \"s3cr3t\", db_password: x9}\n"
	_, err := ParseYAML([]byte(in), "s.yml")
	if !errors.Is(err, ErrSecretInConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, secret := range []string{"hunter2", "s3cr3t", "x9"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error echoes the secret %q: %v", secret, err)
		}
	}
	if n := len(err.(Errors)); n != 3 {
		t.Errorf("%d errors, want 3: %v", n, err)
	}
	if !strings.Contains(err.Error(), "password_env") || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("error does not say what to use instead: %v", err)
	}
}

func TestAliasExpansionBounded(t *testing.T) {
	// Nine levels of ten aliases each would expand to 10^9 nodes.
	var b strings.Builder
	b.WriteString("x0: &a0 [1,2,3,4,5,6,7,8,9,10]\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("x" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("mappings:\n  - <<: {source: *a9}\n")
	done := make(chan error, 1)
	go func() {
		_, err := ParseYAML([]byte(b.String()), "bomb.yml")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ParseYAML did not bound alias expansion")
	}
}

func TestDeriveID(t *testing.T) {
	// The namespace must stay what its comment says.
	if want := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/uamirror/uamirror#mapping")); idNamespace != want {
		t.Fatalf("idNamespace = %s, want %s", idNamespace, want)
	}
	a := NodeRef{"plc", "nsu=urn:uamirror:simserver;s=v1"}
	b := NodeRef{"scada", "nsu=urn:uamirror:simserver;s=v1"}
	id := DeriveID(a, b)
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 5 {
		t.Fatalf("DeriveID = %q (%v), want a UUIDv5", id, err)
	}
	// A fixed value: changing it would change every stored id.
	if id != "debca642-aa75-5ddd-9c69-7a8ba23b6b36" {
		t.Errorf("DeriveID = %s; derived ids changed", id)
	}
	if DeriveID(b, a) == id {
		t.Error("swapping source and target gives the same id")
	}
	if DeriveID(NodeRef{"plc", "ns=02;s=x"}, b) != DeriveID(NodeRef{"plc", "ns=2;s=x"}, b) {
		t.Error("id depends on how the node id is spelled")
	}
	// Server and node boundaries must not blur.
	if DeriveID(NodeRef{"p", "lc"}, b) == DeriveID(NodeRef{"pl", "c"}, b) {
		t.Error("ids collide across the server/node boundary")
	}

	c, err := ParseYAML([]byte("mappings:\n  - source: {server: plc, node: \"nsu=urn:uamirror:simserver;s=v1\"}\n    target: {server: scada, node: \"nsu=urn:uamirror:simserver;s=v1\"}\n"), "d.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mappings[0].ID != id {
		t.Errorf("ParseYAML derived %s, want %s", c.Mappings[0].ID, id)
	}
}

func TestMarshalYAMLRoundTrip(t *testing.T) {
	for _, f := range []string{"testdata/good/full.yml", "testdata/good/minimal.yml", "testdata/good/anchors.yml", "testdata/good/empty.yml", "../examples/mirror.yml"} {
		t.Run(f, func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := MarshalYAML(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := ParseYAML(out, "out.yml")
			if err != nil {
				t.Fatalf("re-parse: %v\n%s", err, out)
			}
			if c.Hash() != c2.Hash() {
				t.Errorf("hash changed through MarshalYAML:\n%s", out)
			}
			out2, err := MarshalYAML(c2)
			if err != nil || !bytes.Equal(out, out2) {
				t.Errorf("MarshalYAML not stable: %v\n%s\n---\n%s", err, out, out2)
			}
		})
	}
}

// TestMarshalYAMLGolden compares MarshalYAML's output with golden files;
// run with -update to rewrite them.
func TestMarshalYAMLGolden(t *testing.T) {
	for _, name := range []string{"full", "minimal"} {
		t.Run(name, func(t *testing.T) {
			c, err := Load("testdata/good/" + name + ".yml")
			if err != nil {
				t.Fatal(err)
			}
			got, err := MarshalYAML(c)
			if err != nil {
				t.Fatal(err)
			}
			golden := "testdata/golden/" + name + ".yml.golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("MarshalYAML differs from %s (run go test -update if intended):\n%s", golden, got)
			}
		})
	}
}

func TestMarshalYAMLOmitsDefaults(t *testing.T) {
	c := &Config{
		Servers:  []Server{{Name: "a", Endpoints: []string{"opc.tcp://h:4840"}}},
		Mappings: []Mapping{{ID: "0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a10", Source: NodeRef{"a", "i=1"}, Target: NodeRef{"a", "i=2"}}},
	}
	out, err := MarshalYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `servers:
  - name: a
    endpoints:
      - opc.tcp://h:4840
mappings:
  - id: 0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a10
    source:
      server: a
      node: i=1
    target:
      server: a
      node: i=2
`
	if string(out) != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{Pos{"a.yml", 3}, "mappings[0].id", "x", "bad", ErrInvalidValue}, `a.yml:3: mappings[0].id: bad (value "x")`},
		{FieldError{Pos{"a.yml", 0}, "engine", "", "bad", ErrInvalidValue}, `a.yml: engine: bad`},
		{FieldError{Pos{"", 7}, "", "", "", ErrSyntax}, `line 7: syntax error`},
		{FieldError{Pos{}, "f", "a\"b", "m", ErrMissing}, `f: m (value "a\"b")`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if !errors.Is(&tt.e, tt.e.Err) {
			t.Errorf("%q does not unwrap to its sentinel", tt.want)
		}
	}
	es := Errors{&tests[0].e, &tests[2].e}
	if es.Error() != tests[0].want+"\n"+tests[2].want {
		t.Errorf("Errors.Error() = %q", es.Error())
	}
	if !errors.Is(es, ErrSyntax) || !errors.Is(es, ErrInvalidValue) || errors.Is(es, ErrLoop) {
		t.Error("Errors does not unwrap to exactly its sentinels")
	}
	var fe *FieldError
	if !errors.As(error(es), &fe) || fe != &tests[0].e {
		t.Error("errors.As does not find the first FieldError")
	}
}

package mapping

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const maxHoldYAML = `servers:
  - {name: plc, endpoints: [opc.tcp://127.0.0.1:4840]}
  - {name: scada, endpoints: [opc.tcp://127.0.0.1:4841]}
groups:
  - {name: slow, max_hold: %GROUP%}
mappings:
  - source: {server: plc, node: "ns=1;s=a"}
    target: {server: scada, node: "ns=1;s=a"}
    group: slow
  - source: {server: plc, node: "ns=1;s=b"}
    target: {server: scada, node: "ns=1;s=b"}
    group: slow
    max_hold: %MAPPING%
  - source: {server: plc, node: "ns=1;s=c"}
    target: {server: scada, node: "ns=1;s=c"}
`

func maxHoldConfig(group, mapping string) []byte {
	return []byte(strings.NewReplacer("%GROUP%", group, "%MAPPING%", mapping).Replace(maxHoldYAML))
}

func TestMaxHoldEffective(t *testing.T) {
	c, err := ParseAndValidate(maxHoldConfig("30s", "5s"), "m.yml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{30 * time.Second, 5 * time.Second, 0} {
		if got := c.MaxHold(&c.Mappings[i]); got != want {
			t.Errorf("mapping %d: max_hold %v, want %v", i, got, want)
		}
	}
	// max_hold is part of the mapping's identity: a change shows in the hash.
	c2, err := ParseAndValidate(maxHoldConfig("30s", "6s"), "m.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mappings[1].Hash() == c2.Mappings[1].Hash() {
		t.Error("a changed max_hold does not change the mapping's hash")
	}
	if c.Mappings[0].Hash() != c2.Mappings[0].Hash() {
		t.Error("a mapping without max_hold changed its hash")
	}
	out, err := MarshalYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseAndValidate(out, "back.yml")
	if err != nil {
		t.Fatalf("marshalled config does not parse: %v\n%s", err, out)
	}
	if back.Mappings[1].MaxHold != 5*time.Second || back.Groups[0].MaxHold != 30*time.Second {
		t.Errorf("max_hold lost in YAML round trip:\n%s", out)
	}
}

func TestMaxHoldInvalid(t *testing.T) {
	for _, tc := range []struct {
		group, mapping string
		field          string
		line           int
	}{
		{"-1s", "5s", "groups[0].max_hold", 5},
		{"30s", "100ms", "mappings[1].max_hold", 13},
		{"30s", "-2s", "mappings[1].max_hold", 13},
		{"500ms", "0s", "groups[0].max_hold", 5},
	} {
		_, err := ParseAndValidate(maxHoldConfig(tc.group, tc.mapping), "m.yml")
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 {
			t.Errorf("group %s mapping %s: want one error, got %v", tc.group, tc.mapping, err)
			continue
		}
		e := es[0]
		if e.Field != tc.field || e.Pos.Line != tc.line || !errors.Is(e, ErrInvalidValue) {
			t.Errorf("group %s mapping %s: got %v (field %s line %d), want %s line %d ErrInvalidValue",
				tc.group, tc.mapping, e, e.Field, e.Pos.Line, tc.field, tc.line)
		}
	}
}

package mapping

import (
	"strings"
	"testing"
)

func TestReplaceMappingsYAMLKeepsComments(t *testing.T) {
	src := `# The plant mirror: owned by the controls team.
servers:
  # The PLC, line 3.
  - name: plc
    endpoints: ["opc.tcp://127.0.0.1:4840"] # primary
  - name: scada
    endpoints: ["opc.tcp://127.0.0.1:4841"]
engine:
  write_batch: 500 # measured, do not raise
# The mappings below come from the CSV.
mappings:
  # an old one
  - source: {server: plc, node: "ns=1;s=old"}
    target: {server: scada, node: "ns=1;s=old"}
# end of file
`
	ms := []Mapping{{ID: "0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a10", Source: NodeRef{Server: "plc", Node: "ns=1;s=a"}, Target: NodeRef{Server: "scada", Node: "ns=1;s=a"}}}
	out, err := ReplaceMappingsYAML([]byte(src), ms)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{"# The plant mirror: owned by the controls team.", "# The PLC, line 3.", "# primary",
		"# measured, do not raise", "# The mappings below come from the CSV.", "# end of file", "ns=1;s=a", "0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a10"} {
		if !strings.Contains(got, want) {
			t.Errorf("result lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"ns=1;s=old", "# an old one"} {
		if strings.Contains(got, gone) {
			t.Errorf("result still has %q:\n%s", gone, got)
		}
	}
	c, err := ParseAndValidate(out, "out.yaml")
	if err != nil {
		t.Fatalf("result does not validate: %v\n%s", err, got)
	}
	if len(c.Mappings) != 1 || c.Mappings[0].ID != "0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a10" || c.EngineSettings().WriteBatch != 500 {
		t.Fatalf("result parsed to %+v", c)
	}
}

func TestReplaceMappingsYAMLAppendsAndEmpties(t *testing.T) {
	src := "servers:\n  - name: plc # the only one\n    endpoints: [\"opc.tcp://127.0.0.1:4840\"]\n"
	out, err := ReplaceMappingsYAML([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseYAML(out, "out.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(c.Mappings) != 0 || !strings.Contains(string(out), "# the only one") || !strings.Contains(string(out), "mappings: []") {
		t.Fatalf("got:\n%s", out)
	}
	if _, err := ReplaceMappingsYAML([]byte("- a\n- b\n"), nil); err == nil {
		t.Fatal("a list document was accepted")
	}
}

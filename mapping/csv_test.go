package mapping

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestCSVRoundTrip reads a CSV file, puts its mappings into a config,
// writes the config as YAML, reads that back and writes CSV again: the
// bytes must not change.
func TestCSVRoundTrip(t *testing.T) {
	for _, f := range []string{"testdata/good/mappings.csv", "../examples/mappings.csv"} {
		t.Run(f, func(t *testing.T) {
			orig, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := ReadCSV(bytes.NewReader(orig), f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(csvBase)
			if err != nil {
				t.Fatal(err)
			}
			c.Mappings = ms
			y, err := MarshalYAML(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := ParseYAML(y, "rt.yml")
			if err != nil {
				t.Fatalf("%v\n%s", err, y)
			}
			var out bytes.Buffer
			if err := WriteCSV(&out, c2.Mappings); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), orig) {
				t.Errorf("CSV → YAML → CSV changed the file:\n%s\nwant:\n%s\nvia YAML:\n%s", out.Bytes(), orig, y)
			}
			if c.Hash() != c2.Hash() {
				t.Error("hash changed through YAML")
			}
		})
	}
}

func TestReadCSV(t *testing.T) {
	in := "\uFEFFtarget_node, source_node ,target_server,source_server,enabled,deadband_type,deadband_value,queue_size,sampling_interval,convert_overflow\n" +
		"ns=2;s=t,ns=2;s=s,scada,plc, FALSE ,percent,0.1,7,1m30s,clamp\n" +
		"\n" +
		"i=2,i=1,b,a,,,,,,\n"
	ms, err := ReadCSV(strings.NewReader(in), "r.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("%d mappings", len(ms))
	}
	m := ms[0]
	if m.Source != (NodeRef{"plc", "ns=2;s=s"}) || m.Target != (NodeRef{"scada", "ns=2;s=t"}) {
		t.Errorf("ends = %+v %+v", m.Source, m.Target)
	}
	if m.Enabled == nil || *m.Enabled || m.Deadband == nil || *m.Deadband != (Deadband{DeadbandPercent, 0.1}) ||
		m.QueueSize != 7 || m.SamplingInterval != 90*time.Second || m.Convert == nil || *m.Convert != (Conversion{Overflow: Clamp}) {
		t.Errorf("mapping = %+v", m)
	}
	if m.Pos != (Pos{"r.csv", 2}) || ms[1].Pos != (Pos{"r.csv", 4}) {
		t.Errorf("positions %+v %+v", m.Pos, ms[1].Pos)
	}
	if ms[1].Deadband != nil || ms[1].Scaling != nil || ms[1].Convert != nil || ms[1].Enabled != nil {
		t.Errorf("empty cells set fields: %+v", ms[1])
	}
	// Empty ids get fresh random UUIDs.
	for _, m := range ms {
		u, err := uuid.Parse(m.ID)
		if err != nil || u.Version() != 4 {
			t.Errorf("id %q is not a random UUID", m.ID)
		}
	}
	if ms[0].ID == ms[1].ID {
		t.Error("ids repeat")
	}
}

func TestReadCSVErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"empty", "", `e.csv:1: empty file: the first line must be the header (` + strings.Join(csvColumns, ",") + `)`, ErrMissing},
		{"typo column", "source_server,source_node,target_server,target_node,dirction\n",
			`e.csv:1: dirction: unknown column "dirction"; did you mean "direction"?`, ErrUnknownKey},
		{"scale without numbers", "source_server,source_node,target_server,target_node,scale_out_of_range\na,i=1,b,i=2,clamp\n",
			"e.csv:2: scale_raw_low: a number is required here\ne.csv:2: scale_raw_high: a number is required here\n" +
				"e.csv:2: scale_eng_low: a number is required here\ne.csv:2: scale_eng_high: a number is required here", ErrMissing},
		{"quote error on a later line", "source_server,source_node,target_server,target_node\na,\"i=1\nx\"y,b,i=2\n",
			`e.csv:2: extraneous or missing " in quoted-field (line 3, column 2)`, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ReadCSV(strings.NewReader(tt.in), "e.csv")
			if err == nil {
				t.Fatalf("no error: %+v", ms)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error does not wrap %v: %v", tt.err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
		})
	}
}

func TestAssignIDs(t *testing.T) {
	ms := []Mapping{{ID: "keep"}, {}, {}}
	AssignIDs(ms)
	if ms[0].ID != "keep" || ms[1].ID == "" || ms[2].ID == "" || ms[1].ID == ms[2].ID {
		t.Errorf("ids = %q %q %q", ms[0].ID, ms[1].ID, ms[2].ID)
	}
}

func TestWriteCSVHeader(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != strings.Join(CSVColumns(), ",")+"\n" {
		t.Errorf("header = %q", b.String())
	}
	cols := CSVColumns()
	cols[0] = "changed"
	if CSVColumns()[0] != "id" {
		t.Error("CSVColumns exposes its backing array")
	}
}

// TestCSVDocumented checks that CSV.md and the comment in csv.go list
// every column.
func TestCSVDocumented(t *testing.T) {
	for _, f := range []string{"CSV.md", "csv.go"} {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range csvColumns {
			if !bytes.Contains(doc, []byte(c)) {
				t.Errorf("%s does not document column %s", f, c)
			}
		}
	}
}

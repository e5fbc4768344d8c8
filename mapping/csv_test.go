package mapping

import (
	"bytes"
	"errors"
	"fmt"
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

// TestReadCSVSpreadsheets: the files spreadsheets write (a sep= line,
// semicolons, UTF-16 with a byte-order mark, tabs, columns without a name
// and rows of separators only) read to the same mappings, at the same
// lines, as testdata/good/mappings.csv.
func TestReadCSVSpreadsheets(t *testing.T) {
	want := readCSVFile(t, "testdata/good/mappings.csv")
	tests := []struct {
		file  string
		lines []int // line of each mapping in the file
	}{
		{"testdata/good/spreadsheet-excel-sep.csv", []int{3, 5, 6, 7, 8, 9}},
		{"testdata/good/spreadsheet-semicolon.csv", []int{2, 3, 4, 5, 6, 7}},
		{"testdata/good/spreadsheet-utf16le.csv", []int{2, 3, 4, 5, 6, 7}},
		{"testdata/good/spreadsheet-utf16be.csv", []int{3, 4, 5, 6, 7, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := readCSVFile(t, tt.file)
			if len(got) != len(want) {
				t.Fatalf("%d mappings, want %d", len(got), len(want))
			}
			for i := range want {
				if a, b := got[i].Canonical(), want[i].Canonical(); !bytes.Equal(a, b) {
					t.Errorf("mapping %d:\n%s\nwant:\n%s", i, a, b)
				}
				if got[i].Pos.Line != tt.lines[i] {
					t.Errorf("mapping %d at line %d, want %d", i, got[i].Pos.Line, tt.lines[i])
				}
			}
		})
	}
}

func readCSVFile(t *testing.T, path string) []Mapping {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := ReadCSV(bytes.NewReader(b), path)
	if err != nil {
		t.Fatalf("ReadCSV(%s):\n%v", path, err)
	}
	return ms
}

// TestReadCSVSeparators: how the separator and the encoding are found,
// and what is refused with which reason.
func TestReadCSVSeparators(t *testing.T) {
	const hdr = "source_server,source_node,target_server,target_node"
	semi := strings.ReplaceAll(hdr, ",", ";")
	utf16le := func(s string) string {
		b := []byte{0xFF, 0xFE}
		for _, r := range s {
			b = append(b, byte(r), 0)
		}
		return string(b)
	}
	tests := []struct {
		name, in string
		nodes    []string // source nodes read
		lines    []int
		err      string // the error instead
	}{
		{"comma", hdr + "\na,i=1,b,i=2\n", []string{"i=1"}, []int{2}, ""},
		{"semicolon from the header", semi + "\na;\"ns=2;s=x\";b;i=2\n", []string{"ns=2;s=x"}, []int{2}, ""},
		{"tab from the header", strings.ReplaceAll(hdr, ",", "\t") + "\na\tns=2;s=x\tb\ti=2\n", []string{"ns=2;s=x"}, []int{2}, ""},
		{"sep line", "sep=;\n" + semi + "\na;i=1;b;i=2\n", []string{"i=1"}, []int{3}, ""},
		{"sep line in capitals, CRLF, quoted", "\"SEP=|\"\r\n" + strings.ReplaceAll(hdr, ",", "|") + "\r\na|i=1|b|i=2\r\n", []string{"i=1"}, []int{3}, ""},
		{"sep line overrides the header", "sep=,\n" + semi + "\n", nil, nil,
			`s.csv:2: source_server;source_node;target_server;target_node: unknown column "source_server;source_node;target_server;target_node"`},
		{"sep line only", "sep=;\n", nil, nil, "s.csv:2: empty file: the first line must be the header"},
		{"sep letter", "sep=x\n" + hdr + "\n", nil, nil, `s.csv:1: the sep= line names a separator that cannot separate CSV cells; use sep=, or sep=; or sep=<tab> (value "x")`},
		{"sep quote", "sep=\"\n" + hdr + "\n", nil, nil, `s.csv:1: the sep= line names a separator`},
		{"line numbers after the sep line", "sep=;\n" + semi + "\na;\"i=1\n", nil, nil, `s.csv:3: extraneous or missing " in quoted-field`},
		{"rows of separators", hdr + ",,\n,,,,,\n , ,,,,\na,i=1,b,i=2,,\n,,,,,\n", []string{"i=1"}, []int{4}, ""},
		{"unnamed column in the middle", "source_server,,source_node,target_server,target_node\na,,i=1,b,i=2\n", []string{"i=1"}, []int{2}, ""},
		{"value in an unnamed column", hdr + ",\na,i=1,b,i=2,x\n", nil, nil, `s.csv:2: column 5: a value in a column without a name in the header (value "x")`},
		{"unquoted separator in a cell", semi + "\na;ns=2;s=x;b;i=2\n", nil, nil, `s.csv:2: the row has 5 cells but the header 4 columns; a cell that holds ';' must be quoted`},
		{"short row", hdr + "\na,i=1,b\n", nil, nil, "s.csv:2: the row has 3 cells but the header 4 columns"},
		{"utf-8 bom and sep line", "\uFEFFsep=;\n" + semi + "\na;i=1;b;i=2\n", []string{"i=1"}, []int{3}, ""},
		{"utf-16 le", utf16le(hdr + "\r\na,i=1,b,i=2\r\n"), []string{"i=1"}, []int{2}, ""},
		{"utf-16 odd length", utf16le(hdr) + "x", nil, nil, "s.csv:1: the file starts with a UTF-16 byte-order mark but has an odd number of bytes"},
		{"utf-16 without bom", utf16le(hdr)[2:], nil, nil, "s.csv:1: the file looks like UTF-16 without a byte-order mark"},
		{"utf-32", "\xFF\xFE\x00\x00s\x00\x00\x00", nil, nil, "s.csv:1: the file is UTF-32, which is not supported"},
		{"latin-1 cell", hdr + "\na,ns=2;s=Gr\xFC\xDFe,b,i=2\n", nil, nil, `s.csv:2: source_node: not valid UTF-8 (save the file as UTF-8)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ReadCSV(strings.NewReader(tt.in), "s.csv")
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("error:\n%v\nwant one starting with:\n%s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var nodes []string
			var lines []int
			for _, m := range ms {
				nodes = append(nodes, m.Source.Node)
				lines = append(lines, m.Pos.Line)
			}
			if strings.Join(nodes, "|") != strings.Join(tt.nodes, "|") || fmt.Sprint(lines) != fmt.Sprint(tt.lines) {
				t.Errorf("source nodes %q at lines %v, want %q at %v", nodes, lines, tt.nodes, tt.lines)
			}
		})
	}
}

// TestReadCSVOneRun: an unknown column does not hide the errors in the
// rows.
func TestReadCSVOneRun(t *testing.T) {
	in := "source_server,source_node,target_server,target_node,colour,queue_size\na,i=1,b,i=2,red,many\n"
	_, err := ReadCSV(strings.NewReader(in), "o.csv")
	want := "o.csv:1: colour: unknown column \"colour\"; allowed: " + strings.Join(csvColumns, ", ") + "\n" +
		`o.csv:2: queue_size: must be a whole number in 0..4294967295 (value "many")`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

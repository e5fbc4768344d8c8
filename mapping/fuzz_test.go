package mapping

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addFiles adds the contents of the files matching pattern to the corpus.
func addFiles(f *testing.F, pattern string) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzParseNodeID(f *testing.F) {
	for _, s := range []string{
		"i=85", "ns=0;i=0", "ns=2;s=Line1.Temperature", "ns=65535;i=4294967295",
		"g=72962b91-fa75-4ae6-8d28-b404dc7daf63", "ns=1;b=AQIDBA==", "b=/w==",
		"nsu=urn:uamirror:simserver;s=v1", "nsu=http://opcfoundation.org/UA/;i=2258",
		"nsu=urn:x;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63", "nsu=urn:x;b=AQID",
		"s=a;b", "ns=2;s=a;ns=3;i=1", "nsu=a;nsu=b;s=c", "ns=2;s=", "", ";", "ns=;", "nsu=;",
		"ns=2;i=", "i=-0", "ns=00002;i=00", "g=", "b=====", "ns=2;s=\x00", "s=\xff",
		"ns=99999999999999999999;i=1", "i=99999999999999999999", "x=1", "S=x", "ns=2;S=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNodeID(s)
		if err != nil {
			if n.ID != nil {
				t.Fatalf("error with a value: %v", err)
			}
			return
		}
		c := n.String()
		if c == "" {
			t.Fatalf("ParseNodeID(%q) gives an empty String()", s)
		}
		back, err := ParseNodeID(c)
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", c, s, err)
		}
		if back.String() != c || back.NamespaceURI != n.NamespaceURI {
			t.Fatalf("round trip of %q: %q → %q", s, c, back.String())
		}
		if _, err := n.ID.Encode(); err != nil {
			t.Fatalf("%q does not encode: %v", s, err)
		}
		// With the URI at index 7, the resolved id is in namespace 7
		// (index forms keep theirs) and has the same identifier.
		ns := make([]string, 8)
		ns[7] = n.NamespaceURI
		id, err := n.Resolve(ns)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", s, err)
		}
		wantNS := n.ID.Namespace()
		if n.NamespaceURI != "" {
			wantNS = 7
		}
		if id.Namespace() != wantNS || id.StringID() != n.ID.StringID() || id.IntID() != n.ID.IntID() {
			t.Fatalf("Resolve(%q) = %v", s, id)
		}
	})
}

func FuzzParseYAML(f *testing.F) {
	addFiles(f, "testdata/good/*.yml")
	addFiles(f, "testdata/bad/*.yml")
	addFiles(f, "../examples/*.yml")
	for _, s := range []string{
		"servers: [{name: a, endpoints: [opc.tcp://h:1]}]\nmappings: [{source: {server: a, node: i=1}, target: {server: a, node: i=2}}]\n",
		"mappings: [{<<: {source: {server: a}}, id: x}]",
		"a: &a [*a]",
		"mappings:\n  - enabled: yes\n    queue_size: 0x10\n    deadband: {type: absolute, value: -.inf}\n",
		"engine: {retry_min: 1h, retry_max: 1ns}",
		"servers:\n- name: \"\\x00\"\n  endpoints: [\"opc.tcp://h:1/\\u2028\"]\n",
		"mappings: [{source: {node: \"ns=2;s=a: b\"}}]",
		"--- !!map\n? servers\n: []\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseYAML(data, "fuzz.yml")
		// The one-run check validates what decoded of a broken file: it
		// must not panic, and it fails exactly when one of the two steps
		// does.
		vc, vErr := ParseAndValidate(data, "fuzz.yml")
		if (vc == nil) == (vErr == nil) {
			t.Fatalf("ParseAndValidate: config %v with error %v", vc != nil, vErr)
		}
		if err != nil {
			if c != nil {
				t.Fatal("config with an error")
			}
			if _, ok := err.(Errors); !ok {
				t.Fatalf("error is %T", err)
			}
			if vErr == nil {
				t.Fatal("ParseAndValidate accepts what ParseYAML refuses")
			}
			return
		}
		verr := c.Validate() // must not panic
		if (verr == nil) != (vErr == nil) {
			t.Fatalf("Validate: %v, ParseAndValidate: %v", verr, vErr)
		}
		for i := range c.Mappings {
			_ = c.Effective(&c.Mappings[i])
		}
		// Every config that parses (valid or not) survives MarshalYAML:
		// it re-parses to the same hash and the same verdict.
		out, err := MarshalYAML(c)
		if err != nil {
			t.Fatalf("MarshalYAML: %v", err)
		}
		c2, err := ParseYAML(out, "out.yml")
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if err := c2.Validate(); (err == nil) != (verr == nil) {
			t.Fatalf("validation changed through MarshalYAML: %v / %v\n%s", verr, err, out)
		}
		if c.Hash() != c2.Hash() {
			t.Fatalf("hash changed through MarshalYAML:\n%s", out)
		}
		// Diff needs unique ids, which only valid configs promise.
		if d := Diff(c, c2); verr == nil && !d.Empty() {
			t.Fatalf("Diff after round trip: %v", d)
		}
	})
}

func FuzzReadCSV(f *testing.F) {
	addFiles(f, "testdata/good/*.csv")
	addFiles(f, "testdata/bad/*.csv")
	addFiles(f, "../examples/*.csv")
	for _, s := range []string{
		"source_server,source_node,target_server,target_node\na,i=1,b,i=2\n",
		"source_server,source_node,target_server,target_node,deadband_type,deadband_value\na,i=1,b,i=2,percent,-0\n",
		"source_node,target_node,source_server,target_server,scale_raw_low,scale_raw_high,scale_eng_low,scale_eng_high\n\"ns=2;s=a\n\",i=2,a,b,NaN,+Inf,1e308,-1e-320\n",
		"source_server,source_node,target_server,target_node,sampling_interval,queue_size,enabled\na,i=1,b,i=2,1h2m3.5s,4294967295,TRUE\n",
		"\ufeffsource_server,source_node,target_server,target_node\r\na,i=1,b,i=2\r\n",
		"source_server,source_node,target_server,target_node\na,\"x\"\"y\",b, \n",
	} {
		f.Add([]byte(s))
	}
	base := &Config{Servers: []Server{{Name: "a", Endpoints: []string{"opc.tcp://h:1"}}, {Name: "b", Endpoints: []string{"opc.tcp://h:2"}}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := ReadCSV(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			if ms != nil {
				t.Fatal("mappings with an error")
			}
			return
		}
		for _, m := range ms {
			if m.ID == "" {
				t.Fatal("mapping without id")
			}
		}
		c := *base
		c.Mappings = ms
		_ = c.Validate() // must not panic

		// Written out, read back and written again: same mappings, same
		// bytes.
		var w1 bytes.Buffer
		if err := WriteCSV(&w1, ms); err != nil {
			t.Fatal(err)
		}
		ms2, err := ReadCSV(bytes.NewReader(w1.Bytes()), "w1.csv")
		if err != nil {
			t.Fatalf("WriteCSV output does not read back: %v\n%s", err, w1.Bytes())
		}
		if len(ms2) != len(ms) {
			t.Fatalf("%d mappings became %d", len(ms), len(ms2))
		}
		for i := range ms {
			if a, b := ms[i].Canonical(), ms2[i].Canonical(); !bytes.Equal(a, b) {
				t.Fatalf("mapping %d changed through CSV:\n%s\n%s", i, a, b)
			}
		}
		var w2 bytes.Buffer
		if err := WriteCSV(&w2, ms2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w1.Bytes(), w2.Bytes()) {
			t.Fatalf("WriteCSV not stable:\n%s\n%s", w1.Bytes(), w2.Bytes())
		}

		// Through YAML and back: the same bytes.
		c.Mappings = ms2
		y, err := MarshalYAML(&c)
		if err != nil {
			t.Fatal(err)
		}
		c3, err := ParseYAML(y, "y.yml")
		if err != nil {
			t.Fatalf("YAML of CSV mappings does not parse: %v\n%s", err, y)
		}
		var w3 bytes.Buffer
		if err := WriteCSV(&w3, c3.Mappings); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w1.Bytes(), w3.Bytes()) {
			t.Fatalf("CSV → YAML → CSV changed:\n%s\n%s\nYAML:\n%s", w1.Bytes(), w3.Bytes(), y)
		}
		if strings.Count(w1.String(), "\n") < len(ms)+1 {
			t.Fatal("lost rows")
		}
	})
}

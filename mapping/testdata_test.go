package mapping

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sentinels names every sentinel, for comparing errors in tables.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrSyntax", ErrSyntax},
	{"ErrUnknownKey", ErrUnknownKey},
	{"ErrMissing", ErrMissing},
	{"ErrInvalidValue", ErrInvalidValue},
	{"ErrUnknownServer", ErrUnknownServer},
	{"ErrUnknownGroup", ErrUnknownGroup},
	{"ErrInvalidNodeID", ErrInvalidNodeID},
	{"ErrNamespaceUnknown", ErrNamespaceUnknown},
	{"ErrDuplicateTarget", ErrDuplicateTarget},
	{"ErrSelfLoop", ErrSelfLoop},
	{"ErrLoop", ErrLoop},
	{"ErrBadRange", ErrBadRange},
	{"ErrDuplicate", ErrDuplicate},
	{"ErrSecretInConfig", ErrSecretInConfig},
}

// sentinelName returns the name of the sentinel err wraps.
func sentinelName(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "no sentinel"
}

// summarize turns err (Errors) into "line: field: Sentinel" strings and
// checks that every error names the expected file.
func summarize(t *testing.T, err error, file string) []string {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, not Errors: %v", err, err)
	}
	var out []string
	for _, e := range es {
		if e.Pos.File != file {
			t.Errorf("error names file %q, want %q: %v", e.Pos.File, file, e)
		}
		out = append(out, fmt.Sprintf("%d: %s: %s", e.Pos.Line, e.Field, sentinelName(e)))
	}
	return out
}

// csvBase is the config (servers, groups) that bad and good CSV files are
// validated against.
const csvBase = "testdata/good/servers.yml"

// loadCSVConfig reads a CSV file into the csvBase config.
func loadCSVConfig(t *testing.T, path string) (*Config, error) {
	t.Helper()
	c, err := Load(csvBase)
	if err != nil {
		t.Fatalf("base config: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := ReadCSV(f, path)
	if err != nil {
		return nil, err
	}
	c.Mappings = ms
	return c, nil
}

func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate:\n%v", err)
			}
		})
	}
	files, _ = filepath.Glob("testdata/good/*.csv")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := loadCSVConfig(t, f)
			if err != nil {
				t.Fatalf("ReadCSV: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate:\n%v", err)
			}
		})
	}
}

// TestBadFiles checks that every bad file yields exactly the listed
// errors ("line: field: sentinel"), from parsing or, when it parses, from
// Validate.
func TestBadFiles(t *testing.T) {
	want := map[string][]string{
		"syntax.bad.yml": {
			"3: : ErrSyntax",
		},
		"tabs.bad.yml": {
			"3: : ErrSyntax",
		},
		"multidoc.bad.yml": {
			"3: : ErrSyntax",
		},
		"unknown-keys.bad.yml": {
			"3: servers[0].endpoint: ErrUnknownKey",
			"5: servers[0].auth.typ: ErrUnknownKey",
			"7: servers[0].timeouts.conect: ErrUnknownKey",
			"10: servers[1].colour: ErrUnknownKey",
			"13: groups[0].publishing: ErrUnknownKey",
			"15: mappings[0].source.nod: ErrUnknownKey",
			"17: mappings[0].deadband.kind: ErrUnknownKey",
			"18: mappings[0].scaling.clamp: ErrUnknownKey",
			"19: mappings[0].convert.round: ErrUnknownKey",
			"20: mappings[0].directon: ErrUnknownKey",
			"22: engine.write_batches: ErrUnknownKey",
			"23: logging: ErrUnknownKey",
		},
		"secret.bad.yml": {
			"5: servers[0].auth.type: ErrMissing", // from Validate, in the same run
			"7: servers[0].auth.password: ErrSecretInConfig",
			"10: servers[1].password: ErrSecretInConfig",
		},
		"types.bad.yml": {
			"3: servers[0].endpoints: ErrInvalidValue",
			"5: servers[0].timeouts.connect: ErrInvalidValue",
			"6: servers[0].timeouts.request: ErrInvalidValue",
			"7: servers[1].name: ErrInvalidValue",
			"11: groups[0].queue_size: ErrInvalidValue",
			"15: mappings[0].enabled: ErrInvalidValue",
			"16: mappings[0].deadband.value: ErrInvalidValue",
			"17: mappings[0].scaling.eng_low: ErrMissing",
			"17: mappings[0].scaling.eng_high: ErrMissing",
			"18: mappings[0].queue_size: ErrInvalidValue",
			"19: mappings[1].target: ErrInvalidValue",
			"21: mappings[1].source: ErrDuplicate",
			"23: engine.write_batch: ErrInvalidValue",
		},
		"servers.bad.yml": {
			"4: servers[1].name: ErrDuplicate",
			"6: servers[2].name: ErrMissing",
			"7: servers[3].name: ErrInvalidValue",
			"9: servers[3].endpoints[0]: ErrInvalidValue",
			"10: servers[3].endpoints[1]: ErrInvalidValue",
			"11: servers[3].endpoints[2]: ErrInvalidValue",
			"12: servers[4].endpoints: ErrMissing",
			"15: servers[5].security_policy: ErrInvalidValue",
			"18: servers[6].security_mode: ErrInvalidValue",
			"21: servers[7].security_policy: ErrInvalidValue",
			"22: servers[7].security_mode: ErrInvalidValue",
			"25: servers[8].auth.username: ErrMissing",
			"25: servers[8].auth.type: ErrMissing",
			"32: servers[9].auth.password_file: ErrInvalidValue",
			"35: servers[10].auth.type: ErrInvalidValue",
			"38: servers[11].auth.username: ErrInvalidValue",
			"41: servers[12].timeouts.connect: ErrInvalidValue",
			"41: servers[12].timeouts.data_age: ErrInvalidValue",
		},
		"serverset.bad.yml": {
			"4: servers[0].redundancy.mode: ErrInvalidValue",
			"8: servers[1].redundancy.margin: ErrInvalidValue",
			"12: servers[2].redundancy.margin: ErrInvalidValue",
			"16: servers[3].redundancy.discover: ErrInvalidValue",
		},
		"groups.bad.yml": {
			"6: groups[1].name: ErrDuplicate",
			"7: groups[2].name: ErrMissing",
			"8: groups[3].name: ErrInvalidValue",
			"9: groups[3].sampling_interval: ErrInvalidValue",
		},
		"mappings.bad.yml": {
			"9: mappings[0].source.server: ErrUnknownServer",
			"11: mappings[1].source.node: ErrInvalidNodeID",
			"12: mappings[1].target.node: ErrInvalidNodeID",
			"13: mappings[1].group: ErrUnknownGroup",
			"15: mappings[2].target.node: ErrMissing",
			"16: mappings[2].direction: ErrInvalidValue",
			"17: mappings[2].on_bad: ErrInvalidValue",
			"19: mappings[3].target.server: ErrMissing",
			"20: mappings[3].convert.to: ErrInvalidValue",
			"20: mappings[3].convert.rounding: ErrInvalidValue",
			"20: mappings[3].convert.overflow: ErrInvalidValue",
			"21: mappings[3].scaling.out_of_range: ErrInvalidValue",
			"22: mappings[3].deadband.type: ErrInvalidValue",
			"23: mappings[3].sampling_interval: ErrInvalidValue",
		},
		"flows.bad.yml": {
			"10: mappings[1].target.node: ErrDuplicateTarget",
			"12: mappings[2].target.node: ErrSelfLoop",
			"16: mappings[4].target.node: ErrLoop",
			"21: mappings[6].target.node: ErrDuplicateTarget",
			"30: mappings[10].target.node: ErrLoop",
			"31: mappings[11].id: ErrDuplicate",
		},
		"ranges.bad.yml": {
			"7: mappings[0].deadband.value: ErrBadRange",
			"10: mappings[1].deadband.value: ErrBadRange",
			"15: mappings[2].scaling.raw_high: ErrBadRange",
			"17: mappings[2].scaling.eng_high: ErrBadRange",
			"20: mappings[3].scaling.raw_low: ErrBadRange",
			"20: mappings[3].scaling.eng_high: ErrBadRange",
			"21: mappings[3].deadband.value: ErrBadRange",
		},
		"ids.bad.yml": {
			"8: mappings[1].id: ErrDuplicate",
			"11: mappings[2].id: ErrInvalidValue",
			"14: mappings[3].id: ErrInvalidValue",
		},
		"onerun.bad.yml": {
			"6: servers[0].secrity_mode: ErrUnknownKey",
			"8: servers[1].endpoints[0]: ErrInvalidValue",
			"11: mappings[0].target.server: ErrUnknownServer",
			"12: mappings[0].deadband.value: ErrBadRange",
			"14: mappings[1].target.node: ErrInvalidNodeID",
			"15: mappings[1].directon: ErrUnknownKey",
			"18: mappings[2].scaling.eng_high: ErrInvalidValue",
			"18: mappings[2].scaling.raw_high: ErrBadRange",
		},
		"engine.bad.yml": {
			"4: engine.write_batch: ErrInvalidValue",
			"5: engine.writes_in_flight: ErrInvalidValue",
			"6: engine.subscribe_batch: ErrInvalidValue",
			"7: engine.publishing_interval: ErrInvalidValue",
			"8: engine.retry_min: ErrBadRange",
		},
		"columns.bad.csv": {
			"1: colour: ErrUnknownKey",
			"1: source_node: ErrDuplicate",
			"1: target_node: ErrMissing",
		},
		"cells.bad.csv": {
			"2: deadband_value: ErrMissing",
			"3: deadband_value: ErrMissing",
			"4: scale_eng_low: ErrInvalidValue",
			"4: scale_eng_high: ErrMissing",
			"5: sampling_interval: ErrInvalidValue",
			"5: queue_size: ErrInvalidValue",
			"5: enabled: ErrInvalidValue",
		},
		"utf16-nobom.bad.csv": {
			"1: : ErrSyntax",
		},
		"cells-beyond.bad.csv": {
			"3: : ErrSyntax",
			"4: column 6: ErrSyntax",
			"5: : ErrSyntax",
		},
		"syntax.bad.csv": {
			"3: : ErrSyntax",
			"4: : ErrSyntax",
		},
		"refs.bad.csv": {
			"2: mappings[0].target.server: ErrUnknownServer",
			"3: mappings[1].target.node: ErrInvalidNodeID",
			"3: mappings[1].group: ErrUnknownGroup",
			"3: mappings[1].direction: ErrInvalidValue",
		},
	}

	files, err := filepath.Glob("testdata/bad/*.bad.*")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			exp, ok := want[name]
			if !ok {
				t.Fatalf("no expected errors listed for %s", name)
			}
			var err error
			var c *Config
			if strings.HasSuffix(f, ".csv") {
				c, err = loadCSVConfig(t, f)
				if err == nil {
					err = c.Validate()
				}
			} else {
				// What `uamirror validate` reports: every error in one run.
				_, err = LoadAndValidate(f)
			}
			if err == nil {
				t.Fatal("no error")
			}
			got := summarize(t, err, f)
			if strings.Join(got, "\n") != strings.Join(exp, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s\nfull:\n%v", strings.Join(got, "\n"), strings.Join(exp, "\n"), err)
			}
		})
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s is listed but not in testdata/bad", name)
		}
	}
}

// TestBadFilesCoverSentinels checks that the bad files exercise every
// sentinel a file can produce (ErrNamespaceUnknown needs a server's
// NamespaceArray; see TestResolve).
func TestBadFilesCoverSentinels(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.bad.*")
	found := map[string]bool{}
	for _, f := range files {
		var c *Config
		var err error
		if strings.HasSuffix(f, ".csv") {
			c, err = loadCSVConfig(t, f)
		} else {
			c, err = Load(f)
		}
		if err == nil {
			err = c.Validate()
		}
		var es Errors
		if errors.As(err, &es) {
			for _, e := range es {
				found[sentinelName(e)] = true
			}
		}
	}
	for _, s := range sentinels {
		if s.err == ErrNamespaceUnknown {
			continue
		}
		if !found[s.name] {
			t.Errorf("no bad file yields %s", s.name)
		}
	}
}

package mapping

import (
	"errors"
	"os"
	"testing"
)

// TestExamples checks the files in examples/: the good ones validate (the
// CSV together with mirror.yml), the bad one yields several distinct
// errors.
func TestExamples(t *testing.T) {
	c, err := Load("../examples/mirror.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("mirror.yml:\n%v", err)
	}

	f, err := os.Open("../examples/mappings.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, err := ReadCSV(f, "../examples/mappings.csv")
	if err != nil {
		t.Fatal(err)
	}
	c.Mappings = append(c.Mappings, ms...)
	if err := c.Validate(); err != nil {
		t.Fatalf("mirror.yml + mappings.csv:\n%v", err)
	}

	sec, err := Load("../examples/secured-mirror.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Validate(); err != nil {
		t.Fatalf("secured-mirror.yml:\n%v", err)
	}
	if len(sec.Servers) == 0 || len(sec.Servers[0].TrustedCertificates) != 2 {
		t.Errorf("secured-mirror.yml: pins not read: %+v", sec.Servers)
	}

	bad, err := Load("../examples/bad-mirror.yml")
	if err != nil {
		t.Fatalf("bad-mirror.yml should parse and fail validation: %v", err)
	}
	err = bad.Validate()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("bad-mirror.yml: %v", err)
	}
	kinds := map[string]bool{}
	for _, e := range es {
		kinds[sentinelName(e)] = true
	}
	for _, want := range []string{"ErrInvalidValue", "ErrUnknownServer", "ErrInvalidNodeID", "ErrDuplicateTarget", "ErrLoop", "ErrBadRange"} {
		if !kinds[want] {
			t.Errorf("bad-mirror.yml does not show %s:\n%v", want, err)
		}
	}
	t.Logf("bad-mirror.yml:\n%v", err)
}

package mapping

import (
	"errors"
	"fmt"
	"testing"
)

func cfgOf(ids ...string) *Config {
	c := &Config{}
	for _, id := range ids {
		c.Mappings = append(c.Mappings, Mapping{ID: id,
			Source: NodeRef{Server: "plc", Node: "ns=1;s=" + id}, Target: NodeRef{Server: "scada", Node: "ns=1;s=" + id}})
	}
	return c
}

func TestCheckRemoval(t *testing.T) {
	four := cfgOf("a", "b", "c", "d")
	tests := []struct {
		name     string
		old, new *Config
		share    float64
		refused  bool
	}{
		{"no old mappings", nil, cfgOf(), 0, false},
		{"empty to empty", cfgOf(), cfgOf(), 0, false},
		{"all removed (empty new)", four, cfgOf(), 0, true},
		{"all removed (nil new)", four, nil, 0, true},
		{"half removed is allowed", four, cfgOf("a", "b"), 0, false},
		{"three of four removed", four, cfgOf("a"), 0, true},
		{"replaced by others", four, cfgOf("x", "y", "z", "w"), 0, true},
		{"one removed, share 0.2", four, cfgOf("a", "b", "c"), 0.2, true},
		{"one removed, share 0.25", four, cfgOf("a", "b", "c"), 0.25, false},
		{"added only", four, cfgOf("a", "b", "c", "d", "e"), 0, false},
		{"all removed, share 1", four, cfgOf("x"), 1, false},
		{"empty even at share 1", four, cfgOf(), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRemoval(tt.old, tt.new, tt.share)
			if got := err != nil; got != tt.refused {
				t.Fatalf("refused = %v (%v), want %v", got, err, tt.refused)
			}
			if err != nil && !errors.Is(err, ErrLargeRemoval) {
				t.Fatalf("error %v does not wrap ErrLargeRemoval", err)
			}
		})
	}
}

func ExampleCheckRemoval() {
	err := CheckRemoval(cfgOf("a", "b", "c", "d"), cfgOf("a"), 0)
	fmt.Println(err)
	// Output: large removal of mappings: 3 of 4 running mappings (75 %) would be removed, more than the allowed 50 %
}

package mapping

import "testing"

func TestSuggest(t *testing.T) {
	cands := []string{"plc", "scada", "publishing_interval", "sampling_interval", "Int16"}
	tests := []struct{ in, want string }{
		{"scdaa", "scada"}, // swapped letters
		{"PLC", "plc"},     // case
		{"int16", "Int16"}, // case
		{"sampling_intervall", "sampling_interval"},
		{"publishing", "publishing_interval"}, // clipped
		{"pl", ""},                            // too short for a guess
		{"b", ""},
		{"historian", ""},
	}
	for _, tt := range tests {
		if got := closest(tt.in, cands); got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := suggest("zzz", []string{"a", "b"}); got != "; allowed: a, b" {
		t.Errorf("suggest = %q", got)
	}
	if got := suggest("x", nil); got != "" {
		t.Errorf("suggest with no candidates = %q", got)
	}
	if levenshtein("abc", "abc") != 0 || levenshtein("abc", "acb") != 1 || levenshtein("", "ab") != 2 {
		t.Error("levenshtein")
	}
}

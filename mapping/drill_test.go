package mapping

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDrillScheduleParse(t *testing.T) {
	base := "servers:\n  - {name: plc, endpoints: [opc.tcp://127.0.0.1:4840]}\nmappings: []\n"
	c, err := ParseAndValidate([]byte(base+"drill: {every: 168h, at: \"Sun 03:00\"}\n"), "d.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Drill == nil || c.Drill.Every != 168*time.Hour || c.Drill.At != "Sun 03:00" {
		t.Fatalf("drill: %+v", c.Drill)
	}
	plain, err := ParseAndValidate([]byte(base), "d.yml")
	if err != nil {
		t.Fatal(err)
	}
	if plain.Hash() == c.Hash() {
		t.Error("the drill schedule does not change the config hash")
	}
	out, err := MarshalYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseAndValidate(out, "back.yml"); err != nil || back.Hash() != c.Hash() {
		t.Errorf("YAML round trip: %v\n%s", err, out)
	}
	for _, tc := range []struct{ doc, field string }{
		{"drill: {every: 10m}\n", "drill.every"},
		{"drill: {every: 24h, at: \"Sunday 3pm\"}\n", "drill.at"},
		{"drill: {every: 24h, at: \"Xyz 03:00\"}\n", "drill.at"},
		{"drill: {every: 24h, at: \"24:00\"}\n", "drill.at"},
		{"drill: {at: \"03:00\"}\n", "drill.every"},
		{"drill: {every: 24h, when: now}\n", "drill.when"},
	} {
		_, err := ParseAndValidate([]byte(base+tc.doc), "d.yml")
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 || es[0].Field != tc.field {
			t.Errorf("%s: got %v, want an error on %s", strings.TrimSpace(tc.doc), err, tc.field)
		}
	}
}

func TestDrillScheduleNext(t *testing.T) {
	loc := time.UTC
	// Thu 2026-12-03 13:00.
	now := time.Date(2026, 12, 3, 13, 0, 0, 0, loc)
	for _, tc := range []struct {
		every time.Duration
		at    string
		last  time.Time
		want  time.Time
	}{
		{168 * time.Hour, "Sun 03:00", now.Add(-200 * time.Hour), time.Date(2026, 12, 6, 3, 0, 0, 0, loc)},
		// A drill last Sunday that ran a little late: next Sunday.
		{168 * time.Hour, "Sun 03:00", time.Date(2026, 11, 29, 3, 0, 5, 0, loc), time.Date(2026, 12, 6, 3, 0, 0, 0, loc)},
		// Every two weeks: not the Sunday after the last drill.
		{336 * time.Hour, "Sun 03:00", time.Date(2026, 11, 29, 3, 0, 5, 0, loc), time.Date(2026, 12, 13, 3, 0, 0, 0, loc)},
		{24 * time.Hour, "03:00", now.Add(-48 * time.Hour), time.Date(2026, 12, 4, 3, 0, 0, 0, loc)},
		{24 * time.Hour, "14:30", now.Add(-48 * time.Hour), time.Date(2026, 12, 3, 14, 30, 0, 0, loc)},
		{6 * time.Hour, "", now.Add(-time.Hour), now.Add(5 * time.Hour)},
		{6 * time.Hour, "", now.Add(-7 * time.Hour), now},
	} {
		d := DrillSchedule{Every: tc.every, At: tc.at}
		if got := d.Next(tc.last, now); !got.Equal(tc.want) {
			t.Errorf("every %s at %q after %s: %s, want %s", tc.every, tc.at, tc.last, got, tc.want)
		}
	}
}

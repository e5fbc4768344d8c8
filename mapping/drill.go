package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DrillSchedule is the optional schedule of the failover drill (`drill:
// {every: 168h, at: "Sun 03:00"}`): the active runs `uamirror drill` on
// itself at the first time matching At after the previous drill plus
// Every. A drill due while the pair is not healthy is skipped (and
// journaled as skipped).
type DrillSchedule struct {
	// Every is the least time between two drills (at least MinDrillEvery).
	Every time.Duration `yaml:"every" json:"every"`
	// At is "HH:MM" or "Day HH:MM" (Day: Mon … Sun), in the node's local
	// time; empty: Every after the previous drill (or the node's start).
	At string `yaml:"at,omitempty" json:"at,omitempty"`
}

// MinDrillEvery is the shortest drill period accepted: a drill is a real
// switchover.
const MinDrillEvery = time.Hour

// DrillAt is a parsed DrillSchedule.At.
type DrillAt struct {
	// Weekday applies when Day is set.
	Weekday      time.Weekday
	Day          bool
	Hour, Minute int
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseDrillAt parses "HH:MM" or "Day HH:MM" (an empty string is the zero
// DrillAt, ok false).
func ParseDrillAt(s string) (at DrillAt, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DrillAt{}, false, nil
	}
	f := strings.Fields(s)
	if len(f) == 2 {
		wd, known := weekdays[strings.ToLower(f[0])[:min(3, len(f[0]))]]
		if !known || (len(f[0]) != 3 && !strings.EqualFold(f[0], wd.String())) {
			return DrillAt{}, false, fmt.Errorf("%q: unknown day (Mon … Sun)", f[0])
		}
		at.Weekday, at.Day, f = wd, true, f[1:]
	}
	if len(f) != 1 {
		return DrillAt{}, false, errors.New(`want "HH:MM" or "Day HH:MM", e.g. "Sun 03:00"`)
	}
	hs, ms, found := strings.Cut(f[0], ":")
	h, err1 := strconv.Atoi(hs)
	m, err2 := strconv.Atoi(ms)
	if !found || err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || len(ms) != 2 {
		return DrillAt{}, false, fmt.Errorf("%q: want HH:MM (00:00 … 23:59)", f[0])
	}
	at.Hour, at.Minute = h, m
	return at, true, nil
}

// Next returns when the drill is due next: the first time matching At at
// or after max(now, last+Every) (just that time without At), where last
// (the previous drill, or the node's start) counts with a tenth of Every
// of slack when At is set: a drill that ran a little after its time does
// not push the next one a whole period on.
func (d *DrillSchedule) Next(last, now time.Time) time.Time {
	at, ok, err := ParseDrillAt(d.At)
	ok = ok && err == nil
	due := d.Every
	if ok {
		due -= d.Every / 10
	}
	t := last.Add(due)
	if t.Before(now) {
		t = now
	}
	if !ok {
		return t
	}
	c := time.Date(t.Year(), t.Month(), t.Day(), at.Hour, at.Minute, 0, 0, t.Location())
	for c.Before(t) || (at.Day && c.Weekday() != at.Weekday) {
		c = c.AddDate(0, 0, 1)
	}
	return c
}

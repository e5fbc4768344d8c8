package bridge

import (
	"math"
	"testing"
	"time"
	"unsafe"
)

// TestFlowLayout: a flow fits the 256-byte size class (a flow exists per
// mapping and direction: the next class is 288 B, the one it had before
// 384), and each of its four cache lines holds one of the immutable
// fields warmFlows reads, so that the router warms the whole flow.
func TestFlowLayout(t *testing.T) {
	var f flow
	if n := unsafe.Sizeof(f); n > 256 {
		t.Errorf("flow is %d bytes, more than 256", n)
	}
	lines := map[uintptr]string{}
	for name, off := range map[string]uintptr{"wslot": unsafe.Offsetof(f.wslot), "publishing": unsafe.Offsetof(f.publishing),
		"sampling": unsafe.Offsetof(f.sampling), "handle": unsafe.Offsetof(f.handle)} {
		if other, ok := lines[off/64]; ok {
			t.Errorf("warmed fields %s and %s share cache line %d", name, other, off/64)
		}
		lines[off/64] = name
	}
	for l := uintptr(0); l < (unsafe.Sizeof(f)+63)/64; l++ {
		if _, ok := lines[l]; !ok {
			t.Errorf("cache line %d of a flow holds none of the fields warmFlows reads", l)
		}
	}
}

// TestStamp: stamps keep the instant and the order of every time a
// source timestamp can be, the zero time included, and their difference
// saturates as time.Time's does.
func TestStamp(t *testing.T) {
	now := time.Now()
	times := []time.Time{{}, time.Unix(0, 0), now, now.Add(100 * time.Nanosecond), time.Unix(0, math.MinInt64+1),
		time.Unix(0, math.MaxInt64), time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, a := range times {
		sa := toStamp(a)
		if back := sa.time(); !back.Equal(a) && a.Year() != 1601 {
			t.Errorf("%v reads back as %v", a, back)
		}
		if sa.isZero() != a.IsZero() {
			t.Errorf("%v: zero %v", a, sa.isZero())
		}
		for _, b := range times[:i] {
			if a.Year() == 1601 || b.Year() == 1601 {
				continue // clamped
			}
			sb := toStamp(b)
			if sa.after(sb) != a.After(b) || sa.before(sb) != a.Before(b) {
				t.Errorf("%v vs %v: after %v before %v", a, b, sa.after(sb), sa.before(sb))
			}
			if got, want := sa.sub(sb), a.Sub(b); got != want {
				t.Errorf("%v - %v = %v, want %v", a, b, got, want)
			}
		}
	}
	if got := toStamp(time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)); got.isZero() || !got.before(toStamp(time.Unix(0, 0))) {
		t.Errorf("1601 (before the range) is %v", got.time())
	}
}

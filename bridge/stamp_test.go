package bridge

import (
	"math"
	"testing"
	"time"
	"unsafe"
)

// TestFlowLayout: a flow fits the 224-byte size class (a flow exists per
// mapping and direction: the next class is 240 B; it had 384 before),
// and the immutable fields warmFlows reads run from its first byte to
// its last no more than a cache line apart, so that they bring in every
// line a flow spans wherever it starts.
func TestFlowLayout(t *testing.T) {
	var f flow
	size := unsafe.Sizeof(f)
	if size > 224 {
		t.Errorf("flow is %d bytes, more than 224", size)
	}
	warmed := []struct {
		name     string
		off, len uintptr
	}{
		{"ms", unsafe.Offsetof(f.ms), unsafe.Sizeof(f.ms)},
		{"publishing", unsafe.Offsetof(f.publishing), unsafe.Sizeof(f.publishing)},
		{"sampling", unsafe.Offsetof(f.sampling), unsafe.Sizeof(f.sampling)},
		{"wslot", unsafe.Offsetof(f.wslot), unsafe.Sizeof(f.wslot)},
		{"handle", unsafe.Offsetof(f.handle), unsafe.Sizeof(f.handle)},
		{"queueSize", unsafe.Offsetof(f.queueSize), unsafe.Sizeof(f.queueSize)},
	}
	if warmed[0].off != 0 {
		t.Errorf("the first field warmed is at offset %d, not 0", warmed[0].off)
	}
	for i := 1; i < len(warmed); i++ {
		if d := warmed[i].off - warmed[i-1].off; warmed[i].off < warmed[i-1].off || d > 64 {
			t.Errorf("warmed fields %s and %s are %d bytes apart (at most 64, in order)", warmed[i-1].name, warmed[i].name, int(d))
		}
	}
	if last := warmed[len(warmed)-1]; last.off+last.len < size {
		t.Errorf("the last field warmed (%s) ends at %d, the flow at %d", last.name, last.off+last.len, size)
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

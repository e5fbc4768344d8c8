package bridge

import (
	"math"
	"time"
)

// stamp is a point in time in 8 bytes (a time.Time takes 24): the
// nanoseconds since the Unix epoch, with the sign bit flipped so that
// stamps order as the times do and the zero stamp is the zero time. A
// flow keeps its timestamps as stamps: one exists per mapping and
// direction. Every time gopcua decodes fits (it builds them from int64
// nanoseconds); times outside that range (years 1678–2261) are clamped,
// and the one instant 1677-09-21T00:12:43.145224192Z reads back as the
// zero time. The monotonic clock reading and the location are dropped:
// stamps are wall-clock UTC, as the source timestamps they mostly hold.
type stamp uint64

var (
	minStampTime = time.Unix(0, math.MinInt64+1)
	maxStampTime = time.Unix(0, math.MaxInt64)
)

// toStamp converts t (zero: the zero stamp).
func toStamp(t time.Time) stamp {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minStampTime):
		return toStamp(minStampTime)
	case t.After(maxStampTime):
		return toStamp(maxStampTime)
	}
	return stamp(uint64(t.UnixNano()) ^ 1<<63)
}

// time converts s back (UTC; the zero stamp: the zero time).
func (s stamp) time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(uint64(s)^1<<63)).UTC()
}

func (s stamp) isZero() bool        { return s == 0 }
func (s stamp) after(u stamp) bool  { return s > u }
func (s stamp) before(u stamp) bool { return s < u }

// sub returns s-u, saturated as time.Time.Sub does (the zero stamp is
// the zero time, year 1, there too).
func (s stamp) sub(u stamp) time.Duration {
	if s == 0 || u == 0 {
		return s.time().Sub(u.time())
	}
	if s >= u {
		if d := uint64(s - u); d <= math.MaxInt64 {
			return time.Duration(d)
		}
		return math.MaxInt64
	}
	if d := uint64(u - s); d <= 1<<63 {
		return -time.Duration(d)
	}
	return math.MinInt64
}

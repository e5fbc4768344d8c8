package bridge

import (
	"encoding/binary"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// ticksOf is t in 100 ns ticks since 1601-01-01, computed exactly.
func ticksOf(t time.Time) uint64 {
	s := new(big.Int).SetInt64(t.Unix() + 11644473600)
	s.Mul(s, big.NewInt(1e7))
	s.Add(s, big.NewInt(int64(t.Nanosecond()/100)))
	return s.Uint64()
}

// decodeDateTime decodes a DateTime Variant carrying ticks with gopcua.
func decodeDateTime(tb testing.TB, ticks uint64) *ua.Variant {
	tb.Helper()
	b := make([]byte, 9)
	b[0] = byte(ua.TypeIDDateTime)
	binary.LittleEndian.PutUint64(b[1:], ticks)
	v := new(ua.Variant)
	if _, err := v.Decode(b); err != nil {
		tb.Fatal(err)
	}
	return v
}

// encodedTicks encodes v with gopcua and returns the DateTime's ticks.
func encodedTicks(tb testing.TB, v *ua.Variant) uint64 {
	tb.Helper()
	b, err := v.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[1:9])
}

var wireDates = []time.Time{
	time.Date(1601, 1, 1, 0, 0, 0, 100, time.UTC),
	time.Date(1650, 6, 1, 12, 0, 0, 0, time.UTC),
	time.Date(1816, 3, 30, 5, 56, 8, 66277200, time.UTC),
	time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 12, 3, 14, 0, 0, 123456700, time.UTC),
	time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC),
	time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC),
}

// TestWireTimeOverTheWholeRange: a DateTime decoded by gopcua is the
// instant on the wire over 1601–9999 after fromWire, although gopcua
// itself wraps outside 1677–2262 (issue 14 item 5).
func TestWireTimeOverTheWholeRange(t *testing.T) {
	wrapped := 0
	for _, d := range wireDates {
		v := decodeDateTime(t, ticksOf(d))
		if got, _ := v.Value().(time.Time); !got.Equal(d) {
			wrapped++ // what gopcua does on its own
		}
		got, _ := fromWire(v).Value().(time.Time)
		if !got.Equal(d) {
			t.Errorf("%v decoded as %v", d, got)
		}
		if w := wireTime(d); !w.Equal(d) {
			t.Errorf("wireTime(%v) = %v: a right time must stay itself", d, w)
		}
	}
	if wrapped < 4 {
		t.Fatalf("gopcua wrapped only %d of the dates: the test does not test the repair", wrapped)
	}
	if z := fromWire(decodeDateTime(t, 0)).Value().(time.Time); !z.IsZero() {
		t.Errorf("ticks 0 decoded as %v, want the zero time", z)
	}
}

// TestDateTimeWriteNeverWraps: a DateTime target receives the same date
// or the flow is bad with a reason; never another date.
func TestDateTimeWriteNeverWraps(t *testing.T) {
	vt := valueType{id: ua.TypeIDDateTime, valueRank: -1}
	tr, err := newTransform(&mapping.Mapping{}, false, vt)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range wireDates {
		out, err := tr.apply(fromWire(decodeDateTime(t, ticksOf(d))))
		inRange := !d.Before(nanoMin) && !d.After(nanoMax)
		switch {
		case inRange && err != nil:
			t.Errorf("%v refused: %v", d, err)
		case inRange && encodedTicks(t, out) != ticksOf(d):
			t.Errorf("%v written as ticks %d, want %d", d, encodedTicks(t, out), ticksOf(d))
		case !inRange && err == nil:
			t.Errorf("%v accepted: would be written as ticks %d (another date), want refused", d, encodedTicks(t, out))
		case !inRange && !errors.Is(err, errOutOfRange):
			t.Errorf("%v refused with %v, want a range error", d, err)
		}
	}
	// 1601-01-01 and earlier are the wire's 0.
	out, err := tr.apply(ua.MustVariant(time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)))
	if err != nil || encodedTicks(t, out) != 0 {
		t.Fatalf("1601-01-01: %v, %v; want ticks 0", out, err)
	}

	// In the flow: a refused DateTime makes the flow bad with the reason.
	x := newFixture(t, &mapping.Mapping{}, false, ua.TypeIDDateTime)
	w, _, v := x.fwd.accept(&ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp,
		Value: decodeDateTime(t, ticksOf(wireDates[len(wireDates)-1])), SourceTimestamp: at(1)}, at(1), &x.queueing)
	if w != nil || v != vConvError || x.state(false) != StateBad {
		t.Fatalf("9999-12-31 into a DateTime target: write %v, verdict %v, state %v; want nothing, conversion error, bad", w, v, x.state(false))
	}
}

// TestEmptyByteStringStaysEmpty: gopcua decodes a 0-byte ByteString as
// nil, which it would write as null; the value path writes it empty.
func TestEmptyByteStringStaysEmpty(t *testing.T) {
	b := []byte{byte(ua.TypeIDByteString), 0, 0, 0, 0}
	v := new(ua.Variant)
	if _, err := v.Decode(b); err != nil {
		t.Fatal(err)
	}
	x := newFixture(t, &mapping.Mapping{}, false, ua.TypeIDByteString)
	w, _, _ := x.fwd.accept(&ua.DataValue{EncodingMask: ua.DataValueValue, Value: v, SourceTimestamp: at(1)}, at(1), &x.queueing)
	if w == nil {
		t.Fatal("empty ByteString not written")
	}
	enc, err := w.Value.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if n := int32(binary.LittleEndian.Uint32(enc[1:5])); n != 0 {
		t.Fatalf("empty ByteString written with length %d, want 0 (not null)", n)
	}
}

package bridge

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// siemens is the scaling of a Siemens analog input: 0..27648 ↔ 0..100 %.
func siemens(oor mapping.OutOfRange) *mapping.Scaling {
	return &mapping.Scaling{RawLow: 0, RawHigh: 27648, EngLow: 0, EngHigh: 100, OutOfRange: oor}
}

// TestNewTransformErrors rejects every invalid rule with a message naming
// the field.
func TestNewTransformErrors(t *testing.T) {
	dbl := valueType{id: ua.TypeIDDouble, valueRank: -1}
	tests := []struct {
		name string
		m    *mapping.Mapping
		dst  valueType
		msg  string
	}{
		{"nil mapping", nil, dbl, "no mapping"},
		{"rank", &mapping.Mapping{}, valueType{valueRank: -4}, "ValueRank -4"},
		{"convert.to", &mapping.Mapping{Convert: &mapping.Conversion{To: "Real"}}, dbl, `convert.to: unknown or unsupported type "Real"`},
		{"convert.to other type", &mapping.Mapping{Convert: &mapping.Conversion{To: "LocalizedText"}}, dbl, "convert.to"},
		{"rounding", &mapping.Mapping{Convert: &mapping.Conversion{Rounding: "ceil"}}, dbl, `convert.rounding: unknown rule "ceil"`},
		{"overflow", &mapping.Mapping{Convert: &mapping.Conversion{Overflow: "wrap"}}, dbl, `convert.overflow: unknown rule "wrap"`},
		{"raw range empty", &mapping.Mapping{Scaling: &mapping.Scaling{RawLow: 1, RawHigh: 1, EngHigh: 1}}, dbl, "scaling: empty range"},
		{"eng range empty", &mapping.Mapping{Scaling: &mapping.Scaling{RawHigh: 1}}, dbl, "scaling: empty range"},
		{"NaN bound", &mapping.Mapping{Scaling: &mapping.Scaling{RawHigh: math.NaN(), EngHigh: 1}}, dbl, "scaling.raw_high: NaN"},
		{"Inf bound", &mapping.Mapping{Scaling: &mapping.Scaling{RawHigh: 1, EngLow: math.Inf(-1)}}, dbl, "scaling.eng_low: -Inf"},
		{"too wide", &mapping.Mapping{Scaling: &mapping.Scaling{RawLow: -math.MaxFloat64, RawHigh: math.MaxFloat64, EngHigh: 1}}, dbl, "too wide"},
		{"out_of_range", &mapping.Mapping{Scaling: &mapping.Scaling{RawHigh: 1, EngHigh: 1, OutOfRange: "wrap"}}, dbl, `scaling.out_of_range: unknown rule "wrap"`},
		{"scaling to DateTime", &mapping.Mapping{Scaling: siemens("")}, valueType{id: ua.TypeIDDateTime, valueRank: -1}, "destination type DateTime is not a number"},
		{"scaling to convert.to ByteString", &mapping.Mapping{Scaling: siemens(""), Convert: &mapping.Conversion{To: "ByteString"}}, dbl, "ByteString is not a number"},
		{"deadband negative", &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: -1}}, dbl, "deadband.value: -1"},
		{"deadband NaN", &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: math.NaN()}}, dbl, "deadband.value: NaN"},
		{"deadband percent", &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandPercent, Value: 101}}, dbl, "more than 100 percent"},
		{"deadband type", &mapping.Mapping{Deadband: &mapping.Deadband{Type: "relative", Value: 1}}, dbl, `deadband.type: unknown type "relative"`},
		{"position and id", &mapping.Mapping{ID: "m1", Pos: mapping.Pos{File: "a.yaml", Line: 7}, Convert: &mapping.Conversion{Rounding: "x"}}, dbl, "a.yaml:7: mapping m1: convert.rounding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTransform(tt.m, false, tt.dst)
			if !errors.Is(err, errInvalidTransform) {
				t.Fatalf("got %v, want errInvalidTransform", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

// TestTransformConvertToForwardOnly checks that Convert.To sets the
// target's type for the forward flow and is ignored by the reverse flow,
// which writes to the source.
func TestTransformConvertToForwardOnly(t *testing.T) {
	m := &mapping.Mapping{Convert: &mapping.Conversion{To: "Double"}}
	fwd := mustTransform(t, m, false, valueType{id: ua.TypeIDInt16, valueRank: -1})
	if got, err := fwd.apply(ua.MustVariant(int16(5))); err != nil || !variantEqual(got, ua.MustVariant(5.0)) {
		t.Errorf("forward: got %v, %v; want Double 5", got, err)
	}
	rev := mustTransform(t, m, true, valueType{id: ua.TypeIDInt16, valueRank: -1})
	if got, err := rev.apply(ua.MustVariant(5.0)); err != nil || !variantEqual(got, ua.MustVariant(int16(5))) {
		t.Errorf("reverse: got %v, %v; want Int16 5", got, err)
	}
}

// TestTransformValueRank checks every ValueRank against scalars and
// arrays of one and two dimensions.
func TestTransformValueRank(t *testing.T) {
	scalarV := ua.MustVariant(1.0)
	oneDim := ua.MustVariant([]float64{1, 2})
	twoDim := ua.MustVariant([][]float64{{1, 2}, {3, 4}})
	tests := []struct {
		rank               int32
		scalar, one, multi bool // accepted
	}{
		{-1, true, false, false},
		{-2, true, true, true},
		{-3, true, true, false},
		{0, false, true, true},
		{1, false, true, false},
		{2, false, false, true},
		{3, false, false, false},
	}
	for _, tt := range tests {
		for _, dst := range []ua.TypeID{0, ua.TypeIDDouble, ua.TypeIDInt32} {
			tr := mustTransform(t, &mapping.Mapping{}, false, valueType{id: dst, valueRank: tt.rank})
			for _, c := range []struct {
				name string
				v    *ua.Variant
				ok   bool
			}{{"scalar", scalarV, tt.scalar}, {"1-dim", oneDim, tt.one}, {"2-dim", twoDim, tt.multi}} {
				got, err := tr.apply(c.v)
				switch {
				case c.ok && err != nil:
					t.Errorf("rank %d, %v, %s: %v", tt.rank, dst, c.name, err)
				case !c.ok && !errors.Is(err, errConversion):
					t.Errorf("rank %d, %v, %s: got %v, %v; want errConversion", tt.rank, dst, c.name, got, err)
				case c.ok && dst == ua.TypeIDInt32:
					if got.Type() != ua.TypeIDInt32 || !sameDims(got, c.v) || got.ArrayLength() != c.v.ArrayLength() {
						t.Errorf("rank %d, %s: got %v %v dims %v", tt.rank, c.name, got.Type(), got.Value(), got.ArrayDimensions())
					}
				}
			}
		}
	}
}

// TestTransformArrays converts arrays element-wise; one bad element makes
// the whole value bad and the reason names its index.
func TestTransformArrays(t *testing.T) {
	anyRank := func(id ua.TypeID) valueType { return valueType{id: id, valueRank: -2} }
	tests := []struct {
		name     string
		in       any
		dst      valueType
		rounding mapping.Rounding
		scaling  *mapping.Scaling
		want     any
		err      error
		msg      string
	}{
		{name: "double to int16", in: []float64{1, 2, 3}, dst: anyRank(ua.TypeIDInt16), want: []int16{1, 2, 3}},
		{name: "one fraction", in: []float64{1, 2.5, 3}, dst: anyRank(ua.TypeIDInt16), err: errConversion,
			msg: `cannot convert value: element 1: value 2.5 has a fraction and rounding is "reject" for Int16`},
		{name: "round", in: []float64{1, 2.5, 3}, dst: anyRank(ua.TypeIDInt16), rounding: mapping.RoundNearest, want: []int16{1, 3, 3}},
		{name: "one overflow", in: []int32{1, 2, 300}, dst: anyRank(ua.TypeIDByte), err: errOutOfRange,
			msg: `value out of range: element 2: value 300 does not fit Byte (0 to 255) and overflow is "reject"`},
		{name: "byte array", in: ua.ByteArray{1, 255}, dst: anyRank(ua.TypeIDInt16), want: []int16{1, 255}},
		{name: "to byte array", in: []int16{1, 255}, dst: anyRank(ua.TypeIDByte), want: ua.ByteArray{1, 255}},
		{name: "strings", in: []string{"1.5", "-2"}, dst: anyRank(ua.TypeIDDouble), want: []float64{1.5, -2}},
		{name: "bad string", in: []string{"1.5", "x"}, dst: anyRank(ua.TypeIDDouble), err: errConversion, msg: `element 1: string "x" is not a number`},
		{name: "to strings", in: []float32{0.1, 2}, dst: anyRank(ua.TypeIDString), want: []string{"0.1", "2"}},
		{name: "bools", in: []bool{true, false}, dst: anyRank(ua.TypeIDUint32), want: []uint32{1, 0}},
		{name: "empty", in: []float64{}, dst: anyRank(ua.TypeIDInt16), want: []int16{}},
		{name: "null stays null", in: []float64(nil), dst: anyRank(ua.TypeIDInt16), want: []int16(nil)},
		{name: "2-dim", in: [][]float64{{1, 2, 3}, {4, 5, 6}}, dst: anyRank(ua.TypeIDInt32), want: [][]int32{{1, 2, 3}, {4, 5, 6}}},
		{name: "2-dim bad element", in: [][]float64{{1, 2, 3}, {4, 5.5, 6}}, dst: anyRank(ua.TypeIDInt32), err: errConversion, msg: "element [1][1]: value 5.5"},
		{name: "3-dim bytes", in: [][]ua.ByteArray{{{1, 2}}, {{3, 4}}}, dst: anyRank(ua.TypeIDDouble), want: [][][]float64{{{1, 2}}, {{3, 4}}}},
		{name: "2-dim to bytes", in: [][]float64{{1, 2}}, dst: anyRank(ua.TypeIDByte), want: []ua.ByteArray{{1, 2}}},
		{name: "scaled array", in: []int16{0, 13824, 27648, 30000}, dst: anyRank(ua.TypeIDDouble), scaling: siemens(""), want: []float64{0, 50, 100, 100}},
		{name: "scaled array reject", in: []int16{0, 13824, 27648, 30000}, dst: anyRank(ua.TypeIDDouble), scaling: siemens(mapping.Reject), err: errOutOfRange,
			msg: `element 3: value 30000 is outside the scaling range 0..27648 and out_of_range is "reject"`},
		{name: "scaled 2-dim", in: [][]float64{{0, 27648}}, dst: anyRank(0), scaling: siemens(""), want: [][]float64{{0, 100}}},
		{name: "DateTime array to String", in: []string{"a"}, dst: anyRank(ua.TypeIDDateTime), err: errConversion},
		{name: "LocalizedText array passes", in: []*ua.LocalizedText{{Text: "a"}}, dst: anyRank(ua.TypeIDLocalizedText), want: []*ua.LocalizedText{{Text: "a"}}},
		{name: "LocalizedText array to String", in: []*ua.LocalizedText{{Text: "a"}}, dst: anyRank(ua.TypeIDString), err: errConversion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &mapping.Mapping{Scaling: tt.scaling, Convert: &mapping.Conversion{Rounding: tt.rounding}}
			got, err := mustTransform(t, m, false, tt.dst).apply(ua.MustVariant(tt.in))
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("got %v, %v; want %v containing %q", got, err, tt.err, tt.msg)
				}
				return
			}
			want := ua.MustVariant(tt.want)
			if err != nil || !variantEqual(got, want) {
				t.Fatalf("got %v, %v; want %#v", got, err, tt.want)
			}
			if got.ArrayLength() != want.ArrayLength() || len(got.ArrayDimensions()) != len(want.ArrayDimensions()) {
				t.Fatalf("shape: got %d %v, want %d %v", got.ArrayLength(), got.ArrayDimensions(), want.ArrayLength(), want.ArrayDimensions())
			}
		})
	}
}

// TestTransformScaling covers forward and reverse scaling, clamp and
// reject, NaN and Inf, inverted ranges and non-numeric values.
func TestTransformScaling(t *testing.T) {
	inverted := &mapping.Scaling{RawLow: 4, RawHigh: 20, EngLow: 100, EngHigh: 0}
	tests := []struct {
		name    string
		scaling *mapping.Scaling
		reverse bool
		dst     ua.TypeID
		conv    *mapping.Conversion
		in      any
		want    any
		err     error
	}{
		{name: "mid", scaling: siemens(""), dst: ua.TypeIDDouble, in: int16(13824), want: 50.0},
		{name: "low", scaling: siemens(""), dst: ua.TypeIDDouble, in: int16(0), want: 0.0},
		{name: "high", scaling: siemens(""), dst: ua.TypeIDDouble, in: int16(27648), want: 100.0},
		{name: "above clamps", scaling: siemens(""), dst: ua.TypeIDDouble, in: int16(32767), want: 100.0},
		{name: "below clamps", scaling: siemens(mapping.Clamp), dst: ua.TypeIDDouble, in: int16(-5), want: 0.0},
		{name: "above rejected", scaling: siemens(mapping.Reject), dst: ua.TypeIDDouble, in: int16(27649), err: errOutOfRange},
		{name: "edge accepted under reject", scaling: siemens(mapping.Reject), dst: ua.TypeIDDouble, in: int16(27648), want: 100.0},
		{name: "NaN stays NaN", scaling: siemens(mapping.Reject), dst: ua.TypeIDDouble, in: math.NaN(), want: math.NaN()},
		{name: "NaN to integer", scaling: siemens(""), dst: ua.TypeIDInt16, in: math.NaN(), err: errOutOfRange},
		{name: "+Inf clamps", scaling: siemens(""), dst: ua.TypeIDDouble, in: math.Inf(1), want: 100.0},
		{name: "-Inf rejected", scaling: siemens(mapping.Reject), dst: ua.TypeIDDouble, in: math.Inf(-1), err: errOutOfRange},
		{name: "to Float", scaling: siemens(""), dst: ua.TypeIDFloat, in: int16(6912), want: float32(25)},
		{name: "to String", scaling: siemens(""), dst: ua.TypeIDString, in: int16(6912), want: "25"},
		{name: "unknown dst keeps source type", scaling: siemens(""), dst: 0, in: int16(13824), want: int16(50)},
		{name: "unknown dst fraction", scaling: siemens(""), dst: 0, in: int16(1), err: errConversion},
		{name: "unknown dst fraction rounded", scaling: siemens(""), dst: 0, in: int16(1000), conv: &mapping.Conversion{Rounding: mapping.RoundNearest}, want: int16(4)},
		{name: "reverse mid", scaling: siemens(""), reverse: true, dst: ua.TypeIDInt16, in: 50.0, want: int16(13824)},
		{name: "reverse above clamps", scaling: siemens(""), reverse: true, dst: ua.TypeIDInt16, in: 150.0, want: int16(27648)},
		{name: "reverse above rejected", scaling: siemens(mapping.Reject), reverse: true, dst: ua.TypeIDInt16, in: 100.5, err: errOutOfRange},
		{name: "reverse fraction", scaling: siemens(""), reverse: true, dst: ua.TypeIDInt16, in: 50.001, err: errConversion},
		{name: "reverse tiny fraction is not noise", scaling: siemens(""), reverse: true, dst: ua.TypeIDInt16, in: 50 + 1e-9, err: errConversion},
		{name: "reverse fraction rounded", scaling: siemens(""), reverse: true, dst: ua.TypeIDInt16, in: 50.001, conv: &mapping.Conversion{Rounding: mapping.RoundNearest}, want: int16(13824)},
		{name: "inverted", scaling: inverted, dst: ua.TypeIDDouble, in: 8.0, want: 75.0},
		{name: "inverted clamp", scaling: inverted, dst: ua.TypeIDDouble, in: 0.0, want: 100.0},
		{name: "inverted reverse", scaling: inverted, reverse: true, dst: ua.TypeIDDouble, in: 25.0, want: 16.0},
		{name: "inverted reverse clamp", scaling: inverted, reverse: true, dst: ua.TypeIDDouble, in: -10.0, want: 20.0},
		{name: "string is not scaled", scaling: siemens(""), dst: ua.TypeIDDouble, in: "5", err: errConversion},
		{name: "boolean is not scaled", scaling: siemens(""), dst: ua.TypeIDDouble, in: true, err: errConversion},
		{name: "DateTime is not scaled", scaling: siemens(""), dst: 0, in: testTime, err: errConversion},
		{name: "same type is scaled", scaling: siemens(""), dst: ua.TypeIDDouble, in: 13824.0, want: 50.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &mapping.Mapping{Scaling: tt.scaling, Convert: tt.conv}
			got, err := mustTransform(t, m, tt.reverse, valueType{id: tt.dst, valueRank: -1}).apply(ua.MustVariant(tt.in))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v, %v; want %v", got, err, tt.err)
				}
				return
			}
			if err != nil || !variantEqual(got, ua.MustVariant(tt.want)) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestTransformScalingRoundTrip sends every raw value of an Int16 source
// through the forward flow (to Double) and back through the reverse flow
// (to Int16) under rounding "reject": each comes back unchanged, so
// floating-point noise is never taken for a fraction.
func TestTransformScalingRoundTrip(t *testing.T) {
	for _, s := range []*mapping.Scaling{
		siemens(mapping.Reject),
		{RawLow: -27648, RawHigh: 27648, EngLow: -1, EngHigh: 1, OutOfRange: mapping.Reject},
		{RawLow: 0, RawHigh: 32000, EngLow: 4, EngHigh: 20, OutOfRange: mapping.Reject},
		{RawLow: 1000, RawHigh: 0, EngLow: -0.3, EngHigh: 7.7, OutOfRange: mapping.Reject},
	} {
		m := &mapping.Mapping{Scaling: s}
		fwd := mustTransform(t, m, false, valueType{id: ua.TypeIDDouble, valueRank: -1})
		rev := mustTransform(t, m, true, valueType{id: ua.TypeIDInt16, valueRank: -1})
		lo, hi := int(min(s.RawLow, s.RawHigh)), int(max(s.RawLow, s.RawHigh))
		for raw := lo; raw <= hi; raw++ {
			in := ua.MustVariant(int16(raw))
			eng, err := fwd.apply(in)
			if err != nil {
				t.Fatalf("%+v: forward %d: %v", s, raw, err)
			}
			back, err := rev.apply(eng)
			if err != nil || !variantEqual(back, in) {
				t.Fatalf("%+v: %d → %v → %v, %v", s, raw, eng.Value(), back, err)
			}
		}
	}
}

// TestTransformScalingFloatRoundTrip checks forward then reverse scaling
// of Doubles within a few ULPs.
func TestTransformScalingFloatRoundTrip(t *testing.T) {
	m := &mapping.Mapping{Scaling: &mapping.Scaling{RawLow: -3.3, RawHigh: 17.1, EngLow: 1e3, EngHigh: -2e5}}
	fwd := mustTransform(t, m, false, valueType{id: ua.TypeIDDouble, valueRank: -1})
	rev := mustTransform(t, m, true, valueType{id: ua.TypeIDDouble, valueRank: -1})
	for x := -3.3; x <= 17.1; x += 0.0137 {
		eng, err := fwd.apply(ua.MustVariant(x))
		if err != nil {
			t.Fatal(err)
		}
		back, err := rev.apply(eng)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(back.Value().(float64) - x); d > 1e-12*math.Max(1, math.Abs(x)) {
			t.Fatalf("%v → %v → %v (off by %g)", x, eng.Value(), back.Value(), d)
		}
	}
}

// TestTransformChanged checks the client-side deadband at its
// boundaries.
func TestTransformChanged(t *testing.T) {
	abs := func(v float64) *mapping.Mapping {
		return &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: v}}
	}
	pct := func(v float64, s *mapping.Scaling) *mapping.Mapping {
		return &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandPercent, Value: v}, Scaling: s}
	}
	scale := &mapping.Scaling{RawLow: 0, RawHigh: 1000, EngLow: 0, EngHigh: 100}
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name       string
		m          *mapping.Mapping
		reverse    bool
		prev, next any // nil prev: no previous value
		want       bool
	}{
		{"no previous value", abs(100), false, nil, 1.0, true},
		{"no deadband, equal", &mapping.Mapping{}, false, 1.0, 1.0, false},
		{"no deadband, tiny change", &mapping.Mapping{}, false, 1.0, math.Nextafter(1, 2), true},
		{"no deadband, string", &mapping.Mapping{}, false, "a", "b", true},
		{"abs equal", abs(0.5), false, 10.0, 10.0, false},
		{"abs below", abs(0.5), false, 10.0, 10.25, false},
		{"abs at boundary up", abs(0.5), false, 10.0, 10.5, false},
		{"abs at boundary down", abs(0.5), false, 10.0, 9.5, false},
		{"abs just above", abs(0.5), false, 10.0, math.Nextafter(10.5, 11), true},
		{"abs above down", abs(0.5), false, 10.0, 9.25, true},
		{"abs zero passes any change", abs(0), false, 10.0, math.Nextafter(10, 11), true},
		{"abs zero, equal", abs(0), false, 10.0, 10.0, false},
		{"abs int at boundary", abs(2), false, int32(10), int32(12), false},
		{"abs int above", abs(2), false, int32(10), int32(13), true},
		{"abs uint below zero", abs(2), false, uint16(10), uint16(9), false},
		{"abs int64 exact", abs(0), false, int64(1) << 60, int64(1)<<60 + 1, true},
		{"abs float32", abs(0.5), false, float32(1), float32(1.5), false},
		{"NaN NaN", abs(1), false, nan, nan, false},
		{"number to NaN", abs(1), false, 1.0, nan, true},
		{"NaN to number", abs(1), false, nan, 1.0, true},
		{"Inf Inf", abs(1), false, inf, inf, false},
		{"number to Inf", abs(1e300), false, 1.0, inf, true},
		{"Inf to -Inf", abs(1), false, inf, -inf, true},
		{"type change", abs(100), false, 1.0, float32(1), true},
		{"string under deadband", abs(100), false, "a", "b", true},
		{"same string under deadband", abs(100), false, "a", "a", false},
		{"boolean under deadband", abs(100), false, false, true, true},
		{"scalar to array", abs(100), false, 1.0, []float64{1}, true},
		{"array same", abs(1), false, []float64{1, 2}, []float64{1, 2}, false},
		{"array within", abs(1), false, []float64{1, 2}, []float64{2, 1}, false},
		{"array one element passes", abs(1), false, []float64{1, 2}, []float64{1, 3.5}, true},
		{"array length", abs(1), false, []float64{1, 2}, []float64{1, 2, 3}, true},
		{"array null vs empty", abs(1), false, []float64(nil), []float64{}, true},
		{"2-dim within", abs(1), false, [][]int32{{1, 2}, {3, 4}}, [][]int32{{2, 2}, {3, 3}}, false},
		{"2-dim passes", abs(1), false, [][]int32{{1, 2}, {3, 4}}, [][]int32{{1, 2}, {3, 6}}, true},
		{"2-dim shape", abs(1), false, [][]int32{{1, 2}, {3, 4}}, [][]int32{{1, 2, 3, 4}}, true},
		// 1 % of the source-side range: raw 0..1000 forward (10),
		// eng 0..100 reverse (1).
		{"pct forward at boundary", pct(1, scale), false, 100.0, 110.0, false},
		{"pct forward above", pct(1, scale), false, 100.0, 110.5, true},
		{"pct reverse at boundary", pct(1, scale), true, 10.0, 11.0, false},
		{"pct reverse above", pct(1, scale), true, 10.0, 11.5, true},
		{"pct without scaling passes changes", pct(50, nil), false, 1.0, 1.0001, true},
		{"pct without scaling, equal", pct(50, nil), false, 1.0, 1.0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustTransform(t, tt.m, tt.reverse, valueType{valueRank: -2})
			var prev *ua.Variant
			if tt.prev != nil {
				prev = ua.MustVariant(tt.prev)
			}
			if got := tr.changed(prev, ua.MustVariant(tt.next)); got != tt.want {
				t.Errorf("changed(%v, %v) = %v, want %v", tt.prev, tt.next, got, tt.want)
			}
		})
	}
}

// TestTransformHotPathNoAlloc checks that a value needing nothing is
// returned as is without allocating.
func TestTransformHotPathNoAlloc(t *testing.T) {
	for _, c := range []struct {
		dst valueType
		v   *ua.Variant
	}{
		{valueType{ua.TypeIDDouble, -1}, ua.MustVariant(1.5)},
		{valueType{0, -2}, ua.MustVariant(1.5)},
		{valueType{ua.TypeIDInt32, -3}, ua.MustVariant(int32(1))},
		{valueType{ua.TypeIDDouble, 1}, ua.MustVariant([]float64{1, 2})},
	} {
		m := &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: 0.1},
			Convert: &mapping.Conversion{Rounding: mapping.RoundNearest}}
		tr := mustTransform(t, m, false, c.dst)
		got, err := tr.apply(c.v)
		if err != nil || got != c.v {
			t.Fatalf("%v: got %v, %v; want the value itself", c.v.Type(), got, err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = tr.apply(c.v) }); n != 0 {
			t.Errorf("%v: apply: %v allocations", c.v.Type(), n)
		}
		if n := testing.AllocsPerRun(100, func() { tr.changed(c.v, c.v) }); n != 0 {
			t.Errorf("%v: changed: %v allocations", c.v.Type(), n)
		}
	}
}

// TestTransformConcurrent applies one transform from many goroutines
// (run with -race).
func TestTransformConcurrent(t *testing.T) {
	m := &mapping.Mapping{Scaling: siemens(""), Deadband: &mapping.Deadband{Type: mapping.DeadbandPercent, Value: 1}}
	tr := mustTransform(t, m, false, valueType{id: ua.TypeIDFloat, valueRank: -1})
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			prev := ua.MustVariant(int16(0))
			for i := range 1000 {
				v := ua.MustVariant(int16(g*1000 + i))
				if _, err := tr.apply(v); err != nil {
					t.Error(err)
					return
				}
				tr.changed(prev, v)
				prev = v
			}
		}()
	}
	for range 8 {
		<-done
	}
}

// BenchmarkTransformApply measures the value path.
func BenchmarkTransformApply(b *testing.B) {
	arr := make([]float64, 100)
	for i := range arr {
		arr[i] = float64(i)
	}
	for _, bc := range []struct {
		name string
		m    *mapping.Mapping
		dst  valueType
		v    *ua.Variant
	}{
		{"Double/same", &mapping.Mapping{}, valueType{ua.TypeIDDouble, -1}, ua.MustVariant(1.5)},
		{"Double/scaled", &mapping.Mapping{Scaling: siemens("")}, valueType{ua.TypeIDDouble, -1}, ua.MustVariant(13824.0)},
		{"Int16→Double", &mapping.Mapping{}, valueType{ua.TypeIDDouble, -1}, ua.MustVariant(int16(7))},
		{"Double→Int32/round", &mapping.Mapping{Convert: &mapping.Conversion{Rounding: mapping.RoundNearest}}, valueType{ua.TypeIDInt32, -1}, ua.MustVariant(7.4)},
		{"Double→String", &mapping.Mapping{}, valueType{ua.TypeIDString, -1}, ua.MustVariant(0.1)},
		{"Double[100]/scaled", &mapping.Mapping{Scaling: siemens("")}, valueType{ua.TypeIDDouble, 1}, ua.MustVariant(arr)},
	} {
		tr := mustTransform(b, bc.m, false, bc.dst)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.apply(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTransformChanged measures the client-side deadband.
func BenchmarkTransformChanged(b *testing.B) {
	tr := mustTransform(b, &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: 0.5}},
		false, valueType{ua.TypeIDDouble, -1})
	prev, next := ua.MustVariant(1.0), ua.MustVariant(1.25)
	b.ReportAllocs()
	for b.Loop() {
		tr.changed(prev, next)
	}
}

package bridge

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// convTypes are the convertible built-in types, in TypeID order.
var convTypes = []ua.TypeID{
	ua.TypeIDBoolean, ua.TypeIDSByte, ua.TypeIDByte, ua.TypeIDInt16, ua.TypeIDUint16,
	ua.TypeIDInt32, ua.TypeIDUint32, ua.TypeIDInt64, ua.TypeIDUint64,
	ua.TypeIDFloat, ua.TypeIDDouble, ua.TypeIDString, ua.TypeIDDateTime, ua.TypeIDByteString,
}

var (
	testTime  = time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC)
	testBytes = []byte{0xde, 0xad}
)

// ones holds, per convertible type, the value 1 (true, "1"), and one
// value of DateTime and ByteString.
var ones = map[ua.TypeID]any{
	ua.TypeIDBoolean:    true,
	ua.TypeIDSByte:      int8(1),
	ua.TypeIDByte:       uint8(1),
	ua.TypeIDInt16:      int16(1),
	ua.TypeIDUint16:     uint16(1),
	ua.TypeIDInt32:      int32(1),
	ua.TypeIDUint32:     uint32(1),
	ua.TypeIDInt64:      int64(1),
	ua.TypeIDUint64:     uint64(1),
	ua.TypeIDFloat:      float32(1),
	ua.TypeIDDouble:     float64(1),
	ua.TypeIDString:     "1",
	ua.TypeIDDateTime:   testTime,
	ua.TypeIDByteString: testBytes,
}

// mustTransform builds a forward transform to a scalar destination of
// type dst, failing the test on error.
func mustTransform(tb testing.TB, m *mapping.Mapping, reverse bool, dst valueType) *transform {
	tb.Helper()
	tr, err := newTransform(m, reverse, dst)
	if err != nil {
		tb.Fatalf("newTransform: %v", err)
	}
	return tr
}

// convertTo builds a scalar transform to dst with the given rules.
func convertTo(tb testing.TB, dst ua.TypeID, rounding mapping.Rounding, overflow mapping.OutOfRange) *transform {
	tb.Helper()
	m := &mapping.Mapping{Convert: &mapping.Conversion{Rounding: rounding, Overflow: overflow}}
	return mustTransform(tb, m, false, valueType{id: dst, valueRank: -1})
}

// TestConvertTypePairs converts the value 1 of every convertible type to
// every convertible type: numbers, Boolean and String convert among each
// other; DateTime and ByteString only to themselves.
func TestConvertTypePairs(t *testing.T) {
	numeric := func(id ua.TypeID) bool { return id == ua.TypeIDBoolean || id == ua.TypeIDString || isNumber(id) }
	for _, src := range convTypes {
		for _, dst := range convTypes {
			t.Run(typeName(src)+"→"+typeName(dst), func(t *testing.T) {
				tr := convertTo(t, dst, "", "")
				got, err := tr.apply(ua.MustVariant(ones[src]))
				if !numeric(src) || !numeric(dst) {
					if src == dst {
						if err != nil || !variantEqual(got, ua.MustVariant(ones[dst])) {
							t.Fatalf("identity: got %v, %v", got, err)
						}
						return
					}
					if !errors.Is(err, errConversion) {
						t.Fatalf("got %v, %v; want errConversion", got, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				want := ones[dst]
				if src == ua.TypeIDBoolean && dst == ua.TypeIDString {
					want = "true"
				}
				if !variantEqual(got, ua.MustVariant(want)) {
					t.Fatalf("got %v (%v), want %v", got.Value(), got.Type(), want)
				}
			})
		}
	}
}

// TestConvertOutOfRangeMatrix converts 300 and -1 from every numeric type
// that holds them to every integer type under overflow reject and clamp.
func TestConvertOutOfRangeMatrix(t *testing.T) {
	srcs := map[string][]any{
		"300": {int16(300), uint16(300), int32(300), uint32(300), int64(300), uint64(300), float32(300), float64(300), "300"},
		"-1":  {int8(-1), int16(-1), int32(-1), int64(-1), float32(-1), float64(-1), "-1"},
	}
	type want struct {
		fits  bool
		clamp any
	}
	wants := map[string]map[ua.TypeID]want{
		"300": {
			ua.TypeIDBoolean: {false, true}, ua.TypeIDSByte: {false, int8(127)}, ua.TypeIDByte: {false, uint8(255)},
			ua.TypeIDInt16: {true, int16(300)}, ua.TypeIDUint16: {true, uint16(300)}, ua.TypeIDInt32: {true, int32(300)},
			ua.TypeIDUint32: {true, uint32(300)}, ua.TypeIDInt64: {true, int64(300)}, ua.TypeIDUint64: {true, uint64(300)},
		},
		"-1": {
			ua.TypeIDBoolean: {false, false}, ua.TypeIDSByte: {true, int8(-1)}, ua.TypeIDByte: {false, uint8(0)},
			ua.TypeIDInt16: {true, int16(-1)}, ua.TypeIDUint16: {false, uint16(0)}, ua.TypeIDInt32: {true, int32(-1)},
			ua.TypeIDUint32: {false, uint32(0)}, ua.TypeIDInt64: {true, int64(-1)}, ua.TypeIDUint64: {false, uint64(0)},
		},
	}
	for name, vals := range srcs {
		for _, v := range vals {
			for dst, w := range wants[name] {
				src := ua.MustVariant(v)
				if dst == ua.TypeIDBoolean && !isSigned(src.Type()) && !isUnsigned(src.Type()) {
					// Floats convert to Boolean only from exactly 0 or 1,
					// strings only from a keyword; overflow does not apply.
					for _, o := range []mapping.OutOfRange{mapping.Reject, mapping.Clamp} {
						if _, err := convertTo(t, dst, "", o).apply(src); !errors.Is(err, errConversion) {
							t.Errorf("%v %v → Boolean, overflow %s: got %v, want errConversion", src.Type(), v, o, err)
						}
					}
					continue
				}
				t.Run(name+"/"+typeName(src.Type())+"→"+typeName(dst), func(t *testing.T) {
					got, err := convertTo(t, dst, "", "").apply(src)
					if w.fits {
						if err != nil || !variantEqual(got, ua.MustVariant(w.clamp)) {
							t.Fatalf("got %v, %v; want %v", got, err, w.clamp)
						}
						return
					}
					if !errors.Is(err, errOutOfRange) {
						t.Fatalf("reject: got %v, %v; want errOutOfRange", got, err)
					}
					got, err = convertTo(t, dst, "", mapping.Clamp).apply(src)
					if err != nil || !variantEqual(got, ua.MustVariant(w.clamp)) {
						t.Fatalf("clamp: got %v, %v; want %v", got, err, w.clamp)
					}
				})
			}
		}
	}
}

// TestConvertRules covers each rounding, overflow, Boolean, float and
// string rule with explicit cases.
func TestConvertRules(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name     string
		in       any
		to       ua.TypeID
		rounding mapping.Rounding
		overflow mapping.OutOfRange
		want     any   // when err is nil
		err      error // errConversion or errOutOfRange
		msg      string
	}{
		// Rounding.
		{name: "fraction rejected", in: 3.7, to: ua.TypeIDInt16, err: errConversion,
			msg: `cannot convert value: value 3.7 has a fraction and rounding is "reject" for Int16`},
		{name: "fraction explicit reject", in: 3.7, to: ua.TypeIDInt16, rounding: mapping.RoundReject, err: errConversion},
		{name: "round", in: 3.7, to: ua.TypeIDInt16, rounding: mapping.RoundNearest, want: int16(4)},
		{name: "round half away up", in: 2.5, to: ua.TypeIDInt16, rounding: mapping.RoundNearest, want: int16(3)},
		{name: "round half away down", in: -2.5, to: ua.TypeIDInt16, rounding: mapping.RoundNearest, want: int16(-3)},
		{name: "truncate", in: 3.7, to: ua.TypeIDInt16, rounding: mapping.RoundTruncate, want: int16(3)},
		{name: "truncate negative", in: -3.7, to: ua.TypeIDInt16, rounding: mapping.RoundTruncate, want: int16(-3)},
		{name: "truncate to unsigned from -0.5", in: -0.5, to: ua.TypeIDUint16, rounding: mapping.RoundTruncate, want: uint16(0)},
		{name: "round -0.6 to unsigned overflows", in: -0.6, to: ua.TypeIDUint16, rounding: mapping.RoundNearest, err: errOutOfRange},
		{name: "integral float", in: 42.0, to: ua.TypeIDInt16, want: int16(42)},
		{name: "float32 fraction", in: float32(1.5), to: ua.TypeIDInt32, err: errConversion},
		{name: "round into range", in: 255.4, to: ua.TypeIDByte, rounding: mapping.RoundNearest, want: uint8(255)},
		{name: "round out of range", in: 255.5, to: ua.TypeIDByte, rounding: mapping.RoundNearest, err: errOutOfRange},

		// Overflow.
		{name: "300 to Byte", in: 300.0, to: ua.TypeIDByte, err: errOutOfRange,
			msg: `value out of range: value 300 does not fit Byte (0 to 255) and overflow is "reject"`},
		{name: "300 to Byte clamp", in: 300.0, to: ua.TypeIDByte, overflow: mapping.Clamp, want: uint8(255)},
		{name: "fraction beyond range clamps", in: 300.5, to: ua.TypeIDByte, overflow: mapping.Clamp, want: uint8(255)},
		{name: "-5 to Byte clamp", in: -5.0, to: ua.TypeIDByte, overflow: mapping.Clamp, want: uint8(0)},
		{name: "-129 to SByte clamp", in: int32(-129), to: ua.TypeIDSByte, overflow: mapping.Clamp, want: int8(-128)},
		{name: "max uint64 to Int64", in: uint64(math.MaxUint64), to: ua.TypeIDInt64, err: errOutOfRange},
		{name: "max uint64 to Int64 clamp", in: uint64(math.MaxUint64), to: ua.TypeIDInt64, overflow: mapping.Clamp, want: int64(math.MaxInt64)},
		{name: "-1 to UInt64", in: int64(-1), to: ua.TypeIDUint64, err: errOutOfRange},
		{name: "min int64 to Int32 clamp", in: int64(math.MinInt64), to: ua.TypeIDInt32, overflow: mapping.Clamp, want: int32(math.MinInt32)},
		{name: "2^63 to Int64", in: 9223372036854775808.0, to: ua.TypeIDInt64, err: errOutOfRange},
		{name: "2^63 to Int64 clamp", in: 9223372036854775808.0, to: ua.TypeIDInt64, overflow: mapping.Clamp, want: int64(math.MaxInt64)},
		{name: "-2^63 to Int64", in: -9223372036854775808.0, to: ua.TypeIDInt64, want: int64(math.MinInt64)},
		{name: "2^64 to UInt64", in: 18446744073709551616.0, to: ua.TypeIDUint64, err: errOutOfRange},
		{name: "2^63 to UInt64", in: 9223372036854775808.0, to: ua.TypeIDUint64, want: uint64(1) << 63},
		{name: "1e40 to Float", in: 1e40, to: ua.TypeIDFloat, err: errOutOfRange},
		{name: "-1e40 to Float clamp", in: -1e40, to: ua.TypeIDFloat, overflow: mapping.Clamp, want: float32(-math.MaxFloat32)},
		{name: "0.1 to Float loses mantissa only", in: 0.1, to: ua.TypeIDFloat, want: float32(0.1)},
		{name: "1e-50 to Float underflows", in: 1e-50, to: ua.TypeIDFloat, want: float32(0)},
		{name: "MaxFloat32 to Float", in: float64(math.MaxFloat32), to: ua.TypeIDFloat, want: float32(math.MaxFloat32)},
		{name: "Float to Double", in: float32(0.1), to: ua.TypeIDDouble, want: float64(float32(0.1))},
		{name: "big int to Float", in: int64(math.MaxInt64), to: ua.TypeIDFloat, want: float32(math.MaxInt64)},
		{name: "int64 to Double loses mantissa", in: int64(1<<53 + 1), to: ua.TypeIDDouble, want: float64(1 << 53)},

		// NaN and Inf.
		{name: "NaN to Int32", in: nan, to: ua.TypeIDInt32, err: errOutOfRange, msg: "value out of range: value NaN cannot be written as Int32"},
		{name: "NaN to Int32 clamp", in: nan, to: ua.TypeIDInt32, overflow: mapping.Clamp, err: errOutOfRange},
		{name: "NaN to Int32 round", in: nan, to: ua.TypeIDInt32, rounding: mapping.RoundNearest, err: errOutOfRange},
		{name: "+Inf to Int32", in: inf, to: ua.TypeIDInt32, err: errOutOfRange},
		{name: "+Inf to Int32 clamp", in: inf, to: ua.TypeIDInt32, overflow: mapping.Clamp, want: int32(math.MaxInt32)},
		{name: "-Inf to UInt32 clamp", in: -inf, to: ua.TypeIDUint32, overflow: mapping.Clamp, want: uint32(0)},
		{name: "NaN to Float", in: nan, to: ua.TypeIDFloat, want: float32(math.NaN())},
		{name: "Inf to Float", in: inf, to: ua.TypeIDFloat, want: float32(math.Inf(1))},
		{name: "NaN Float to Double", in: float32(math.NaN()), to: ua.TypeIDDouble, want: nan},
		{name: "NaN to Boolean", in: nan, to: ua.TypeIDBoolean, err: errConversion},

		// Boolean.
		{name: "0.5 to Boolean", in: 0.5, to: ua.TypeIDBoolean, rounding: mapping.RoundNearest, err: errConversion,
			msg: "cannot convert value: value 0.5 is not 0 or 1 for Boolean"},
		{name: "1.0 to Boolean", in: 1.0, to: ua.TypeIDBoolean, want: true},
		{name: "-0.0 to Boolean", in: math.Copysign(0, -1), to: ua.TypeIDBoolean, want: false},
		{name: "2.0 to Boolean clamp still rejects", in: 2.0, to: ua.TypeIDBoolean, overflow: mapping.Clamp, err: errConversion},
		{name: "int 2 to Boolean", in: int32(2), to: ua.TypeIDBoolean, err: errOutOfRange},
		{name: "int 2 to Boolean clamp", in: int32(2), to: ua.TypeIDBoolean, overflow: mapping.Clamp, want: true},
		{name: "int -1 to Boolean clamp", in: int32(-1), to: ua.TypeIDBoolean, overflow: mapping.Clamp, want: false},
		{name: "uint 0 to Boolean", in: uint16(0), to: ua.TypeIDBoolean, want: false},
		{name: "false to Double", in: false, to: ua.TypeIDDouble, want: 0.0},
		{name: "true to SByte", in: true, to: ua.TypeIDSByte, want: int8(1)},
		{name: "false to String", in: false, to: ua.TypeIDString, want: "false"},

		// String → number, strictly.
		{name: "string int", in: "42", to: ua.TypeIDInt16, want: int16(42)},
		{name: "string signed", in: "+42", to: ua.TypeIDInt16, want: int16(42)},
		{name: "string exponent", in: "4.2e1", to: ua.TypeIDInt16, want: int16(42)},
		{name: "string fraction", in: "4.25", to: ua.TypeIDInt16, err: errConversion},
		{name: "string fraction round", in: "4.25", to: ua.TypeIDInt16, rounding: mapping.RoundNearest, want: int16(4)},
		{name: "string too big", in: "40000", to: ua.TypeIDInt16, err: errOutOfRange},
		{name: "string leading space", in: " 42", to: ua.TypeIDInt16, err: errConversion},
		{name: "string trailing space", in: "42 ", to: ua.TypeIDDouble, err: errConversion},
		{name: "string hex", in: "0x10", to: ua.TypeIDInt32, err: errConversion},
		{name: "string hex float", in: "0x1p3", to: ua.TypeIDDouble, err: errConversion},
		{name: "string negative hex", in: "-0X10", to: ua.TypeIDDouble, err: errConversion},
		{name: "string underscore", in: "1_000", to: ua.TypeIDInt32, err: errConversion},
		{name: "string empty", in: "", to: ua.TypeIDInt32, err: errConversion, msg: `cannot convert value: string "" is not a number`},
		{name: "string word", in: "abc", to: ua.TypeIDDouble, err: errConversion},
		{name: "string max int64", in: "9223372036854775807", to: ua.TypeIDInt64, want: int64(math.MaxInt64)},
		{name: "string max int64+1", in: "9223372036854775808", to: ua.TypeIDInt64, err: errOutOfRange},
		{name: "string max uint64", in: "18446744073709551615", to: ua.TypeIDUint64, want: uint64(math.MaxUint64)},
		{name: "string double", in: "0.1", to: ua.TypeIDDouble, want: 0.1},
		{name: "string float", in: "0.1", to: ua.TypeIDFloat, want: float32(0.1)},
		{name: "string NaN", in: "NaN", to: ua.TypeIDDouble, want: nan},
		{name: "string +Inf", in: "+Inf", to: ua.TypeIDFloat, want: float32(math.Inf(1))},
		{name: "string -Inf to Int16", in: "-Inf", to: ua.TypeIDInt16, err: errOutOfRange},
		{name: "string -Inf to Int16 clamp", in: "-Inf", to: ua.TypeIDInt16, overflow: mapping.Clamp, want: int16(math.MinInt16)},
		{name: "string 1e400", in: "1e400", to: ua.TypeIDDouble, err: errOutOfRange},
		{name: "string 1e400 clamp", in: "1e400", to: ua.TypeIDDouble, overflow: mapping.Clamp, want: math.MaxFloat64},
		{name: "string 1e39 to Float", in: "1e39", to: ua.TypeIDFloat, err: errOutOfRange},
		{name: "string 1e-400", in: "1e-400", to: ua.TypeIDDouble, want: 0.0},
		{name: "string true", in: "true", to: ua.TypeIDBoolean, want: true},
		{name: "string FALSE", in: "FALSE", to: ua.TypeIDBoolean, want: false},
		{name: "string 0 to Boolean", in: "0", to: ua.TypeIDBoolean, want: false},
		{name: "string t", in: "t", to: ua.TypeIDBoolean, err: errConversion},
		{name: "string yes", in: "yes", to: ua.TypeIDBoolean, err: errConversion},

		// Number → String with strconv 'g' -1.
		{name: "Double 0.1", in: 0.1, to: ua.TypeIDString, want: "0.1"},
		{name: "Float 0.1", in: float32(0.1), to: ua.TypeIDString, want: "0.1"},
		{name: "Double 1e21", in: 1e21, to: ua.TypeIDString, want: "1e+21"},
		{name: "Double NaN", in: nan, to: ua.TypeIDString, want: "NaN"},
		{name: "Double -Inf", in: -inf, to: ua.TypeIDString, want: "-Inf"},
		{name: "min int64", in: int64(math.MinInt64), to: ua.TypeIDString, want: "-9223372036854775808"},
		{name: "max uint64", in: uint64(math.MaxUint64), to: ua.TypeIDString, want: "18446744073709551615"},

		// DateTime, ByteString and other types.
		{name: "DateTime to String", in: testTime, to: ua.TypeIDString, err: errConversion},
		{name: "String to DateTime", in: "2024-05-06T07:08:09Z", to: ua.TypeIDDateTime, err: errConversion},
		{name: "Double to DateTime", in: 1.0, to: ua.TypeIDDateTime, err: errConversion},
		{name: "DateTime to Int64", in: testTime, to: ua.TypeIDInt64, err: errConversion},
		{name: "String to ByteString", in: "ab", to: ua.TypeIDByteString, err: errConversion},
		{name: "ByteString to String", in: []byte("ab"), to: ua.TypeIDString, err: errConversion},
		{name: "LocalizedText to String", in: &ua.LocalizedText{Text: "x"}, to: ua.TypeIDString, err: errConversion},
		{name: "String to LocalizedText", in: "x", to: ua.TypeIDLocalizedText, err: errConversion},
		{name: "LocalizedText passes through", in: &ua.LocalizedText{Text: "x", EncodingMask: ua.LocalizedTextText},
			to: ua.TypeIDLocalizedText, want: &ua.LocalizedText{Text: "x", EncodingMask: ua.LocalizedTextText}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := convertTo(t, tt.to, tt.rounding, tt.overflow)
			got, err := tr.apply(ua.MustVariant(tt.in))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v, %v; want %v", got, err, tt.err)
				}
				if tt.msg != "" && err.Error() != tt.msg {
					t.Fatalf("message\n got %s\nwant %s", err, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Type() != tt.to {
				t.Fatalf("type %v, want %v", got.Type(), tt.to)
			}
			if !variantEqual(got, ua.MustVariant(tt.want)) {
				t.Fatalf("got %#v, want %#v", got.Value(), tt.want)
			}
		})
	}
}

// TestConvertNull checks that an empty Variant and a nil one are errors,
// whatever the destination.
func TestConvertNull(t *testing.T) {
	for _, dst := range []ua.TypeID{0, ua.TypeIDDouble} {
		tr := mustTransform(t, &mapping.Mapping{}, false, valueType{id: dst, valueRank: -2})
		if _, err := tr.apply(&ua.Variant{}); !errors.Is(err, errConversion) {
			t.Errorf("dst %v: empty Variant: got %v, want errConversion", dst, err)
		}
		if _, err := tr.apply(nil); !errors.Is(err, errConversion) {
			t.Errorf("dst %v: nil: got %v, want errConversion", dst, err)
		}
	}
}

// TestConvertToStringRoundTrip formats numbers as strings and parses them
// back: the value comes back exactly.
func TestConvertToStringRoundTrip(t *testing.T) {
	vals := []any{
		0.1, 1.0 / 3, math.MaxFloat64, math.SmallestNonzeroFloat64, -1e-300, math.Inf(-1), math.NaN(),
		float32(0.1), float32(1.0 / 3), float32(math.MaxFloat32), float32(math.SmallestNonzeroFloat32),
		int64(math.MinInt64), uint64(math.MaxUint64), int8(-128), true, false,
	}
	toString := convertTo(t, ua.TypeIDString, "", "")
	for _, v := range vals {
		in := ua.MustVariant(v)
		s, err := toString.apply(in)
		if err != nil {
			t.Fatalf("%v to String: %v", v, err)
		}
		back, err := convertTo(t, in.Type(), "", "").apply(s)
		if err != nil || !variantEqual(back, in) {
			t.Errorf("%v → %q → %v, %v", v, s.Value(), back, err)
		}
	}
}

// TestParseTypeName accepts the OPC UA names of the convertible types in
// any case and nothing else.
func TestParseTypeName(t *testing.T) {
	for _, id := range convTypes {
		for _, name := range []string{typeName(id), strings.ToLower(typeName(id))} {
			got, err := parseTypeName(name)
			if err != nil || got != id {
				t.Errorf("parseTypeName(%q) = %v, %v; want %v", name, got, err, id)
			}
		}
	}
	for _, name := range []string{"", "Null", "LocalizedText", "Guid", "int", "Double "} {
		if _, err := parseTypeName(name); err == nil {
			t.Errorf("parseTypeName(%q): no error", name)
		}
	}
}

// TestVariantEqual covers type awareness, NaN, arrays and by-value types.
func TestVariantEqual(t *testing.T) {
	nan := math.NaN()
	mv := ua.MustVariant
	tests := []struct {
		name string
		a, b *ua.Variant
		want bool
	}{
		{"nil nil", nil, nil, true},
		{"nil value", nil, mv(1.0), false},
		{"same double", mv(1.5), mv(1.5), true},
		{"different double", mv(1.5), mv(1.25), false},
		{"Double 1 vs Float 1", mv(1.0), mv(float32(1)), false},
		{"Int32 1 vs Int64 1", mv(int32(1)), mv(int64(1)), false},
		{"NaN NaN", mv(nan), mv(nan), true},
		{"NaN 0", mv(nan), mv(0.0), false},
		{"Float NaN", mv(float32(nan)), mv(float32(nan)), true},
		{"+0 -0", mv(0.0), mv(math.Copysign(0, -1)), true},
		{"int16", mv(int16(-7)), mv(int16(-7)), true},
		{"uint64", mv(uint64(1) << 63), mv(uint64(1)<<63 + 1), false},
		{"bool", mv(true), mv(false), false},
		{"string", mv("abc"), mv(string([]byte("abc"))), true},
		{"string differs", mv("abc"), mv("abd"), false},
		{"DateTime same instant other zone", mv(testTime), mv(testTime.In(time.FixedZone("X", 3600))), true},
		{"DateTime differs", mv(testTime), mv(testTime.Add(100)), false},
		{"ByteString", mv([]byte{1, 2}), mv([]byte{1, 2}), true},
		{"ByteString differs", mv([]byte{1, 2}), mv([]byte{1, 3}), false},
		{"scalar vs array", mv(1.0), mv([]float64{1}), false},
		{"double array", mv([]float64{1, nan, 3}), mv([]float64{1, nan, 3}), true},
		{"double array differs", mv([]float64{1, 2, 3}), mv([]float64{1, 2, 4}), false},
		{"double array length", mv([]float64{1, 2}), mv([]float64{1, 2, 3}), false},
		{"null vs empty array", mv([]float64(nil)), mv([]float64{}), false},
		{"null arrays", mv([]int32(nil)), mv([]int32(nil)), true},
		{"byte array", mv(ua.ByteArray{1, 2}), mv(ua.ByteArray{1, 2}), true},
		{"byte array vs ByteString", mv(ua.ByteArray{1, 2}), mv([]byte{1, 2}), false},
		{"string array", mv([]string{"a", "b"}), mv([]string{"a", "b"}), true},
		{"ByteString array", mv([][]byte{{1}, {2}}), mv([][]byte{{1}, {2}}), true},
		{"DateTime array", mv([]time.Time{testTime}), mv([]time.Time{testTime.Local()}), true},
		{"2-dim", mv([][]float64{{1, nan}, {3, 4}}), mv([][]float64{{1, nan}, {3, 4}}), true},
		{"2-dim differs", mv([][]float64{{1, 2}, {3, 4}}), mv([][]float64{{1, 2}, {3, 5}}), false},
		{"2x2 vs 1x4", mv([][]int32{{1, 2}, {3, 4}}), mv([]int32{1, 2, 3, 4}), false},
		{"3-dim bytes", mv([][]ua.ByteArray{{{1, 2}}}), mv([][]ua.ByteArray{{{1, 2}}}), true},
		{"LocalizedText", mv(&ua.LocalizedText{Text: "a"}), mv(&ua.LocalizedText{Text: "a"}), true},
		{"LocalizedText differs", mv(&ua.LocalizedText{Text: "a"}), mv(&ua.LocalizedText{Text: "b"}), false},
		{"LocalizedText array", mv([]*ua.LocalizedText{{Text: "a"}}), mv([]*ua.LocalizedText{{Text: "a"}}), true},
		{"NodeID", mv(ua.NewNumericNodeID(1, 2)), mv(ua.NewNumericNodeID(1, 2)), true},
		{"StatusCode", mv(ua.StatusBad), mv(ua.StatusOK), false},
		{"nested Variant NaN", mv(mv(nan)), mv(mv(nan)), true},
		{"empty", &ua.Variant{}, &ua.Variant{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := variantEqual(tt.a, tt.b); got != tt.want {
				t.Errorf("variantEqual(a, b) = %v, want %v", got, tt.want)
			}
			if got := variantEqual(tt.b, tt.a); got != tt.want {
				t.Errorf("variantEqual(b, a) = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestVariantEqualDecoded compares values decoded from the wire (which
// may carry the dimensions of a one-dimensional array) with values built
// in code.
func TestVariantEqualDecoded(t *testing.T) {
	for _, v := range []any{1.5, int16(3), "x", testTime, []byte{1}, []float64{1, 2}, ua.ByteArray{1, 2}, [][]int32{{1, 2}, {3, 4}}} {
		in := ua.MustVariant(v)
		b, err := in.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var out ua.Variant
		if _, err := out.Decode(b); err != nil {
			t.Fatal(err)
		}
		if !variantEqual(in, &out) {
			t.Errorf("%v: decoded %#v differs", v, out.Value())
		}
	}
}

// TestVariantEqualNoAlloc checks the scalar fast path.
func TestVariantEqualNoAlloc(t *testing.T) {
	for _, pair := range [][2]*ua.Variant{
		{ua.MustVariant(1.5), ua.MustVariant(1.5)},
		{ua.MustVariant(int32(1)), ua.MustVariant(int32(2))},
		{ua.MustVariant("abc"), ua.MustVariant("abc")},
		{ua.MustVariant(testTime), ua.MustVariant(testTime)},
		{ua.MustVariant([]float64{1, 2, 3}), ua.MustVariant([]float64{1, 2, 3})},
	} {
		if n := testing.AllocsPerRun(100, func() { variantEqual(pair[0], pair[1]) }); n != 0 {
			t.Errorf("%v: %v allocations", pair[0].Type(), n)
		}
	}
}

// FuzzConvert converts random floats, integers and strings to every
// convertible type under random rules: apply never panics, and when it
// succeeds the result has the destination's type; numbers formatted as
// strings parse back to the same value.
func FuzzConvert(f *testing.F) {
	f.Add(uint8(0), 3.7, int64(0), "", uint8(3), uint8(0))
	f.Add(uint8(1), math.NaN(), int64(-1), "1e400", uint8(8), uint8(5))
	f.Add(uint8(2), 1e40, int64(math.MaxInt64), "0x10", uint8(9), uint8(2))
	f.Add(uint8(3), -0.5, int64(300), "NaN", uint8(0), uint8(7))
	f.Add(uint8(4), 255.5, int64(math.MinInt64), "-Inf", uint8(11), uint8(3))
	f.Add(uint8(5), 0.0, int64(2), "+42", uint8(13), uint8(1))
	dsts := append(append([]ua.TypeID{0}, convTypes...), ua.TypeIDLocalizedText)
	roundings := []mapping.Rounding{"", mapping.RoundNearest, mapping.RoundTruncate}
	f.Fuzz(func(t *testing.T, kind uint8, fv float64, iv int64, sv string, dsti uint8, opts uint8) {
		var in any
		switch kind % 10 {
		case 0:
			in = fv
		case 1:
			in = float32(fv)
		case 2:
			in = iv
		case 3:
			in = uint64(iv)
		case 4:
			in = int32(iv)
		case 5:
			in = uint8(iv)
		case 6:
			in = iv&1 == 1
		case 7:
			in = sv
		case 8:
			in = []float64{fv, float64(iv)}
		case 9:
			in = []string{sv}
		}
		src := ua.MustVariant(in)
		dst := dsts[int(dsti)%len(dsts)]
		m := &mapping.Mapping{Convert: &mapping.Conversion{Rounding: roundings[int(opts)%3]}}
		if opts&4 != 0 {
			m.Convert.Overflow = mapping.Clamp
		}
		if opts&8 != 0 {
			m.Scaling = &mapping.Scaling{RawLow: 0, RawHigh: 27648, EngLow: -50, EngHigh: 150}
			if opts&16 != 0 {
				m.Scaling.OutOfRange = mapping.Reject
			}
		}
		if m.Scaling != nil && dst != 0 && dst != ua.TypeIDBoolean && dst != ua.TypeIDString && !isNumber(dst) {
			if _, err := newTransform(m, false, valueType{id: dst, valueRank: -2}); err == nil {
				t.Fatalf("scaling to %v accepted", dst)
			}
			return
		}
		tr := mustTransform(t, m, opts&32 != 0, valueType{id: dst, valueRank: -2})
		out, err := tr.apply(src)
		if err != nil {
			if !errors.Is(err, errConversion) && !errors.Is(err, errOutOfRange) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		want := dst
		if want == 0 {
			want = src.Type()
		}
		if out.Type() != want {
			t.Fatalf("%v (%v) → %v: result type %v", in, src.Type(), dst, out.Type())
		}
		if out.Has(ua.VariantArrayValues) != src.Has(ua.VariantArrayValues) {
			t.Fatalf("%v → %v: rank changed", in, dst)
		}
		if m.Scaling == nil && dst == ua.TypeIDString && isNumber(src.Type()) {
			back, err := mustTransform(t, &mapping.Mapping{}, false, valueType{id: src.Type(), valueRank: -2}).apply(out)
			if err != nil || !variantEqual(back, src) {
				t.Fatalf("%v → %q → %v, %v", in, out.Value(), back, err)
			}
		}
		if m.Scaling == nil && dst == src.Type() && out != src {
			t.Fatalf("identity conversion allocated a new value")
		}
		if s, ok := in.(string); ok && isNumber(want) && m.Scaling == nil && dst != ua.TypeIDString {
			// A parsed string was a number: strconv agrees.
			if _, err := strconv.ParseFloat(s, 64); err != nil && !errors.Is(err, strconv.ErrRange) {
				t.Fatalf("%q parsed as %v, strconv says %v", s, out.Value(), err)
			}
		}
	})
}

// BenchmarkVariantEqual measures echo suppression's comparison.
func BenchmarkVariantEqual(b *testing.B) {
	arr := make([]float64, 100)
	for i := range arr {
		arr[i] = float64(i)
	}
	arr2 := append([]float64(nil), arr...)
	for _, bc := range []struct {
		name string
		a, c *ua.Variant
	}{
		{"Double", ua.MustVariant(1.5), ua.MustVariant(1.5)},
		{"Int32", ua.MustVariant(int32(7)), ua.MustVariant(int32(7))},
		{"String", ua.MustVariant("some tag value"), ua.MustVariant("some tag value")},
		{"DateTime", ua.MustVariant(testTime), ua.MustVariant(testTime)},
		{"TypeMismatch", ua.MustVariant(1.0), ua.MustVariant(float32(1))},
		{"Double[100]", ua.MustVariant(arr), ua.MustVariant(arr2)},
		{"Double[2][2]", ua.MustVariant([][]float64{{1, 2}, {3, 4}}), ua.MustVariant([][]float64{{1, 2}, {3, 4}})},
		{"LocalizedText", ua.MustVariant(&ua.LocalizedText{Text: "a"}), ua.MustVariant(&ua.LocalizedText{Text: "a"})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				variantEqual(bc.a, bc.c)
			}
		})
	}
}

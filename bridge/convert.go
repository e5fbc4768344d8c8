package bridge

// This file holds the conversions between OPC UA built-in types that a
// transform applies after scaling, and variantEqual. Conversions work on
// scalar, a tagged union of the convertible built-in types, so that a
// value is decoded from its Variant once and scalars and one-dimensional
// arrays convert without reflection per value or element.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// Errors of a value that cannot be written faithfully. apply wraps one of
// them with a human reason; the engine marks the flow Bad with that text
// and writes nothing.
var (
	// errConversion: the value cannot be represented in the destination's
	// type or ValueRank: incompatible types, a fraction under rounding
	// "reject", an unparseable string, an array for a scalar node.
	errConversion = errors.New("cannot convert value")
	// errOutOfRange: the value lies outside the scaling range (scaling
	// out_of_range "reject") or beyond the destination type's range
	// (overflow "reject"), or is NaN for an integer destination.
	errOutOfRange = errors.New("value out of range")
)

// valueError is the error of one value: a sentinel, a reason and, for
// arrays, the index of the first bad element.
type valueError struct {
	kind   error  // errConversion or errOutOfRange
	elem   string // "" for a scalar, else the index, e.g. "3" or "[1][2]"
	reason string
}

// Error returns e.g. `cannot convert value: element 3: value 3.7 has a
// fraction and rounding is "reject" for Int16`.
func (e *valueError) Error() string {
	if e.elem != "" {
		return e.kind.Error() + ": element " + e.elem + ": " + e.reason
	}
	return e.kind.Error() + ": " + e.reason
}

// Unwrap returns the sentinel, for errors.Is.
func (e *valueError) Unwrap() error { return e.kind }

// conversionErrorf returns a valueError wrapping errConversion.
func conversionErrorf(format string, args ...any) error {
	return &valueError{kind: errConversion, reason: fmt.Sprintf(format, args...)}
}

// rangeErrorf returns a valueError wrapping errOutOfRange.
func rangeErrorf(format string, args ...any) error {
	return &valueError{kind: errOutOfRange, reason: fmt.Sprintf(format, args...)}
}

// typeNames are the OPC UA names of the built-in types (Part 6, 5.1.2),
// as used in messages and in Conversion.To.
var typeNames = [...]string{
	ua.TypeIDNull:            "Null",
	ua.TypeIDBoolean:         "Boolean",
	ua.TypeIDSByte:           "SByte",
	ua.TypeIDByte:            "Byte",
	ua.TypeIDInt16:           "Int16",
	ua.TypeIDUint16:          "UInt16",
	ua.TypeIDInt32:           "Int32",
	ua.TypeIDUint32:          "UInt32",
	ua.TypeIDInt64:           "Int64",
	ua.TypeIDUint64:          "UInt64",
	ua.TypeIDFloat:           "Float",
	ua.TypeIDDouble:          "Double",
	ua.TypeIDString:          "String",
	ua.TypeIDDateTime:        "DateTime",
	ua.TypeIDGUID:            "Guid",
	ua.TypeIDByteString:      "ByteString",
	ua.TypeIDXMLElement:      "XmlElement",
	ua.TypeIDNodeID:          "NodeId",
	ua.TypeIDExpandedNodeID:  "ExpandedNodeId",
	ua.TypeIDStatusCode:      "StatusCode",
	ua.TypeIDQualifiedName:   "QualifiedName",
	ua.TypeIDLocalizedText:   "LocalizedText",
	ua.TypeIDExtensionObject: "ExtensionObject",
	ua.TypeIDDataValue:       "DataValue",
	ua.TypeIDVariant:         "Variant",
	ua.TypeIDDiagnosticInfo:  "DiagnosticInfo",
}

// typeName returns the OPC UA name of a built-in type id.
func typeName(id ua.TypeID) string {
	if int(id) < len(typeNames) {
		return typeNames[id]
	}
	return "TypeID(" + strconv.Itoa(int(id)) + ")"
}

// parseTypeName returns the built-in type named by Conversion.To: one of
// the convertible types, matched case-insensitively ("UInt16" and gopcua's
// "Uint16" both work).
func parseTypeName(name string) (ua.TypeID, error) {
	for id := ua.TypeIDBoolean; id <= ua.TypeIDByteString; id++ {
		if convertible(id) && strings.EqualFold(typeNames[id], name) {
			return id, nil
		}
	}
	return 0, fmt.Errorf("unknown or unsupported type %q (want Boolean, SByte, Byte, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float, Double, String, DateTime or ByteString)", name)
}

// convertible reports whether values of type id take part in conversions.
// Values of other types (Guid, LocalizedText, ExtensionObject, …) are
// only passed through unchanged to a destination of the same type.
func convertible(id ua.TypeID) bool {
	return id >= ua.TypeIDBoolean && id <= ua.TypeIDDateTime || id == ua.TypeIDByteString
}

// isSigned reports whether id is a signed integer type.
func isSigned(id ua.TypeID) bool {
	switch id {
	case ua.TypeIDSByte, ua.TypeIDInt16, ua.TypeIDInt32, ua.TypeIDInt64:
		return true
	}
	return false
}

// isUnsigned reports whether id is an unsigned integer type.
func isUnsigned(id ua.TypeID) bool {
	switch id {
	case ua.TypeIDByte, ua.TypeIDUint16, ua.TypeIDUint32, ua.TypeIDUint64:
		return true
	}
	return false
}

// isFloat reports whether id is Float or Double.
func isFloat(id ua.TypeID) bool { return id == ua.TypeIDFloat || id == ua.TypeIDDouble }

// isNumber reports whether id is an integer or floating-point type: the
// types that can be scaled and deadbanded. Boolean is not a number here.
func isNumber(id ua.TypeID) bool { return isSigned(id) || isUnsigned(id) || isFloat(id) }

// signedRange returns the bounds of a signed integer type.
func signedRange(id ua.TypeID) (lo, hi int64) {
	switch id {
	case ua.TypeIDSByte:
		return math.MinInt8, math.MaxInt8
	case ua.TypeIDInt16:
		return math.MinInt16, math.MaxInt16
	case ua.TypeIDInt32:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

// unsignedMax returns the largest value of an unsigned integer type.
func unsignedMax(id ua.TypeID) uint64 {
	switch id {
	case ua.TypeIDByte:
		return math.MaxUint8
	case ua.TypeIDUint16:
		return math.MaxUint16
	case ua.TypeIDUint32:
		return math.MaxUint32
	}
	return math.MaxUint64
}

// scalar is one value of a convertible built-in type. Only the field of
// its type's class is meaningful. It is kept small (it is copied through
// every step of a conversion); DateTime and ByteString values, which
// only ever convert to themselves, are held boxed in ref.
type scalar struct {
	id ua.TypeID
	i  int64   // Boolean (0 or 1), SByte, Int16, Int32, Int64
	u  uint64  // Byte, UInt16, UInt32, UInt64
	f  float64 // Float, Double
	s  string  // String
	// ref is a DateTime's time.Time or a ByteString's []byte.
	ref any
	// noise is, for a Double produced by scaling, the floating-point error
	// the scaling may have introduced (absolute, see transform.noise): a
	// distance to the nearest integer within it is not a fraction. 0 for
	// values as received.
	noise float64
}

// float returns a numeric or Boolean scalar as a float64.
func (s *scalar) float() float64 {
	switch {
	case isFloat(s.id):
		return s.f
	case isUnsigned(s.id):
		return float64(s.u)
	}
	return float64(s.i)
}

// String formats s for error messages: numbers as strconv 'g' -1.
func (s *scalar) String() string {
	switch {
	case s.id == ua.TypeIDBoolean:
		return strconv.FormatBool(s.i != 0)
	case isSigned(s.id):
		return strconv.FormatInt(s.i, 10)
	case isUnsigned(s.id):
		return strconv.FormatUint(s.u, 10)
	case s.id == ua.TypeIDFloat:
		return strconv.FormatFloat(s.f, 'g', -1, 32)
	case s.id == ua.TypeIDDouble:
		return strconv.FormatFloat(s.f, 'g', -1, 64)
	case s.id == ua.TypeIDString:
		return strconv.Quote(s.s)
	case s.id == ua.TypeIDDateTime:
		t, _ := s.ref.(time.Time)
		return t.UTC().Format(time.RFC3339Nano)
	case s.id == ua.TypeIDByteString:
		b, _ := s.ref.([]byte)
		return "ByteString of " + strconv.Itoa(len(b)) + " bytes"
	}
	return typeName(s.id) + " value"
}

// load returns the scalar held by a Variant's scalar value; false when x
// is not of a convertible type.
func load(x any) (scalar, bool) {
	switch x := x.(type) {
	case float64:
		return scalar{id: ua.TypeIDDouble, f: x}, true
	case float32:
		return scalar{id: ua.TypeIDFloat, f: float64(x)}, true
	case bool:
		var i int64
		if x {
			i = 1
		}
		return scalar{id: ua.TypeIDBoolean, i: i}, true
	case int8:
		return scalar{id: ua.TypeIDSByte, i: int64(x)}, true
	case uint8:
		return scalar{id: ua.TypeIDByte, u: uint64(x)}, true
	case int16:
		return scalar{id: ua.TypeIDInt16, i: int64(x)}, true
	case uint16:
		return scalar{id: ua.TypeIDUint16, u: uint64(x)}, true
	case int32:
		return scalar{id: ua.TypeIDInt32, i: int64(x)}, true
	case uint32:
		return scalar{id: ua.TypeIDUint32, u: uint64(x)}, true
	case int64:
		return scalar{id: ua.TypeIDInt64, i: x}, true
	case uint64:
		return scalar{id: ua.TypeIDUint64, u: x}, true
	case string:
		return scalar{id: ua.TypeIDString, s: x}, true
	case time.Time:
		return scalar{id: ua.TypeIDDateTime, ref: x}, true
	case []byte:
		return scalar{id: ua.TypeIDByteString, ref: x}, true
	}
	return scalar{}, false
}

// box returns s as the Go value gopcua's Variant holds for its type.
func box(s scalar) any {
	switch s.id {
	case ua.TypeIDBoolean:
		return s.i != 0
	case ua.TypeIDSByte:
		return int8(s.i)
	case ua.TypeIDByte:
		return uint8(s.u)
	case ua.TypeIDInt16:
		return int16(s.i)
	case ua.TypeIDUint16:
		return uint16(s.u)
	case ua.TypeIDInt32:
		return int32(s.i)
	case ua.TypeIDUint32:
		return uint32(s.u)
	case ua.TypeIDInt64:
		return s.i
	case ua.TypeIDUint64:
		return s.u
	case ua.TypeIDFloat:
		return float32(s.f)
	case ua.TypeIDDouble:
		return s.f
	case ua.TypeIDString:
		return s.s
	case ua.TypeIDDateTime, ua.TypeIDByteString:
		return s.ref
	}
	return nil
}

// makeSlice returns a one-dimensional array value of type id and length
// n as gopcua holds it (Byte arrays are ua.ByteArray, ByteString arrays
// [][]byte); n < 0 gives a nil (null) array.
func makeSlice(id ua.TypeID, n int) any {
	if n < 0 {
		return reflect.Zero(reflect.TypeOf(makeSlice(id, 0))).Interface()
	}
	switch id {
	case ua.TypeIDBoolean:
		return make([]bool, n)
	case ua.TypeIDSByte:
		return make([]int8, n)
	case ua.TypeIDByte:
		return make(ua.ByteArray, n)
	case ua.TypeIDInt16:
		return make([]int16, n)
	case ua.TypeIDUint16:
		return make([]uint16, n)
	case ua.TypeIDInt32:
		return make([]int32, n)
	case ua.TypeIDUint32:
		return make([]uint32, n)
	case ua.TypeIDInt64:
		return make([]int64, n)
	case ua.TypeIDUint64:
		return make([]uint64, n)
	case ua.TypeIDFloat:
		return make([]float32, n)
	case ua.TypeIDDouble:
		return make([]float64, n)
	case ua.TypeIDString:
		return make([]string, n)
	case ua.TypeIDDateTime:
		return make([]time.Time, n)
	case ua.TypeIDByteString:
		return make([][]byte, n)
	}
	return nil
}

// elemAt sets *s to element i of a one-dimensional array value; false
// when the array is not of a convertible type. (It fills *s rather than
// returning a scalar: copying the struct per element costs more than the
// conversion.)
func elemAt(a any, i int, s *scalar) bool {
	switch a := a.(type) {
	case []float64:
		*s = scalar{id: ua.TypeIDDouble, f: a[i]}
		return true
	case []float32:
		*s = scalar{id: ua.TypeIDFloat, f: float64(a[i])}
		return true
	case []bool:
		var v int64
		if a[i] {
			v = 1
		}
		*s = scalar{id: ua.TypeIDBoolean, i: v}
		return true
	case []int8:
		*s = scalar{id: ua.TypeIDSByte, i: int64(a[i])}
		return true
	case ua.ByteArray:
		*s = scalar{id: ua.TypeIDByte, u: uint64(a[i])}
		return true
	case []int16:
		*s = scalar{id: ua.TypeIDInt16, i: int64(a[i])}
		return true
	case []uint16:
		*s = scalar{id: ua.TypeIDUint16, u: uint64(a[i])}
		return true
	case []int32:
		*s = scalar{id: ua.TypeIDInt32, i: int64(a[i])}
		return true
	case []uint32:
		*s = scalar{id: ua.TypeIDUint32, u: uint64(a[i])}
		return true
	case []int64:
		*s = scalar{id: ua.TypeIDInt64, i: a[i]}
		return true
	case []uint64:
		*s = scalar{id: ua.TypeIDUint64, u: a[i]}
		return true
	case []string:
		*s = scalar{id: ua.TypeIDString, s: a[i]}
		return true
	case []time.Time:
		*s = scalar{id: ua.TypeIDDateTime, ref: a[i]}
		return true
	case [][]byte:
		*s = scalar{id: ua.TypeIDByteString, ref: a[i]}
		return true
	}
	return false
}

// setElem stores s, already of the array's type, as element i of a
// one-dimensional array value made by makeSlice.
func setElem(a any, i int, s *scalar) {
	switch a := a.(type) {
	case []float64:
		a[i] = s.f
	case []float32:
		a[i] = float32(s.f)
	case []bool:
		a[i] = s.i != 0
	case []int8:
		a[i] = int8(s.i)
	case ua.ByteArray:
		a[i] = uint8(s.u)
	case []int16:
		a[i] = int16(s.i)
	case []uint16:
		a[i] = uint16(s.u)
	case []int32:
		a[i] = int32(s.i)
	case []uint32:
		a[i] = uint32(s.u)
	case []int64:
		a[i] = s.i
	case []uint64:
		a[i] = s.u
	case []string:
		a[i] = s.s
	case []time.Time:
		a[i], _ = s.ref.(time.Time)
	case [][]byte:
		a[i], _ = s.ref.([]byte)
	}
}

// sliceLen returns the length of an array value, -1 for a value that is
// not a slice.
func sliceLen(a any) int {
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Slice {
		return -1
	}
	return v.Len()
}

// flatten returns the elements of a multi-dimensional array value (nested
// slices of the given shape, as gopcua decodes them) as one
// one-dimensional array of type id, in row-major order.
func flatten(a any, id ua.TypeID, shape []int32) (any, error) {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	flatType := reflect.TypeOf(makeSlice(id, 0))
	if flatType == nil {
		return nil, conversionErrorf("arrays of %s cannot be converted", typeName(id))
	}
	out := reflect.MakeSlice(flatType, 0, n)
	var walk func(v reflect.Value, depth int) error
	walk = func(v reflect.Value, depth int) error {
		if v.Kind() != reflect.Slice || v.Len() != int(shape[depth]) {
			return conversionErrorf("array does not match its dimensions %v", shape)
		}
		if depth < len(shape)-1 {
			for i := range v.Len() {
				if err := walk(v.Index(i), depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		if v.Type() != flatType {
			if !v.Type().ConvertibleTo(flatType) {
				return conversionErrorf("unexpected Go type %s in a %s array", v.Type(), typeName(id))
			}
			v = v.Convert(flatType)
		}
		out = reflect.AppendSlice(out, v)
		return nil
	}
	if err := walk(reflect.ValueOf(a), 0); err != nil {
		return nil, err
	}
	return out.Interface(), nil
}

// reshape turns a one-dimensional array value into nested slices of the
// given shape (the inverse of flatten), so that ua.NewVariant sets the
// same ArrayDimensions.
func reshape(flat any, shape []int32) any {
	var rec func(v reflect.Value, shape []int32) reflect.Value
	rec = func(v reflect.Value, shape []int32) reflect.Value {
		if len(shape) == 1 {
			return v
		}
		t := v.Type()
		for range shape[1:] {
			t = reflect.SliceOf(t)
		}
		chunk := 1
		for _, d := range shape[1:] {
			chunk *= int(d)
		}
		out := reflect.MakeSlice(t, int(shape[0]), int(shape[0]))
		for i := range int(shape[0]) {
			out.Index(i).Set(rec(v.Slice(i*chunk, (i+1)*chunk), shape[1:]))
		}
		return out
	}
	return rec(reflect.ValueOf(flat), shape).Interface()
}

// elemIndex formats flat index i of an array of the given shape: "7" for
// one dimension, "[1][3]" for more.
func elemIndex(i int, shape []int32) string {
	if len(shape) <= 1 {
		return strconv.Itoa(i)
	}
	idx := make([]string, len(shape))
	for k := len(shape) - 1; k >= 0; k-- {
		d := int(shape[k])
		idx[k] = "[" + strconv.Itoa(i%d) + "]"
		i /= d
	}
	return strings.Join(idx, "")
}

// rules are a mapping's conversion rules (mapping.Conversion): what to do
// with a fraction when converting to an integer, and with a value beyond
// the destination type's range.
type rules struct {
	rounding mapping.Rounding // RoundReject, RoundNearest or RoundTruncate
	clamp    bool             // overflow "clamp"; false is "reject"
}

// overflowRule names the overflow rule for messages.
func (r rules) overflowRule() string {
	if r.clamp {
		return "clamp"
	}
	return "reject"
}

// convert converts *s to type to, in place (scalars are not copied on
// the per-element path). Numbers (and Boolean as 0/1) convert among each
// other and to and from String; DateTime and ByteString convert only to
// themselves. On error *s is unchanged.
func (r rules) convert(s *scalar, to ua.TypeID) error {
	switch {
	case s.id == to && to == ua.TypeIDDateTime:
		t, _ := s.ref.(time.Time)
		w, err := checkWireTime(t)
		if err != nil {
			return err
		}
		s.ref = w
		return nil
	case s.id == to:
		return nil
	case to == ua.TypeIDBoolean:
		return r.toBool(s)
	case isSigned(to) || isUnsigned(to):
		return r.toInteger(s, to)
	case isFloat(to):
		return r.toFloat(s, to)
	case to == ua.TypeIDString:
		return toString(s)
	}
	return conversionErrorf("cannot convert %s to %s", typeName(s.id), typeName(to))
}

// setBool makes *s the Boolean b.
func (s *scalar) setBool(b bool) {
	*s = scalar{id: ua.TypeIDBoolean}
	if b {
		s.i = 1
	}
}

// toBool converts to Boolean: integers 0 and 1 (others overflow: clamp
// gives false below 0, true above 1), floats exactly 0 or 1 (no rounding
// or clamping), strings true/false/1/0.
func (r rules) toBool(s *scalar) error {
	switch {
	case isSigned(s.id) || isUnsigned(s.id):
		neg := isSigned(s.id) && s.i < 0
		zero := s.i == 0 && s.u == 0
		one := (isSigned(s.id) && s.i == 1) || (isUnsigned(s.id) && s.u == 1)
		switch {
		case zero || one:
			s.setBool(one)
		case !r.clamp:
			return rangeErrorf("value %s does not fit Boolean (0 or 1) and overflow is %q", s.String(), r.overflowRule())
		default:
			s.setBool(!neg)
		}
		return nil
	case isFloat(s.id):
		switch s.f {
		case 0:
			s.setBool(false)
		case 1:
			s.setBool(true)
		default:
			return conversionErrorf("value %s is not 0 or 1 for Boolean", s.String())
		}
		return nil
	case s.id == ua.TypeIDString:
		switch s.s {
		case "true", "True", "TRUE", "1":
			s.setBool(true)
		case "false", "False", "FALSE", "0":
			s.setBool(false)
		default:
			return conversionErrorf("string %s is not a Boolean (true, false, 1 or 0)", s.String())
		}
		return nil
	}
	return conversionErrorf("cannot convert %s to Boolean", typeName(s.id))
}

// toInteger converts to an integer type.
func (r rules) toInteger(s *scalar, to ua.TypeID) error {
	switch {
	case s.id == ua.TypeIDBoolean || isSigned(s.id):
		return r.fromInt(s, to)
	case isUnsigned(s.id):
		return r.fromUint(s, to)
	case isFloat(s.id):
		return r.fromFloat(s, to)
	case s.id == ua.TypeIDString:
		n, err := r.parseNumber(s.s, to)
		if err != nil {
			return err
		}
		if err := r.toInteger(&n, to); err != nil {
			return err
		}
		*s = n
		return nil
	}
	return conversionErrorf("cannot convert %s to %s", typeName(s.id), typeName(to))
}

// overflow returns the error for *s beyond the range of type to, or,
// under overflow "clamp", makes *s the upper (high) or lower bound of to.
func (r rules) overflow(s *scalar, to ua.TypeID, high bool) error {
	if !r.clamp {
		var rng string
		switch {
		case isSigned(to):
			lo, hi := signedRange(to)
			rng = strconv.FormatInt(lo, 10) + " to " + strconv.FormatInt(hi, 10)
		case isUnsigned(to):
			rng = "0 to " + strconv.FormatUint(unsignedMax(to), 10)
		default:
			rng = "±" + strconv.FormatFloat(math.MaxFloat32, 'g', -1, 32)
		}
		return rangeErrorf("value %s does not fit %s (%s) and overflow is %q", s.String(), typeName(to), rng, r.overflowRule())
	}
	switch {
	case isSigned(to):
		lo, hi := signedRange(to)
		if high {
			*s = scalar{id: to, i: hi}
		} else {
			*s = scalar{id: to, i: lo}
		}
	case isUnsigned(to):
		*s = scalar{id: to}
		if high {
			s.u = unsignedMax(to)
		}
	default:
		*s = scalar{id: to, f: math.MaxFloat32}
		if !high {
			s.f = -math.MaxFloat32
		}
	}
	return nil
}

// fromInt converts a signed integer (or Boolean) to integer type to.
func (r rules) fromInt(s *scalar, to ua.TypeID) error {
	if isSigned(to) {
		lo, hi := signedRange(to)
		switch {
		case s.i < lo:
			return r.overflow(s, to, false)
		case s.i > hi:
			return r.overflow(s, to, true)
		}
		*s = scalar{id: to, i: s.i}
		return nil
	}
	switch {
	case s.i < 0:
		return r.overflow(s, to, false)
	case uint64(s.i) > unsignedMax(to):
		return r.overflow(s, to, true)
	}
	*s = scalar{id: to, u: uint64(s.i)}
	return nil
}

// fromUint converts an unsigned integer to integer type to.
func (r rules) fromUint(s *scalar, to ua.TypeID) error {
	if isSigned(to) {
		if _, hi := signedRange(to); s.u > uint64(hi) {
			return r.overflow(s, to, true)
		}
		*s = scalar{id: to, i: int64(s.u)}
		return nil
	}
	if s.u > unsignedMax(to) {
		return r.overflow(s, to, true)
	}
	*s = scalar{id: to, u: s.u}
	return nil
}

// fromFloat converts a Float or Double to integer type to under the
// rounding and overflow rules. NaN is always an error (it has no nearest
// bound to clamp to); ±Inf overflow.
func (r rules) fromFloat(s *scalar, to ua.TypeID) error {
	f := s.f
	if math.IsNaN(f) {
		return rangeErrorf("value NaN cannot be written as %s", typeName(to))
	}
	v := f
	switch r.rounding {
	case mapping.RoundNearest:
		v = math.Round(f) // half away from zero
	case mapping.RoundTruncate:
		v = math.Trunc(f)
	default:
		// A raw Int16 of 1 scaled to -1..1 and back gives 0.999999999996362:
		// arithmetic noise, not a fraction.
		if n := math.Round(f); math.Abs(f-n) <= s.noise {
			v = n
		}
	}
	// The float bounds are exact except float64(MaxInt64) and
	// float64(MaxUint64), which round up to 2^63 and 2^64: those are out
	// of range, hence >= for them.
	var flo, fhi float64
	if isSigned(to) {
		lo, hi := signedRange(to)
		flo, fhi = float64(lo), float64(hi)
	} else {
		flo, fhi = 0, float64(unsignedMax(to))
	}
	top := (to == ua.TypeIDInt64 || to == ua.TypeIDUint64) && v >= fhi
	switch {
	case v < flo:
		return r.overflow(s, to, false)
	case v > fhi || top:
		return r.overflow(s, to, true)
	case v != math.Trunc(v):
		return conversionErrorf("value %s has a fraction and rounding is %q for %s", s.String(), string(mapping.RoundReject), typeName(to))
	}
	if isSigned(to) {
		*s = scalar{id: to, i: int64(v)}
	} else {
		*s = scalar{id: to, u: uint64(v)}
	}
	return nil
}

// toFloat converts to Float or Double. Precision lost in the mantissa
// (Double → Float, large integers) is not an error; a finite value beyond
// ±MaxFloat32 is an overflow for Float. NaN and ±Inf convert as such.
// Each conversion rounds once, directly to the destination's precision.
func (r rules) toFloat(s *scalar, to ua.TypeID) error {
	switch {
	case s.id == ua.TypeIDString:
		n, err := r.parseNumber(s.s, to)
		if err != nil {
			return err
		}
		if err := r.toFloat(&n, to); err != nil {
			return err
		}
		*s = n
		return nil
	case to == ua.TypeIDDouble && (s.id == ua.TypeIDBoolean || isNumber(s.id)):
		*s = scalar{id: to, f: s.float()}
		return nil
	}
	var f float32
	switch {
	case s.id == ua.TypeIDBoolean || isSigned(s.id):
		f = float32(s.i)
	case isUnsigned(s.id):
		f = float32(s.u)
	case isFloat(s.id):
		f = float32(s.f)
		if math.IsInf(float64(f), 0) && !math.IsInf(s.f, 0) {
			return r.overflow(s, to, s.f > 0)
		}
	default:
		return conversionErrorf("cannot convert %s to %s", typeName(s.id), typeName(to))
	}
	*s = scalar{id: to, f: float64(f)}
	return nil
}

// toString formats a number or Boolean: integers in decimal, floats with
// strconv 'g' -1 (shortest representation that parses back exactly),
// Booleans as true/false.
func toString(s *scalar) error {
	var str string
	switch {
	case s.id == ua.TypeIDBoolean:
		str = strconv.FormatBool(s.i != 0)
	case isSigned(s.id):
		str = strconv.FormatInt(s.i, 10)
	case isUnsigned(s.id):
		str = strconv.FormatUint(s.u, 10)
	case s.id == ua.TypeIDFloat:
		str = strconv.FormatFloat(s.f, 'g', -1, 32)
	case s.id == ua.TypeIDDouble:
		str = strconv.FormatFloat(s.f, 'g', -1, 64)
	default:
		return conversionErrorf("cannot convert %s to String", typeName(s.id))
	}
	*s = scalar{id: ua.TypeIDString, s: str}
	return nil
}

// parseNumber parses a string strictly as a decimal number for
// destination type to: an integer (kept exact as Int64 or UInt64) or a
// float, including NaN and ±Inf as strconv formats them. A float is
// rounded once, to Float's precision when to is Float, else to Double's.
// Hexadecimal, underscores and surrounding space are rejected. A float
// beyond the range of that precision overflows.
func (r rules) parseNumber(str string, to ua.TypeID) (scalar, error) {
	digits := strings.TrimLeft(str, "+-")
	if str == "" || strings.ContainsRune(str, '_') || strings.HasPrefix(digits, "0x") || strings.HasPrefix(digits, "0X") {
		return scalar{}, conversionErrorf("string %q is not a number", str)
	}
	if i, err := strconv.ParseInt(str, 10, 64); err == nil {
		return scalar{id: ua.TypeIDInt64, i: i}, nil
	}
	if u, err := strconv.ParseUint(str, 10, 64); err == nil {
		return scalar{id: ua.TypeIDUint64, u: u}, nil
	}
	id, bits, maxf := ua.TypeIDDouble, 64, math.MaxFloat64
	if to == ua.TypeIDFloat {
		id, bits, maxf = ua.TypeIDFloat, 32, math.MaxFloat32
	}
	f, err := strconv.ParseFloat(str, bits)
	switch {
	case err == nil:
		return scalar{id: id, f: f}, nil
	case errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0):
		if !r.clamp {
			return scalar{}, rangeErrorf("string %q is beyond the range of %s and overflow is %q", str, typeName(id), r.overflowRule())
		}
		return scalar{id: id, f: math.Copysign(maxf, f)}, nil
	case errors.Is(err, strconv.ErrRange):
		return scalar{id: id, f: f}, nil // underflow to 0 or a denormal
	}
	return scalar{}, conversionErrorf("string %q is not a number", str)
}

// variantEqual reports whether a and b hold the same value: same type,
// same rank and dimensions, equal elements. Floats compare with ==, except
// that NaN equals NaN (so a NaN is recognised as its own echo); Double 1
// and Float 1 are different. DateTime compares instants, ByteString bytes
// (a null and an empty ByteString are equal), a null array differs from
// an empty one. Scalars and one-dimensional arrays of the convertible
// types compare without reflection or allocation.
func variantEqual(a, b *ua.Variant) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.Type() != b.Type() {
		return false
	}
	arr := a.Has(ua.VariantArrayValues)
	if arr != b.Has(ua.VariantArrayValues) {
		return false
	}
	if !arr {
		return valueEqual(a.Value(), b.Value())
	}
	if a.ArrayLength() != b.ArrayLength() || !sameDims(a, b) {
		return false
	}
	return arrayEqual(a.Value(), b.Value())
}

// sameDims reports whether two array variants have the same dimensions;
// a one-dimensional array may or may not carry its one dimension.
func sameDims(a, b *ua.Variant) bool {
	da, db := a.ArrayDimensions(), b.ArrayDimensions()
	if len(da) <= 1 && len(db) <= 1 {
		return true // lengths compared by ArrayLength
	}
	return slices.Equal(da, db)
}

// floatEqual is == except that NaN equals NaN.
func floatEqual[F float32 | float64](x, y F) bool { return x == y || x != x && y != y }

// valueEqual compares two scalar values of a Variant.
func valueEqual(x, y any) bool {
	switch x := x.(type) {
	case float64:
		y, ok := y.(float64)
		return ok && floatEqual(x, y)
	case float32:
		y, ok := y.(float32)
		return ok && floatEqual(x, y)
	case int32:
		y, ok := y.(int32)
		return ok && x == y
	case int16:
		y, ok := y.(int16)
		return ok && x == y
	case uint16:
		y, ok := y.(uint16)
		return ok && x == y
	case uint32:
		y, ok := y.(uint32)
		return ok && x == y
	case int64:
		y, ok := y.(int64)
		return ok && x == y
	case uint64:
		y, ok := y.(uint64)
		return ok && x == y
	case bool:
		y, ok := y.(bool)
		return ok && x == y
	case int8:
		y, ok := y.(int8)
		return ok && x == y
	case uint8:
		y, ok := y.(uint8)
		return ok && x == y
	case string:
		y, ok := y.(string)
		return ok && x == y
	case time.Time:
		y, ok := y.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := y.([]byte)
		return ok && bytes.Equal(x, y)
	case *ua.Variant:
		y, ok := y.(*ua.Variant)
		return ok && variantEqual(x, y)
	case nil:
		return y == nil
	}
	return reflect.DeepEqual(x, y)
}

// floatsEqual compares float slices element-wise with floatEqual.
func floatsEqual[F float32 | float64](x, y []F) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if !floatEqual(x[i], y[i]) {
			return false
		}
	}
	return true
}

// arrayEqual compares two array values of a Variant: one-dimensional
// arrays of the convertible types directly, others (multi-dimensional,
// other built-in types) by walking them with reflection.
func arrayEqual(x, y any) bool {
	switch x := x.(type) {
	case []float64:
		y, ok := y.([]float64)
		return ok && floatsEqual(x, y)
	case []float32:
		y, ok := y.([]float32)
		return ok && floatsEqual(x, y)
	case []int32:
		y, ok := y.([]int32)
		return ok && slices.Equal(x, y)
	case []int16:
		y, ok := y.([]int16)
		return ok && slices.Equal(x, y)
	case []uint16:
		y, ok := y.([]uint16)
		return ok && slices.Equal(x, y)
	case []uint32:
		y, ok := y.([]uint32)
		return ok && slices.Equal(x, y)
	case []int64:
		y, ok := y.([]int64)
		return ok && slices.Equal(x, y)
	case []uint64:
		y, ok := y.([]uint64)
		return ok && slices.Equal(x, y)
	case []bool:
		y, ok := y.([]bool)
		return ok && slices.Equal(x, y)
	case []int8:
		y, ok := y.([]int8)
		return ok && slices.Equal(x, y)
	case ua.ByteArray:
		y, ok := y.(ua.ByteArray)
		return ok && bytes.Equal(x, y)
	case []string:
		y, ok := y.([]string)
		return ok && slices.Equal(x, y)
	case []time.Time:
		y, ok := y.([]time.Time)
		return ok && slices.EqualFunc(x, y, time.Time.Equal)
	case [][]byte:
		y, ok := y.([][]byte)
		return ok && slices.EqualFunc(x, y, bytes.Equal)
	}
	xv, yv := reflect.ValueOf(x), reflect.ValueOf(y)
	if xv.Kind() != reflect.Slice || yv.Kind() != reflect.Slice || xv.Type() != yv.Type() {
		return reflect.DeepEqual(x, y)
	}
	if xv.Len() != yv.Len() {
		return false
	}
	et := xv.Type().Elem()
	nested := et.Kind() == reflect.Slice && et != reflect.TypeFor[[]byte]()
	for i := range xv.Len() {
		xi, yi := xv.Index(i).Interface(), yv.Index(i).Interface()
		if nested && !arrayEqual(xi, yi) || !nested && !valueEqual(xi, yi) {
			return false
		}
	}
	return true
}

// DateTime on the wire (Part 6, 5.2.2.5) is 100 ns ticks since
// 1601-01-01 UTC in an Int64. gopcua v0.9.0 goes through int64
// nanoseconds since 1970 both ways, which holds only 1677-09-21 …
// 2262-04-11: outside, ReadTime wraps silently to another date
// (9999-12-31 reads as 1816-03-30) and WriteTime sends another date.

const (
	// ticks1970 is 1970-01-01 in ticks since 1601-01-01.
	ticks1970 = 116444736000000000
	// ticksMax is 9999-12-31T23:59:59.9999999Z in ticks since 1601.
	ticksMax = 2650467743999999999
)

var (
	// inv25 is the inverse of 25 modulo 2⁶⁴ (25 is odd).
	inv25 = func() uint64 {
		x := uint64(25) // Newton: each step doubles the correct low bits
		for range 6 {
			x *= 2 - 25*x
		}
		return x
	}()
	// nanoMin and nanoMax bound the times gopcua encodes right (int64 ns
	// since 1970, truncated to 100 ns).
	nanoMin = time.Unix(0, math.MinInt64+100).UTC()
	nanoMax = time.Unix(0, math.MaxInt64-100).UTC()
	// opcEpoch is 1601-01-01 UTC, the wire's 0 ("no time" or earlier).
	opcEpoch = time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)
)

// wireTime returns the instant a DateTime decoded by gopcua stands for,
// over the whole OPC UA range (1601–9999). gopcua decodes ticks t as
// time.Unix(0, (t-ticks1970)·100 mod 2⁶⁴): that is invertible there,
// since 100·x mod 2⁶⁴ fixes x modulo 2⁶², and only one x in the range
// (8,400 years of ticks is less than 2⁶²) has it. A time that is right
// already (any Go time in the range, at 100 ns resolution) maps to
// itself. A wrapped value is never a multiple of 100 ns (100·x − k·2⁶⁴
// with 0 < |k| ≤ 14), a right one in 1677–2262 always is.
//
// Only values decoded by gopcua (and times at 100 ns resolution) may be
// passed: any other Go time whose nanoseconds are a multiple of 4 but not
// of 100 would be taken for a wrapped one.
func wireTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	ns := t.UnixNano()
	if ns%100 == 0 && !t.Before(nanoMin) && !t.After(nanoMax) {
		return t // right already
	}
	u := uint64(ns) // ≡ 100·x (mod 2⁶⁴)
	if u%4 != 0 {
		return t // not decoded from ticks
	}
	x := int64(((u >> 2) * inv25) & (1<<62 - 1)) // x mod 2⁶²
	if x > ticksMax-ticks1970 {
		x -= 1 << 62
	}
	if x < -ticks1970 {
		return t // not a DateTime of the OPC UA range
	}
	sec, rem := x/1e7, x%1e7
	if rem < 0 {
		sec, rem = sec-1, rem+1e7
	}
	return time.Unix(sec, rem*100).UTC()
}

// checkWireTime reports whether t can be written as a DateTime through
// gopcua without becoming another date, and returns what to write: the
// time itself, or the zero time (encoded as 0) for 1601-01-01 and earlier
// (Part 6, 5.2.2.5). Later or earlier times than gopcua can encode are
// refused with a range error, never wrapped.
func checkWireTime(t time.Time) (time.Time, error) {
	switch {
	case t.IsZero() || !t.After(opcEpoch):
		return time.Time{}, nil
	case t.Before(nanoMin) || t.After(nanoMax):
		return t, rangeErrorf("DateTime %s is outside what the OPC UA stack (gopcua v0.9.0) can write without changing the date (%s … %s)",
			t.UTC().Format(time.RFC3339Nano), nanoMin.Format("2006-01-02"), nanoMax.Format("2006-01-02"))
	}
	return t, nil
}

// fromWire repairs what gopcua v0.9.0 changes in a decoded value: a
// DateTime outside 1677–2262 (wrapped, see wireTime) and a 0-byte
// ByteString (decoded as nil, which would be written as null: it becomes
// empty; a null ByteString on the wire reads the same and becomes empty
// too). Other values are returned as they are, without allocating.
func fromWire(v *ua.Variant) *ua.Variant {
	if v == nil {
		return v
	}
	switch x := v.Value().(type) {
	case time.Time:
		if w := wireTime(x); !w.Equal(x) {
			if nv, err := ua.NewVariant(w); err == nil {
				return nv
			}
		}
	case []byte:
		if x == nil {
			if nv, err := ua.NewVariant([]byte{}); err == nil {
				return nv
			}
		}
	case []time.Time:
		var out []time.Time
		for i, t := range x {
			if w := wireTime(t); !w.Equal(t) {
				if out == nil {
					out = append([]time.Time(nil), x...)
				}
				out[i] = w
			}
		}
		if out != nil {
			return withDims(v, out)
		}
	case [][]byte:
		var out [][]byte
		for i, b := range x {
			if b == nil {
				if out == nil {
					out = append([][]byte(nil), x...)
				}
				out[i] = []byte{}
			}
		}
		if out != nil {
			return withDims(v, out)
		}
	}
	return v
}

// withDims returns a Variant of the one-dimensional array a (v itself
// when a cannot be put in a Variant). Multi-dimensional arrays decode as
// nested slices and are not repaired.
func withDims(v *ua.Variant, a any) *ua.Variant {
	nv, err := ua.NewVariant(a)
	if err != nil {
		return v
	}
	return nv
}

package bridge

import (
	"errors"
	"fmt"
	"math"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// errInvalidTransform is wrapped by the errors of newTransform: a
// mapping's scaling, conversion or deadband that cannot be applied.
var errInvalidTransform = errors.New("invalid transform")

// valueType describes a destination node: its built-in type and ValueRank
// (read once from the node's DataType and ValueRank attributes).
//
// Note that the zero valueRank is OPC UA's 0, "one or more dimensions":
// a node of unknown rank is -2 (any), not the zero value.
type valueType struct {
	id        ua.TypeID // 0 = unknown: keep the source type
	valueRank int32     // -1 scalar, 1 one-dimensional array, -2 any, -3 scalar or one dimension, 0 one or more dims
}

// transform turns a value read from one side of a mapping into the value
// to write on the other side. It is immutable after construction and safe
// for concurrent use.
//
// The steps are: ValueRank check, scaling (numbers only, element-wise for
// arrays), conversion to the destination type (see rules.convert). A value
// that needs none of them is returned as is, without allocating.
//
// The deadband (changed) is evaluated on the values as received from the
// flow's source side, before scaling, like OPC UA's server-side
// DataChangeFilter (Part 4, 7.22.2) on the source's monitored item. So an
// absolute deadband is in source units: raw units for the forward flow,
// engineering units for the reverse flow. A percent deadband is taken of
// the source-side scaling range (raw range forward, engineering range
// reverse); scaling being linear, that is the same fraction of the
// engineering range the mapping documents.
type transform struct {
	dst   ua.TypeID // 0: keep the source's type
	rank  int32     // destination ValueRank
	rules rules

	// Scaling: out = outLo + (in-inLo)*(outHi-outLo)/(inHi-inLo), with
	// in checked against [inMin, inMax]. Forward in is raw and out eng;
	// reverse the other way round.
	scale           bool
	inLo, inHi      float64
	outLo, outHi    float64
	inMin, inMax    float64
	rejectRange     bool    // scaling out_of_range "reject"; false is clamp
	inSpan, outSpan float64 // inHi-inLo, outHi-outLo
	// noise bounds the rounding error of scaling a value that is itself
	// the (rounded) result of scaling the other way, in output units:
	// a few ULPs of the output range's magnitude plus the input's error
	// carried through the slope. Under rounding "reject", a scaled value
	// this close to an integer is that integer (see rules.fromFloat).
	noise float64

	// Deadband: with deadband set, a numeric change passes when
	// |next-prev| > dbAbs; without, every change passes.
	deadband bool
	dbAbs    float64
}

// maxScaleNoise caps transform.noise for ranges so wide (magnitudes
// beyond about 5e10) that float64 arithmetic error reaches the fractions.
const maxScaleNoise = 1e-4

// newTransform builds the transform of mapping m for one flow direction:
// reverse=false is source→target; reverse=true is target→source (used by
// direction write and both), where scaling is applied inversely
// (eng→raw). dst is the destination's type; m.Convert.To, if set,
// overrides dst.id for the forward flow only: To names the target's type,
// and the reverse flow writes to the source, whose type is dst.
// Rounding and overflow rules apply in both directions.
//
// The errors wrap errInvalidTransform and name the field and value.
func newTransform(m *mapping.Mapping, reverse bool, dst valueType) (*transform, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: no mapping", errInvalidTransform)
	}
	bad := func(format string, args ...any) error {
		where := ""
		if m.Pos.File != "" {
			where = fmt.Sprintf("%s:%d: ", m.Pos.File, m.Pos.Line)
		}
		if m.ID != "" {
			where += "mapping " + m.ID + ": "
		}
		return fmt.Errorf("%w: %s%s", errInvalidTransform, where, fmt.Sprintf(format, args...))
	}
	if dst.valueRank < -3 {
		return nil, bad("destination ValueRank %d is not defined (Part 3, 5.6.2)", dst.valueRank)
	}
	t := &transform{dst: dst.id, rank: dst.valueRank, rules: rules{rounding: mapping.RoundReject}}
	if t.dst == ua.TypeIDVariant {
		// The target's DataType is BaseDataType (i=24), or an abstract
		// type below it that names no built-in encoding: any type is
		// accepted, the value keeps its own (Part 3, 5.8.2).
		t.dst = 0
	}

	if c := m.Convert; c != nil {
		if c.To != "" && !reverse {
			id, err := parseTypeName(c.To)
			if err != nil {
				return nil, bad("convert.to: %v", err)
			}
			t.dst = id
		}
		switch c.Rounding {
		case "", mapping.RoundReject:
		case mapping.RoundNearest, mapping.RoundTruncate:
			t.rules.rounding = c.Rounding
		default:
			return nil, bad("convert.rounding: unknown rule %q (want reject, round or truncate)", c.Rounding)
		}
		switch c.Overflow {
		case "", mapping.Reject:
		case mapping.Clamp:
			t.rules.clamp = true
		default:
			return nil, bad("convert.overflow: unknown rule %q (want reject or clamp)", c.Overflow)
		}
	}

	if s := m.Scaling; s != nil {
		for _, f := range []struct {
			name string
			v    float64
		}{{"raw_low", s.RawLow}, {"raw_high", s.RawHigh}, {"eng_low", s.EngLow}, {"eng_high", s.EngHigh}} {
			if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				return nil, bad("scaling.%s: %g is not a finite number", f.name, f.v)
			}
		}
		if s.RawLow == s.RawHigh || s.EngLow == s.EngHigh {
			return nil, bad("scaling: empty range (raw %g..%g, eng %g..%g)", s.RawLow, s.RawHigh, s.EngLow, s.EngHigh)
		}
		if math.IsInf(s.RawHigh-s.RawLow, 0) || math.IsInf(s.EngHigh-s.EngLow, 0) {
			return nil, bad("scaling: range too wide for float64 (raw %g..%g, eng %g..%g)", s.RawLow, s.RawHigh, s.EngLow, s.EngHigh)
		}
		switch s.OutOfRange {
		case "", mapping.Clamp:
		case mapping.Reject:
			t.rejectRange = true
		default:
			return nil, bad("scaling.out_of_range: unknown rule %q (want clamp or reject)", s.OutOfRange)
		}
		if t.dst != 0 && t.dst != ua.TypeIDBoolean && t.dst != ua.TypeIDString && !isNumber(t.dst) {
			return nil, bad("scaling: destination type %s is not a number", typeName(t.dst))
		}
		t.scale = true
		t.inLo, t.inHi, t.outLo, t.outHi = s.RawLow, s.RawHigh, s.EngLow, s.EngHigh
		if reverse {
			t.inLo, t.inHi, t.outLo, t.outHi = s.EngLow, s.EngHigh, s.RawLow, s.RawHigh
		}
		t.inMin, t.inMax = min(t.inLo, t.inHi), max(t.inLo, t.inHi)
		t.inSpan, t.outSpan = t.inHi-t.inLo, t.outHi-t.outLo
		const ulps = 8 * 0x1p-52
		t.noise = ulps * (max(math.Abs(t.outLo), math.Abs(t.outHi)) +
			max(math.Abs(t.inLo), math.Abs(t.inHi))*math.Abs(t.outSpan/t.inSpan))
		// Beyond that, float64 has no fractional precision left to tell
		// noise from a fraction: prefer rejecting to rounding silently.
		t.noise = min(t.noise, maxScaleNoise)
	}

	if d := m.Deadband; d != nil {
		if math.IsNaN(d.Value) || math.IsInf(d.Value, 0) || d.Value < 0 {
			return nil, bad("deadband.value: %g is not a number >= 0", d.Value)
		}
		switch d.Type {
		case mapping.DeadbandAbsolute:
			t.deadband, t.dbAbs = true, d.Value
		case mapping.DeadbandPercent:
			if d.Value > 100 {
				return nil, bad("deadband.value: %g is more than 100 percent", d.Value)
			}
			// Without scaling the range is unknown here: pass every
			// change and leave the percent deadband to the server-side
			// filter (which uses the node's EURange).
			if t.scale {
				t.deadband, t.dbAbs = true, d.Value/100*math.Abs(t.inSpan)
			}
		default:
			return nil, bad("deadband.type: unknown type %q (want absolute or percent)", d.Type)
		}
	}
	return t, nil
}

// apply scales and converts v. It returns an error wrapping errConversion
// or errOutOfRange with a human reason (e.g. `value 3.7 has a fraction and
// rounding is "reject" for Int16`) when the value cannot be written
// faithfully under the mapping's rules. A value is never silently written
// as something else.
//
// A value that needs no scaling and is already of the destination type
// (or the destination type is unknown) is returned as is. An empty (Null)
// Variant is an error. Arrays are converted element-wise; one bad element
// makes the whole value bad, and the reason names its index.
func (t *transform) apply(v *ua.Variant) (*ua.Variant, error) {
	if v == nil {
		return nil, conversionErrorf("no value")
	}
	src := v.Type()
	array := v.Has(ua.VariantArrayValues)
	dims := 0
	if array {
		dims = max(1, len(v.ArrayDimensions()))
	}
	if err := t.checkRank(array, dims); err != nil {
		return nil, err
	}
	dst := t.dst
	if dst == 0 {
		dst = src
	}
	switch {
	case src == ua.TypeIDNull:
		return nil, conversionErrorf("the value is empty (Null)")
	case !t.scale && dst == src && src != ua.TypeIDDateTime:
		return v, nil // the hot path: nothing to do, nothing allocated
	case t.scale && !isNumber(src):
		return nil, conversionErrorf("cannot scale a %s value", typeName(src))
	case !convertible(src):
		return nil, conversionErrorf("cannot convert %s to %s", typeName(src), typeName(dst))
	}
	if array {
		return t.applyArray(v, dst, dims)
	}
	s, ok := load(v.Value())
	if !ok {
		return nil, conversionErrorf("unexpected Go type %T for %s", v.Value(), typeName(src))
	}
	if err := t.one(&s, dst); err != nil {
		return nil, err
	}
	return ua.NewVariant(box(s))
}

// one scales (if the mapping scales) and converts one scalar in place.
func (t *transform) one(s *scalar, dst ua.TypeID) error {
	if t.scale {
		if err := t.scaleValue(s); err != nil {
			return err
		}
	}
	return t.rules.convert(s, dst)
}

// scaleValue maps a number from the input range onto the output range
// and returns it as a Double. NaN stays NaN (it is not a number that can
// be out of range or clamped; the conversion decides); ±Inf is out of
// range. The range ends map exactly onto each other.
func (t *transform) scaleValue(s *scalar) error {
	x := s.float()
	if x < t.inMin || x > t.inMax {
		if t.rejectRange {
			return rangeErrorf("value %s is outside the scaling range %g..%g and out_of_range is %q", s.String(), t.inMin, t.inMax, string(mapping.Reject))
		}
		x = min(max(x, t.inMin), t.inMax)
	}
	var y float64
	switch x {
	case t.inLo:
		y = t.outLo
	case t.inHi:
		y = t.outHi
	default:
		// Multiply before dividing: exact for the common ranges (e.g.
		// 0..27648 → 0..100 maps 13824 to exactly 50 and back).
		y = t.outLo + (x-t.inLo)*t.outSpan/t.inSpan
	}
	*s = scalar{id: ua.TypeIDDouble, f: y, noise: t.noise}
	return nil
}

// applyArray scales and converts an array element-wise, keeping its
// dimensions; a null array stays a null array.
func (t *transform) applyArray(v *ua.Variant, dst ua.TypeID, dims int) (*ua.Variant, error) {
	flat := v.Value()
	var shape []int32
	if dims > 1 {
		shape = v.ArrayDimensions()
		var err error
		if flat, err = flatten(flat, v.Type(), shape); err != nil {
			return nil, err
		}
	}
	n := sliceLen(flat)
	if v.ArrayLength() < 0 && n <= 0 {
		n = -1
	}
	out := makeSlice(dst, n)
	var s scalar
	for i := 0; i < n; i++ {
		if !elemAt(flat, i, &s) {
			return nil, conversionErrorf("unexpected Go type %T for a %s array", flat, typeName(v.Type()))
		}
		if err := t.one(&s, dst); err != nil {
			if ve, ok := err.(*valueError); ok {
				ve.elem = elemIndex(i, shape)
			}
			return nil, err
		}
		setElem(out, i, &s)
	}
	if dims > 1 {
		out = reshape(out, shape)
	}
	return ua.NewVariant(out)
}

// checkRank checks a value's rank against the destination's ValueRank
// (Part 3, 5.6.2): -1 scalar, 0 one or more dimensions, n > 0 exactly n
// dimensions, -2 anything, -3 scalar or one dimension.
func (t *transform) checkRank(array bool, dims int) error {
	switch r := t.rank; {
	case r == -2:
	case r == -1:
		if array {
			return conversionErrorf("an array cannot be written to a scalar node (ValueRank -1)")
		}
	case r == -3:
		if dims > 1 {
			return conversionErrorf("a %d-dimensional array cannot be written to a node of ValueRank -3 (scalar or one dimension)", dims)
		}
	case !array:
		return conversionErrorf("a scalar cannot be written to an array node (ValueRank %d)", r)
	case r > 0 && int(r) != dims:
		return conversionErrorf("a %d-dimensional array cannot be written to a node of ValueRank %d", dims, r)
	}
	return nil
}

// changed reports whether next differs from prev enough to pass the
// deadband (client-side deadband, for servers that ignore the filter).
// prev == nil always passes. Non-numeric values pass when not equal.
// Arrays: pass when lengths differ or any element passes.
//
// Both values are source-side values as received (see transform). A
// numeric change passes when |next-prev| exceeds the deadband (Part 4,
// 7.22.2: a change equal to the deadband does not pass); a change to or
// from NaN or ±Inf passes; a change of type always passes. Without a
// deadband (or with a percent deadband and no scaling) every change
// passes, and an unchanged value does not.
func (t *transform) changed(prev, next *ua.Variant) bool {
	if prev == nil {
		return true
	}
	if !t.deadband || next == nil {
		return !variantEqual(prev, next)
	}
	typ := prev.Type()
	if typ != next.Type() || !isNumber(typ) {
		return !variantEqual(prev, next)
	}
	array := prev.Has(ua.VariantArrayValues)
	if array != next.Has(ua.VariantArrayValues) {
		return true
	}
	if !array {
		pass, ok := t.scalarPasses(prev.Value(), next.Value())
		return pass || !ok && !variantEqual(prev, next)
	}
	if prev.ArrayLength() != next.ArrayLength() || !sameDims(prev, next) {
		return true
	}
	pf, nf := prev.Value(), next.Value()
	if shape := prev.ArrayDimensions(); len(shape) > 1 {
		var err1, err2 error
		pf, err1 = flatten(pf, typ, shape)
		nf, err2 = flatten(nf, typ, shape)
		if err1 != nil || err2 != nil {
			return !variantEqual(prev, next)
		}
	}
	pass, ok := t.arrayPasses(pf, nf)
	return pass || !ok && !variantEqual(prev, next)
}

// scalarPasses applies the deadband to two numeric scalar values; ok is
// false when they are not numbers of one type.
func (t *transform) scalarPasses(a, b any) (pass, ok bool) {
	switch a := a.(type) {
	case float64:
		return numberPasses(a, b, t.dbAbs)
	case float32:
		return numberPasses(a, b, t.dbAbs)
	case int32:
		return numberPasses(a, b, t.dbAbs)
	case int16:
		return numberPasses(a, b, t.dbAbs)
	case uint16:
		return numberPasses(a, b, t.dbAbs)
	case uint32:
		return numberPasses(a, b, t.dbAbs)
	case int64:
		return numberPasses(a, b, t.dbAbs)
	case uint64:
		return numberPasses(a, b, t.dbAbs)
	case int8:
		return numberPasses(a, b, t.dbAbs)
	case uint8:
		return numberPasses(a, b, t.dbAbs)
	}
	return false, false
}

// arrayPasses applies the deadband element-wise to two one-dimensional
// numeric arrays; ok is false when they are not arrays of one numeric
// type.
func (t *transform) arrayPasses(a, b any) (pass, ok bool) {
	switch a := a.(type) {
	case []float64:
		return slicePasses(a, b, t.dbAbs)
	case []float32:
		return slicePasses(a, b, t.dbAbs)
	case []int32:
		return slicePasses(a, b, t.dbAbs)
	case []int16:
		return slicePasses(a, b, t.dbAbs)
	case []uint16:
		return slicePasses(a, b, t.dbAbs)
	case []uint32:
		return slicePasses(a, b, t.dbAbs)
	case []int64:
		return slicePasses(a, b, t.dbAbs)
	case []uint64:
		return slicePasses(a, b, t.dbAbs)
	case []int8:
		return slicePasses(a, b, t.dbAbs)
	case ua.ByteArray:
		return slicePasses(a, b, t.dbAbs)
	}
	return false, false
}

// number is the Go types of the OPC UA integer and floating-point types.
type number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// numberPasses reports whether b, if of a's type, differs from a by more
// than the deadband db.
func numberPasses[N number](a N, b any, db float64) (pass, ok bool) {
	bn, ok := b.(N)
	return ok && exceeds(a, bn, db), ok
}

// slicePasses reports whether b, if an array of a's type and length, has
// an element that differs from a's by more than the deadband db.
func slicePasses[S ~[]N, N number](a S, b any, db float64) (pass, ok bool) {
	bs, ok := b.(S)
	if !ok {
		return false, false
	}
	if len(a) != len(bs) {
		return true, true
	}
	for i := range a {
		if exceeds(a[i], bs[i], db) {
			return true, true
		}
	}
	return false, true
}

// exceeds reports whether two numbers differ by more than the deadband
// db. Values are compared exactly first, so a deadband of 0 passes every
// change even where float64 cannot tell two Int64 apart; NaN equals NaN,
// and a change to or from NaN passes.
func exceeds[N number](a, b N, db float64) bool {
	if a == b || a != a && b != b {
		return false
	}
	if db == 0 {
		return true
	}
	d := math.Abs(float64(a) - float64(b))
	return !(d <= db)
}

// deadbandFilter returns the server-side deadband of m's flow in
// direction reverse (Part 4, 7.22.2). A percent deadband with scaling is
// taken of the scaling range on the flow's source side (raw for the
// forward flow, engineering for the reverse one) and sent as an absolute
// deadband in those units: the server's percent would use the node's
// EURange, not the range the mapping declares. Without scaling the
// server's percent (of the EURange) is what the mapping asks for.
func deadbandFilter(m *mapping.Mapping, reverse bool) (ua.DeadbandType, float64) {
	db := m.Deadband
	if db.Type != mapping.DeadbandPercent {
		return ua.DeadbandTypeAbsolute, db.Value
	}
	if sc := m.Scaling; sc != nil {
		span := sc.RawHigh - sc.RawLow
		if reverse {
			span = sc.EngHigh - sc.EngLow
		}
		return ua.DeadbandTypeAbsolute, db.Value / 100 * math.Abs(span)
	}
	return ua.DeadbandTypePercent, db.Value
}

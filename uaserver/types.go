package uaserver

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"
)

// Type names of the simulated variables, in the order in which they cycle
// (variable i has type Types()[i % 16] unless Config.Type names one type
// for all). A name ending in "[]" is a one-dimensional array (ValueRank 1).
const (
	TypeBoolean     = "Boolean"
	TypeSByte       = "SByte"
	TypeByte        = "Byte"
	TypeInt16       = "Int16"
	TypeUInt16      = "UInt16"
	TypeInt32       = "Int32"
	TypeUInt32      = "UInt32"
	TypeInt64       = "Int64"
	TypeUInt64      = "UInt64"
	TypeFloat       = "Float"
	TypeDouble      = "Double"
	TypeString      = "String"
	TypeDateTime    = "DateTime"
	TypeByteString  = "ByteString"
	TypeDoubleArray = "Double[]"
	TypeInt32Array  = "Int32[]"
)

// varType describes one simulated type: its built-in type id (which is
// also the numeric id of its DataType node in namespace 0) and its rank.
type varType struct {
	name  string
	id    ua.TypeID
	array bool
}

var typeList = []*varType{
	{TypeBoolean, ua.TypeIDBoolean, false},
	{TypeSByte, ua.TypeIDSByte, false},
	{TypeByte, ua.TypeIDByte, false},
	{TypeInt16, ua.TypeIDInt16, false},
	{TypeUInt16, ua.TypeIDUint16, false},
	{TypeInt32, ua.TypeIDInt32, false},
	{TypeUInt32, ua.TypeIDUint32, false},
	{TypeInt64, ua.TypeIDInt64, false},
	{TypeUInt64, ua.TypeIDUint64, false},
	{TypeFloat, ua.TypeIDFloat, false},
	{TypeDouble, ua.TypeIDDouble, false},
	{TypeString, ua.TypeIDString, false},
	{TypeDateTime, ua.TypeIDDateTime, false},
	{TypeByteString, ua.TypeIDByteString, false},
	{TypeDoubleArray, ua.TypeIDDouble, true},
	{TypeInt32Array, ua.TypeIDInt32, true},
}

// Types returns the names of the simulated types in cycle order.
func Types() []string {
	out := make([]string, len(typeList))
	for i, t := range typeList {
		out[i] = t.name
	}
	return out
}

// lookupType finds a type by name, ignoring case.
func lookupType(name string) (*varType, bool) {
	for _, t := range typeList {
		if strings.EqualFold(t.name, name) {
			return t, true
		}
	}
	return nil, false
}

// typeFor returns the type of variable i under cfg; cfg.Type must be valid.
func typeFor(i int, cfgType string) *varType {
	if cfgType == "" {
		return typeList[i%len(typeList)]
	}
	t, _ := lookupType(cfgType)
	return t
}

// TypeOf returns the type name of variable i under cfg ("Double[]" for a
// Double array), or "" when cfg.Type names no known type.
func TypeOf(i int, cfg Config) string {
	if cfg.Type == "" {
		return typeList[i%len(typeList)].name
	}
	t, ok := lookupType(cfg.Type)
	if !ok {
		return ""
	}
	return t.name
}

// NodeName returns the string identifier of variable i ("v<i>"); its node
// id is ns=<index of Config.NamespaceURI>;s=v<i>.
func NodeName(i int) string { return "v" + strconv.Itoa(i) }

// parseNodeName is the inverse of NodeName; it accepts only the canonical
// form (no sign, no leading zeros).
func parseNodeName(s string) (int, bool) {
	if len(s) < 2 || s[0] != 'v' || (s[1] == '0' && len(s) > 2) {
		return 0, false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(s[1:])
	return i, err == nil
}

// dateEpoch anchors generated DateTime values.
var dateEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// ValueFor returns the deterministic value that variable i of type typ
// holds after its n-th automatic change (n = 0 is the initial value). With
// b = i*1000 + n: integers are b wrapped to the type's range, Float is
// float32(b mod 2^24) + 0.5, Double is b + 0.25, Boolean alternates (n odd
// is true), String is "v<i>-<n>", ByteString its bytes, DateTime is
// 2020-01-01 + i s + n ms, and the arrays hold three elements starting at
// b. It returns nil for an unknown type.
func ValueFor(typ string, i int, n uint64) any {
	t, ok := lookupType(typ)
	if !ok {
		return nil
	}
	return valueFor(t, i, n)
}

func valueFor(t *varType, i int, n uint64) any {
	b := uint64(i)*1000 + n
	switch t.name {
	case TypeBoolean:
		return n%2 == 1
	case TypeSByte:
		return int8(b)
	case TypeByte:
		return uint8(b)
	case TypeInt16:
		return int16(b)
	case TypeUInt16:
		return uint16(b)
	case TypeInt32:
		return int32(b)
	case TypeUInt32:
		return uint32(b)
	case TypeInt64:
		return int64(b)
	case TypeUInt64:
		return b
	case TypeFloat:
		return float32(b%(1<<24)) + 0.5
	case TypeDouble:
		return float64(b) + 0.25
	case TypeString:
		return NodeName(i) + "-" + strconv.FormatUint(n, 10)
	case TypeDateTime:
		return dateEpoch.Add(time.Duration(i)*time.Second + time.Duration(n)*time.Millisecond)
	case TypeByteString:
		return []byte(NodeName(i) + "-" + strconv.FormatUint(n, 10))
	case TypeDoubleArray:
		f := float64(b)
		return []float64{f, f + 0.5, f + 1}
	case TypeInt32Array:
		v := int32(b)
		return []int32{v, v + 1, v + 2}
	}
	return nil
}

// checkVariant reports whether v may be written to a variable of type t:
// same built-in type and same rank (Part 4, 5.10.4: otherwise
// Bad_TypeMismatch).
func checkVariant(t *varType, v *ua.Variant) ua.StatusCode {
	if v == nil || v.Type() != t.id {
		return ua.StatusBadTypeMismatch
	}
	isArray := v.Has(ua.VariantArrayValues)
	if isArray != t.array {
		return ua.StatusBadTypeMismatch
	}
	if isArray && v.Has(ua.VariantArrayDimensions) && len(v.ArrayDimensions()) > 1 {
		return ua.StatusBadTypeMismatch
	}
	return ua.StatusOK
}

// ParseValue parses s as a value of the named type, as the simserver
// command's "set" control line needs: Boolean true/false/1/0, integers and
// floats in Go syntax, String verbatim, DateTime in RFC 3339, ByteString in
// base64 and arrays as comma-separated elements.
func ParseValue(typ, s string) (any, error) {
	t, ok := lookupType(typ)
	if !ok {
		return nil, fmt.Errorf("unknown type %q", typ)
	}
	if t.array {
		var parts []string
		if strings.TrimSpace(s) != "" {
			parts = strings.Split(s, ",")
		}
		switch t.name {
		case TypeDoubleArray:
			out := make([]float64, len(parts))
			for k, p := range parts {
				f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
				if err != nil {
					return nil, fmt.Errorf("%s element %d: %w", typ, k, err)
				}
				out[k] = f
			}
			return out, nil
		default: // Int32[]
			out := make([]int32, len(parts))
			for k, p := range parts {
				v, err := strconv.ParseInt(strings.TrimSpace(p), 0, 32)
				if err != nil {
					return nil, fmt.Errorf("%s element %d: %w", typ, k, err)
				}
				out[k] = int32(v)
			}
			return out, nil
		}
	}
	v, err := parseScalar(t, s)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", t.name, s, err)
	}
	return v, nil
}

func parseScalar(t *varType, s string) (any, error) {
	trim := strings.TrimSpace(s)
	switch t.name {
	case TypeBoolean:
		return strconv.ParseBool(trim)
	case TypeSByte:
		v, err := strconv.ParseInt(trim, 0, 8)
		return int8(v), err
	case TypeByte:
		v, err := strconv.ParseUint(trim, 0, 8)
		return uint8(v), err
	case TypeInt16:
		v, err := strconv.ParseInt(trim, 0, 16)
		return int16(v), err
	case TypeUInt16:
		v, err := strconv.ParseUint(trim, 0, 16)
		return uint16(v), err
	case TypeInt32:
		v, err := strconv.ParseInt(trim, 0, 32)
		return int32(v), err
	case TypeUInt32:
		v, err := strconv.ParseUint(trim, 0, 32)
		return uint32(v), err
	case TypeInt64:
		return strconv.ParseInt(trim, 0, 64)
	case TypeUInt64:
		return strconv.ParseUint(trim, 0, 64)
	case TypeFloat:
		v, err := strconv.ParseFloat(trim, 32)
		return float32(v), err
	case TypeDouble:
		return strconv.ParseFloat(trim, 64)
	case TypeString:
		return s, nil
	case TypeDateTime:
		return time.Parse(time.RFC3339Nano, trim)
	case TypeByteString:
		return base64.StdEncoding.DecodeString(trim)
	}
	return nil, fmt.Errorf("unsupported type %s", t.name)
}

// jsonValue makes v encodable by encoding/json: non-finite floats become
// the strings "NaN", "+Inf" and "-Inf" (JSON has no such numbers).
func jsonValue(v any) any {
	switch x := v.(type) {
	case float32:
		return jsonFloat(float64(x))
	case float64:
		return jsonFloat(x)
	case []float32:
		out := make([]any, len(x))
		for k, f := range x {
			out[k] = jsonFloat(float64(f))
		}
		return out
	case []float64:
		out := make([]any, len(x))
		for k, f := range x {
			out[k] = jsonFloat(f)
		}
		return out
	}
	return v
}

func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return f
}

package uaserver

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"zero value", Config{}, ""},
		{"defaults", DefaultConfig(), ""},
		{"full", Config{Vars: 10, Type: "double", Rate: 50, Changing: 5,
			Security: []SecurityPolicy{{"Basic256Sha256", ua.MessageSecurityModeSign}}}, ""},
		{"port", Config{Port: 70000}, "Port 70000"},
		{"vars", Config{Vars: -1}, "Vars -1"},
		{"type", Config{Vars: 1, Type: "Decimal"}, `Type "Decimal"`},
		{"rate NaN", Config{Vars: 1, Rate: math.NaN()}, "Rate NaN"},
		{"rate negative", Config{Vars: 1, Rate: -1}, "Rate -1"},
		{"rate without vars", Config{Rate: 5}, "no variables"},
		{"changing", Config{Vars: 3, Changing: 4}, "Changing 4"},
		{"security mode", Config{Security: []SecurityPolicy{{"Basic256Sha256", ua.MessageSecurityModeNone}}}, "Security[0]"},
		{"security policy", Config{Security: []SecurityPolicy{{"Basic512", ua.MessageSecurityModeSign}}}, "not supported"},
		{"cert without key", Config{CertFile: "c.pem"}, "give both or neither"},
		{"two journals", Config{Journal: &strings.Builder{}, JournalFile: "j"}, "at most one"},
		{"negative limit", Config{Limits: Limits{MaxReferencesPerNode: -1}}, "Limits.MaxReferencesPerNode -1"},
		{"transparent redundancy", Config{Redundancy: &Redundancy{Support: ua.RedundancySupportTransparent,
			ServerURIs: func() []string { return nil }}}, "Redundancy.Support"},
		{"redundancy without URIs", Config{Redundancy: &Redundancy{Support: ua.RedundancySupportHot}}, "Redundancy.ServerURIs"},
		{"secure only without a secure endpoint", Config{SecureOnly: true}, "SecureOnly"},
		{"roles of an unknown user", Config{Roles: map[string][]string{"x": {"operator"}}}, `user "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v, want one containing %q and wrapping ErrInvalidConfig", err, tc.want)
			}
			if _, err := New(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New accepted the config: %v", err)
			}
		})
	}
}

func TestParseSecurity(t *testing.T) {
	sign := SecurityPolicy{"Basic256Sha256", ua.MessageSecurityModeSign}
	enc := SecurityPolicy{"Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt}
	none := SecurityPolicy{"None", ua.MessageSecurityModeNone}
	for _, tc := range []struct {
		in   string
		want []SecurityPolicy
		err  string
	}{
		{"", nil, ""},
		{"None", []SecurityPolicy{none}, ""},
		{"None,Basic256Sha256:Sign,Basic256Sha256:SignAndEncrypt", []SecurityPolicy{none, sign, enc}, ""},
		{" basic256sha256 : signandencrypt ", []SecurityPolicy{enc}, ""},
		{"Basic256Sha256", []SecurityPolicy{sign, enc}, ""},
		{"Basic256Sha256:Sign,Basic256Sha256:Sign", []SecurityPolicy{sign}, ""},
		{"http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256:Sign", []SecurityPolicy{sign}, ""},
		{"Basic512:Sign", nil, "unknown policy"},
		{"Basic256Sha256:Encrypt", nil, "unknown mode"},
		{"Basic256Sha256:None", nil, "mode must be Sign or SignAndEncrypt"},
		{"None:Sign", nil, "mode must be None"},
	} {
		got, err := ParseSecurity(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSecurity(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSecurity(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if got := enc.String(); got != "Basic256Sha256:SignAndEncrypt" {
		t.Errorf("String() = %q", got)
	}
}

func FuzzParseSecurity(f *testing.F) {
	for _, s := range []string{"None", "Basic256Sha256:Sign,None", "a:b:c", ",,", "Basic256:SignAndEncrypt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParseSecurity(s)
		if err != nil {
			return
		}
		for _, p := range ps {
			if err := p.validate(); err != nil {
				t.Fatalf("ParseSecurity(%q) returned invalid %v: %v", s, p, err)
			}
			again, err := ParseSecurity(p.String())
			if err != nil || len(again) != 1 || again[0] != p {
				t.Fatalf("%v does not round-trip: %v %v", p, again, err)
			}
		}
	})
}

func TestValueForTypes(t *testing.T) {
	for i, typ := range Types() {
		vt, _ := lookupType(typ)
		for _, n := range []uint64{0, 1, 255, 1 << 40} {
			v := ValueFor(typ, i, n)
			variant, err := ua.NewVariant(v)
			if err != nil {
				t.Fatalf("%s: ValueFor(%d, %d) = %#v is not a Variant: %v", typ, i, n, v, err)
			}
			if checkVariant(vt, variant) != ua.StatusOK {
				t.Errorf("%s: ValueFor(%d, %d) = %#v has the wrong type", typ, i, n, v)
			}
		}
		if reflect.DeepEqual(ValueFor(typ, i, 1), ValueFor(typ, i, 2)) {
			t.Errorf("%s: consecutive values are equal", typ)
		}
	}
	if ValueFor("Decimal", 0, 0) != nil {
		t.Error("ValueFor of an unknown type is not nil")
	}
	if got := TypeOf(17, Config{}); got != TypeSByte {
		t.Errorf("TypeOf(17) = %s, want SByte (types cycle)", got)
	}
	if got := TypeOf(17, Config{Type: "double[]"}); got != TypeDoubleArray {
		t.Errorf("TypeOf with Type double[] = %s", got)
	}
	for _, s := range []string{"v", "v01", "v-1", "x1", "v1a"} {
		if _, ok := parseNodeName(s); ok {
			t.Errorf("parseNodeName(%q) accepted", s)
		}
	}
	if i, ok := parseNodeName(NodeName(1234)); !ok || i != 1234 {
		t.Errorf("parseNodeName(NodeName(1234)) = %d, %v", i, ok)
	}
}

func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		typ, in string
		want    any
	}{
		{TypeBoolean, "true", true},
		{TypeSByte, "-5", int8(-5)},
		{TypeByte, "0x10", uint8(16)},
		{TypeUInt64, "18446744073709551615", uint64(math.MaxUint64)},
		{TypeFloat, "1.5", float32(1.5)},
		{TypeDouble, "NaN", math.NaN()},
		{TypeString, " keep spaces ", " keep spaces "},
		{TypeDateTime, "2024-01-02T03:04:05Z", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{TypeByteString, "aGk=", []byte("hi")},
		{TypeDoubleArray, "1, 2.5", []float64{1, 2.5}},
		{TypeInt32Array, "", []int32{}},
	} {
		got, err := ParseValue(tc.typ, tc.in)
		if err != nil {
			t.Errorf("ParseValue(%s, %q): %v", tc.typ, tc.in, err)
			continue
		}
		if f, ok := tc.want.(float64); ok && math.IsNaN(f) {
			if g, _ := got.(float64); !math.IsNaN(g) {
				t.Errorf("ParseValue(%s, %q) = %v", tc.typ, tc.in, got)
			}
			continue
		}
		if !sameValue(got, tc.want) {
			t.Errorf("ParseValue(%s, %q) = %#v, want %#v", tc.typ, tc.in, got, tc.want)
		}
	}
	for _, tc := range [][2]string{{TypeSByte, "200"}, {TypeBoolean, "yes"}, {TypeInt32Array, "1,x"}, {"Decimal", "1"}} {
		if _, err := ParseValue(tc[0], tc[1]); err == nil {
			t.Errorf("ParseValue(%s, %q) accepted", tc[0], tc[1])
		}
	}
}

func FuzzParseValue(f *testing.F) {
	f.Add(uint8(0), "true")
	f.Add(uint8(10), "1e308")
	f.Add(uint8(14), "1,2,3")
	f.Add(uint8(12), "2024-01-02T03:04:05.123Z")
	f.Fuzz(func(t *testing.T, k uint8, s string) {
		vt := typeList[int(k)%len(typeList)]
		v, err := ParseValue(vt.name, s)
		if err != nil {
			return
		}
		variant, err := ua.NewVariant(v)
		if err != nil {
			t.Fatalf("ParseValue(%s, %q) = %#v: not a Variant: %v", vt.name, s, v, err)
		}
		if checkVariant(vt, variant) != ua.StatusOK {
			t.Fatalf("ParseValue(%s, %q) = %#v: wrong type", vt.name, s, v)
		}
	})
}

func TestJournalEntryJSON(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	b, err := json.Marshal(JournalEntry{Time: ts, Session: "ns=1;g=x", Node: "i=2267",
		Value: []float64{1, math.Inf(-1), math.NaN()}, Type: TypeDoubleArray, SourceTimestamp: ts,
		Status: ua.StatusBadNoCommunication})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2024-01-02T03:04:05.000000006Z","session":"ns=1;g=x","node":"i=2267",` +
		`"value":[1,"-Inf","NaN"],"type":"Double[]","source_timestamp":"2024-01-02T03:04:05.000000006Z","status":2150694912}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

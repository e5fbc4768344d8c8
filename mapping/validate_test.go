package mapping

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// baseConfig is a small valid config built in code.
func baseConfig() *Config {
	return &Config{
		File: "code.yml",
		Servers: []Server{
			{Name: "plc", Endpoints: []string{"opc.tcp://127.0.0.1:4840"}},
			{Name: "scada", Endpoints: []string{"opc.tcp://127.0.0.1:4841"}},
		},
		Groups: []Group{{Name: "fast", PublishingInterval: 50 * time.Millisecond}},
	}
}

// mp builds an enabled mapping with a derived id.
func mp(srcServer, srcNode, dstServer, dstNode string, dir Direction) Mapping {
	m := Mapping{Source: NodeRef{srcServer, srcNode}, Target: NodeRef{dstServer, dstNode}, Direction: dir}
	m.ID = DeriveID(m.Source, m.Target)
	return m
}

// problems lists "field: Sentinel" for every error of err.
func problems(err error) []string {
	var es Errors
	if err == nil {
		return nil
	}
	if !errors.As(err, &es) {
		return []string{"not Errors: " + err.Error()}
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Field+": "+sentinelName(e))
	}
	return out
}

func TestValidate(t *testing.T) {
	f := false
	tests := []struct {
		name   string
		edit   func(c *Config)
		want   []string
		msgHas string // part of the error text
	}{
		{name: "valid", edit: func(c *Config) {
			c.Mappings = []Mapping{mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", "")}
		}},
		{name: "empty config", edit: func(c *Config) { *c = Config{} }},
		{name: "good endpoints", edit: func(c *Config) {
			c.Servers[0].Endpoints = []string{"opc.tcp://host:4840/path/x", "opc.tcp://[::1]:4840", "opc.tcp://h.example.com:65535"}
		}},
		{name: "bad endpoints", edit: func(c *Config) {
			c.Servers[0].Endpoints = []string{"", "opc.tcp://h:0", "opc.tcp://h:65536", "opc.tcp://u:p@h:4840",
				"opc.tcp://h:4840?x=1", "opc.tcp:h:4840", "opc.tcp://h:port", "OPC.TCP://h:4840x", "opc.tcp://h:4840", "opc.tcp://h:4840"}
		}, want: []string{
			"servers[0].endpoints[0]: ErrInvalidValue",
			"servers[0].endpoints[1]: ErrInvalidValue",
			"servers[0].endpoints[2]: ErrInvalidValue",
			"servers[0].endpoints[3]: ErrInvalidValue",
			"servers[0].endpoints[4]: ErrInvalidValue",
			"servers[0].endpoints[5]: ErrInvalidValue",
			"servers[0].endpoints[6]: ErrInvalidValue",
			"servers[0].endpoints[7]: ErrInvalidValue",
			"servers[0].endpoints[9]: ErrDuplicate",
		}},
		{name: "all security combinations", edit: func(c *Config) {
			c.Servers = nil
			for _, p := range securityPolicies {
				for _, m := range securityModes {
					if (p == "None") == (m == "None") {
						c.Servers = append(c.Servers, Server{Name: p + m, Endpoints: []string{"opc.tcp://h:1"}, SecurityPolicy: p, SecurityMode: m})
					}
				}
			}
		}},
		{name: "certificate auth", edit: func(c *Config) {
			c.Servers[0].Auth = Auth{Type: "certificate", CertFile: "/etc/u.der", KeyFile: "/etc/u.pem"}
		}},
		{name: "certificate auth incomplete", edit: func(c *Config) {
			c.Servers[0].Auth = Auth{Type: "certificate", CertFile: "/etc/u.der", Username: "u"}
			c.Servers[1].Auth = Auth{KeyFile: "/etc/u.pem"}
		}, want: []string{"servers[0].auth.key_file: ErrMissing", "servers[0].auth.type: ErrInvalidValue",
			"servers[1].auth.key_file: ErrInvalidValue"}},
		{name: "pins", edit: func(c *Config) {
			c.Servers[0].TrustedCertificates = []string{"0123456789abcdef0123456789ABCDEF01234567",
				"01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef"}
		}},
		{name: "bad pins", edit: func(c *Config) {
			c.Servers[1].TrustedCertificates = []string{"abc", "zz23456789abcdef0123456789abcdef01234567"}
		}, want: []string{"servers[1].trusted_certificates[0]: ErrInvalidValue", "servers[1].trusted_certificates[1]: ErrInvalidValue"},
			msgHas: "SHA-1 (40 hex digits)"},
		{name: "policy without mode is None", edit: func(c *Config) {
			c.Servers[0].SecurityPolicy = "Aes128_Sha256_RsaOaep"
		}, want: []string{"servers[0].security_policy: ErrInvalidValue"}, msgHas: "needs security_mode"},
		{name: "policy typo", edit: func(c *Config) {
			c.Servers[0].SecurityPolicy = "basic256sha256"
			c.Servers[0].SecurityMode = "Sign"
		}, want: []string{"servers[0].security_policy: ErrInvalidValue"}, msgHas: `did you mean "Basic256Sha256"`},
		{name: "username auth", edit: func(c *Config) {
			c.Servers[0].Auth = Auth{Type: "username", Username: "u", PasswordFile: "/run/p"}
			c.Servers[1].Auth = Auth{Type: "username", Username: "u", PasswordEnv: "P"}
		}},
		{name: "anonymous with password", edit: func(c *Config) {
			c.Servers[0].Auth = Auth{PasswordFile: "/p"}
		}, want: []string{"servers[0].auth.password_file: ErrInvalidValue"}},
		{name: "negative timeouts", edit: func(c *Config) {
			c.Servers[1].Timeouts = Timeouts{Request: -1, KeepAlive: -1, Session: -1}
		}, want: []string{
			"servers[1].timeouts.request: ErrInvalidValue",
			"servers[1].timeouts.keepalive: ErrInvalidValue",
			"servers[1].timeouts.session: ErrInvalidValue",
		}},
		{name: "missing id and ends", edit: func(c *Config) {
			c.Mappings = []Mapping{{}}
		}, want: []string{
			"mappings[0].id: ErrMissing",
			"mappings[0].source.server: ErrMissing",
			"mappings[0].source.node: ErrMissing",
			"mappings[0].target.server: ErrMissing",
			"mappings[0].target.node: ErrMissing",
		}},
		{name: "unknown server suggestion", edit: func(c *Config) {
			c.Mappings = []Mapping{mp("PLC", "ns=2;s=a", "scada", "ns=2;s=a", "")}
		}, want: []string{"mappings[0].source.server: ErrUnknownServer"}, msgHas: `did you mean "plc"`},
		{name: "self loop across spellings", edit: func(c *Config) {
			c.Mappings = []Mapping{mp("plc", "ns=2;i=5", "plc", "ns=002;i=5", Both)}
		}, want: []string{"mappings[0].target.node: ErrSelfLoop"}},
		{name: "same node on two servers is fine", edit: func(c *Config) {
			c.Mappings = []Mapping{mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", Both)}
		}},
		{name: "read plus reverse write loops", edit: func(c *Config) {
			c.Mappings = []Mapping{
				mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", Read),
				mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", Write),
			}
			c.Mappings[1].ID = "0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a10"
		}, want: []string{"mappings[1].source.node: ErrLoop"}, msgHas: "direction: both"},
		{name: "both plus read is a duplicate target only", edit: func(c *Config) {
			c.Mappings = []Mapping{
				mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", Both),
				mp("scada", "ns=2;s=a", "plc", "ns=2;s=a", Read),
			}
		}, want: []string{"mappings[1].target.node: ErrDuplicateTarget"}},
		{name: "write and read into the same node", edit: func(c *Config) {
			c.Mappings = []Mapping{
				mp("plc", "ns=2;s=x", "scada", "ns=2;s=a", Write),
				mp("scada", "ns=2;s=b", "plc", "ns=2;s=x", Read),
			}
		}, want: []string{"mappings[1].target.node: ErrDuplicateTarget"}},
		{name: "disabled reverse is no loop", edit: func(c *Config) {
			c.Mappings = []Mapping{
				mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", Read),
				mp("scada", "ns=2;s=a", "plc", "ns=2;s=a", Read),
			}
			c.Mappings[1].Enabled = &f
		}},
		{name: "chain is no loop", edit: func(c *Config) {
			c.Mappings = []Mapping{
				mp("plc", "ns=2;s=a", "scada", "ns=2;s=b", Read),
				mp("scada", "ns=2;s=b", "scada", "ns=2;s=c", Read),
				mp("scada", "ns=2;s=c", "plc", "ns=2;s=d", Read),
			}
		}},
		{name: "four-cycle", edit: func(c *Config) {
			c.Mappings = []Mapping{
				mp("plc", "ns=2;s=a", "scada", "ns=2;s=b", Read),
				mp("scada", "ns=2;s=b", "scada", "ns=2;s=c", Read),
				mp("plc", "ns=2;s=a", "scada", "ns=2;s=d", Write), // writes plc a from scada d
				mp("scada", "ns=2;s=c", "scada", "ns=2;s=d", Read),
			}
		}, want: []string{"mappings[3].target.node: ErrLoop"}, msgHas: "mappings[0], mappings[1], mappings[2], mappings[3]"},
		{name: "duplicate id different case", edit: func(c *Config) {
			c.Mappings = []Mapping{
				mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", ""),
				mp("plc", "ns=2;s=b", "scada", "ns=2;s=b", ""),
			}
			c.Mappings[1].ID = strings.ToUpper(c.Mappings[0].ID)
		}, want: []string{"mappings[1].id: ErrDuplicate"}},
		{name: "percent deadband bounds", edit: func(c *Config) {
			c.Mappings = []Mapping{mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", "")}
			c.Mappings[0].Deadband = &Deadband{Type: DeadbandPercent, Value: 100}
		}},
		{name: "deadband without type", edit: func(c *Config) {
			c.Mappings = []Mapping{mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", "")}
			c.Mappings[0].Deadband = &Deadband{Value: 1}
		}, want: []string{"mappings[0].deadband.type: ErrMissing"}},
		{name: "inverted scaling is fine", edit: func(c *Config) {
			c.Mappings = []Mapping{mp("plc", "ns=2;s=a", "scada", "ns=2;s=a", "")}
			c.Mappings[0].Scaling = &Scaling{RawLow: 100, RawHigh: 0, EngLow: 0, EngHigh: 1}
		}},
		{name: "every conversion type", edit: func(c *Config) {
			for i, typ := range builtinTypes {
				m := mp("plc", fmt.Sprintf("ns=2;i=%d", i), "scada", fmt.Sprintf("ns=2;i=%d", i), "")
				m.Convert = &Conversion{To: typ, Rounding: RoundNearest, Overflow: Clamp}
				c.Mappings = append(c.Mappings, m)
			}
		}},
		{name: "retry_min above default retry_max", edit: func(c *Config) {
			c.Engine.RetryMin = time.Minute
		}, want: []string{"engine.retry_min: ErrBadRange"}},
		{name: "retry_max below default retry_min", edit: func(c *Config) {
			c.Engine.RetryMax = 100 * time.Millisecond
		}, want: []string{"engine.retry_min: ErrBadRange"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			tt.edit(c)
			err := c.Validate()
			got := problems(err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s\nfull:\n%v", strings.Join(got, "\n"), strings.Join(tt.want, "\n"), err)
			}
			if tt.msgHas != "" && (err == nil || !strings.Contains(err.Error(), tt.msgHas)) {
				t.Errorf("error does not say %q:\n%v", tt.msgHas, err)
			}
			if err == nil && len(tt.want) == 0 {
				return
			}
			var es Errors
			if errors.As(err, &es) {
				for _, e := range es {
					if e.Pos.File != "code.yml" {
						t.Errorf("error without the config's file: %v", e)
					}
				}
			}
		})
	}
}

// TestValidateReturnsNilInterface guards against a typed nil error.
func TestValidateReturnsNilInterface(t *testing.T) {
	var err error = baseConfig().Validate()
	if err != nil {
		t.Fatalf("Validate() = %#v, want nil", err)
	}
}

func TestLookups(t *testing.T) {
	c := baseConfig()
	if s := c.Server("scada"); s == nil || s != &c.Servers[1] {
		t.Errorf("Server(scada) = %v", s)
	}
	if c.Server("nope") != nil || c.Group("nope") != nil {
		t.Error("lookup of an unknown name is not nil")
	}
	if g := c.Group("fast"); g == nil || g.PublishingInterval != 50*time.Millisecond {
		t.Errorf("Group(fast) = %v", g)
	}
}

func TestDefaults(t *testing.T) {
	var c Config
	if got := c.EngineSettings(); got != DefaultEngine() {
		t.Errorf("EngineSettings() = %+v", got)
	}
	c.Engine = Engine{WriteBatch: 10, RetryMax: time.Minute}
	want := DefaultEngine()
	want.WriteBatch, want.RetryMax = 10, time.Minute
	if got := c.EngineSettings(); got != want {
		t.Errorf("EngineSettings() = %+v, want %+v", got, want)
	}

	var s Server
	if got := s.EffectiveTimeouts(); got != DefaultTimeouts() {
		t.Errorf("EffectiveTimeouts() = %+v", got)
	}
	s.Timeouts.Session = time.Hour
	wt := DefaultTimeouts()
	wt.Session = time.Hour
	if got := s.EffectiveTimeouts(); got != wt {
		t.Errorf("EffectiveTimeouts() = %+v, want %+v", got, wt)
	}
}

func TestEffective(t *testing.T) {
	c := &Config{
		Groups: []Group{
			{Name: "full", PublishingInterval: time.Second, SamplingInterval: 500 * time.Millisecond, QueueSize: 8},
			{Name: "bare"},
		},
		Engine: Engine{PublishingInterval: 200 * time.Millisecond},
	}
	tests := []struct {
		name string
		m    Mapping
		want EffectiveSettings
	}{
		{"no group", Mapping{}, EffectiveSettings{"", 200 * time.Millisecond, 200 * time.Millisecond, 1}},
		{"group", Mapping{Group: "full"}, EffectiveSettings{"full", time.Second, 500 * time.Millisecond, 8}},
		{"mapping overrides", Mapping{Group: "full", SamplingInterval: 10 * time.Millisecond, QueueSize: 2},
			EffectiveSettings{"full", time.Second, 10 * time.Millisecond, 2}},
		{"bare group", Mapping{Group: "bare"}, EffectiveSettings{"bare", 200 * time.Millisecond, 200 * time.Millisecond, 1}},
		{"no group, mapping values", Mapping{SamplingInterval: time.Millisecond, QueueSize: 3},
			EffectiveSettings{"", 200 * time.Millisecond, time.Millisecond, 3}},
		{"unknown group", Mapping{Group: "gone"}, EffectiveSettings{"gone", 200 * time.Millisecond, 200 * time.Millisecond, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Effective(&tt.m); got != tt.want {
				t.Errorf("Effective = %+v, want %+v", got, tt.want)
			}
		})
	}
	var empty Config
	if got := empty.Effective(&Mapping{}); got.PublishingInterval != DefaultEngine().PublishingInterval || got.QueueSize != 1 {
		t.Errorf("defaults: %+v", got)
	}
}

// TestValidateFieldLines checks that errors point at the line of the
// offending field, not only at the mapping.
func TestValidateFieldLines(t *testing.T) {
	in := `servers:
  - name: a
    endpoints: [opc.tcp://h:4840]
mappings:
  - source:
      server: a
      node: "ns=2;s=x"
    target:
      node: "ns=2;s=bad;"
      server: b
    scaling:
      raw_low: 1
      raw_high: 1
      eng_low: 0
      eng_high: 1
`
	c, err := ParseYAML([]byte(in), "l.yml")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	want := "l.yml:10: mappings[0].target.server: no server of that name; allowed: a (value \"b\")\n" +
		"l.yml:13: mappings[0].scaling.raw_high: raw_high equals raw_low: the raw range is empty (value \"1\")"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

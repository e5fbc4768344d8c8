package uaserver

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uapolicy"
	"go.uber.org/zap"
)

// Defaults applied by New to empty fields.
const (
	DefaultHost         = "127.0.0.1"
	DefaultNamespaceURI = "urn:uamirror:uaserver"
)

// Sentinel errors; returned errors wrap them.
var (
	// ErrInvalidConfig wraps every problem Validate finds.
	ErrInvalidConfig = errors.New("uaserver: invalid config")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("uaserver: closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("uaserver: already started")
)

// SecurityPolicy is one endpoint security configuration to offer besides
// None (which is always offered).
type SecurityPolicy struct {
	// Policy is a security policy name ("Basic256Sha256") or its URI.
	Policy string
	// Mode is Sign or SignAndEncrypt for a secure policy, None for None.
	Mode ua.MessageSecurityMode
}

// URI returns the full security policy URI of p.
func (p SecurityPolicy) URI() string {
	if strings.HasPrefix(p.Policy, ua.SecurityPolicyURIPrefix) {
		return p.Policy
	}
	return ua.SecurityPolicyURIPrefix + p.Policy
}

// String returns "Policy:Mode", the form ParseSecurity reads.
func (p SecurityPolicy) String() string {
	return strings.TrimPrefix(p.URI(), ua.SecurityPolicyURIPrefix) + ":" +
		strings.TrimPrefix(p.Mode.String(), "MessageSecurityMode")
}

// validate checks p against the policies gopcua implements.
func (p SecurityPolicy) validate() error {
	uri := p.URI()
	known := false
	for _, s := range uapolicy.SupportedPolicies() {
		if s == uri {
			known = true
			break
		}
	}
	switch {
	case !known:
		return fmt.Errorf("policy %q: not supported by gopcua", p.Policy)
	case uri == ua.SecurityPolicyURINone && p.Mode != ua.MessageSecurityModeNone:
		return fmt.Errorf("policy None: mode must be None, not %s", p.Mode)
	case uri != ua.SecurityPolicyURINone && p.Mode != ua.MessageSecurityModeSign &&
		p.Mode != ua.MessageSecurityModeSignAndEncrypt:
		return fmt.Errorf("policy %s: mode must be Sign or SignAndEncrypt, not %s", p.Policy, p.Mode)
	}
	return nil
}

// secure reports whether p needs a certificate.
func (p SecurityPolicy) secure() bool { return p.URI() != ua.SecurityPolicyURINone }

// ParseSecurity parses a comma-separated list such as
// "None,Basic256Sha256:Sign,Basic256Sha256:SignAndEncrypt". A policy
// without ":Mode" means None for None and both Sign and SignAndEncrypt
// otherwise. Names are case-insensitive; duplicates are dropped.
func ParseSecurity(s string) ([]SecurityPolicy, error) {
	var out []SecurityPolicy
	seen := map[SecurityPolicy]bool{}
	add := func(p SecurityPolicy) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, mode, hasMode := strings.Cut(strings.TrimPrefix(item, ua.SecurityPolicyURIPrefix), ":")
		policy, ok := canonicalPolicy(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("security %q: unknown policy %q", item, name)
		}
		if !hasMode {
			if policy == "None" {
				add(SecurityPolicy{Policy: policy, Mode: ua.MessageSecurityModeNone})
				continue
			}
			add(SecurityPolicy{Policy: policy, Mode: ua.MessageSecurityModeSign})
			add(SecurityPolicy{Policy: policy, Mode: ua.MessageSecurityModeSignAndEncrypt})
			continue
		}
		m, ok := canonicalMode(strings.TrimSpace(mode))
		if !ok {
			return nil, fmt.Errorf("security %q: unknown mode %q (want None, Sign or SignAndEncrypt)", item, mode)
		}
		p := SecurityPolicy{Policy: policy, Mode: m}
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("security %q: %w", item, err)
		}
		add(p)
	}
	return out, nil
}

func canonicalPolicy(name string) (string, bool) {
	for _, uri := range uapolicy.SupportedPolicies() {
		short := strings.TrimPrefix(uri, ua.SecurityPolicyURIPrefix)
		if strings.EqualFold(short, name) {
			return short, true
		}
	}
	return "", false
}

func canonicalMode(name string) (ua.MessageSecurityMode, bool) {
	for _, m := range []ua.MessageSecurityMode{ua.MessageSecurityModeNone,
		ua.MessageSecurityModeSign, ua.MessageSecurityModeSignAndEncrypt} {
		if strings.EqualFold(strings.TrimPrefix(m.String(), "MessageSecurityMode"), name) {
			return m, true
		}
	}
	return 0, false
}

// Config configures a Server. The zero value is usable: New fills empty
// Host and NamespaceURI with the defaults and serves no variables.
type Config struct {
	// Host is the address to listen on and to advertise in the endpoint
	// URL (default 127.0.0.1).
	Host string
	// Port to listen on; 0 picks a free ephemeral port (see Endpoint).
	Port int
	// Vars is the number of simulated variables, v0 … v<Vars-1>.
	Vars int
	// Type is "" to cycle through Types() by index, or one type name for
	// every variable.
	Type string
	// ClockOffset is added to this server's clock: the source and server
	// timestamps it stamps and ServerStatus.CurrentTime (tests run a
	// server an hour behind with -1h). See Server.StepClock.
	ClockOffset time.Duration
	// Rate is the total number of value changes per second, spread
	// round-robin over the first Changing variables; 0 means static.
	Rate float64
	// Changing is how many of the first variables change; 0 means all.
	Changing int
	// NamespaceURI names the variables' namespace (default
	// urn:uamirror:uaserver; the simulation's: urn:uamirror:simserver).
	NamespaceURI string
	// ApplicationURI is the server's application URI and the URI SAN of a
	// generated certificate (default ApplicationURIPrefix<host>:<port>).
	// A loaded certificate's own URI SAN takes precedence.
	ApplicationURI string
	// Security lists the secure endpoints to offer besides None.
	Security []SecurityPolicy
	// CertFile and KeyFile (PEM or DER; RSA) are the server's certificate
	// and key. When both are empty and Security asks for a secure policy,
	// a self-signed certificate is generated in memory.
	CertFile, KeyFile string
	// Certificate (DER) and PrivateKey are the server's certificate and
	// key in memory, instead of CertFile and KeyFile. The certificate's
	// URI SAN becomes the ApplicationURI.
	Certificate []byte
	PrivateKey  *rsa.PrivateKey
	// SecureOnly offers no None endpoint, only the secure ones in
	// Security, and refuses to activate a session on a None secure
	// channel (gopcua opens one whatever the endpoints say; discovery
	// over it still works).
	SecureOnly bool
	// Journal, when set, receives every accepted Write as one JSON line.
	Journal io.Writer
	// JournalFile, when set, is a file the JSON lines are appended to.
	JournalFile string
	// JournalMemory keeps accepted Writes in memory for Server.Journal.
	JournalMemory bool
	// RejectTimestamps answers Bad_WriteNotSupported to a write that
	// carries a source or server timestamp, as some PLC servers do.
	RejectTimestamps bool
	// Logger receives the server's logs; nil discards them.
	Logger *zap.Logger
	// LoggerName names the server's logger (default "uaserver").
	LoggerName string
	// ApplicationURIPrefix + host:port is the default ApplicationURI
	// (default "urn:uamirror:uaserver:").
	ApplicationURIPrefix string
	// Limits are the operation limits (defaults: see Limits).
	Limits Limits
	// Redundancy, when set, makes the server a member of a
	// non-transparent redundant set (see Redundancy).
	Redundancy *Redundancy
	// Build is the server's identity: ApplicationName and BuildInfo
	// (Part 5, 6.3.1 and 12.4). Empty fields take DefaultBuild's.
	Build Build
	// Extension, when set, adds computed read-only variables and a Call
	// handler (see Extension).
	Extension *Extension
	// Folder is the string id and browse name of the folder under Objects
	// that organizes the variables (default DefaultFolder, "Vars"; the simulation's: "Sim").
	Folder string
	// Users, when not empty, are the only identities accepted (user name →
	// password): the server then offers UserName tokens on its secure
	// endpoints and refuses anonymous sessions and wrong passwords with
	// Bad_UserAccessDenied. It needs a secure endpoint in Security
	// (gopcua offers UserName tokens only there).
	Users map[string]string
	// AllowAnonymous accepts anonymous sessions besides Users (they
	// can read, browse and subscribe; a method sees an anonymous
	// Caller).
	AllowAnonymous bool
	// Roles lists the roles of each user of Users (see Caller.HasRole).
	Roles map[string][]string
}

// DefaultConfig returns 100 variables of cycling types on 127.0.0.1, an
// ephemeral port, static values (the simulation's defaults, under the
// core's names).
func DefaultConfig() Config {
	return Config{Host: DefaultHost, Vars: 100, NamespaceURI: DefaultNamespaceURI}
}

// withDefaults fills empty fields.
func (c Config) withDefaults() Config {
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.Folder == "" {
		c.Folder = DefaultFolder
	}
	if c.NamespaceURI == "" {
		c.NamespaceURI = DefaultNamespaceURI
	}
	if c.Changing == 0 {
		c.Changing = c.Vars
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.LoggerName == "" {
		c.LoggerName = "uaserver"
	}
	if c.ApplicationURIPrefix == "" {
		c.ApplicationURIPrefix = "urn:uamirror:uaserver:"
	}
	c.Build = c.Build.withDefaults()
	c.Limits = c.Limits.withDefaults()
	return c
}

// maxVars bounds Vars; gopcua-based servers were measured up to 50k.
const maxVars = 1_000_000

// Validate reports every invalid field of c (after defaults), each error
// wrapping ErrInvalidConfig and naming the field and value.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("Port %d: want 0..65535", c.Port)
	}
	if c.Vars < 0 || c.Vars > maxVars {
		bad("Vars %d: want 0..%d", c.Vars, maxVars)
	}
	if c.Type != "" {
		if _, ok := lookupType(c.Type); !ok {
			bad("Type %q: want one of %s", c.Type, strings.Join(Types(), ", "))
		}
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0 {
		bad("Rate %v: want a finite number ≥ 0", c.Rate)
	}
	if c.Changing < 0 || c.Changing > c.Vars {
		bad("Changing %d: want 0..Vars (%d)", c.Changing, c.Vars)
	}
	if c.Rate > 0 && c.Vars == 0 {
		bad("Rate %v: no variables to change (Vars 0)", c.Rate)
	}
	for k, p := range c.Security {
		if err := p.validate(); err != nil {
			bad("Security[%d]: %v", k, err)
		}
	}
	if len(c.Users) > 0 && !c.needsCert() {
		bad("Users: need a secure endpoint in Security (user name tokens are offered there only)")
	}
	for u := range c.Users {
		if u == "" {
			bad("Users: empty user name")
		}
	}
	if len(c.Users) > 0 && !sessionServiceLayoutOK() {
		bad("Users: this gopcua version's SessionService layout is not the one uaserver/users.go expects")
	}
	l := c.Limits
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxReferencesPerNode", l.MaxReferencesPerNode}, {"MaxBrowseContinuationPoints", l.MaxBrowseContinuationPoints},
		{"MaxNodesPerBrowse", l.MaxNodesPerBrowse}, {"MaxNodesPerTranslateBrowsePathsToNodeIds", l.MaxNodesPerTranslateBrowsePathsToNodeIds},
		{"MaxNodesPerRegisterNodes", l.MaxNodesPerRegisterNodes}, {"MaxNodesPerMethodCall", l.MaxNodesPerMethodCall},
	} {
		if f.v < 0 {
			bad("Limits.%s %d: want ≥ 0", f.name, f.v)
		}
	}
	if r := c.Redundancy; r != nil {
		switch r.Support {
		case ua.RedundancySupportCold, ua.RedundancySupportWarm, ua.RedundancySupportHot, ua.RedundancySupportHotAndMirrored:
		default:
			bad("Redundancy.Support %v: want a non-transparent mode (Cold, Warm, Hot, HotAndMirrored)", r.Support)
		}
		if r.ServerURIs == nil {
			bad("Redundancy.ServerURIs: nil")
		}
	}
	if c.SecureOnly && !c.needsCert() {
		bad("SecureOnly: Security offers no secure endpoint")
	}
	if (c.Certificate == nil) != (c.PrivateKey == nil) {
		bad("Certificate, PrivateKey: give both or neither")
	}
	if c.Certificate != nil && c.CertFile != "" {
		bad("Certificate and CertFile %q: give at most one", c.CertFile)
	}
	for u := range c.Roles {
		if _, ok := c.Users[u]; !ok {
			bad("Roles: user %q is not one of Users", u)
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("CertFile %q, KeyFile %q: give both or neither", c.CertFile, c.KeyFile)
	}
	if c.Journal != nil && c.JournalFile != "" {
		bad("Journal and JournalFile %q: give at most one", c.JournalFile)
	}
	return errors.Join(errs...)
}

// needsCert reports whether any configured endpoint is secure.
func (c Config) needsCert() bool {
	for _, p := range c.Security {
		if p.secure() {
			return true
		}
	}
	return false
}

// Package mapping owns the model of a mirror configuration: the OPC UA
// servers, the groups that share subscription settings, and the item
// mappings between servers. It parses and writes the YAML and CSV forms,
// validates a whole configuration at once (every error with file, line,
// field and value), and gives each mapping and each set a canonical form,
// a content hash and a diff.
//
// The package depends on nothing else of uamirror's and never reads
// flags, environment variables or viper: callers hand it bytes and file
// names and get typed values back. All values are plain data; a Config is
// safe for concurrent reads once built and must not be mutated while it is
// shared.
package mapping

import (
	"time"
)

// Pos is where a value came from: a file name and a 1-based line (0 when
// unknown, e.g. for values built in code). Pos is not part of the
// canonical form or the hash.
type Pos struct {
	File string `yaml:"-" json:"-"`
	Line int    `yaml:"-" json:"-"`
}

// Direction says which way values flow between a mapping's source and
// target.
type Direction string

// Directions of a mapping.
const (
	// Read copies source → target. It is the default.
	Read Direction = "read"
	// Write copies target → source.
	Write Direction = "write"
	// Both copies both ways, with echo suppression and newest-wins
	// conflict resolution by source timestamp.
	Both Direction = "both"
)

// OnBad says what a mapping does with a Bad or Uncertain source value.
type OnBad string

// Behaviours for bad source values.
const (
	// Hold keeps the target at its last good value (default).
	Hold OnBad = "hold"
	// WriteStatus writes the last good value carrying the source's bad
	// status code to the target, once per status change, for targets
	// that show quality (README, "Quality").
	WriteStatus OnBad = "write_status"
)

// Config is a whole mirror configuration.
type Config struct {
	// Servers are the OPC UA servers the engine connects to.
	Servers []Server `yaml:"servers" json:"servers"`
	// Groups share subscription settings between mappings.
	Groups []Group `yaml:"groups,omitempty" json:"groups,omitempty"`
	// Mappings are the item mappings, in file order. A mapping's index in
	// this slice is its ClientHandle in the engine.
	Mappings []Mapping `yaml:"mappings" json:"mappings"`
	// Engine holds tuning of the mirror engine.
	Engine Engine `yaml:"engine,omitempty" json:"engine,omitempty"`
	// Drill schedules the failover drill (nil: only on demand).
	Drill *DrillSchedule `yaml:"drill,omitempty" json:"drill,omitempty"`

	// File is the name the config was read from (empty when built in code).
	File string `yaml:"-" json:"-"`

	// lines holds the line of every field ParseYAML saw, so that Validate
	// can point at the offending field rather than at its list item.
	lines fieldLines
}

// Server is one OPC UA server or one redundant server set.
type Server struct {
	// Name is how mappings refer to the server. Unique, non-empty,
	// [A-Za-z0-9_.-]+.
	Name string `yaml:"name" json:"name"`
	// Endpoints are opc.tcp:// URLs; the first is preferred, further
	// entries are redundant servers of the same set.
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// SecurityPolicy is None (default), Basic256Sha256,
	// Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss.
	SecurityPolicy string `yaml:"security_policy,omitempty" json:"security_policy,omitempty"`
	// SecurityMode is None (default), Sign or SignAndEncrypt.
	SecurityMode string `yaml:"security_mode,omitempty" json:"security_mode,omitempty"`
	// Auth says how the session authenticates.
	Auth Auth `yaml:"auth,omitempty" json:"auth,omitempty"`
	// TrustedCertificates pins server certificates by thumbprint: SHA-1
	// (40 hex digits, as OPC UA tools show it) or SHA-256 (64 hex digits),
	// separators ':' and ' ' allowed. A pinned certificate is accepted
	// like one in the PKI's trusted/ folder (still checked for validity
	// period and ApplicationURI). The config is replicated in a pair, so a
	// pin trusts the server on both nodes.
	TrustedCertificates []string `yaml:"trusted_certificates,omitempty" json:"trusted_certificates,omitempty"`
	// Timeouts of the connection supervisor.
	Timeouts Timeouts `yaml:"timeouts,omitempty" json:"timeouts,omitempty"`
	// Redundancy says how a redundant server set (several endpoints, or
	// discover) is followed. Ignored for a single server.
	Redundancy ServerSet `yaml:"redundancy,omitempty" json:"redundancy,omitempty"`

	Pos Pos `yaml:"-" json:"-"`
}

// Modes of a redundant server set.
const (
	// SetHot keeps a session, the ServiceLevel subscription and every
	// monitored item on each member: a failover needs no re-subscribe.
	SetHot = "hot"
	// SetWarm keeps a session and the ServiceLevel subscription on each
	// member; the monitored items are created on the member taken in use.
	SetWarm = "warm"
)

// DefaultSetMargin is the ServiceLevel margin of a server set that sets
// none.
const DefaultSetMargin = 10

// ServerSet configures a redundant server set (non-transparent
// redundancy, OPC UA Part 4, 6.6.2): the engine keeps sessions to every
// member and uses the one with the highest ServiceLevel in the Healthy
// range (200–255).
type ServerSet struct {
	// Mode is hot (default) or warm.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Margin is how many ServiceLevel points another Healthy member must
	// be better by to replace the member in use (0..255; nil: the
	// default, DefaultSetMargin).
	Margin *int `yaml:"margin,omitempty" json:"margin,omitempty"`
	// Discover adds members from the first endpoint's
	// ServerRedundancy/ServerUriArray, each resolved to its discovery URL
	// with FindServers on that endpoint (once, at start). The listed
	// endpoints stay members and come first.
	Discover bool `yaml:"discover,omitempty" json:"discover,omitempty"`
}

// IsSet reports whether the server is a redundant server set: more than
// one endpoint, or discover.
func (s *Server) IsSet() bool { return len(s.Endpoints) > 1 || s.Redundancy.Discover }

// SetMode returns the server set's mode with the default filled in.
func (s *Server) SetMode() string {
	if s.Redundancy.Mode == "" {
		return SetHot
	}
	return s.Redundancy.Mode
}

// SetMargin returns the server set's margin with the default filled in.
func (s *Server) SetMargin() int {
	if s.Redundancy.Margin == nil {
		return DefaultSetMargin
	}
	return *s.Redundancy.Margin
}

// Auth is a session's user identity. A password is never held in the
// config file: it is read at connect time from PasswordEnv or PasswordFile.
type Auth struct {
	// Type is "anonymous" (default), "username" or "certificate" (an X.509
	// user token: CertFile and KeyFile).
	Type         string `yaml:"type,omitempty" json:"type,omitempty"`
	Username     string `yaml:"username,omitempty" json:"username,omitempty"`
	PasswordEnv  string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	// CertFile and KeyFile (PEM or DER; RSA) are the user certificate and
	// its key for type certificate, read at connect time.
	CertFile string `yaml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty" json:"key_file,omitempty"`
}

// Timeouts of one server's connection supervisor. Zero means the default
// (see DefaultTimeouts).
type Timeouts struct {
	// Connect bounds dialing, opening the channel and the session.
	Connect time.Duration `yaml:"connect,omitempty" json:"connect,omitempty"`
	// Request bounds every service call.
	Request time.Duration `yaml:"request,omitempty" json:"request,omitempty"`
	// KeepAlive is the period of the ServerStatus read that proves the
	// session alive.
	KeepAlive time.Duration `yaml:"keepalive,omitempty" json:"keepalive,omitempty"`
	// Session is the requested session timeout.
	Session time.Duration `yaml:"session,omitempty" json:"session,omitempty"`
	// DataAge is the watchdog: a subscription with no notification and no
	// keep-alive for this long is treated as dead.
	DataAge time.Duration `yaml:"data_age,omitempty" json:"data_age,omitempty"`
}

// DefaultTimeouts are the timeouts used where a server leaves them zero.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Connect:   5 * time.Second,
		Request:   5 * time.Second,
		KeepAlive: 1 * time.Second,
		Session:   60 * time.Second,
		DataAge:   10 * time.Second,
	}
}

// Group is a set of subscription settings shared by mappings.
type Group struct {
	Name string `yaml:"name" json:"name"`
	// PublishingInterval of the group's subscription (default 100ms).
	PublishingInterval time.Duration `yaml:"publishing_interval,omitempty" json:"publishing_interval,omitempty"`
	// SamplingInterval for the group's items unless a mapping sets one.
	SamplingInterval time.Duration `yaml:"sampling_interval,omitempty" json:"sampling_interval,omitempty"`
	// QueueSize for the group's items unless a mapping sets one.
	QueueSize uint32 `yaml:"queue_size,omitempty" json:"queue_size,omitempty"`
	// MaxHold is the group's max_hold unless a mapping sets one (see
	// Mapping.MaxHold).
	MaxHold time.Duration `yaml:"max_hold,omitempty" json:"max_hold,omitempty"`

	Pos Pos `yaml:"-" json:"-"`
}

// NodeRef names one node on one configured server.
type NodeRef struct {
	Server string `yaml:"server" json:"server"`
	// Node is a NodeID string: ns=…;s=…, i=, g=, b=, or the namespace-URI
	// form nsu=urn:…;s=… (preferred). See ParseNodeID.
	Node string `yaml:"node" json:"node"`
}

// DeadbandType is absolute or percent (of the scaling's engineering range,
// or of the source's EURange when the server has one).
type DeadbandType string

// Deadband types.
const (
	DeadbandAbsolute DeadbandType = "absolute"
	DeadbandPercent  DeadbandType = "percent"
)

// Deadband suppresses changes smaller than Value.
type Deadband struct {
	Type  DeadbandType `yaml:"type" json:"type"`
	Value float64      `yaml:"value" json:"value"`
}

// OutOfRange says what to do with a value outside a range.
type OutOfRange string

// Out-of-range rules.
const (
	// Reject marks the value bad: nothing is written.
	Reject OutOfRange = "reject"
	// Clamp writes the nearest bound.
	Clamp OutOfRange = "clamp"
)

// Scaling maps raw source values linearly onto the engineering range:
// eng = EngLow + (raw-RawLow)*(EngHigh-EngLow)/(RawHigh-RawLow). For
// direction write the inverse is applied.
type Scaling struct {
	RawLow     float64    `yaml:"raw_low" json:"raw_low"`
	RawHigh    float64    `yaml:"raw_high" json:"raw_high"`
	EngLow     float64    `yaml:"eng_low" json:"eng_low"`
	EngHigh    float64    `yaml:"eng_high" json:"eng_high"`
	OutOfRange OutOfRange `yaml:"out_of_range,omitempty" json:"out_of_range,omitempty"` // default clamp
}

// Rounding says what to do when a conversion would lose a fraction
// (float → integer).
type Rounding string

// Rounding rules.
const (
	RoundReject   Rounding = "reject" // default: a value with a fraction is bad
	RoundNearest  Rounding = "round"
	RoundTruncate Rounding = "truncate"
)

// Conversion is the rule for converting a value to the target's type.
type Conversion struct {
	// To is an OPC UA built-in type name (Boolean, SByte, Byte, Int16,
	// UInt16, Int32, UInt32, Int64, UInt64, Float, Double, String,
	// DateTime, ByteString). Empty means the target's DataType, read from
	// the target once.
	To string `yaml:"to,omitempty" json:"to,omitempty"`
	// Rounding applies to float → integer conversions (default reject).
	Rounding Rounding `yaml:"rounding,omitempty" json:"rounding,omitempty"`
	// Overflow applies when the value does not fit the target type
	// (default reject).
	Overflow OutOfRange `yaml:"overflow,omitempty" json:"overflow,omitempty"`
}

// Mapping mirrors one source node to one target node.
type Mapping struct {
	// ID is a stable UUID. When absent in YAML it is derived from the
	// mapping's source and target (UUIDv5), so every node derives the same
	// one; import writes it out.
	ID        string    `yaml:"id,omitempty" json:"id,omitempty"`
	Source    NodeRef   `yaml:"source" json:"source"`
	Target    NodeRef   `yaml:"target" json:"target"`
	Direction Direction `yaml:"direction,omitempty" json:"direction,omitempty"` // default read
	Group     string    `yaml:"group,omitempty" json:"group,omitempty"`

	Deadband *Deadband   `yaml:"deadband,omitempty" json:"deadband,omitempty"`
	Scaling  *Scaling    `yaml:"scaling,omitempty" json:"scaling,omitempty"`
	Convert  *Conversion `yaml:"convert,omitempty" json:"convert,omitempty"`

	// SamplingInterval overrides the group's (0: group's or publishing
	// interval).
	SamplingInterval time.Duration `yaml:"sampling_interval,omitempty" json:"sampling_interval,omitempty"`
	// QueueSize overrides the group's (0: group's or 1).
	QueueSize uint32 `yaml:"queue_size,omitempty" json:"queue_size,omitempty"`
	// Enabled is true unless set false.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// OnBad is hold (default) or write_status.
	OnBad OnBad `yaml:"on_bad,omitempty" json:"on_bad,omitempty"`
	// MaxHold (opt-in; 0: the group's, else off) bounds how long the
	// target may hold a value that looks live while the source is bad or
	// unreachable: once held longer, the last good value is written again
	// with status UncertainLastUsableValue, and the next Good value from
	// the source replaces it. At least MinMaxHold when set.
	MaxHold time.Duration `yaml:"max_hold,omitempty" json:"max_hold,omitempty"`

	Pos Pos `yaml:"-" json:"-"`
}

// IsEnabled reports whether the mapping is enabled (default true).
func (m *Mapping) IsEnabled() bool { return m.Enabled == nil || *m.Enabled }

// Engine tunes the mirror engine. Zero values mean the defaults
// (DefaultEngine).
type Engine struct {
	// WriteBatch is the most values in one Write request (default 1000;
	// lowered to the server's MaxNodesPerWrite when it publishes one).
	WriteBatch int `yaml:"write_batch,omitempty" json:"write_batch,omitempty"`
	// WritesInFlight is the most Write requests outstanding per target
	// server (default 4).
	WritesInFlight int `yaml:"writes_in_flight,omitempty" json:"writes_in_flight,omitempty"`
	// SubscribeBatch is the most monitored items created per request
	// (default 1000; lowered to MaxMonitoredItemsPerCall).
	SubscribeBatch int `yaml:"subscribe_batch,omitempty" json:"subscribe_batch,omitempty"`
	// PublishingInterval for mappings without a group (default 100ms).
	PublishingInterval time.Duration `yaml:"publishing_interval,omitempty" json:"publishing_interval,omitempty"`
	// RetryMin and RetryMax bound the reconnect and quarantine backoff
	// (defaults 200ms and 10s); jitter is applied.
	RetryMin time.Duration `yaml:"retry_min,omitempty" json:"retry_min,omitempty"`
	RetryMax time.Duration `yaml:"retry_max,omitempty" json:"retry_max,omitempty"`
	// ClockSkew is the clock skew tolerated between sources (default 2s).
	// Within one source session values are taken in the server's order
	// whatever their timestamps; timestamps decide only between two
	// sources (a both conflict, a peer's cached value against a fresh
	// one), and only when they differ by more than this. A source whose
	// timestamps step back or run ahead of this node's clock by more than
	// this shows the mapping state "clock". Set it above the worst skew
	// between the two servers of a both mapping.
	ClockSkew time.Duration `yaml:"clock_skew,omitempty" json:"clock_skew,omitempty"`
}

// DefaultEngine returns the engine tuning used for zero fields.
func DefaultEngine() Engine {
	return Engine{
		WriteBatch:         1000,
		WritesInFlight:     4,
		SubscribeBatch:     1000,
		PublishingInterval: 100 * time.Millisecond,
		RetryMin:           200 * time.Millisecond,
		RetryMax:           10 * time.Second,
		ClockSkew:          2 * time.Second,
	}
}

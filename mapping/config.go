package mapping

import (
	"strings"
	"time"
)

// Server returns the server called name, or nil. The pointer is into
// c.Servers.
func (c *Config) Server(name string) *Server {
	for i := range c.Servers {
		if c.Servers[i].Name == name {
			return &c.Servers[i]
		}
	}
	return nil
}

// Group returns the group called name, or nil. The pointer is into
// c.Groups.
func (c *Config) Group(name string) *Group {
	for i := range c.Groups {
		if c.Groups[i].Name == name {
			return &c.Groups[i]
		}
	}
	return nil
}

// EngineSettings returns c.Engine with DefaultEngine filled in for zero
// fields.
func (c *Config) EngineSettings() Engine {
	e, d := c.Engine, DefaultEngine()
	if e.WriteBatch == 0 {
		e.WriteBatch = d.WriteBatch
	}
	if e.WritesInFlight == 0 {
		e.WritesInFlight = d.WritesInFlight
	}
	if e.SubscribeBatch == 0 {
		e.SubscribeBatch = d.SubscribeBatch
	}
	if e.PublishingInterval == 0 {
		e.PublishingInterval = d.PublishingInterval
	}
	if e.RetryMin == 0 {
		e.RetryMin = d.RetryMin
	}
	if e.RetryMax == 0 {
		e.RetryMax = d.RetryMax
	}
	if e.ClockSkew == 0 {
		e.ClockSkew = d.ClockSkew
	}
	return e
}

// EffectiveTimeouts returns s.Timeouts with DefaultTimeouts filled in for
// zero fields.
func (s *Server) EffectiveTimeouts() Timeouts {
	t, d := s.Timeouts, DefaultTimeouts()
	if t.Connect == 0 {
		t.Connect = d.Connect
	}
	if t.Request == 0 {
		t.Request = d.Request
	}
	if t.KeepAlive == 0 {
		t.KeepAlive = d.KeepAlive
	}
	if t.Session == 0 {
		t.Session = d.Session
	}
	if t.DataAge == 0 {
		t.DataAge = d.DataAge
	}
	return t
}

// EffectiveSettings are a mapping's subscription settings once mapping,
// group and engine defaults have been applied.
type EffectiveSettings struct {
	// Group is the mapping's group ("" for the engine's default
	// subscription). Mappings with equal Group and source server share a
	// subscription.
	Group string
	// PublishingInterval of the subscription: the group's, else the
	// engine's.
	PublishingInterval time.Duration
	// SamplingInterval of the monitored item: the mapping's, else the
	// group's, else the publishing interval.
	SamplingInterval time.Duration
	// QueueSize of the monitored item: the mapping's, else the group's,
	// else 1.
	QueueSize uint32
}

// Effective resolves m's subscription settings: the mapping overrides its
// group, which overrides the engine defaults. An unknown group counts as
// no group (Validate reports it).
func (c *Config) Effective(m *Mapping) EffectiveSettings {
	s := EffectiveSettings{
		Group:              m.Group,
		PublishingInterval: c.EngineSettings().PublishingInterval,
		QueueSize:          1,
	}
	if g := c.Group(m.Group); m.Group != "" && g != nil {
		if g.PublishingInterval > 0 {
			s.PublishingInterval = g.PublishingInterval
		}
		s.SamplingInterval = g.SamplingInterval
		if g.QueueSize > 0 {
			s.QueueSize = g.QueueSize
		}
	}
	if m.SamplingInterval > 0 {
		s.SamplingInterval = m.SamplingInterval
	}
	if s.SamplingInterval <= 0 {
		s.SamplingInterval = s.PublishingInterval
	}
	if m.QueueSize > 0 {
		s.QueueSize = m.QueueSize
	}
	return s
}

// fieldKey names one field of one list item (or of the whole config, with
// a zero item) for the field-line lookup.
type fieldKey struct {
	item Pos    // Pos of the server, group or mapping; zero for top level
	rel  string // path relative to the item, e.g. "target.node"
}

// fieldLines maps fields to the lines they were written on.
type fieldLines map[fieldKey]int

// pos returns the position of field rel of the item at item: the line the
// field was written on when ParseYAML recorded it, else the line of the
// nearest enclosing field it recorded (for a field that was left out),
// else the item's own.
func (c *Config) pos(item Pos, rel string) Pos {
	p := item
	if p.File == "" {
		p.File = c.File
	}
	for rel != "" {
		if l, ok := c.lines[fieldKey{item, rel}]; ok {
			p.Line = l
			break
		}
		rel = rel[:max(strings.LastIndexAny(rel, ".["), 0)]
	}
	return p
}

// MaxHold returns m's effective max_hold: the mapping's, else its
// group's; 0 means off.
func (c *Config) MaxHold(m *Mapping) time.Duration {
	if m.MaxHold > 0 {
		return m.MaxHold
	}
	if g := c.Group(m.Group); m.Group != "" && g != nil {
		return g.MaxHold
	}
	return 0
}

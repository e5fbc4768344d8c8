package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Canonical returns a deterministic text form of the mapping that leaves
// out Pos and spells every default the same way: direction "" and "read",
// on_bad "" and "hold", enabled nil and true, out_of_range "" and "clamp",
// rounding and overflow "" and "reject", an empty convert block and none,
// NodeIDs in their canonical form and the id in lower case. Two mappings
// with equal Canonical forms behave the same.
func (m *Mapping) Canonical() []byte {
	var b bytes.Buffer
	w := func(key, val string) {
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(val))
		b.WriteByte('\n')
	}
	w("id", strings.ToLower(m.ID))
	w("source.server", m.Source.Server)
	w("source.node", canonicalNode(m.Source.Node))
	w("target.server", m.Target.Server)
	w("target.node", canonicalNode(m.Target.Node))
	w("direction", orDefault(string(m.Direction), string(Read)))
	w("group", m.Group)
	if db := m.Deadband; db != nil {
		w("deadband.type", string(db.Type))
		w("deadband.value", canonFloat(db.Value))
	}
	if sc := m.Scaling; sc != nil {
		w("scaling.raw_low", canonFloat(sc.RawLow))
		w("scaling.raw_high", canonFloat(sc.RawHigh))
		w("scaling.eng_low", canonFloat(sc.EngLow))
		w("scaling.eng_high", canonFloat(sc.EngHigh))
		w("scaling.out_of_range", orDefault(string(sc.OutOfRange), string(Clamp)))
	}
	if cv := m.Convert; cv != nil {
		n := Conversion{
			To:       cv.To,
			Rounding: Rounding(orDefault(string(cv.Rounding), string(RoundReject))),
			Overflow: OutOfRange(orDefault(string(cv.Overflow), string(Reject))),
		}
		// A conversion of defaults only is the same as none.
		if n != (Conversion{Rounding: RoundReject, Overflow: Reject}) {
			w("convert.to", n.To)
			w("convert.rounding", string(n.Rounding))
			w("convert.overflow", string(n.Overflow))
		}
	}
	w("sampling_interval", strconv.FormatInt(int64(m.SamplingInterval), 10))
	w("queue_size", strconv.FormatUint(uint64(m.QueueSize), 10))
	w("enabled", strconv.FormatBool(m.IsEnabled()))
	w("on_bad", orDefault(string(m.OnBad), string(Hold)))
	if m.MaxHold != 0 {
		// Written only when set: hashes of configs without it stay as
		// they were.
		w("max_hold", strconv.FormatInt(int64(m.MaxHold), 10))
	}
	return b.Bytes()
}

// canonFloat formats f for the canonical form; -0 is written as 0, as
// they behave the same (and YAML cannot keep the sign of -0).
func canonFloat(f float64) string {
	if f == 0 {
		f = 0
	}
	return fmtFloat(f)
}

// Hash returns the hex SHA-256 of the mapping's Canonical form.
func (m *Mapping) Hash() string {
	sum := sha256.Sum256(m.Canonical())
	return hex.EncodeToString(sum[:])
}

// Hash returns the hex SHA-256 of the whole configuration in canonical
// form: servers and groups sorted by name, the engine with defaults filled
// in, and mappings sorted by id. Pos, File and the order of servers,
// groups and mappings do not count; the order of a server's endpoints
// does. The config holds no secrets (only where to find them), so the
// hash reveals none.
func (c *Config) Hash() string {
	h := sha256.New()
	w := func(key, val string) {
		fmt.Fprintf(h, "%s=%s\n", key, strconv.Quote(val))
	}
	dur := func(d time.Duration) string { return strconv.FormatInt(int64(d), 10) }

	servers := make([]*Server, len(c.Servers))
	for i := range c.Servers {
		servers[i] = &c.Servers[i]
	}
	sort.SliceStable(servers, func(i, j int) bool { return servers[i].Name < servers[j].Name })
	for _, s := range servers {
		w("server", s.Name)
		for _, ep := range s.Endpoints {
			w("endpoint", ep)
		}
		w("security_policy", orDefault(s.SecurityPolicy, "None"))
		w("security_mode", orDefault(s.SecurityMode, "None"))
		w("auth.type", orDefault(s.Auth.Type, "anonymous"))
		w("auth.username", s.Auth.Username)
		w("auth.password_env", s.Auth.PasswordEnv)
		w("auth.password_file", s.Auth.PasswordFile)
		if s.Auth.CertFile != "" || s.Auth.KeyFile != "" {
			w("auth.cert_file", s.Auth.CertFile)
			w("auth.key_file", s.Auth.KeyFile)
		}
		for _, t := range s.TrustedCertificates {
			w("trusted_certificate", NormalizeThumbprint(t))
		}
		t := s.EffectiveTimeouts()
		w("timeouts", strings.Join([]string{dur(t.Connect), dur(t.Request), dur(t.KeepAlive), dur(t.Session), dur(t.DataAge)}, ","))
		if s.IsSet() {
			// Written for sets only: single servers hash as before.
			w("redundancy", fmt.Sprintf("%s,%d,%t", s.SetMode(), s.SetMargin(), s.Redundancy.Discover))
		}
	}

	groups := make([]*Group, len(c.Groups))
	for i := range c.Groups {
		groups[i] = &c.Groups[i]
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	for _, g := range groups {
		w("group", g.Name)
		w("group.publishing_interval", dur(g.PublishingInterval))
		w("group.sampling_interval", dur(g.SamplingInterval))
		w("group.queue_size", strconv.FormatUint(uint64(g.QueueSize), 10))
		if g.MaxHold != 0 {
			w("group.max_hold", dur(g.MaxHold))
		}
	}

	e := c.EngineSettings()
	w("engine", fmt.Sprintf("%d,%d,%d,%d,%d,%d", e.WriteBatch, e.WritesInFlight, e.SubscribeBatch,
		e.PublishingInterval, e.RetryMin, e.RetryMax))
	if e.ClockSkew != DefaultEngine().ClockSkew {
		// Only when set: hashes of configs without it stay as they were.
		w("engine.clock_skew", dur(e.ClockSkew))
	}
	if d := c.Drill; d != nil {
		// Only when set: hashes of configs without a schedule stay as they were.
		w("drill", fmt.Sprintf("%d,%s", d.Every, d.At))
	}

	ms := make([][]byte, len(c.Mappings))
	for i := range c.Mappings {
		ms[i] = c.Mappings[i].Canonical()
	}
	// The canonical form starts with the id, so sorting the forms sorts by
	// id (and keeps the order total when ids repeat).
	sort.Slice(ms, func(i, j int) bool { return bytes.Compare(ms[i], ms[j]) < 0 })
	for _, m := range ms {
		fmt.Fprintf(h, "mapping\n%s", m)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Delta is the difference between two configurations' mappings, keyed by
// mapping id.
type Delta struct {
	// Added are mappings only in the new config, in its order.
	Added []Mapping
	// Changed are the new versions of mappings whose Canonical form
	// changed, in the new config's order.
	Changed []Mapping
	// Removed are mappings only in the old config, in its order.
	Removed []Mapping
	// Settings names what else changed, in a fixed order: "engine",
	// "server NAME" and "group NAME" (added, removed or changed).
	Settings []string
}

// Diff compares the mappings of old and new by id (case-insensitive), and
// names the engine, servers and groups that changed (Settings). Either config may be nil (no mappings). Both
// should be valid: with repeated ids the result is unspecified.
func Diff(old, new *Config) Delta {
	var d Delta
	oldByID := map[string]*Mapping{}
	if old != nil {
		for i := range old.Mappings {
			oldByID[strings.ToLower(old.Mappings[i].ID)] = &old.Mappings[i]
		}
	}
	newIDs := map[string]bool{}
	if new != nil {
		for i := range new.Mappings {
			m := &new.Mappings[i]
			id := strings.ToLower(m.ID)
			newIDs[id] = true
			o, ok := oldByID[id]
			switch {
			case !ok:
				d.Added = append(d.Added, *m)
			case !bytes.Equal(o.Canonical(), m.Canonical()):
				d.Changed = append(d.Changed, *m)
			}
		}
	}
	if old != nil {
		for i := range old.Mappings {
			if !newIDs[strings.ToLower(old.Mappings[i].ID)] {
				d.Removed = append(d.Removed, old.Mappings[i])
			}
		}
	}
	d.Settings = diffSettings(old, new)
	return d
}

// diffSettings names the engine, servers and groups that differ between
// old and new (either may be nil), each compared in canonical form (as
// Config.Hash sees it).
func diffSettings(old, new *Config) []string {
	if old == nil {
		old = &Config{}
	}
	if new == nil {
		new = &Config{}
	}
	var out []string
	if old.EngineSettings() != new.EngineSettings() {
		out = append(out, "engine")
	}
	keys := func(c *Config) (map[string]string, map[string]string) {
		srv, grp := map[string]string{}, map[string]string{}
		for _, s := range c.Servers {
			srv[s.Name] = (&Config{Servers: []Server{s}}).Hash()
		}
		for _, g := range c.Groups {
			grp[g.Name] = (&Config{Groups: []Group{g}}).Hash()
		}
		return srv, grp
	}
	oldS, oldG := keys(old)
	newS, newG := keys(new)
	diff := func(kind string, a, b map[string]string) {
		var names []string
		for name, h := range a {
			if b[name] != h {
				names = append(names, name)
			}
		}
		for name := range b {
			if _, ok := a[name]; !ok {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			out = append(out, kind+" "+name)
		}
	}
	diff("server", oldS, newS)
	diff("group", oldG, newG)
	return out
}

// Empty reports whether the delta has no changes.
func (d Delta) Empty() bool {
	return len(d.Added) == 0 && len(d.Changed) == 0 && len(d.Removed) == 0 && len(d.Settings) == 0
}

// String summarises the delta, e.g. "2 added, 1 changed, 0 removed",
// "0 added, 0 changed, 0 removed; changed: engine, group fast", or "no
// changes".
func (d Delta) String() string {
	if d.Empty() {
		return "no changes"
	}
	out := fmt.Sprintf("%d added, %d changed, %d removed", len(d.Added), len(d.Changed), len(d.Removed))
	if len(d.Settings) > 0 {
		out += "; changed: " + strings.Join(d.Settings, ", ")
	}
	return out
}

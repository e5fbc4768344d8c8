package mapping

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Allowed values of the enumerated fields. "" always means the default.
var (
	securityPolicies = []string{"None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"}
	securityModes    = []string{"None", "Sign", "SignAndEncrypt"}
	authTypes        = []string{"anonymous", "username", "certificate"}
	directions       = []string{string(Read), string(Write), string(Both)}
	onBads           = []string{string(Hold), string(WriteStatus)}
	deadbandTypes    = []string{string(DeadbandAbsolute), string(DeadbandPercent)}
	outOfRanges      = []string{string(Reject), string(Clamp)}
	roundings        = []string{string(RoundReject), string(RoundNearest), string(RoundTruncate)}
	// builtinTypes are the OPC UA built-in type names Conversion.To accepts
	// (Part 6, 5.1.2).
	builtinTypes = []string{"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32",
		"Int64", "UInt64", "Float", "Double", "String", "DateTime", "ByteString"}
)

// validName is the syntax of server and group names.
var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Validate checks the whole configuration and returns nil or Errors
// listing every problem at once, in file and line order, each with file,
// line, field path and value:
//
//   - servers: names (present, unique, [A-Za-z0-9_.-]+), endpoints
//     (opc.tcp://host:port), security policy and mode (None goes with
//     None only), auth (username needs a username and exactly one of
//     password_env and password_file), timeouts not negative;
//   - groups: names, intervals not negative;
//   - mappings: ids (UUIDs, unique), known servers and groups, NodeIDs,
//     the enumerated fields, deadband and scaling ranges, conversion
//     types, a target that is its own source (ErrSelfLoop);
//   - between enabled mappings: a node written by two mappings
//     (ErrDuplicateTarget; read writes the target, write the source, both
//     both) and values copied around in a circle (ErrLoop, e.g. A→B plus
//     B→A, which should be one mapping with direction both);
//   - engine: no negative fields, retry_min ≤ retry_max.
//
// Nodes are compared by server and canonical NodeID string, so
// "ns=2;s=x" on one mapping and "nsu=…;s=x" on another are not recognised
// as the same node: that needs the server's NamespaceArray.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.servers()
	v.groups()
	v.engine()
	v.drill()
	v.mappings()
	v.flows()
	v.errs.errs.sortByPos()
	return v.errs.errs.err()
}

// validator holds the state of one Validate run.
type validator struct {
	c    *Config
	errs errorList
}

// add records a problem with field rel of the item at item, whose path is
// prefix.
func (v *validator) add(item Pos, prefix, rel, value string, sentinel error, format string, args ...any) {
	v.errs.add(v.c.pos(item, rel), joinPath(prefix, rel), value, sentinel, format, args...)
}

// lineOf describes where an item is, for messages that point at another
// item ("line 12", or "" when unknown).
func lineOf(p Pos) string {
	if p.Line == 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", p.Line)
}

// checkName validates a server or group name and its uniqueness.
func (v *validator) checkName(kind, name string, item Pos, prefix string, seen map[string]Pos) {
	switch {
	case name == "":
		v.add(item, prefix, "name", "", ErrMissing, "every %s needs a name", kind)
	case !validName.MatchString(name):
		v.add(item, prefix, "name", name, ErrInvalidValue, "%s names may only hold letters, digits, '_', '.' and '-'", kind)
	default:
		if first, dup := seen[name]; dup {
			v.add(item, prefix, "name", name, ErrDuplicate, "%s name already used%s", kind, lineOf(first))
			return
		}
		seen[name] = item
	}
}

// checkEnum validates an enumerated value; "" (the default) is fine.
func (v *validator) checkEnum(item Pos, prefix, rel, value string, allowed []string, what string) {
	if value == "" || contains(allowed, value) {
		return
	}
	v.add(item, prefix, rel, value, ErrInvalidValue, "unknown %s%s", what, suggest(value, allowed))
}

// checkDuration reports a negative duration.
func (v *validator) checkDuration(item Pos, prefix, rel string, d time.Duration) {
	if d < 0 {
		v.add(item, prefix, rel, d.String(), ErrInvalidValue, "must not be negative")
	}
}

// MinMaxHold is the shortest max_hold accepted: a shorter one would mark
// a target Uncertain on a brief source reconnect (a resync takes ~0.5 s).
const MinMaxHold = time.Second

// checkMaxHold checks a max_hold: 0 (off) or at least MinMaxHold.
func (v *validator) checkMaxHold(item Pos, prefix string, d time.Duration) {
	if d < 0 {
		v.add(item, prefix, "max_hold", d.String(), ErrInvalidValue, "must not be negative")
	} else if d > 0 && d < MinMaxHold {
		v.add(item, prefix, "max_hold", d.String(), ErrInvalidValue, "must be 0 (off) or at least %s", MinMaxHold)
	}
}

// servers checks the servers.
func (v *validator) servers() {
	seen := map[string]Pos{}
	for i := range v.c.Servers {
		s := &v.c.Servers[i]
		p := fmt.Sprintf("servers[%d]", i)
		v.checkName("server", s.Name, s.Pos, p, seen)

		if len(s.Endpoints) == 0 {
			v.add(s.Pos, p, "endpoints", "", ErrMissing, "needs at least one endpoint, e.g. opc.tcp://host:4840")
		}
		eps := map[string]bool{}
		for j, ep := range s.Endpoints {
			rel := fmt.Sprintf("endpoints[%d]", j)
			if msg := checkEndpoint(ep); msg != "" {
				v.add(s.Pos, p, rel, ep, ErrInvalidValue, "%s", msg)
			} else if eps[ep] {
				v.add(s.Pos, p, rel, ep, ErrDuplicate, "endpoint listed twice")
			}
			eps[ep] = true
		}

		v.checkEnum(s.Pos, p, "security_policy", s.SecurityPolicy, securityPolicies, "security policy")
		v.checkEnum(s.Pos, p, "security_mode", s.SecurityMode, securityModes, "security mode")
		policy, mode := orDefault(s.SecurityPolicy, "None"), orDefault(s.SecurityMode, "None")
		if contains(securityPolicies, policy) && contains(securityModes, mode) {
			switch {
			case policy == "None" && mode != "None":
				v.add(s.Pos, p, "security_mode", mode, ErrInvalidValue,
					"security mode %s needs a security_policy other than None", mode)
			case policy != "None" && mode == "None":
				v.add(s.Pos, p, "security_policy", policy, ErrInvalidValue,
					"security policy %s needs security_mode Sign or SignAndEncrypt", policy)
			}
		}

		v.checkAuth(s, p)
		for j, tp := range s.TrustedCertificates {
			rel := fmt.Sprintf("trusted_certificates[%d]", j)
			if n := NormalizeThumbprint(tp); !isHex(n) || (len(n) != 40 && len(n) != 64) {
				v.add(s.Pos, p, rel, tp, ErrInvalidValue,
					"want a certificate thumbprint: SHA-1 (40 hex digits) or SHA-256 (64 hex digits), as `uamirror pki list` shows")
			}
		}

		t := s.Timeouts
		v.checkDuration(s.Pos, p, "timeouts.connect", t.Connect)
		v.checkDuration(s.Pos, p, "timeouts.request", t.Request)
		v.checkDuration(s.Pos, p, "timeouts.keepalive", t.KeepAlive)
		v.checkDuration(s.Pos, p, "timeouts.session", t.Session)
		v.checkDuration(s.Pos, p, "timeouts.data_age", t.DataAge)

		r := s.Redundancy
		v.checkEnum(s.Pos, p, "redundancy.mode", r.Mode, []string{SetHot, SetWarm}, "server set mode")
		if r.Margin != nil && (*r.Margin < 0 || *r.Margin > 255) {
			v.add(s.Pos, p, "redundancy.margin", strconv.Itoa(*r.Margin), ErrInvalidValue,
				"must be a ServiceLevel difference in 0..255")
		}
	}
}

// NormalizeThumbprint returns a certificate thumbprint in lower-case hex
// without the separators (':' and ' ') tools put between bytes.
func NormalizeThumbprint(s string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return s != ""
}

// checkAuth checks a server's user identity.
func (v *validator) checkAuth(s *Server, p string) {
	a := s.Auth
	if a.Type != "certificate" {
		if a.CertFile != "" {
			v.add(s.Pos, p, "auth.cert_file", a.CertFile, ErrInvalidValue, "a user certificate needs auth type certificate")
		}
		if a.KeyFile != "" {
			v.add(s.Pos, p, "auth.key_file", a.KeyFile, ErrInvalidValue, "a user key needs auth type certificate")
		}
	}
	switch a.Type {
	case "", "anonymous":
		if a.Username != "" {
			v.add(s.Pos, p, "auth.username", a.Username, ErrInvalidValue, "anonymous auth takes no username; set type: username")
		}
		if a.PasswordEnv != "" || a.PasswordFile != "" {
			rel := "auth.password_env"
			if a.PasswordEnv == "" {
				rel = "auth.password_file"
			}
			v.add(s.Pos, p, rel, "", ErrInvalidValue, "anonymous auth takes no password; set type: username")
		}
	case "username":
		if a.Username == "" {
			v.add(s.Pos, p, "auth.username", "", ErrMissing, "auth type username needs a username")
		}
		switch {
		case a.PasswordEnv == "" && a.PasswordFile == "":
			v.add(s.Pos, p, "auth.type", a.Type, ErrMissing,
				"auth type username needs password_env (an environment variable) or password_file (a file) holding the password")
		case a.PasswordEnv != "" && a.PasswordFile != "":
			v.add(s.Pos, p, "auth.password_file", a.PasswordFile, ErrInvalidValue,
				"give only one of password_env and password_file")
		}
	case "certificate":
		if a.CertFile == "" {
			v.add(s.Pos, p, "auth.cert_file", "", ErrMissing, "auth type certificate needs cert_file (the user certificate)")
		}
		if a.KeyFile == "" {
			v.add(s.Pos, p, "auth.key_file", "", ErrMissing, "auth type certificate needs key_file (the user certificate's key)")
		}
		if a.Username != "" || a.PasswordEnv != "" || a.PasswordFile != "" {
			v.add(s.Pos, p, "auth.type", a.Type, ErrInvalidValue, "auth type certificate takes no username or password")
		}
	default:
		v.checkEnum(s.Pos, p, "auth.type", a.Type, authTypes, "auth type")
	}
}

// checkEndpoint returns what is wrong with an endpoint URL, or "".
func checkEndpoint(ep string) string {
	const want = "must be opc.tcp://host:port"
	u, err := url.Parse(ep)
	switch {
	case ep == "":
		return "empty endpoint; " + want
	case err != nil:
		return want
	case u.Scheme != "opc.tcp":
		return want + " (scheme opc.tcp)"
	case u.Opaque != "" || u.Hostname() == "":
		return want + " (no host)"
	case u.User != nil:
		return want + " (no user in the URL: use auth)"
	case u.RawQuery != "" || u.Fragment != "":
		return want + " (no query or fragment)"
	}
	port, err := strconv.Atoi(u.Port())
	if u.Port() == "" || err != nil || port < 1 || port > 65535 {
		return want + " (port 1..65535 required)"
	}
	return ""
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// groups checks the groups.
func (v *validator) groups() {
	seen := map[string]Pos{}
	for i := range v.c.Groups {
		g := &v.c.Groups[i]
		p := fmt.Sprintf("groups[%d]", i)
		v.checkName("group", g.Name, g.Pos, p, seen)
		v.checkDuration(g.Pos, p, "publishing_interval", g.PublishingInterval)
		v.checkDuration(g.Pos, p, "sampling_interval", g.SamplingInterval)
		v.checkMaxHold(g.Pos, p, g.MaxHold)
	}
}

// engine checks the engine tuning.
func (v *validator) engine() {
	e := v.c.Engine
	var top Pos
	for _, f := range []struct {
		rel string
		n   int
	}{{"write_batch", e.WriteBatch}, {"writes_in_flight", e.WritesInFlight}, {"subscribe_batch", e.SubscribeBatch}} {
		if f.n < 0 {
			v.add(top, "", "engine."+f.rel, strconv.Itoa(f.n), ErrInvalidValue, "must not be negative")
		}
	}
	v.checkDuration(top, "", "engine.publishing_interval", e.PublishingInterval)
	v.checkDuration(top, "", "engine.retry_min", e.RetryMin)
	v.checkDuration(top, "", "engine.retry_max", e.RetryMax)
	v.checkDuration(top, "", "engine.clock_skew", e.ClockSkew)
	if eff := v.c.EngineSettings(); e.RetryMin >= 0 && e.RetryMax >= 0 && eff.RetryMin > eff.RetryMax {
		v.add(top, "", "engine.retry_min", eff.RetryMin.String(), ErrBadRange,
			"retry_min is above retry_max (%s)", eff.RetryMax)
	}
}

// mappings checks every mapping on its own, and ids across mappings.
func (v *validator) mappings() {
	servers := make([]string, 0, len(v.c.Servers))
	for _, s := range v.c.Servers {
		if s.Name != "" {
			servers = append(servers, s.Name)
		}
	}
	groups := make([]string, 0, len(v.c.Groups))
	for _, g := range v.c.Groups {
		if g.Name != "" {
			groups = append(groups, g.Name)
		}
	}
	ids := map[string]int{}
	for i := range v.c.Mappings {
		m := &v.c.Mappings[i]
		p := fmt.Sprintf("mappings[%d]", i)

		switch {
		case m.ID == "":
			v.add(m.Pos, p, "id", "", ErrMissing, "mapping has no id (ParseYAML derives one, AssignIDs assigns one)")
		case !isUUID(m.ID):
			v.add(m.Pos, p, "id", m.ID, ErrInvalidValue, "id must be a UUID such as 0b5e1f6e-9a55-4c4e-8d31-3f0c9d5b6a10")
		default:
			key := strings.ToLower(m.ID)
			if j, dup := ids[key]; dup {
				o := &v.c.Mappings[j]
				hint := ""
				if DeriveID(o.Source, o.Target) == key {
					hint = "; both map the same source to the same target"
				}
				v.add(m.Pos, p, "id", m.ID, ErrDuplicate, "id already used by mappings[%d]%s%s", j, lineOf(o.Pos), hint)
			} else {
				ids[key] = i
			}
		}

		v.checkRef(m.Pos, p, "source", m.Source, servers)
		v.checkRef(m.Pos, p, "target", m.Target, servers)
		if m.Source.Server != "" && m.Source.Server == m.Target.Server && m.Source.Node != "" &&
			canonicalNode(m.Source.Node) == canonicalNode(m.Target.Node) {
			v.add(m.Pos, p, "target.node", m.Target.Node, ErrSelfLoop, "target is the mapping's own source")
		}
		if m.Group != "" && !contains(groups, m.Group) {
			v.add(m.Pos, p, "group", m.Group, ErrUnknownGroup, "no group of that name%s", suggest(m.Group, groups))
		}
		v.checkEnum(m.Pos, p, "direction", string(m.Direction), directions, "direction")
		v.checkEnum(m.Pos, p, "on_bad", string(m.OnBad), onBads, "on_bad behaviour")
		v.checkDuration(m.Pos, p, "sampling_interval", m.SamplingInterval)
		v.checkMaxHold(m.Pos, p, m.MaxHold)
		v.checkDeadband(m, p)
		v.checkScaling(m, p)
		if cv := m.Convert; cv != nil {
			if cv.To != "" && !contains(builtinTypes, cv.To) {
				v.add(m.Pos, p, "convert.to", cv.To, ErrInvalidValue, "not an OPC UA built-in type name%s", suggest(cv.To, builtinTypes))
			}
			v.checkEnum(m.Pos, p, "convert.rounding", string(cv.Rounding), roundings, "rounding")
			v.checkEnum(m.Pos, p, "convert.overflow", string(cv.Overflow), outOfRanges, "overflow rule")
		}
	}
}

// isUUID reports whether s is a UUID in the 8-4-4-4-12 form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// checkRef checks a source or target.
func (v *validator) checkRef(item Pos, prefix, end string, r NodeRef, servers []string) {
	switch {
	case r.Server == "":
		v.add(item, prefix, end+".server", "", ErrMissing, "%s needs a server", end)
	case !contains(servers, r.Server):
		v.add(item, prefix, end+".server", r.Server, ErrUnknownServer, "no server of that name%s", suggest(r.Server, servers))
	}
	if r.Node == "" {
		v.add(item, prefix, end+".node", "", ErrMissing, "%s needs a node, e.g. nsu=urn:example;s=Name", end)
	} else if _, reason := parseNodeID(r.Node); reason != "" {
		v.add(item, prefix, end+".node", r.Node, ErrInvalidNodeID, "invalid node id: %s", reason)
	}
}

// finite reports whether f is neither NaN nor infinite.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// fmtFloat formats a float the way the CSV and YAML forms write it.
func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// checkDeadband checks a mapping's deadband.
func (v *validator) checkDeadband(m *Mapping, p string) {
	db := m.Deadband
	if db == nil {
		return
	}
	if db.Type == "" {
		v.add(m.Pos, p, "deadband.type", "", ErrMissing, "deadband needs a type: absolute or percent")
	} else {
		v.checkEnum(m.Pos, p, "deadband.type", string(db.Type), deadbandTypes, "deadband type")
	}
	switch {
	case !finite(db.Value) || db.Value < 0:
		v.add(m.Pos, p, "deadband.value", fmtFloat(db.Value), ErrBadRange, "deadband must be a number ≥ 0")
	case db.Type == DeadbandPercent && db.Value > 100:
		v.add(m.Pos, p, "deadband.value", fmtFloat(db.Value), ErrBadRange, "percent deadband must be in 0..100")
	}
}

// checkScaling checks a mapping's scaling.
func (v *validator) checkScaling(m *Mapping, p string) {
	sc := m.Scaling
	if sc == nil {
		return
	}
	ok := true
	for _, f := range []struct {
		rel string
		v   float64
	}{{"raw_low", sc.RawLow}, {"raw_high", sc.RawHigh}, {"eng_low", sc.EngLow}, {"eng_high", sc.EngHigh}} {
		if !finite(f.v) {
			v.add(m.Pos, p, "scaling."+f.rel, fmtFloat(f.v), ErrBadRange, "must be a finite number")
			ok = false
		}
	}
	if ok && sc.RawLow == sc.RawHigh {
		v.add(m.Pos, p, "scaling.raw_high", fmtFloat(sc.RawHigh), ErrBadRange, "raw_high equals raw_low: the raw range is empty")
	}
	if ok && sc.EngLow == sc.EngHigh {
		v.add(m.Pos, p, "scaling.eng_high", fmtFloat(sc.EngHigh), ErrBadRange, "eng_high equals eng_low: the engineering range is empty")
	}
	v.checkEnum(m.Pos, p, "scaling.out_of_range", string(sc.OutOfRange), outOfRanges, "out_of_range rule")
}

// nodeKey identifies a node on a server for the write and loop checks.
type nodeKey struct{ server, node string }

// String formats the key as server:node.
func (k nodeKey) String() string { return k.server + ":" + k.node }

// edge is a flow of values from a node to a node by a mapping.
type edge struct {
	from, to nodeKey
	mapping  int
	rel      string // the field of the written end: "target.node" or "source.node"
}

// edges lists the flows of mapping m: read copies source to target,
// write target to source, both does both.
func edges(i int, m *Mapping) []edge {
	src := nodeKey{m.Source.Server, canonicalNode(m.Source.Node)}
	tgt := nodeKey{m.Target.Server, canonicalNode(m.Target.Node)}
	fwd := edge{from: src, to: tgt, mapping: i, rel: "target.node"}
	back := edge{from: tgt, to: src, mapping: i, rel: "source.node"}
	switch m.Direction {
	case Write:
		return []edge{back}
	case Both:
		return []edge{fwd, back}
	default:
		return []edge{fwd}
	}
}

// flows checks the enabled mappings together: every node has at most one
// writer, and no values go round in a circle.
func (v *validator) flows() {
	ms := v.c.Mappings
	writer := map[nodeKey]edge{} // written node → the one flow writing it
	for i := range ms {
		m := &ms[i]
		if !m.IsEnabled() || m.Source.Server == "" || m.Target.Server == "" || !validNode(m.Source.Node) || !validNode(m.Target.Node) {
			continue // disabled, or already reported as incomplete
		}
		es := edges(i, m)
		if es[0].from == es[0].to {
			continue // self loop, reported already
		}
		conflict := false
		for _, e := range es {
			if w, ok := writer[e.to]; ok {
				v.add(m.Pos, fmt.Sprintf("mappings[%d]", i), e.rel, nodeOf(m, e.rel), ErrDuplicateTarget,
					"node %s is also written by mappings[%d]%s", e.to, w.mapping, lineOf(ms[w.mapping].Pos))
				conflict = true
			}
		}
		if conflict {
			continue
		}
		for _, e := range es {
			writer[e.to] = e
		}
	}

	// Every node has at most one writer now, so following writers
	// backwards from any node either ends or runs into a cycle.
	const (
		unseen = iota
		onPath
		done
	)
	state := map[nodeKey]int{}
	starts := make([]nodeKey, 0, len(writer))
	for k := range writer {
		starts = append(starts, k)
	}
	// Walk in file order so that reports are deterministic.
	sort.Slice(starts, func(i, j int) bool {
		a, b := writer[starts[i]], writer[starts[j]]
		if a.mapping != b.mapping {
			return a.mapping < b.mapping
		}
		return a.rel > b.rel // target.node before source.node
	})
	for _, start := range starts {
		var path []nodeKey // path[k] is written from path[k+1]
		n := start
		for state[n] == unseen {
			state[n] = onPath
			path = append(path, n)
			w, ok := writer[n]
			if !ok {
				break
			}
			n = w.from
		}
		if state[n] == onPath {
			// n is on the current path: the path from n on is a cycle.
			for k, x := range path {
				if x == n {
					v.reportLoop(path[k:], writer)
					break
				}
			}
		}
		for _, x := range path {
			state[x] = done
		}
	}
}

// validNode reports whether s is a NodeID string that parses.
func validNode(s string) bool {
	_, reason := parseNodeID(s)
	return reason == ""
}

// nodeOf returns the node string of the end named by rel.
func nodeOf(m *Mapping, rel string) string {
	if rel == "source.node" {
		return m.Source.Node
	}
	return m.Target.Node
}

// reportLoop reports a cycle of written nodes (each written from the
// previous one), unless it is the two ends of a single both mapping.
func (v *validator) reportLoop(cycle []nodeKey, writer map[nodeKey]edge) {
	last := -1
	same := true
	for _, n := range cycle {
		i := writer[n].mapping
		if last >= 0 && i != last {
			same = false
		}
		last = max(last, i)
	}
	if same {
		return // a both mapping copies each way: echo suppression handles it
	}
	m := &v.c.Mappings[last]
	var closing edge
	for _, n := range cycle {
		if w := writer[n]; w.mapping == last {
			closing = w
			break
		}
	}
	p := fmt.Sprintf("mappings[%d]", last)
	if len(cycle) == 2 {
		other := writer[closing.from].mapping
		v.add(m.Pos, p, closing.rel, nodeOf(m, closing.rel), ErrLoop,
			"copies %s to %s while mappings[%d]%s copies it back: make them one mapping with direction: both",
			closing.from, closing.to, other, lineOf(v.c.Mappings[other].Pos))
		return
	}
	// Describe the circle in flow order, starting where the closing
	// mapping reads.
	flow := make([]nodeKey, len(cycle))
	for k, n := range cycle {
		flow[len(cycle)-1-k] = n
	}
	for flow[0] != closing.from {
		flow = append(flow[1:], flow[0])
	}
	var nodes []string
	var idx []int
	for k, n := range flow {
		nodes = append(nodes, n.String())
		idx = append(idx, writer[flow[(k+1)%len(flow)]].mapping)
	}
	nodes = append(nodes, flow[0].String())
	sort.Ints(idx)
	names := make([]string, len(idx))
	for k, i := range idx {
		names[k] = fmt.Sprintf("mappings[%d]", i)
	}
	v.add(m.Pos, p, closing.rel, nodeOf(m, closing.rel), ErrLoop,
		"values go round in a circle %s through %s; break the loop", strings.Join(nodes, " → "), strings.Join(names, ", "))
}

// Warnings returns conditions that are valid but risky, one line each
// ("file:line: servers[i].auth: …"): a percent deadband without scaling
// (its range is the source's EURange, known only at run time); a username login over security
// None/None, where the password is protected only by the certificate the
// server presents (the engine sends it only when that certificate is
// trusted or pinned, and only to a session that presents that same
// certificate), and the session itself is neither signed nor encrypted.
func (c *Config) Warnings() []string {
	var out []string
	for i, m := range c.Mappings {
		if m.Deadband == nil || m.Deadband.Type != DeadbandPercent || m.Scaling != nil {
			continue
		}
		at := fmt.Sprintf("mappings[%d].deadband", i)
		if m.Pos.File != "" {
			at = fmt.Sprintf("%s:%d: %s", m.Pos.File, m.Pos.Line, at)
		}
		out = append(out, fmt.Sprintf("%s: warning: percent deadband without scaling: its range is the source node's EURange, "+
			"read at run time; on a source without one every change passes (give the mapping a scaling range, or use an absolute deadband)", at))
	}
	for i, s := range c.Servers {
		if s.Auth.Type != "username" || orDefault(s.SecurityPolicy, "None") != "None" || orDefault(s.SecurityMode, "None") != "None" {
			continue
		}
		at := fmt.Sprintf("servers[%d].auth", i)
		if s.Pos.File != "" {
			at = fmt.Sprintf("%s:%d: %s", s.Pos.File, s.Pos.Line, at)
		}
		out = append(out, fmt.Sprintf("%s: warning: server %s: username %q over security None/None: the password is sent only if the "+
			"server's certificate is trusted (--pki, trusted_certificates), and a None channel does not protect the session; use security_mode SignAndEncrypt",
			at, s.Name, s.Auth.Username))
	}
	return out
}

// drill checks the drill schedule.
func (v *validator) drill() {
	d := v.c.Drill
	if d == nil {
		return
	}
	var top Pos
	if d.Every < MinDrillEvery {
		v.add(top, "", "drill.every", d.Every.String(), ErrInvalidValue, "must be at least %s (a drill is a real switchover)", MinDrillEvery)
	}
	if _, _, err := ParseDrillAt(d.At); err != nil {
		v.add(top, "", "drill.at", d.At, ErrInvalidValue, "%s", err.Error())
	}
}

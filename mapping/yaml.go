package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"
)

// Load reads and parses the YAML configuration in the file at path. It
// does not call Validate.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: read config: %w", err)
	}
	return ParseYAML(data, path)
}

// ParseYAML parses a YAML configuration; file names it in errors and in
// the Pos of every server, group and mapping. It checks structure only:
// syntax, unknown keys (at every level), value types, secrets written into
// the file. On failure it returns nil and Errors listing every problem
// found. Cross-field checks are Validate's; ParseAndValidate does both in
// one run.
//
// A mapping without an id gets DeriveID(source, target). Anchors, aliases
// and merge keys (<<) are supported. Durations are Go duration strings
// ("100ms", "5s").
func ParseYAML(data []byte, file string) (*Config, error) {
	c, errs, _ := parseYAML(data, file)
	if errs != nil {
		return nil, errs
	}
	return c, nil
}

// LoadAndValidate reads the YAML configuration in the file at path and
// returns it if it parses and validates; otherwise nil and the problems
// of both steps at once (see ParseAndValidate).
func LoadAndValidate(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: read config: %w", err)
	}
	return ParseAndValidate(data, path)
}

// ParseAndValidate is ParseYAML followed by Validate, reporting every
// problem in one run: when the file parses but has structural errors
// (unknown keys, wrong types, missing keys), the part that did decode is
// validated too, so the user does not fix the unknown keys first only to
// meet the range errors next. A Validate error about a field that
// already has a structural error (the same field, or one inside it), or
// about the key an unknown key probably meant (the did-you-mean), is left
// out: it is a consequence, not a second problem. A YAML syntax
// error stops at once (nothing decoded). The result is nil and Errors in
// file and line order, or the valid config.
func ParseAndValidate(data []byte, file string) (*Config, error) {
	c, errs, covered := parseYAML(data, file)
	if c == nil {
		return nil, errs
	}
	verr := c.Validate()
	if verr == nil && errs == nil {
		return c, nil
	}
	var ves Errors
	if verr != nil && !errors.As(verr, &ves) {
		return nil, verr
	}
	// A server or group whose name did not decode makes every reference
	// to it look unknown.
	namesLost := map[error]bool{}
	for _, e := range errs {
		if m := lostName.FindStringSubmatch(e.Field); m != nil {
			namesLost[map[string]error{"servers": ErrUnknownServer, "groups": ErrUnknownGroup}[m[1]]] = true
		}
	}
	for _, ve := range ves {
		if namesLost[ve.Err] {
			continue
		}
		if !coveredBy(ve.Field, covered) {
			errs = append(errs, ve)
		}
	}
	errs.sortByPos()
	return nil, errs
}

// lostName matches the field of a structural error that loses a server's
// or group's name: the list, an element or its name.
var lostName = regexp.MustCompile(`^(servers|groups)(\[\d+\](\.name)?)?$`)

// coveredBy reports whether field is, or lies inside, one of paths
// ("mappings[1].target.server" lies inside "mappings[1].target").
func coveredBy(field string, paths []string) bool {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(field, p); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			return true
		}
	}
	return false
}

// parseYAML decodes data. It returns a nil config on a syntax error (with
// that error), else the config as far as it decoded, the structural
// errors found (nil when there are none) and the field paths those errors
// cover (see ParseAndValidate).
func parseYAML(data []byte, file string) (*Config, Errors, []string) {
	c := &Config{File: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil, nil // empty file: an empty configuration
		}
		return nil, Errors{syntaxError(data, file, err)}, nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Errors{{Pos: Pos{file, extra.Line}, Msg: "a config file holds one YAML document; remove the second (---)", Err: ErrSyntax}}, nil
	case !errors.Is(err, io.EOF):
		return nil, Errors{syntaxError(data, file, err)}, nil
	}

	d := &decoder{file: file, lines: fieldLines{}, budget: 10*countNodes(&doc) + 100_000}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d.config(root, c)
	for i := range c.Mappings {
		if c.Mappings[i].ID == "" {
			c.Mappings[i].ID = DeriveID(c.Mappings[i].Source, c.Mappings[i].Target)
		}
	}
	c.lines = d.lines
	if d.errs.errs == nil {
		return c, nil, nil
	}
	d.errs.errs.sortByPos()
	covered := d.meant
	for _, e := range d.errs.errs {
		covered = append(covered, e.Field)
	}
	return c, d.errs.errs, covered
}

// idNamespace is the UUIDv5 namespace of derived mapping ids:
// uuid.NewSHA1(uuid.NameSpaceURL, "https://github.com/uamirror/uamirror#mapping").
// It must never change: ids derived with it are stored by every node.
var idNamespace = uuid.MustParse("1c838a55-600d-5ab2-b880-4c9f3a3dbc55")

// DeriveID returns the stable id of a mapping from source to target: a
// UUIDv5 over both servers and the canonical forms of both nodes. Every
// node derives the same id for the same mapping.
func DeriveID(source, target NodeRef) string {
	name := strings.Join([]string{
		source.Server, canonicalNode(source.Node),
		target.Server, canonicalNode(target.Node),
	}, "\x00")
	return uuid.NewSHA1(idNamespace, []byte(name)).String()
}

// MarshalYAML writes c in the form ParseYAML reads, leaving out zero
// fields (which mean "default"). Field values are written as they are:
// an explicit "direction: read" stays. Comments and Pos are not kept.
func MarshalYAML(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("mapping: marshal yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("mapping: marshal yaml: %w", err)
	}
	return buf.Bytes(), nil
}

// yamlLine finds the line in a yaml.v3 error message.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). yaml.v3 reports their lines 0-based, the scanner's 1-based.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxError turns a yaml.v3 parse error into a FieldError. The line is
// the one yaml.v3 reports, which is where the construct holding the error
// starts (e.g. the unclosed '['), not always the offending character.
func syntaxError(data []byte, file string, err error) *FieldError {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
		if strings.Contains(msg, "tab character") {
			line = tabLine(data, line)
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
			line = aliasLine(data, m[1])
		}
	}
	return &FieldError{Pos: Pos{file, line}, Msg: msg, Err: fmt.Errorf("%w: %w", ErrSyntax, err)}
}

// unknownAnchor matches yaml.v3's error for an alias without anchor,
// which comes without a line.
var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// aliasLine returns the first line that uses alias *name, or 0.
func aliasLine(data []byte, name string) int {
	re := regexp.MustCompile(`\*` + regexp.QuoteMeta(name) + `([\s,\]}]|$)`)
	for i, l := range strings.Split(string(data), "\n") {
		if re.MatchString(l) {
			return i + 1
		}
	}
	return 0
}

// tabLine returns the first line from line on whose indentation holds a
// tab (yaml.v3 reports the line of the enclosing construct), or line.
func tabLine(data []byte, line int) int {
	for i, l := range strings.Split(string(data), "\n") {
		if i+1 < line {
			continue
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if strings.Contains(indent, "\t") {
			return i + 1
		}
	}
	return line
}

// countNodes counts the nodes of a tree without following aliases.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// decoder walks a yaml.Node tree into a Config, collecting every problem.
type decoder struct {
	file  string
	errs  errorList
	lines fieldLines
	// budget bounds the nodes visited, so that aliases cannot make a small
	// file expand without limit ("billion laughs").
	budget int
	// meant are the paths of the keys that unknown keys probably meant
	// (their did-you-mean).
	meant []string
}

// loc is where the decoder is: the full path for messages, and the item
// (server, group, mapping) with the path relative to it for field lines.
type loc struct {
	path string
	item Pos
	rel  string
}

// child is the loc of key name below l.
func (l loc) child(name string) loc {
	return loc{path: joinPath(l.path, name), item: l.item, rel: joinPath(l.rel, name)}
}

// index is the loc of list element i below l.
func (l loc) index(i int) loc {
	s := "[" + strconv.Itoa(i) + "]"
	return loc{path: l.path + s, item: l.item, rel: l.rel + s}
}

// joinPath joins two field path parts with a dot.
func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// at returns the Pos of line in the decoder's file.
func (d *decoder) at(line int) Pos { return Pos{File: d.file, Line: line} }

// errorf records a problem at node n.
func (d *decoder) errorf(n *yaml.Node, l loc, value string, sentinel error, format string, args ...any) {
	d.errs.add(d.at(n.Line), l.path, value, sentinel, format, args...)
}

// resolve follows aliases and spends budget. It returns nil when the
// budget is exhausted (after reporting it once).
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.budget--
	if d.budget == 0 {
		d.errs.add(d.at(0), "", "", ErrInvalidValue, "aliases expand the document too much")
	}
	if d.budget <= 0 {
		return nil
	}
	return n
}

// isNull reports whether n is an explicit or empty null.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kindName describes a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value)"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// secretKeys are keys that would hold a secret. They get ErrSecretInConfig
// instead of ErrUnknownKey wherever they appear.
var secretKeys = map[string]bool{"password": true, "passwd": true, "pwd": true, "pass": true, "secret": true}

// isSecretKey reports whether key names a secret value.
func isSecretKey(key string) bool {
	k := strings.ToLower(key)
	return secretKeys[k] || strings.Contains(k, "password") && k != "password_env" && k != "password_file"
}

// kv is one key/value pair of a mapping node.
type kv struct {
	key   string
	k, v  *yaml.Node
	merge bool // came from a << merge
}

// pairs lists the pairs of mapping node n with merge keys expanded:
// explicit keys override merged ones, earlier merge sources override
// later ones. Duplicate explicit keys are errors.
func (d *decoder) pairs(n *yaml.Node, l loc) []kv {
	var explicit, merged []kv
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			return nil
		}
		v := n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, l, "", ErrInvalidValue, "keys must be plain words, not %s", kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			merged = append(merged, d.mergeSources(v, l)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, l.child(k.Value), "", ErrDuplicate, "key %q given twice (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		explicit = append(explicit, kv{key: k.Value, k: k, v: v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key]; ok {
			continue
		}
		seen[p.key] = p.k.Line
		p.merge = true
		explicit = append(explicit, p)
	}
	return explicit
}

// mergeSources returns the pairs a << key merges in.
func (d *decoder) mergeSources(v *yaml.Node, l loc) []kv {
	v = d.resolve(v)
	if v == nil {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, l)
	case yaml.SequenceNode:
		var out []kv
		seen := map[string]bool{}
		for _, e := range v.Content {
			e = d.resolve(e)
			if e == nil {
				return nil
			}
			if e.Kind != yaml.MappingNode {
				d.errorf(e, l, "", ErrInvalidValue, "<< needs a mapping or a list of mappings, not %s", kindName(e))
				continue
			}
			for _, p := range d.pairs(e, l) {
				if !seen[p.key] {
					seen[p.key] = true
					out = append(out, p)
				}
			}
		}
		return out
	default:
		d.errorf(v, l, "", ErrInvalidValue, "<< needs a mapping or a list of mappings, not %s", kindName(v))
		return nil
	}
}

// object walks mapping node n: for every allowed key it records the line
// and calls fn; other keys are reported. A null n is an empty object.
// required keys that are absent are reported as missing.
func (d *decoder) object(n *yaml.Node, l loc, allowed, required []string, fn func(key string, v *yaml.Node, l loc)) {
	n = d.resolve(n)
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, l, scalarValue(n), ErrInvalidValue, "must be a mapping (key: value), not %s", kindName(n))
		return
	}
	present := map[string]bool{}
	for _, p := range d.pairs(n, l) {
		cl := l.child(p.key)
		if !contains(allowed, p.key) {
			if isSecretKey(p.key) {
				d.errorf(p.k, cl, "", ErrSecretInConfig,
					"secrets must not be written into the config: name an environment variable with password_env or a file with password_file")
				continue
			}
			d.errorf(p.k, cl, "", ErrUnknownKey, "unknown key %q%s", p.key, suggest(p.key, allowed))
			if c := closest(p.key, allowed); c != "" {
				d.meant = append(d.meant, l.child(c).path)
			}
			continue
		}
		present[p.key] = true
		d.lines[fieldKey{cl.item, cl.rel}] = p.k.Line
		fn(p.key, p.v, cl)
	}
	for _, r := range required {
		if !present[r] {
			d.errorf(n, l.child(r), "", ErrMissing, "required key %q is missing", r)
		}
	}
}

// list walks sequence node n, calling fn for every element. A null n is
// an empty list.
func (d *decoder) list(n *yaml.Node, l loc, fn func(i int, e *yaml.Node, l loc)) {
	n = d.resolve(n)
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, l, scalarValue(n), ErrInvalidValue, "must be a list, not %s", kindName(n))
		return
	}
	for i, e := range n.Content {
		e = d.resolve(e)
		if e == nil {
			return
		}
		fn(i, e, l.index(i))
	}
}

// scalarValue is n's text for messages, "" when n is not a scalar.
func scalarValue(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

// scalar resolves n and checks that it is a scalar; null gives ok=false
// without an error.
func (d *decoder) scalar(n *yaml.Node, l loc, what string) (*yaml.Node, bool) {
	n = d.resolve(n)
	if n == nil || isNull(n) {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, l, "", ErrInvalidValue, "must be %s, not %s", what, kindName(n))
		return nil, false
	}
	return n, true
}

// str decodes a string field.
func (d *decoder) str(n *yaml.Node, l loc, out *string) {
	if s, ok := d.scalar(n, l, "a string"); ok {
		*out = s.Value
	}
}

// float decodes a number field.
func (d *decoder) float(n *yaml.Node, l loc, out *float64) {
	s, ok := d.scalar(n, l, "a number")
	if !ok {
		return
	}
	if err := s.Decode(out); err != nil {
		d.errorf(s, l, s.Value, ErrInvalidValue, "must be a number")
	}
	if *out == 0 {
		*out = 0 // -0 is 0: YAML cannot write the sign back
	}
}

// uint32 decodes a non-negative whole number field.
func (d *decoder) uint32(n *yaml.Node, l loc, out *uint32) {
	s, ok := d.scalar(n, l, "a whole number")
	if !ok {
		return
	}
	if err := s.Decode(out); err != nil || s.ShortTag() != "!!int" {
		d.errorf(s, l, s.Value, ErrInvalidValue, "must be a whole number in 0..4294967295")
	}
}

// int decodes a whole number field.
func (d *decoder) int(n *yaml.Node, l loc, out *int) {
	s, ok := d.scalar(n, l, "a whole number")
	if !ok {
		return
	}
	if err := s.Decode(out); err != nil || s.ShortTag() != "!!int" {
		d.errorf(s, l, s.Value, ErrInvalidValue, "must be a whole number")
	}
}

// bool decodes a true/false field into a pointer (nil stays nil on null).
func (d *decoder) bool(n *yaml.Node, l loc, out **bool) {
	s, ok := d.scalar(n, l, "true or false")
	if !ok {
		return
	}
	var b bool
	if err := s.Decode(&b); err != nil {
		d.errorf(s, l, s.Value, ErrInvalidValue, "must be true or false")
		return
	}
	*out = &b
}

// duration decodes a Go duration string ("100ms", "5s").
func (d *decoder) duration(n *yaml.Node, l loc, out *time.Duration) {
	s, ok := d.scalar(n, l, "a duration")
	if !ok {
		return
	}
	v, err := parseDuration(s.Value)
	if err != nil {
		d.errorf(s, l, s.Value, ErrInvalidValue, "%s", err.Error())
		return
	}
	*out = v
}

// parseDuration parses a Go duration and rejects bare numbers, which are
// ambiguous (seconds? milliseconds?).
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, ferr := strconv.ParseFloat(s, 64); ferr == nil && s != "0" {
			return 0, errors.New(`a duration needs a unit, e.g. "100ms" or "5s"`)
		}
		return 0, errors.New(`must be a duration such as "100ms", "5s" or "1m30s"`)
	}
	return v, nil
}

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Allowed keys at each level, in documentation order (used in messages).
var (
	configKeys    = []string{"servers", "groups", "mappings", "engine", "drill"}
	drillKeys     = []string{"every", "at"}
	serverKeys    = []string{"name", "endpoints", "security_policy", "security_mode", "auth", "trusted_certificates", "timeouts", "redundancy"}
	serverSetKeys = []string{"mode", "margin", "discover"}
	authKeys      = []string{"type", "username", "password_env", "password_file", "cert_file", "key_file"}
	timeoutKeys   = []string{"connect", "request", "keepalive", "session", "data_age"}
	groupKeys     = []string{"name", "publishing_interval", "sampling_interval", "queue_size", "max_hold"}
	mappingKeys   = []string{"id", "source", "target", "direction", "group", "deadband", "scaling", "convert", "sampling_interval", "queue_size", "enabled", "on_bad", "max_hold"}
	nodeRefKeys   = []string{"server", "node"}
	deadbandKeys  = []string{"type", "value"}
	scalingKeys   = []string{"raw_low", "raw_high", "eng_low", "eng_high", "out_of_range"}
	convertKeys   = []string{"to", "rounding", "overflow"}
	engineKeys    = []string{"write_batch", "writes_in_flight", "subscribe_batch", "publishing_interval", "retry_min", "retry_max", "clock_skew"}
)

// config decodes the document root.
func (d *decoder) config(n *yaml.Node, c *Config) {
	d.object(n, loc{}, configKeys, nil, func(key string, v *yaml.Node, l loc) {
		switch key {
		case "servers":
			d.list(v, l, func(_ int, e *yaml.Node, l loc) {
				s := Server{Pos: d.at(e.Line)}
				d.server(e, loc{path: l.path, item: s.Pos}, &s)
				c.Servers = append(c.Servers, s)
			})
		case "groups":
			d.list(v, l, func(_ int, e *yaml.Node, l loc) {
				g := Group{Pos: d.at(e.Line)}
				d.group(e, loc{path: l.path, item: g.Pos}, &g)
				c.Groups = append(c.Groups, g)
			})
		case "mappings":
			d.list(v, l, func(_ int, e *yaml.Node, l loc) {
				m := Mapping{Pos: d.at(e.Line)}
				d.mapping(e, loc{path: l.path, item: m.Pos}, &m)
				c.Mappings = append(c.Mappings, m)
			})
		case "engine":
			d.engine(v, l, &c.Engine)
		case "drill":
			if v = d.resolve(v); v == nil || isNull(v) {
				return
			}
			c.Drill = &DrillSchedule{}
			d.object(v, l, drillKeys, drillKeys[:1], func(key string, v *yaml.Node, l loc) {
				switch key {
				case "every":
					d.duration(v, l, &c.Drill.Every)
				case "at":
					d.str(v, l, &c.Drill.At)
				}
			})
		}
	})
}

// server decodes one server.
func (d *decoder) server(n *yaml.Node, l loc, s *Server) {
	d.object(n, l, serverKeys, nil, func(key string, v *yaml.Node, l loc) {
		switch key {
		case "name":
			d.str(v, l, &s.Name)
		case "endpoints":
			d.list(v, l, func(_ int, e *yaml.Node, l loc) {
				d.lines[fieldKey{l.item, l.rel}] = e.Line
				var u string
				d.str(e, l, &u)
				s.Endpoints = append(s.Endpoints, u)
			})
		case "security_policy":
			d.str(v, l, &s.SecurityPolicy)
		case "security_mode":
			d.str(v, l, &s.SecurityMode)
		case "trusted_certificates":
			d.list(v, l, func(_ int, e *yaml.Node, l loc) {
				d.lines[fieldKey{l.item, l.rel}] = e.Line
				var t string
				d.str(e, l, &t)
				s.TrustedCertificates = append(s.TrustedCertificates, t)
			})
		case "auth":
			d.object(v, l, authKeys, nil, func(key string, v *yaml.Node, l loc) {
				switch key {
				case "type":
					d.str(v, l, &s.Auth.Type)
				case "username":
					d.str(v, l, &s.Auth.Username)
				case "password_env":
					d.str(v, l, &s.Auth.PasswordEnv)
				case "password_file":
					d.str(v, l, &s.Auth.PasswordFile)
				case "cert_file":
					d.str(v, l, &s.Auth.CertFile)
				case "key_file":
					d.str(v, l, &s.Auth.KeyFile)
				}
			})
		case "timeouts":
			d.object(v, l, timeoutKeys, nil, func(key string, v *yaml.Node, l loc) {
				switch key {
				case "connect":
					d.duration(v, l, &s.Timeouts.Connect)
				case "request":
					d.duration(v, l, &s.Timeouts.Request)
				case "keepalive":
					d.duration(v, l, &s.Timeouts.KeepAlive)
				case "session":
					d.duration(v, l, &s.Timeouts.Session)
				case "data_age":
					d.duration(v, l, &s.Timeouts.DataAge)
				}
			})
		case "redundancy":
			d.object(v, l, serverSetKeys, nil, func(key string, v *yaml.Node, l loc) {
				switch key {
				case "mode":
					d.str(v, l, &s.Redundancy.Mode)
				case "margin":
					var m int
					d.int(v, l, &m)
					s.Redundancy.Margin = &m
				case "discover":
					var b *bool
					d.bool(v, l, &b)
					s.Redundancy.Discover = b != nil && *b
				}
			})
		}
	})
}

// group decodes one group.
func (d *decoder) group(n *yaml.Node, l loc, g *Group) {
	d.object(n, l, groupKeys, nil, func(key string, v *yaml.Node, l loc) {
		switch key {
		case "name":
			d.str(v, l, &g.Name)
		case "publishing_interval":
			d.duration(v, l, &g.PublishingInterval)
		case "sampling_interval":
			d.duration(v, l, &g.SamplingInterval)
		case "queue_size":
			d.uint32(v, l, &g.QueueSize)
		case "max_hold":
			d.duration(v, l, &g.MaxHold)
		}
	})
}

// mapping decodes one mapping.
func (d *decoder) mapping(n *yaml.Node, l loc, m *Mapping) {
	d.object(n, l, mappingKeys, nil, func(key string, v *yaml.Node, l loc) {
		switch key {
		case "id":
			d.str(v, l, &m.ID)
		case "source":
			d.nodeRef(v, l, &m.Source)
		case "target":
			d.nodeRef(v, l, &m.Target)
		case "direction":
			d.str(v, l, (*string)(&m.Direction))
		case "group":
			d.str(v, l, &m.Group)
		case "max_hold":
			d.duration(v, l, &m.MaxHold)
		case "deadband":
			if v = d.resolve(v); v == nil || isNull(v) {
				return
			}
			m.Deadband = &Deadband{}
			d.object(v, l, deadbandKeys, deadbandKeys, func(key string, v *yaml.Node, l loc) {
				switch key {
				case "type":
					d.str(v, l, (*string)(&m.Deadband.Type))
				case "value":
					d.float(v, l, &m.Deadband.Value)
				}
			})
		case "scaling":
			if v = d.resolve(v); v == nil || isNull(v) {
				return
			}
			m.Scaling = &Scaling{}
			sc := m.Scaling
			d.object(v, l, scalingKeys, scalingKeys[:4], func(key string, v *yaml.Node, l loc) {
				switch key {
				case "raw_low":
					d.float(v, l, &sc.RawLow)
				case "raw_high":
					d.float(v, l, &sc.RawHigh)
				case "eng_low":
					d.float(v, l, &sc.EngLow)
				case "eng_high":
					d.float(v, l, &sc.EngHigh)
				case "out_of_range":
					d.str(v, l, (*string)(&sc.OutOfRange))
				}
			})
		case "convert":
			if v = d.resolve(v); v == nil || isNull(v) {
				return
			}
			m.Convert = &Conversion{}
			cv := m.Convert
			d.object(v, l, convertKeys, nil, func(key string, v *yaml.Node, l loc) {
				switch key {
				case "to":
					d.str(v, l, &cv.To)
				case "rounding":
					d.str(v, l, (*string)(&cv.Rounding))
				case "overflow":
					d.str(v, l, (*string)(&cv.Overflow))
				}
			})
		case "sampling_interval":
			d.duration(v, l, &m.SamplingInterval)
		case "queue_size":
			d.uint32(v, l, &m.QueueSize)
		case "enabled":
			d.bool(v, l, &m.Enabled)
		case "on_bad":
			d.str(v, l, (*string)(&m.OnBad))
		}
	})
}

// nodeRef decodes a source or target.
func (d *decoder) nodeRef(n *yaml.Node, l loc, r *NodeRef) {
	d.object(n, l, nodeRefKeys, nil, func(key string, v *yaml.Node, l loc) {
		switch key {
		case "server":
			d.str(v, l, &r.Server)
		case "node":
			d.str(v, l, &r.Node)
		}
	})
}

// engine decodes the engine tuning.
func (d *decoder) engine(n *yaml.Node, l loc, e *Engine) {
	d.object(n, l, engineKeys, nil, func(key string, v *yaml.Node, l loc) {
		switch key {
		case "write_batch":
			d.int(v, l, &e.WriteBatch)
		case "writes_in_flight":
			d.int(v, l, &e.WritesInFlight)
		case "subscribe_batch":
			d.int(v, l, &e.SubscribeBatch)
		case "publishing_interval":
			d.duration(v, l, &e.PublishingInterval)
		case "retry_min":
			d.duration(v, l, &e.RetryMin)
		case "retry_max":
			d.duration(v, l, &e.RetryMax)
		case "clock_skew":
			d.duration(v, l, &e.ClockSkew)
		}
	})
}

package mapping

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Sentinel errors. Every error this package returns about a configuration
// wraps exactly one of them, so callers can act with errors.Is.
var (
	// ErrSyntax is a YAML or CSV syntax error.
	ErrSyntax = errors.New("syntax error")
	// ErrUnknownKey is a YAML key or CSV column the package does not know.
	ErrUnknownKey = errors.New("unknown key")
	// ErrMissing is a required field that is absent or empty.
	ErrMissing = errors.New("missing value")
	// ErrInvalidValue is a value of the wrong type or outside the allowed
	// set.
	ErrInvalidValue = errors.New("invalid value")
	// ErrUnknownServer is a mapping naming a server that is not configured.
	ErrUnknownServer = errors.New("unknown server")
	// ErrUnknownGroup is a mapping naming a group that is not configured.
	ErrUnknownGroup = errors.New("unknown group")
	// ErrInvalidNodeID is a NodeID string that does not parse.
	ErrInvalidNodeID = errors.New("invalid node id")
	// ErrNamespaceUnknown is a namespace URI that is not in a server's
	// NamespaceArray.
	ErrNamespaceUnknown = errors.New("namespace uri unknown")
	// ErrDuplicateTarget is a node written by more than one mapping.
	ErrDuplicateTarget = errors.New("duplicate target")
	// ErrSelfLoop is a mapping whose target is its own source.
	ErrSelfLoop = errors.New("self loop")
	// ErrLoop is a set of mappings that copy values around in a circle.
	ErrLoop = errors.New("loop")
	// ErrBadRange is a range or limit that cannot work (empty scaling
	// range, negative deadband, …).
	ErrBadRange = errors.New("bad range")
	// ErrDuplicate is a duplicate name, id, key or column.
	ErrDuplicate = errors.New("duplicate")
	// ErrSecretInConfig is a password (or other secret) written into the
	// configuration instead of being referenced.
	ErrSecretInConfig = errors.New("secret in config")
)

// FieldError is one problem with one field of a configuration.
type FieldError struct {
	// Pos is the file and line of the offending field (Line 0: unknown).
	Pos Pos
	// Field is the path of the field, e.g. "mappings[3].target.node", or
	// the column name for CSV. Empty for whole-document problems.
	Field string
	// Value is the offending value as written ("" when there is none or
	// it must not be echoed).
	Value string
	// Msg says what is wrong and, where possible, how to fix it.
	Msg string
	// Err is the sentinel the error wraps (ErrMissing, ErrLoop, …).
	Err error
}

// Error formats the error as `file:line: field: msg (value "…")`, leaving
// out the parts that are empty.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.Pos.File != "" && e.Pos.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.Pos.File, e.Pos.Line)
	case e.Pos.File != "":
		fmt.Fprintf(&b, "%s: ", e.Pos.File)
	case e.Pos.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Pos.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	msg := e.Msg
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	b.WriteString(msg)
	if e.Value != "" {
		fmt.Fprintf(&b, " (value %s)", strconv.Quote(e.Value))
	}
	return b.String()
}

// Unwrap returns the sentinel.
func (e *FieldError) Unwrap() error { return e.Err }

// Errors is a list of problems, in file and line order. A function that
// returns Errors returns nil, never an empty list.
type Errors []*FieldError

// Error lists the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual errors, so errors.Is and errors.As see
// every sentinel in the list.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, or nil when it is empty (so a nil Errors
// never turns into a non-nil error interface).
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// sortByPos orders errors by file and line, keeping the order in which
// they were found among equals.
func (es Errors) sortByPos() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
}

// errorList collects field errors.
type errorList struct {
	errs Errors
}

// add records a problem.
func (l *errorList) add(pos Pos, field, value string, sentinel error, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{
		Pos:   pos,
		Field: field,
		Value: value,
		Msg:   fmt.Sprintf(format, args...),
		Err:   sentinel,
	})
}

// suggest returns ` (did you mean "x"?)` when one of the candidates is close
// to s, or ` (allowed: a, b, c)` otherwise. It returns "" when there are no
// candidates.
func suggest(s string, candidates []string) string {
	if len(candidates) == 0 {
		return ""
	}
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return "; allowed: " + strings.Join(candidates, ", ")
}

// closest returns the candidate nearest to s, if it is near enough to be a
// probable typo, else "".
func closest(s string, candidates []string) string {
	best, bestDist := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if lc == ls {
			return c
		}
		d := levenshtein(ls, lc)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	// Allow no edit for tiny words, one for short words, two for longer
	// ones.
	limit := 0
	switch {
	case len(s) > 5:
		limit = 2
	case len(s) > 2:
		limit = 1
	}
	if bestDist >= 0 && bestDist <= limit {
		return best
	}
	// A clipped word ("publishing" for "publishing_interval").
	if len(ls) >= 4 {
		for _, c := range candidates {
			if strings.HasPrefix(strings.ToLower(c), ls) {
				return c
			}
		}
	}
	return ""
}

// levenshtein is the edit distance between a and b (bytes), counting a
// swap of two neighbours as one edit (optimal string alignment).
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Long strings are never typos of our short names.
		if a == b {
			return 0
		}
		return 1 << 20
	}
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

package mapping

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gopcua/opcua/ua"
)

// NodeID is a parsed NodeID string. It is either in index form
// (NamespaceURI empty; ID carries the namespace index) or in namespace-URI
// form (NamespaceURI set; ID carries the identifier with namespace index
// 0 as a placeholder until Resolve looks the URI up in a server's
// NamespaceArray).
//
// The URI form is preferred in configurations: namespace indexes may
// change when a server restarts, URIs do not (Part 3, 8.2.2).
type NodeID struct {
	// NamespaceURI is the namespace of the URI form, "" for the index form.
	NamespaceURI string
	// ID is the identifier (and, for the index form, the namespace index).
	ID *ua.NodeID
}

// ParseNodeID parses a NodeID string (Part 6, 5.3.1.10) in one of the forms
//
//	i=85                      numeric, namespace 0
//	ns=2;i=1001               numeric
//	ns=2;s=Line1.Temperature  string
//	ns=2;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63
//	ns=2;b=AQIDBA==           opaque (standard base64, padded)
//	nsu=urn:example:plc;s=v1  namespace URI instead of index; also with
//	                          ;i=, ;g= and ;b=
//
// The identifier type prefix (i=, s=, g=, b=) is required. A string
// identifier is everything after "s=" and may contain ';'; a namespace
// URI cannot (it ends at the first ';'). Errors wrap ErrInvalidNodeID.
//
// ParseNodeID is stricter than gopcua's ua.ParseNodeID, which turns ""
// into i=0, accepts a missing type prefix, any '-' placement in GUIDs and
// non-canonical base64, and cannot read back "s=a;b" that it prints
// itself.
func ParseNodeID(s string) (NodeID, error) {
	n, reason := parseNodeID(s)
	if reason != "" {
		return NodeID{}, fmt.Errorf("%w %q: %s", ErrInvalidNodeID, s, reason)
	}
	return n, nil
}

// parseNodeID does the work of ParseNodeID and returns what is wrong as a
// message rather than an error, so callers can put it into a FieldError.
func parseNodeID(s string) (NodeID, string) {
	if s == "" {
		return NodeID{}, "empty"
	}
	if !utf8.ValidString(s) {
		return NodeID{}, "not valid UTF-8"
	}
	var (
		uri  string
		ns   uint16
		rest = s
	)
	switch {
	case strings.HasPrefix(s, "nsu="):
		i := strings.IndexByte(s, ';')
		if i < 0 {
			return NodeID{}, "missing identifier after the namespace URI (want nsu=<uri>;s=<name>)"
		}
		uri, rest = s[len("nsu="):i], s[i+1:]
		if uri == "" {
			return NodeID{}, "empty namespace URI after nsu="
		}
		if strings.TrimSpace(uri) != uri {
			return NodeID{}, "namespace URI has leading or trailing spaces"
		}
	case strings.HasPrefix(s, "ns="):
		i := strings.IndexByte(s, ';')
		if i < 0 {
			return NodeID{}, "missing identifier after the namespace index (want ns=<index>;s=<name>)"
		}
		v, err := strconv.ParseUint(s[len("ns="):i], 10, 16)
		if err != nil {
			return NodeID{}, fmt.Sprintf("namespace index %q is not a number in 0..65535", s[len("ns="):i])
		}
		ns, rest = uint16(v), s[i+1:]
	}
	if len(rest) < 2 || rest[1] != '=' || !strings.ContainsRune("isgb", rune(rest[0])) {
		return NodeID{}, "identifier must start with i=, s=, g= or b= (e.g. ns=2;s=Name or nsu=urn:x;s=Name)"
	}
	val := rest[2:]
	var id *ua.NodeID
	switch rest[0] {
	case 'i':
		v, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return NodeID{}, fmt.Sprintf("numeric identifier %q is not a number in 0..4294967295", val)
		}
		id = newNumericNodeID(ns, uint32(v))
	case 's':
		if val == "" {
			return NodeID{}, "empty string identifier after s="
		}
		id = ua.NewStringNodeID(ns, val)
	case 'g':
		if !isGUID(val) {
			return NodeID{}, fmt.Sprintf("GUID identifier %q is not of the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", val)
		}
		id = ua.NewGUIDNodeID(ns, val)
	case 'b':
		if val == "" {
			return NodeID{}, "empty opaque identifier after b="
		}
		b, err := base64.StdEncoding.DecodeString(val)
		if err != nil || base64.StdEncoding.EncodeToString(b) != val {
			return NodeID{}, fmt.Sprintf("opaque identifier %q is not standard padded base64", val)
		}
		id = ua.NewByteStringNodeID(ns, b)
	}
	return NodeID{NamespaceURI: uri, ID: id}, ""
}

// newNumericNodeID picks the smallest encoding for a numeric NodeID, as
// ua.ParseNodeID does, so that our values compare equal to gopcua's.
func newNumericNodeID(ns uint16, v uint32) *ua.NodeID {
	switch {
	case ns == 0 && v < 256:
		return ua.NewTwoByteNodeID(byte(v))
	case ns < 256 && v < math.MaxUint16:
		return ua.NewFourByteNodeID(byte(ns), uint16(v))
	default:
		return ua.NewNumericNodeID(ns, v)
	}
}

// isGUID reports whether s is a GUID in the 8-4-4-4-12 hex form (either
// case).
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// String returns the canonical form: "nsu=<uri>;" or "ns=<index>;"
// (left out for namespace 0), then i=, s=, g= (upper-case GUID) or b=
// (standard base64). It parses back to the same NodeID with ParseNodeID.
// The zero NodeID gives "".
func (n NodeID) String() string {
	if n.ID == nil {
		return ""
	}
	var b strings.Builder
	switch {
	case n.NamespaceURI != "":
		b.WriteString("nsu=")
		b.WriteString(n.NamespaceURI)
		b.WriteByte(';')
	case n.ID.Namespace() != 0:
		b.WriteString("ns=")
		b.WriteString(strconv.FormatUint(uint64(n.ID.Namespace()), 10))
		b.WriteByte(';')
	}
	switch n.ID.Type() {
	case ua.NodeIDTypeTwoByte, ua.NodeIDTypeFourByte, ua.NodeIDTypeNumeric:
		b.WriteString("i=")
		b.WriteString(strconv.FormatUint(uint64(n.ID.IntID()), 10))
	case ua.NodeIDTypeString:
		b.WriteString("s=")
		b.WriteString(n.ID.StringID())
	case ua.NodeIDTypeGUID:
		b.WriteString("g=")
		b.WriteString(n.ID.StringID())
	case ua.NodeIDTypeByteString:
		b.WriteString("b=")
		b.WriteString(n.ID.StringID())
	default:
		return ""
	}
	return b.String()
}

// Equal reports whether n and o have the same canonical form. A URI form
// and an index form are never equal: comparing them needs the server's
// NamespaceArray (use Resolve first).
func (n NodeID) Equal(o NodeID) bool { return n.String() == o.String() }

// Resolve returns the NodeID to use on a server whose NamespaceArray
// (Part 5, 6.3.2; node i=2255) is namespaces. An index form is returned as
// is; a URI form gets the index of its URI, or an error wrapping
// ErrNamespaceUnknown that names the URI.
func (n NodeID) Resolve(namespaces []string) (*ua.NodeID, error) {
	if n.ID == nil {
		return nil, fmt.Errorf("%w: empty node id", ErrInvalidNodeID)
	}
	if n.NamespaceURI == "" {
		return n.ID, nil
	}
	idx := -1
	for i, u := range namespaces {
		if u == n.NamespaceURI {
			idx = i
			break
		}
	}
	if idx < 0 || idx > math.MaxUint16 {
		return nil, fmt.Errorf("%w: %q is not in the server's NamespaceArray (%d entries)",
			ErrNamespaceUnknown, n.NamespaceURI, len(namespaces))
	}
	return n.ResolveIndex(uint16(idx))
}

// ResolveIndex is Resolve with the index ns of n's namespace URI in the
// server's NamespaceArray already looked up (ignored for an index form,
// returned as is). It lets a caller keep the two bytes of the index
// rather than the resolved NodeID.
func (n NodeID) ResolveIndex(ns uint16) (*ua.NodeID, error) {
	if n.ID == nil {
		return nil, fmt.Errorf("%w: empty node id", ErrInvalidNodeID)
	}
	if n.NamespaceURI == "" {
		return n.ID, nil
	}
	switch n.ID.Type() {
	case ua.NodeIDTypeTwoByte, ua.NodeIDTypeFourByte, ua.NodeIDTypeNumeric:
		return newNumericNodeID(ns, n.ID.IntID()), nil
	case ua.NodeIDTypeString:
		return ua.NewStringNodeID(ns, n.ID.StringID()), nil
	case ua.NodeIDTypeGUID:
		return ua.NewGUIDNodeID(ns, n.ID.StringID()), nil
	case ua.NodeIDTypeByteString:
		b, err := base64.StdEncoding.DecodeString(n.ID.StringID())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidNodeID, err)
		}
		return ua.NewByteStringNodeID(ns, b), nil
	default:
		return nil, fmt.Errorf("%w: identifier type %d", ErrInvalidNodeID, n.ID.Type())
	}
}

// canonicalNode returns the canonical form of a NodeID string, or s itself
// when it does not parse (Validate reports that separately).
func canonicalNode(s string) string {
	n, reason := parseNodeID(s)
	if reason != "" {
		return s
	}
	return n.String()
}

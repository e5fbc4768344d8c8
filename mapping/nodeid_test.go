package mapping

import (
	"errors"
	"strings"
	"testing"

	"github.com/gopcua/opcua/ua"
)

func TestParseNodeID(t *testing.T) {
	tests := []struct {
		in      string
		want    string // canonical String(); "" when an error is expected
		uri     string
		errPart string // part of the error message
	}{
		{in: "i=85", want: "i=85"},
		{in: "ns=0;i=85", want: "i=85"},
		{in: "ns=1;i=4294967295", want: "ns=1;i=4294967295"},
		{in: "ns=65535;i=1", want: "ns=65535;i=1"},
		{in: "ns=2;s=Line1.Temperature", want: "ns=2;s=Line1.Temperature"},
		{in: "ns=02;s=x", want: "ns=2;s=x"},
		{in: "s=plain", want: "s=plain"},
		{in: "s=a;b", want: "s=a;b"},
		{in: "ns=2;s=a;b=c", want: "ns=2;s=a;b=c"},
		{in: "ns=2;s= spaced ", want: "ns=2;s= spaced "},
		{in: "ns=2;s=ünïcödé", want: "ns=2;s=ünïcödé"},
		{in: "g=72962b91-fa75-4ae6-8d28-b404dc7daf63", want: "g=72962B91-FA75-4AE6-8D28-B404DC7DAF63"},
		{in: "ns=3;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63", want: "ns=3;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63"},
		{in: "b=AQIDBA==", want: "b=AQIDBA=="},
		{in: "ns=1;b=/w==", want: "ns=1;b=/w=="},
		{in: "nsu=urn:uamirror:simserver;s=v1", want: "nsu=urn:uamirror:simserver;s=v1", uri: "urn:uamirror:simserver"},
		{in: "nsu=http://opcfoundation.org/UA/;i=2258", want: "nsu=http://opcfoundation.org/UA/;i=2258", uri: "http://opcfoundation.org/UA/"},
		{in: "nsu=urn:x;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", want: "nsu=urn:x;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63", uri: "urn:x"},
		{in: "nsu=urn:x;b=AQID", want: "nsu=urn:x;b=AQID", uri: "urn:x"},
		{in: "nsu=urn:x;s=a;b", want: "nsu=urn:x;s=a;b", uri: "urn:x"},

		{in: "", errPart: "empty"},
		{in: "85", errPart: "must start with i=, s=, g= or b="},
		{in: "plain", errPart: "must start with"},
		{in: "ns=2;plain", errPart: "must start with"},
		{in: "ns=2; s=x", errPart: "must start with"},
		{in: "ns=2", errPart: "missing identifier"},
		{in: "nsu=urn:x", errPart: "missing identifier"},
		{in: "nsu=;s=x", errPart: "empty namespace URI"},
		{in: "nsu= urn:x;s=x", errPart: "spaces"},
		{in: "ns=;i=1", errPart: "namespace index"},
		{in: "ns=-1;i=1", errPart: "namespace index"},
		{in: "ns=+1;i=1", errPart: "namespace index"},
		{in: "ns=65536;i=1", errPart: "namespace index"},
		{in: "ns=x;i=1", errPart: "namespace index"},
		{in: "i=", errPart: "numeric identifier"},
		{in: "i=-1", errPart: "numeric identifier"},
		{in: "i=+1", errPart: "numeric identifier"},
		{in: "i=4294967296", errPart: "numeric identifier"},
		{in: "i=0x10", errPart: "numeric identifier"},
		{in: "s=", errPart: "empty string identifier"},
		{in: "g=72962b91fa754ae68d28b404dc7daf63", errPart: "GUID"},
		{in: "g=72962b91-fa75-4ae6-8d28-b404dc7daf6", errPart: "GUID"},
		{in: "g=7296-2b91fa75-4ae6-8d28-b404dc7daf63", errPart: "GUID"},
		{in: "g=zzzzzzzz-fa75-4ae6-8d28-b404dc7daf63", errPart: "GUID"},
		{in: "b=", errPart: "empty opaque"},
		{in: "b=AQID=", errPart: "base64"},
		{in: "b=AQ", errPart: "base64"},
		{in: "b=AR==", errPart: "base64"},
		{in: "b=AQ\n==", errPart: "base64"},
		{in: "x=1", errPart: "must start with"},
		{in: "ns=2;s=\xff", errPart: "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := ParseNodeID(tt.in)
			if tt.errPart != "" {
				if err == nil {
					t.Fatalf("ParseNodeID(%q) = %v, want error", tt.in, n)
				}
				if !errors.Is(err, ErrInvalidNodeID) {
					t.Errorf("error %v does not wrap ErrInvalidNodeID", err)
				}
				if !strings.Contains(err.Error(), tt.errPart) {
					t.Errorf("error %q does not say %q", err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNodeID(%q): %v", tt.in, err)
			}
			if got := n.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if n.NamespaceURI != tt.uri {
				t.Errorf("NamespaceURI = %q, want %q", n.NamespaceURI, tt.uri)
			}
			back, err := ParseNodeID(n.String())
			if err != nil || !back.Equal(n) {
				t.Errorf("round trip of %q: %v, %v", n.String(), back, err)
			}
		})
	}
}

// TestParseNodeIDMatchesGopcua checks that index forms give the same
// ua.NodeID (type, namespace, identifier, encoding) as gopcua's parser.
func TestParseNodeIDMatchesGopcua(t *testing.T) {
	for _, s := range []string{
		"i=0", "i=255", "i=256", "ns=1;i=1", "ns=255;i=65534", "ns=255;i=65535", "ns=256;i=1",
		"ns=0;i=70000", "ns=2;s=x", "ns=1;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63", "ns=1;b=AQIDBA==",
	} {
		ours, err := ParseNodeID(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		theirs, err := ua.ParseNodeID(s)
		if err != nil {
			t.Fatalf("%s: gopcua: %v", s, err)
		}
		a, _ := ours.ID.Encode()
		b, _ := theirs.Encode()
		if string(a) != string(b) {
			t.Errorf("%s: encoding %x, gopcua %x", s, a, b)
		}
	}
}

func TestResolve(t *testing.T) {
	ns := []string{"http://opcfoundation.org/UA/", "urn:server", "urn:uamirror:simserver"}
	tests := []struct {
		in   string
		ns   []string
		want string // ua.NodeID.String()
		err  error
	}{
		{in: "nsu=urn:uamirror:simserver;s=v1", ns: ns, want: "ns=2;s=v1"},
		{in: "nsu=urn:uamirror:simserver;i=7", ns: ns, want: "ns=2;i=7"},
		{in: "nsu=urn:uamirror:simserver;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", ns: ns, want: "ns=2;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63"},
		{in: "nsu=urn:uamirror:simserver;b=AQID", ns: ns, want: "ns=2;b=AQID"},
		{in: "nsu=http://opcfoundation.org/UA/;i=2258", ns: ns, want: "i=2258"},
		{in: "ns=5;s=x", ns: nil, want: "ns=5;s=x"},
		{in: "i=85", ns: ns, want: "i=85"},
		{in: "nsu=urn:other;s=v1", ns: ns, err: ErrNamespaceUnknown},
		{in: "nsu=urn:uamirror:simserver;s=v1", ns: nil, err: ErrNamespaceUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := ParseNodeID(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			id, err := n.Resolve(tt.ns)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Resolve = %v, %v; want %v", id, err, tt.err)
				}
				if !strings.Contains(err.Error(), n.NamespaceURI) {
					t.Errorf("error %q does not name the URI", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.String() != tt.want {
				t.Errorf("Resolve = %s, want %s", id, tt.want)
			}
			// The resolved id must equal what gopcua parses from the
			// index form.
			if want, err := ua.ParseNodeID(tt.want); err != nil || !want.Equal(id) {
				t.Errorf("gopcua parses %s as %v (%v)", tt.want, want, err)
			}
			// Its namespace index alone gives it back (the engine keeps
			// the index, not the id: ResolveIndex).
			if again, err := n.ResolveIndex(id.Namespace()); err != nil || !again.Equal(id) {
				t.Errorf("ResolveIndex(%d) = %v, %v; want %s", id.Namespace(), again, err, id)
			}
		})
	}
	if _, err := (NodeID{}).Resolve(ns); !errors.Is(err, ErrInvalidNodeID) {
		t.Errorf("zero NodeID: %v", err)
	}
	if s := (NodeID{}).String(); s != "" {
		t.Errorf("zero NodeID String() = %q", s)
	}
}

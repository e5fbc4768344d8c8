package redundancy

import (
	"errors"
	"strings"
	"testing"
)

// TestValidatePairSecurity: plain TCP is valid only when every member's
// raft and peer address is loopback, or with PairInsecure; TLS is always.
func TestValidatePairSecurity(t *testing.T) {
	members := func(aRaft, bPeer string) []Member {
		return []Member{{ID: "a", Role: RoleNode, Raft: aRaft, Peer: "127.0.0.1:7101"},
			{ID: "b", Role: RoleNode, Raft: "[::1]:7002", Peer: bPeer}, {ID: "arb", Role: RoleArbiter, Raft: "localhost:7003"}}
	}
	tlsCfg := testPKI(t)["a"]
	for _, tc := range []struct {
		name     string
		members  []Member
		tls      *PairTLS
		insecure bool
		want     string // "" valid; else in the error (ErrPairUnprotected)
		mode     string
	}{
		{"loopback", members("127.0.0.1:7001", "127.0.0.1:7102"), nil, false, "", "plain TCP on loopback only"},
		{"raft on all interfaces", members("0.0.0.0:7001", "127.0.0.1:7102"), nil, false, "member a raft 0.0.0.0:7001", ""},
		{"empty host", members(":7001", "127.0.0.1:7102"), nil, false, "member a raft :7001", ""},
		{"peer on a LAN address", members("127.0.0.1:7001", "10.0.0.2:7102"), nil, false, "member b peer 10.0.0.2:7102", ""},
		{"host name", members("node-a.plant:7001", "127.0.0.1:7102"), nil, false, "member a raft node-a.plant:7001", ""},
		{"insecure", members("10.0.0.1:7001", "10.0.0.2:7102"), nil, true, "", "INSECURE"},
		{"tls", members("10.0.0.1:7001", "10.0.0.2:7102"), tlsCfg, false, "", "mutual TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{ID: "a", DataDir: t.TempDir(), Members: tc.members, TLS: tc.tls, PairInsecure: tc.insecure}.WithDefaults()
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m := c.securityMode(); !strings.HasPrefix(m, tc.mode) {
					t.Errorf("security mode %q, want %q", m, tc.mode)
				}
				return
			}
			if !errors.Is(err, ErrPairUnprotected) || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrPairUnprotected naming %q", err, tc.want)
			}
		})
	}
}

package diagnostics_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

// TestAdminAuth: who may call what, the answers, and the log of refusals
// (which never holds the token).
func TestAdminAuth(t *testing.T) {
	const token = "s3cret-token-0123456789"
	const wrong = "not-the-token-987654321"
	verify := func(raw [][]byte) (string, error) {
		if string(raw[0]) == "member-b" {
			return "b", nil
		}
		return "", errors.New("certificate not trusted by the pair")
	}
	cert := func(name string) *tls.ConnectionState {
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Raw: []byte(name)}}}
	}
	for _, c := range []struct {
		name         string
		auth         diagnostics.AdminAuth
		method, path string
		remote       string
		header       string
		tls          *tls.ConnectionState
		want         int
		switched     bool
	}{
		{"no auth configured: open, as before", diagnostics.AdminAuth{}, "POST", "/api/v1/switchover", "192.0.2.1:1", "", nil, 200, true},
		{"command without token", diagnostics.AdminAuth{Token: []byte(token)}, "POST", "/api/v1/switchover", "127.0.0.1:1", "", nil, 401, false},
		{"command with a wrong token", diagnostics.AdminAuth{Token: []byte(token)}, "POST", "/api/v1/switchover", "127.0.0.1:1", "Bearer " + wrong, nil, 403, false},
		{"command with basic auth", diagnostics.AdminAuth{Token: []byte(token)}, "POST", "/api/v1/switchover", "127.0.0.1:1", "Basic " + wrong, nil, 401, false},
		{"command with the token", diagnostics.AdminAuth{Token: []byte(token)}, "POST", "/api/v1/switchover", "192.0.2.1:1", "Bearer " + token, nil, 200, true},
		{"mappings without token", diagnostics.AdminAuth{Token: []byte(token)}, "PUT", "/api/v1/mappings", "127.0.0.1:1", "", nil, 401, false},
		{"command with a member certificate", diagnostics.AdminAuth{Verify: verify}, "POST", "/api/v1/switchover", "192.0.2.1:1", "", cert("member-b"), 200, true},
		{"command with a foreign certificate", diagnostics.AdminAuth{Verify: verify}, "POST", "/api/v1/switchover", "192.0.2.1:1", "", cert("evil"), 403, false},
		{"certificate where only tokens count", diagnostics.AdminAuth{Token: []byte(token)}, "POST", "/api/v1/switchover", "192.0.2.1:1", "", cert("member-b"), 403, false},
		{"local read without credentials", diagnostics.AdminAuth{Token: []byte(token)}, "GET", "/api/v1/status", "127.0.0.1:1", "", nil, 200, false},
		{"local read over IPv6", diagnostics.AdminAuth{Token: []byte(token)}, "GET", "/api/v1/status", "[::1]:1", "", nil, 200, false},
		{"remote read without credentials", diagnostics.AdminAuth{Token: []byte(token)}, "GET", "/api/v1/status", "192.0.2.1:1", "", nil, 401, false},
		{"remote read with the token", diagnostics.AdminAuth{Token: []byte(token)}, "GET", "/api/v1/status", "192.0.2.1:1", "Bearer " + token, nil, 200, false},
		{"remote read with a wrong token", diagnostics.AdminAuth{Token: []byte(token)}, "GET", "/api/v1/events", "192.0.2.1:1", "Bearer " + wrong, nil, 403, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			p := activePair("a")
			a := diagnostics.NewAdmin(p, nil, zap.New(core))
			a.SetAuth(c.auth)
			r := httptest.NewRequest(c.method, c.path, strings.NewReader(`{}`))
			r.RemoteAddr = c.remote
			r.TLS = c.tls
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			if c.method == "PUT" {
				r = httptest.NewRequest(c.method, c.path, strings.NewReader("servers: []\n"))
				r.RemoteAddr = c.remote
			}
			w := httptest.NewRecorder()
			a.Handler().ServeHTTP(w, r)
			if c.want == 200 && w.Code/100 != 2 || c.want != 200 && w.Code != c.want {
				t.Fatalf("%s %s from %s: %d %s, want %d", c.method, c.path, c.remote, w.Code, w.Body, c.want)
			}
			if (p.switchover > 0) != c.switched {
				t.Errorf("switchovers done: %d, want switched=%v", p.switchover, c.switched)
			}
			all := ""
			for _, e := range logs.All() {
				b, _ := json.Marshal(e.ContextMap())
				all += e.Message + " " + string(b) + "\n"
			}
			if strings.Contains(all, token) || strings.Contains(all, wrong) || strings.Contains(w.Body.String(), wrong) {
				t.Errorf("a token leaked into the log or the answer:\n%s\n%s", all, w.Body)
			}
			if c.want >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Errorf("answer is not a JSON error: %s", w.Body)
				}
				if !strings.Contains(all, "admin request refused") || !strings.Contains(all, c.path) || !strings.Contains(all, c.remote) {
					t.Errorf("refusal not logged with path and remote:\n%s", all)
				}
				if c.want == 401 && w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
}

// securePair is a fakePair that also reports refused connections.
type securePair struct {
	*fakePair
	sec []redundancy.Event
}

func (p *securePair) SecurityEvents() []redundancy.Event { return p.sec }

// TestEventsMergeRefusals: /api/v1/events holds the switchover journal
// and the pair's refusals, in time order.
func TestEventsMergeRefusals(t *testing.T) {
	fp := activePair("a")
	last := fp.events[len(fp.events)-1].Time
	p := &securePair{fakePair: fp, sec: []redundancy.Event{{Time: last.Add(-time.Nanosecond), Kind: redundancy.RefusalKind, From: "10.0.0.9:4000", To: "a", Reason: "refused", Detail: "raft: x"}}}
	a := diagnostics.NewAdmin(p, nil, zap.NewNop())
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/events", nil))
	var res struct{ Events []redundancy.Event }
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	n := len(res.Events)
	if n != len(fp.events)+1 || res.Events[n-2].Kind != redundancy.RefusalKind || res.Events[n-1].Kind != "" {
		t.Errorf("events: %+v", res.Events)
	}
}

func TestCheckAdminBind(t *testing.T) {
	tok := diagnostics.AdminAuth{Token: []byte("0123456789abcdef")}
	for _, c := range []struct {
		addr     string
		auth     diagnostics.AdminAuth
		insecure bool
		ok       bool
	}{
		{"127.0.0.1:7201", diagnostics.AdminAuth{}, false, true},
		{"[::1]:7201", diagnostics.AdminAuth{}, false, true},
		{"localhost:7201", diagnostics.AdminAuth{}, false, true},
		{"0.0.0.0:7201", diagnostics.AdminAuth{}, false, false},
		{":7201", diagnostics.AdminAuth{}, false, false},
		{"10.0.0.1:7201", diagnostics.AdminAuth{}, false, false},
		{"10.0.0.1:7201", diagnostics.AdminAuth{}, true, true},
		{"10.0.0.1:7201", tok, false, true},
	} {
		err := diagnostics.CheckAdminBind(c.addr, c.auth, c.insecure)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, diagnostics.ErrInsecureAdmin) {
			t.Errorf("CheckAdminBind(%s, insecure=%v): %v", c.addr, c.insecure, err)
		}
	}
}

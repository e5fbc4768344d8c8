package diagnostics_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

func TestErrorsAreJSON(t *testing.T) {
	p := activePair("a")
	a := diagnostics.NewAdmin(p, nil, zap.NewNop())
	big := bytes.Repeat([]byte("x"), 1<<16+1)
	tests := []struct {
		name         string
		method, path string
		body         []byte
		hdr          []string
		code         int
		msg          string
	}{
		{"unknown path", "GET", "/nope", nil, nil, 404, "no such endpoint"},
		{"wrong method", "DELETE", "/api/v1/mappings", nil, nil, 405, "method not allowed"},
		{"GET a command", "GET", "/api/v1/switchover", nil, nil, 405, "allowed: POST"},
		{"malformed switchover", "POST", "/api/v1/switchover", []byte("{"), nil, 400, "switchover request body"},
		{"unknown field", "POST", "/api/v1/switchover", []byte(`{"too":"b"}`), nil, 400, `unknown field "too"`},
		{"trailing data", "POST", "/api/v1/switchover", []byte(`{} {}`), nil, 400, "trailing data"},
		{"oversized switchover", "POST", "/api/v1/switchover", big, nil, 413, "larger than 65536 bytes"},
		{"cross-origin switchover", "POST", "/api/v1/switchover", nil, []string{"Origin", "http://evil.example"}, 403, "cross-origin"},
		{"cross-site fetch", "POST", "/api/v1/switchover", nil, []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-origin"},
		{"empty mappings", "PUT", "/api/v1/mappings", nil, nil, 400, "empty request body"},
		{"bad mappings", "PUT", "/api/v1/mappings", []byte("servers: [\n"), nil, 400, "do not validate"},
		{"no engine", "GET", "/api/v1/mappings", nil, nil, 503, "no mirror engine"},
		{"bad state", "GET", "/api/v1/mappings?state=fine", nil, nil, 400, `state "fine"`},
		{"bad page", "GET", "/api/v1/mappings?page=0", nil, nil, 400, "page"},
		{"per_page too big", "GET", "/api/v1/mappings?per_page=5000", nil, nil, 400, "per_page"},
		{"unknown parameter", "GET", "/api/v1/mappings?sate=ok", nil, nil, 400, `unknown query parameter "sate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, bytes.NewReader(tt.body))
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				req.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			rec := httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Errorf("code %d, want %d (%s)", rec.Code, tt.code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.msg) {
				t.Errorf("error %q (%v), want it to contain %q", e.Error, err, tt.msg)
			}
		})
	}
	if p.switchover != 0 {
		t.Errorf("a refused request reached the pair (%d switchovers)", p.switchover)
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestBodyTooLarge(t *testing.T) {
	a := diagnostics.NewAdmin(activePair("a"), nil, zap.NewNop())
	tests := []struct {
		name, method, path string
		n                  int64
		declared           bool // Content-Length sent (else read until the limit)
	}{
		{"mapping file declared", "PUT", "/api/v1/mappings", 32<<20 + 1, true},
		{"mapping file streamed", "PUT", "/api/v1/mappings", 32<<20 + 1, false},
		{"switchover streamed", "POST", "/api/v1/switchover", 1<<16 + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, io.LimitReader(zeros{}, tt.n))
			req.ContentLength = -1
			if tt.declared {
				req.ContentLength = tt.n
			}
			rec := httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "larger than") {
				t.Fatalf("code %d, want 413: %s", rec.Code, rec.Body)
			}
		})
	}
}

func TestSwitchover(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
	}{
		{"done", nil, 200},
		{"standby not ready", redundancy.ErrStandbyNotReady, 409},
		{"no active known", &redundancy.NotActiveError{}, 409},
		{"failure", errors.New("raft exploded"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := activePair("a")
			p.switchErr = tt.err
			url := serve(t, diagnostics.NewAdmin(p, nil, zap.NewNop()))
			// A same-origin browser request passes the origin check.
			code, body := do(t, "POST", url+"/api/v1/switchover", []byte(`{"force":false}`),
				"Origin", url, "Sec-Fetch-Site", "same-origin", "Content-Type", "application/json")
			if code != tt.code || p.switchover != 1 {
				t.Fatalf("code %d (want %d), %d switchovers: %s", code, tt.code, p.switchover, body)
			}
		})
	}
}

// Behind a reverse proxy that rewrites Host, the browser's
// Sec-Fetch-Site verdict decides, not the Origin/Host comparison.
func TestSwitchoverBehindProxy(t *testing.T) {
	p := activePair("a")
	url := serve(t, diagnostics.NewAdmin(p, nil, zap.NewNop()))
	code, body := do(t, "POST", url+"/api/v1/switchover", nil, "Origin", "https://uamirror.plant.example", "Sec-Fetch-Site", "same-origin")
	if code != 200 || p.switchover != 1 {
		t.Fatalf("code %d, %d switchovers: %s", code, p.switchover, body)
	}
}

func TestPage(t *testing.T) {
	url := serve(t, diagnostics.NewAdmin(activePair("a"), nil, zap.NewNop()))
	res, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{`id="active"`, `id="switchover"`, `/api/v1/summary`, `/api/v1/pair`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	http.DefaultClient.CloseIdleConnections()
}

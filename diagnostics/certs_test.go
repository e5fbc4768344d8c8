package diagnostics_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
)

// certEngine is an Engine with certificates in use and nothing else.
type certEngine struct{ st bridge.Stats }

func (e *certEngine) Snapshot() []bridge.MappingStatus { return nil }
func (e *certEngine) Stats() bridge.Stats              { return e.st }

// TestCertificateExpiry: a server certificate expiring in 10 days is
// flagged in the summary and the metrics, the own certificate with a year
// left is not, an expired one is marked expired.
func TestCertificateExpiry(t *testing.T) {
	now := time.Now()
	e := &certEngine{st: bridge.Stats{
		OwnCertificate: &bridge.CertInfo{Thumbprint: "aa", NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0)},
		Servers: []bridge.ServerStats{
			{Name: "plc", Certificate: &bridge.CertInfo{Thumbprint: "bb", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)}},
			{Name: "old", Certificate: &bridge.CertInfo{Thumbprint: "cc", NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.Add(-time.Hour)}},
			{Name: "plain"},
		},
	}}
	srv := httptest.NewServer(diagnostics.NewAdmin(&fakePair{}, func() diagnostics.Engine { return e }, zap.NewNop()).Handler())
	defer srv.Close()

	fams := scrape(t, srv.URL)
	for _, c := range []struct {
		name, kind, server string
		lo, hi             float64
	}{
		{"uamirror_certificate_expires_soon", "own", "", 0, 0},
		{"uamirror_certificate_expires_soon", "server", "plc", 1, 1},
		{"uamirror_certificate_expires_soon", "server", "old", 1, 1},
		{"uamirror_certificate_expiry_seconds", "server", "plc", 10*86400 - 60, 10 * 86400},
		{"uamirror_certificate_expiry_seconds", "server", "old", -3700, -3500},
	} {
		v, ok := value(fams, c.name, "kind", c.kind, "server", c.server)
		if !ok || v < c.lo || v > c.hi {
			t.Errorf("%s{kind=%s,server=%s} = %v (present %v), want %v..%v", c.name, c.kind, c.server, v, ok, c.lo, c.hi)
		}
	}
	if _, ok := value(fams, "uamirror_certificate_expiry_seconds", "server", "plain"); ok {
		t.Error("a server without a certificate has an expiry metric")
	}

	code, body := do(t, http.MethodGet, srv.URL+"/api/v1/summary", nil)
	var s diagnostics.Summary
	if err := json.Unmarshal(body, &s); code != 200 || err != nil {
		t.Fatalf("summary: %d %v", code, err)
	}
	if s.OwnCertificate == nil || s.OwnCertificate.ExpiresSoon || s.OwnCertificate.Warning != "" {
		t.Errorf("own: %+v", s.OwnCertificate)
	}
	want := map[string]string{"plc": "expires soon", "old": "expired"}
	for _, sv := range s.Servers {
		if w, ok := want[sv.Name]; ok && (sv.Certificate == nil || !sv.Certificate.ExpiresSoon || sv.Certificate.Warning != w) {
			t.Errorf("%s: %+v, want warning %q", sv.Name, sv.Certificate, w)
		}
		if sv.Name == "plain" && sv.Certificate != nil {
			t.Errorf("plain: %+v", sv.Certificate)
		}
	}
}

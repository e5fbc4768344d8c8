package diagnostics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/pki"
)

// Certificate expiry: the engine's own certificate and each server's
// certificate in use, as a gauge and in the summary, with a warning
// within pki.ExpiryWarning (30 days) of NotAfter.

var (
	descCertExpiry = desc("uamirror_certificate_expiry_seconds",
		"Seconds until the certificate's NotAfter (negative once expired): kind own (this application's) or server (the one each server presented at the last secure session).",
		"kind", "server")
	descCertExpiresSoon = desc("uamirror_certificate_expires_soon",
		"1 when the certificate expires within 30 days or has expired.", "kind", "server")
)

// certCollector exports the certificates in use of the current engine.
type certCollector struct{ engine EngineFunc }

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCertExpiry
	ch <- descCertExpiresSoon
}

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.engine()
	if e == nil {
		return
	}
	st := e.Stats()
	now := time.Now()
	emit := func(ci *bridge.CertInfo, kind, server string) {
		if ci == nil {
			return
		}
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, ci.NotAfter.Sub(now).Seconds(), kind, server)
		ch <- prometheus.MustNewConstMetric(descCertExpiresSoon, prometheus.GaugeValue,
			b2f(ci.NotAfter.Sub(now) < pki.ExpiryWarning), kind, server)
	}
	emit(st.OwnCertificate, "own", "")
	for _, s := range st.Servers {
		emit(s.Certificate, "server", s.Name)
	}
}

// CertSummary is a certificate in use, in the summary.
type CertSummary struct {
	Thumbprint string    `json:"thumbprint"` // SHA-1, hex
	Subject    string    `json:"subject"`
	NotAfter   time.Time `json:"not_after"`
	// ExpiresSoon is true within 30 days of NotAfter and after it.
	ExpiresSoon bool `json:"expires_soon"`
	// Warning is "expires soon", "expired", "not yet valid" or "".
	Warning string `json:"warning,omitempty"`
}

func certSummary(ci *bridge.CertInfo, now time.Time) *CertSummary {
	if ci == nil {
		return nil
	}
	return &CertSummary{Thumbprint: ci.Thumbprint, Subject: ci.Subject, NotAfter: ci.NotAfter,
		ExpiresSoon: ci.NotAfter.Sub(now) < pki.ExpiryWarning, Warning: pki.ExpiryMark(ci.NotBefore, ci.NotAfter, now)}
}

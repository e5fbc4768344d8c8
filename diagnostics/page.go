package diagnostics

import (
	_ "embed"
	"net/http"
)

// pageHTML is the status page: one static file of HTML, CSS and script
// that polls the JSON endpoints (no build step, nothing fetched from
// elsewhere).
//
//go:embed page/index.html
var pageHTML []byte

func servePage(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	_, _ = w.Write(pageHTML)
}

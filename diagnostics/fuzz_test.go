package diagnostics_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/diagnostics"
)

// FuzzAdminRequests sends arbitrary bodies to the mutating endpoints and
// arbitrary queries to the listing: no panic, and every answer is a JSON
// body with a status the API documents.
func FuzzAdminRequests(f *testing.F) {
	for _, s := range []string{"", "{}", `{"to":"b","force":true}`, `{"to":1}`, "{", "null", `{"x":1}`,
		"servers: []\nmappings: []\n", "mappings: [{source: {server: a}}]", "\x00\xff", "[[[[[[[[[["} {
		f.Add(s, "state=ok&page=2")
	}
	f.Add("", "per_page=-1")
	f.Add("", "state=%zz")
	a := diagnostics.NewAdmin(activePair("a"), nil, zap.NewNop())
	h := a.Handler()
	f.Fuzz(func(t *testing.T, body, query string) {
		for _, r := range []*http.Request{
			httptest.NewRequest(http.MethodPost, "/api/v1/switchover", bytes.NewBufferString(body)),
			httptest.NewRequest(http.MethodPut, "/api/v1/mappings", bytes.NewBufferString(body)),
		} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			switch w.Code {
			case http.StatusOK, http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge,
				http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusBadGateway:
			default:
				t.Fatalf("%s %s: unexpected status %d", r.Method, r.URL.Path, w.Code)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%s %s: content type %q", r.Method, r.URL.Path, ct)
			}
		}
		r, err := http.NewRequest(http.MethodGet, "/api/v1/mappings?"+query, nil)
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("mappings?%s: %d", query, w.Code)
		}
	})
}

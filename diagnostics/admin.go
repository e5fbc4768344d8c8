// Package diagnostics serves a node's admin API: health and readiness,
// the pair's status and journal, and the operator's commands (switchover,
// mapping changes). It reads the pair and the engine through small
// interfaces and never changes them except through those commands.
package diagnostics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
)

// Pair is what the admin API needs of a pair member. All methods must be
// safe for concurrent use.
type Pair interface {
	Status() redundancy.Status
	Events() []redundancy.Event
	Switchover(ctx context.Context, to string, force bool) error
	ForcePromote(ctx context.Context) error
	ApplyConfig(ctx context.Context, yaml []byte, file string) (mapping.Delta, error)
}

// maxBody bounds request bodies (a mapping file of ~100k mappings fits).
const maxBody = 32 << 20

// forwardedHeader marks a request forwarded by another node (no second hop).
const forwardedHeader = "X-Uamirror-Forwarded"

// Admin is a node's admin HTTP server.
type Admin struct {
	pair Pair
	log  *zap.Logger
	mux  *http.ServeMux
}

// NewAdmin builds the admin API of a pair member.
func NewAdmin(pair Pair, log *zap.Logger) *Admin {
	a := &Admin{pair: pair, log: log.Named("admin"), mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.pair.Status())
	})
	a.mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"events": a.pair.Events()})
	})
	a.mux.HandleFunc("POST /api/v1/switchover", a.switchover)
	a.mux.HandleFunc("PUT /api/v1/mappings", a.putMappings)
	return a
}

// Handler returns the HTTP handler (for tests and for embedding).
func (a *Admin) Handler() http.Handler { return a.mux }

// Serve serves on ln until ctx is done, then shuts down gracefully.
func (a *Admin) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.mux, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errCh
		return nil
	case err := <-errCh:
		return err
	}
}

// apiError is the JSON body of every error.
type apiError struct {
	Error  string   `json:"error"`
	Active string   `json:"active,omitempty"`
	Admin  string   `json:"active_admin,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (a *Admin) fail(w http.ResponseWriter, code int, err error) {
	body := apiError{Error: err.Error()}
	var na *redundancy.NotActiveError
	if errors.As(err, &na) {
		body.Active, body.Admin = na.Active, na.Admin
	}
	var es mapping.Errors
	if errors.As(err, &es) {
		body.Error = fmt.Sprintf("the mappings do not validate (%d errors); nothing changed", len(es))
		for _, e := range es {
			body.Errors = append(body.Errors, e.Error())
		}
	}
	writeJSON(w, code, body)
}

func (a *Admin) readyz(w http.ResponseWriter, _ *http.Request) {
	st := a.pair.Status()
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ready": st.Ready, "role": st.Role, "node": st.Node})
}

// SwitchoverRequest is the body of POST /api/v1/switchover.
type SwitchoverRequest struct {
	To    string `json:"to,omitempty"`
	Force bool   `json:"force,omitempty"`
}

func (a *Admin) switchover(w http.ResponseWriter, r *http.Request) {
	var req SwitchoverRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		a.fail(w, http.StatusBadRequest, fmt.Errorf("switchover request body: %w", err))
		return
	}
	err = a.pair.Switchover(r.Context(), req.To, req.Force)
	var na *redundancy.NotActiveError
	switch {
	case err == nil:
		a.log.Warn("switchover done", zap.String("to", req.To), zap.Bool("force", req.Force))
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "status": a.pair.Status()})
		return
	case errors.As(err, &na) && na.Admin != "" && r.Header.Get(forwardedHeader) == "":
		a.forward(w, r, na.Admin, body)
		return
	case errors.As(err, &na) && na.Active == "" && req.Force:
		// No active at all (two members, the other gone): promote here.
		if err := a.pair.ForcePromote(r.Context()); err != nil {
			a.fail(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true,
			"warning": "FORCED: this node was promoted without a quorum; make sure the other node is really down"})
		return
	case errors.Is(err, redundancy.ErrStandbyNotReady):
		a.fail(w, http.StatusConflict, err)
	case errors.As(err, &na):
		a.fail(w, http.StatusConflict, err)
	default:
		a.fail(w, http.StatusInternalServerError, err)
	}
}

// forward sends a request on to the active node's admin API and relays
// its answer.
func (a *Admin) forward(w http.ResponseWriter, r *http.Request, admin string, body []byte) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	url := "http://" + strings.TrimPrefix(admin, "http://") + r.URL.Path
	req, err := http.NewRequestWithContext(ctx, r.Method, url, bytes.NewReader(body))
	if err != nil {
		a.fail(w, http.StatusInternalServerError, err)
		return
	}
	req.Header.Set(forwardedHeader, "1")
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.fail(w, http.StatusBadGateway, fmt.Errorf("forwarding to the active at %s: %w", admin, err))
		return
	}
	defer res.Body.Close()
	w.Header().Set("Content-Type", res.Header.Get("Content-Type"))
	w.WriteHeader(res.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(res.Body, maxBody))
}

func (a *Admin) putMappings(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		a.fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("mapping file: %w", err))
		return
	}
	name := r.URL.Query().Get("file")
	if name == "" {
		name = "request body"
	}
	d, err := a.pair.ApplyConfig(r.Context(), body, name)
	var na *redundancy.NotActiveError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "delta": d.String(),
			"added": len(d.Added), "changed": len(d.Changed), "removed": len(d.Removed)})
	case errors.As(err, &na):
		a.fail(w, http.StatusConflict, fmt.Errorf("refused: mappings are edited on the active node only; %w", err))
	default:
		var es mapping.Errors
		if errors.As(err, &es) {
			a.fail(w, http.StatusBadRequest, err)
			return
		}
		a.fail(w, http.StatusInternalServerError, err)
	}
}

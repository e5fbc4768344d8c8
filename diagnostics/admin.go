// Package diagnostics serves a node's admin API: health and readiness,
// the pair's status and journal, Prometheus metrics, the mapping list,
// an operator's status page, and the operator's commands (switchover,
// mapping changes). It reads the pair and the engine through small
// interfaces and never changes them except through those commands.
//
// It must never keep state of its own about the pair (every answer is
// read from Pair and Engine at request time), never use a global metrics
// registry (two nodes may run in one process) and never write to an OPC
// UA server.
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
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
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

// Engine is what the admin API reads of the mirror engine
// (*bridge.Engine satisfies it). Both methods must be safe for concurrent
// use; they are called at request and scrape time.
type Engine interface {
	Snapshot() []bridge.MappingStatus
	Stats() bridge.Stats
}

// EngineFunc returns the engine running now, or nil when none runs (an
// arbiter, or a node whose config has not arrived). A node rebuilds its
// engine when the config changes, so the admin API asks on every request.
type EngineFunc func() Engine

// maxBody bounds request bodies (a mapping file of ~100k mappings fits).
const maxBody = 32 << 20

// maxCommandBody bounds small command bodies (switchover).
const maxCommandBody = 1 << 16

// forwardedHeader marks a request forwarded by another node (no second hop).
const forwardedHeader = "X-Uamirror-Forwarded"

// Admin is a node's admin HTTP server.
type Admin struct {
	pair    Pair
	engine  EngineFunc
	log     *zap.Logger
	mux     *http.ServeMux
	reg     *prometheus.Registry
	client  *http.Client             // to other members (forwarding, pair view)
	methods map[string][]string      // path → methods served, for 405 answers
	auth    authState                // who may call (auth.go)
	drills  *redundancy.DrillJournal // nil until SetDrills (drill.go)
}

// NewAdmin builds the admin API of a pair member. engine may be nil (an
// arbiter): the engine's endpoints then answer 503 and its metrics are
// absent.
func NewAdmin(pair Pair, engine EngineFunc, log *zap.Logger) *Admin {
	if engine == nil {
		engine = func() Engine { return nil }
	}
	a := &Admin{pair: pair, engine: engine, log: log.Named("admin"), mux: http.NewServeMux(),
		client: &http.Client{Timeout: 10 * time.Second}, methods: map[string][]string{}}
	a.reg = newRegistry(pair, engine)
	a.handle("GET", "/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.handle("GET", "/readyz", a.readyz)
	a.handle("GET", "/metrics", a.metricsHandler())
	a.handle("GET", "/api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.pair.Status())
	})
	a.handle("GET", "/api/v1/events", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"events": a.events()})
	})
	a.handle("GET", "/api/v1/summary", a.summary)
	a.handle("GET", "/api/v1/pair", a.pairView)
	a.handle("GET", "/api/v1/mappings", a.listMappings)
	a.handle("PUT", "/api/v1/mappings", a.putMappings)
	a.handle("GET", "/api/v1/config", a.getConfig)
	a.handle("POST", "/api/v1/switchover", a.switchover)
	a.handle("GET", "/{$}", servePage)
	a.mux.HandleFunc("/", a.notFound)
	return a
}

// handle registers h for method and path and remembers the pair for 405
// answers. Commands (every method but GET) are refused when a browser
// sends them from another origin.
func (a *Admin) handle(method, path string, h http.HandlerFunc) {
	if method != http.MethodGet {
		h = sameOriginOnly(h)
	}
	a.mux.HandleFunc(method+" "+path, h)
	p := strings.TrimSuffix(path, "{$}")
	a.methods[p] = append(a.methods[p], method)
}

// Handler returns the HTTP handler (for tests and for embedding),
// authentication (SetAuth) included.
func (a *Admin) Handler() http.Handler { return a.guard(a.mux) }

// Registry returns the admin API's own metrics registry, so a caller can
// add collectors of its own.
func (a *Admin) Registry() *prometheus.Registry { return a.reg }

// Serve serves on ln until ctx is done, then shuts down gracefully.
func (a *Admin) Serve(ctx context.Context, ln net.Listener) error {
	// ReadTimeout cuts off a slow request body (a client that sends its
	// headers and then a byte now and then held a connection forever).
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errCh
		a.client.CloseIdleConnections()
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
	w.Header().Set("Cache-Control", "no-store")
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

// notFound answers every request no route took: 405 (with Allow) for a
// known path, 404 otherwise, both as JSON.
func (a *Admin) notFound(w http.ResponseWriter, r *http.Request) {
	if ms, ok := a.methods[r.URL.Path]; ok {
		allow := slices.Clone(ms)
		if slices.Contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		a.fail(w, http.StatusMethodNotAllowed, fmt.Errorf("%s %s: method not allowed (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	a.fail(w, http.StatusNotFound, fmt.Errorf("%s %s: no such endpoint", r.Method, r.URL.Path))
}

// sameOriginOnly refuses a command a browser sends from a page of another
// origin (a malicious page must not be able to switch the pair over from
// an operator's browser). Clients that are not browsers send neither
// header and pass.
func sameOriginOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Sec-Fetch-Site is the browser's own verdict (and survives a
		// proxy that rewrites Host); browsers without it send Origin.
		var cross bool
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
			cross = site != "same-origin" && site != "none"
		} else if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			cross = err != nil || u.Host != r.Host
		}
		if cross {
			writeJSON(w, http.StatusForbidden, apiError{Error: "cross-origin request refused: send commands from this node's own page or a non-browser client"})
			return
		}
		h(w, r)
	}
}

// readBody reads a request body of at most limit bytes. A larger body is
// an error answered with 413, any other read error with 400.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, error) {
	if r.ContentLength > limit {
		// Declared too large: refuse before reading any of it.
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes: larger than %d bytes", r.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", mbe.Limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading the request body: %w", err)
	}
	return body, 0, nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
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
	body, code, err := readBody(w, r, maxCommandBody)
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		if err = decodeStrict(body, &req); err != nil {
			code, err = http.StatusBadRequest, fmt.Errorf("switchover request body: %w", err)
		}
	}
	if err != nil {
		a.fail(w, code, err)
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
		a.forward(w, r, na.Active, na.Admin, body)
		return
	case errors.As(err, &na) && na.Active == "" && req.Force:
		// No active at all (two members, the other gone): promote here.
		if err := a.pair.ForcePromote(r.Context()); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, redundancy.ErrQuorumReachable) {
				code = http.StatusConflict // refused: not a lone survivor
			}
			a.fail(w, code, err)
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
// The caller's token goes along; with TLS, this node's member certificate
// authenticates the forward too.
func (a *Admin) forward(w http.ResponseWriter, r *http.Request, id, admin string, body []byte) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	base, client, release := a.forwardTarget(id, admin)
	defer release()
	url := base + r.URL.Path
	req, err := http.NewRequestWithContext(ctx, r.Method, url, bytes.NewReader(body))
	if err != nil {
		a.fail(w, http.StatusInternalServerError, err)
		return
	}
	req.Header.Set(forwardedHeader, "1")
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	if h := r.Header.Get("Authorization"); h != "" {
		req.Header.Set("Authorization", h)
	}
	res, err := client.Do(req)
	if err != nil {
		a.fail(w, http.StatusBadGateway, fmt.Errorf("forwarding to the active at %s: %w", admin, err))
		return
	}
	defer res.Body.Close()
	w.Header().Set("Content-Type", res.Header.Get("Content-Type"))
	w.WriteHeader(res.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(res.Body, maxBody))
}

// configApplier is the optional Pair capability of an apply with the
// operator's options (confirmation of a large removal).
type configApplier interface {
	ApplyConfigWith(ctx context.Context, yaml []byte, file string, o redundancy.ApplyOptions) (mapping.Delta, error)
}

func (a *Admin) putMappings(w http.ResponseWriter, r *http.Request) {
	body, code, err := readBody(w, r, maxBody)
	if err != nil {
		a.fail(w, code, fmt.Errorf("mapping file: %w", err))
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		a.fail(w, http.StatusBadRequest, errors.New("mapping file: empty request body (send the YAML config)"))
		return
	}
	name := r.URL.Query().Get("file")
	if name == "" {
		name = "request body"
	}
	var d mapping.Delta
	if ap, ok := a.pair.(configApplier); ok {
		o := redundancy.ApplyOptions{Confirm: r.URL.Query().Get("confirm") == "true"}
		if v := r.URL.Query().Get("max_remove_share"); v != "" {
			f, perr := strconv.ParseFloat(v, 64)
			if perr != nil || f <= 0 || f > 1 {
				a.fail(w, http.StatusBadRequest, fmt.Errorf("max_remove_share %q: want a number in (0, 1]", v))
				return
			}
			o.MaxRemoveShare = f
		}
		d, err = ap.ApplyConfigWith(r.Context(), body, name, o)
	} else {
		d, err = a.pair.ApplyConfig(r.Context(), body, name)
	}
	var na *redundancy.NotActiveError
	switch {
	case errors.Is(err, mapping.ErrLargeRemoval):
		a.fail(w, http.StatusConflict, err)
	case errors.Is(err, redundancy.ErrConfigRefused):
		a.fail(w, http.StatusUnprocessableEntity, err)
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "delta": d.String(),
			"added": len(d.Added), "changed": len(d.Changed), "removed": len(d.Removed)})
	case errors.As(err, &na):
		a.fail(w, http.StatusConflict, fmt.Errorf("refused: mappings are edited on the active node only; %w", err))
	default:
		var es mapping.Errors
		var fe *mapping.FieldError
		if errors.As(err, &es) || errors.As(err, &fe) {
			a.fail(w, http.StatusBadRequest, err)
			return
		}
		a.fail(w, http.StatusInternalServerError, err)
	}
}

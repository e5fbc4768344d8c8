// Package adminclient is the one client of a pair member's admin API
// (diagnostics.Admin): the operator commands (status, switchover,
// events, mappings …), the demo and the tests use it.
//
// It owns the request, the credentials (a bearer token; TLS through the
// caller's http.Client) and the decoding of answers and errors. It never
// decides what to do about an error: it reports it as a value callers
// match with errors.Is (ErrUnreachable, ErrUnauthorized,
// redundancy.ErrStandbyNotReady, redundancy.ErrNotActive) or errors.As
// (*APIError).
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

// DefaultTimeout bounds a request when Options.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// maxAnswer bounds the body read from an answer.
const maxAnswer = 64 << 20

var (
	// ErrUnreachable: the request did not get an answer (connection
	// refused, timeout, TLS handshake …).
	ErrUnreachable = errors.New("node unreachable")
	// ErrUnauthorized: the node refused the caller's credentials (401,
	// or 403 from its authentication).
	ErrUnauthorized = errors.New("credentials refused")
	// ErrBadURL: the node's address does not make a request URL.
	ErrBadURL = errors.New("bad admin API address")
)

// Options are a client's settings.
type Options struct {
	// HTTPClient does the requests; its Transport carries TLS (root CAs,
	// a client certificate) or a custom dialer. nil: a client of its own.
	HTTPClient *http.Client
	// Token, when not empty, is sent as "Authorization: Bearer …".
	Token string
	// HTTPS makes an address without a scheme https (default http).
	HTTPS bool
	// Timeout bounds each request (0: DefaultTimeout); the request's
	// context can end it earlier.
	Timeout time.Duration
}

// Client talks to one member's admin API. Its methods are safe for
// concurrent use; each blocks until the answer is read or ctx ends.
type Client struct {
	base    string // scheme://host:port, no trailing slash
	http    *http.Client
	token   string
	timeout time.Duration
}

// New returns a client of the admin API at addr: a URL
// (http://host:port, https://…) or host:port.
func New(addr string, o Options) *Client {
	if !strings.HasPrefix(addr, "http://") && !strings.HasPrefix(addr, "https://") {
		if o.HTTPS {
			addr = "https://" + addr
		} else {
			addr = "http://" + addr
		}
	}
	c := &Client{base: strings.TrimRight(addr, "/"), http: o.HTTPClient, token: o.Token, timeout: o.Timeout}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	return c
}

// URL returns the admin API's base URL.
func (c *Client) URL() string { return c.base }

// TransportError is a request that got no answer; it matches
// ErrUnreachable.
type TransportError struct {
	Node string // the base URL
	Err  error
}

// Error names the node and the cause.
func (e *TransportError) Error() string { return "node " + e.Node + ": " + e.Err.Error() }

// Unwrap returns the cause (a *url.Error, a context error …).
func (e *TransportError) Unwrap() error { return e.Err }

// Is matches ErrUnreachable.
func (e *TransportError) Is(target error) bool { return target == ErrUnreachable }

// APIError is an answer other than 2xx, with the node's message.
type APIError struct {
	Node         string // the base URL
	Method, Path string
	StatusCode   int
	// Message is the answer's "error" (or its text when it is not JSON).
	Message string
	// Errors are the individual errors (a mapping file that does not
	// validate: one per error).
	Errors []string
	// Active and ActiveAdmin name the active node when the request needed
	// it (redundancy.ErrNotActive).
	Active, ActiveAdmin string
}

// Error is the message and the individual errors, one per line.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("%s %s: %s", e.Method, e.Path, http.StatusText(e.StatusCode))
	}
	for _, s := range e.Errors {
		msg += "\n  " + s
	}
	return msg
}

// Is matches ErrUnauthorized (401, or 403 from the authentication),
// redundancy.ErrStandbyNotReady (409 naming it) and redundancy.ErrNotActive
// (an answer naming the active).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized ||
			(e.StatusCode == http.StatusForbidden && strings.HasPrefix(e.Message, "Forbidden: "))
	case redundancy.ErrStandbyNotReady:
		return e.StatusCode == http.StatusConflict && strings.Contains(e.Message, "not ready")
	case redundancy.ErrNotActive:
		return e.Active != "" || e.ActiveAdmin != "" || strings.Contains(e.Message, redundancy.ErrNotActive.Error())
	}
	return false
}

// Do sends one request (body may be nil) and decodes a 2xx JSON answer
// into out (nil: ignored). Errors: *TransportError, *APIError, ErrBadURL
// or a decoding error.
func (c *Client) Do(ctx context.Context, method, path string, body []byte, out any) error {
	data, err := c.do(ctx, method, path, body)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("node %s: %s %s: the answer: %w", c.base, method, path, err)
	}
	return nil
}

// Get is Do with GET.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// GetRaw returns the body of a 2xx answer to GET path as it is (e.g.
// /metrics).
func (c *Client) GetRaw(ctx context.Context, path string) ([]byte, error) {
	return c.do(ctx, http.MethodGet, path, nil)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadURL, c.base, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, &TransportError{Node: c.base, Err: err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return nil, &TransportError{Node: c.base, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if res.StatusCode/100 != 2 {
		e := &APIError{Node: c.base, Method: method, Path: path, StatusCode: res.StatusCode}
		var body struct {
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
			Active string   `json:"active"`
			Admin  string   `json:"active_admin"`
		}
		if json.Unmarshal(data, &body) == nil {
			e.Message, e.Errors, e.Active, e.ActiveAdmin = body.Error, body.Errors, body.Active, body.Admin
		}
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(data))
		}
		return nil, e
	}
	return data, nil
}

// Status is GET /api/v1/status: the member's view of the pair.
func (c *Client) Status(ctx context.Context) (redundancy.Status, error) {
	var st redundancy.Status
	err := c.Get(ctx, "/api/v1/status", &st)
	return st, err
}

// Events is GET /api/v1/events: the switchover journal, oldest first.
func (c *Client) Events(ctx context.Context) ([]redundancy.Event, error) {
	var res struct {
		Events []redundancy.Event `json:"events"`
	}
	err := c.Get(ctx, "/api/v1/events", &res)
	return res.Events, err
}

// Summary is GET /api/v1/summary.
func (c *Client) Summary(ctx context.Context) (diagnostics.Summary, error) {
	var s diagnostics.Summary
	err := c.Get(ctx, "/api/v1/summary", &s)
	return s, err
}

// Config is GET /api/v1/config: the pair's replicated mirror config.
func (c *Client) Config(ctx context.Context) (diagnostics.ConfigView, error) {
	var v diagnostics.ConfigView
	err := c.Get(ctx, "/api/v1/config", &v)
	return v, err
}

// SwitchoverResult is the answer to a switchover.
type SwitchoverResult struct {
	// Warning is set after a forced promotion.
	Warning string            `json:"warning"`
	Status  redundancy.Status `json:"status"`
}

// Switchover is POST /api/v1/switchover: any member forwards it to the
// active. A standby that is not READY refuses it
// (redundancy.ErrStandbyNotReady) unless req.Force.
func (c *Client) Switchover(ctx context.Context, req diagnostics.SwitchoverRequest) (SwitchoverResult, error) {
	var res SwitchoverResult
	body, err := json.Marshal(req)
	if err != nil {
		return res, err
	}
	err = c.Do(ctx, http.MethodPost, "/api/v1/switchover", body, &res)
	return res, err
}

// ApplyMappings is PUT /api/v1/mappings: the mirror config yaml (file
// names it in the node's messages) replaces the pair's, on the active.
// It returns the change the node reports.
func (c *Client) ApplyMappings(ctx context.Context, file string, yaml []byte) (delta string, err error) {
	var res struct {
		Delta string `json:"delta"`
	}
	err = c.Do(ctx, http.MethodPut, "/api/v1/mappings?file="+url.QueryEscape(file), yaml, &res)
	return res.Delta, err
}

// ApplyParams are the operator's choices for one apply.
type ApplyParams struct {
	// Confirm allows removing every mapping or more than MaxRemoveShare
	// of them.
	Confirm bool
	// MaxRemoveShare (0 < x ≤ 1; 0: the node's default, one half).
	MaxRemoveShare float64
}

// ApplyMappingsWith is ApplyMappings with the operator's choices.
func (c *Client) ApplyMappingsWith(ctx context.Context, file string, yaml []byte, p ApplyParams) (delta string, err error) {
	var res struct {
		Delta string `json:"delta"`
	}
	q := url.Values{"file": {file}}
	if p.Confirm {
		q.Set("confirm", "true")
	}
	if p.MaxRemoveShare > 0 {
		q.Set("max_remove_share", strconv.FormatFloat(p.MaxRemoveShare, 'g', -1, 64))
	}
	err = c.Do(ctx, http.MethodPut, "/api/v1/mappings?"+q.Encode(), yaml, &res)
	return res.Delta, err
}

// MappingQuery selects mapping flows (empty fields: all).
type MappingQuery struct {
	State, Server string
	Page, PerPage int // 0: the node's defaults
}

// Mappings is GET /api/v1/mappings: one page of mapping flows.
func (c *Client) Mappings(ctx context.Context, q MappingQuery) (diagnostics.MappingPage, error) {
	v := url.Values{}
	if q.Page > 0 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.PerPage > 0 {
		v.Set("per_page", strconv.Itoa(q.PerPage))
	}
	if q.State != "" {
		v.Set("state", q.State)
	}
	if q.Server != "" {
		v.Set("server", q.Server)
	}
	path := "/api/v1/mappings"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var p diagnostics.MappingPage
	err := c.Get(ctx, path, &p)
	return p, err
}

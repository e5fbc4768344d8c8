package harness

import (
	"context"
	"fmt"
	"net/http"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"github.com/uamirror/uamirror/redundancy"
)

// Admin is the tests' view of one member's admin API: the one admin
// client (diagnostics/adminclient, embedded: Switchover, Config, … with a
// context) plus context-free shorthands that name the member in errors.
// test/pair and test/fault share it. Safe for concurrent use.
type Admin struct {
	*adminclient.Client
	// Name names the member in errors.
	Name string
}

// NewAdmin returns the admin client of member name at base
// (http[s]://host:port), through hc (nil: http.DefaultClient).
func NewAdmin(name, base string, hc *http.Client) Admin {
	return Admin{Client: adminclient.New(base, adminclient.Options{HTTPClient: hc}), Name: name}
}

// Get GETs path and decodes a 200 answer's JSON body into out; any other
// status is an error naming the member and the path.
func (a Admin) Get(path string, out any) error {
	if err := a.Client.Get(context.Background(), path, out); err != nil {
		return fmt.Errorf("GET %s on %s: %w", path, a.Name, err)
	}
	return nil
}

// Status is GET /api/v1/status.
func (a Admin) Status() (redundancy.Status, error) {
	var st redundancy.Status
	err := a.Get("/api/v1/status", &st)
	return st, err
}

// Events is GET /api/v1/events: the switchover journal.
func (a Admin) Events() ([]redundancy.Event, error) {
	var res struct {
		Events []redundancy.Event `json:"events"`
	}
	err := a.Get("/api/v1/events", &res)
	return res.Events, err
}

// Pending is GET /api/v1/mappings?state=pending (the first 20), for
// PendingWatch.
func (a Admin) Pending() (diagnostics.MappingPage, error) {
	var pg diagnostics.MappingPage
	err := a.Get("/api/v1/mappings?state=pending&per_page=20", &pg)
	return pg, err
}

package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

// Admin is a client of one member's admin API, for tests: the one copy
// test/pair and test/fault share. Safe for concurrent use if Client is.
type Admin struct {
	// Name names the member in errors.
	Name string
	// Base is the API's base URL (http[s]://host:port).
	Base   string
	Client *http.Client
}

// Get GETs path and decodes a 200 answer's JSON body into out; any other
// status is an error with the body.
func (a Admin) Get(path string, out any) error {
	res, err := a.Client.Get(a.Base + path)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %s: %s", path, a.Name, res.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
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

package diagnostics

import "net/http"

// configSource is the optional Pair capability of handing out the pair's
// replicated mirror config (*redundancy.Node has it).
type configSource interface {
	Config() (yaml []byte, hash string)
}

// ConfigView is the answer of GET /api/v1/config.
type ConfigView struct {
	// Hash is the config's hash (as in /api/v1/status); YAML the config
	// as applied (it never holds a secret: mapping refuses them).
	Hash string `json:"hash"`
	YAML string `json:"yaml"`
}

// getConfig serves the pair's replicated mirror config, so that an
// operator can export what actually runs.
func (a *Admin) getConfig(w http.ResponseWriter, _ *http.Request) {
	src, ok := a.pair.(configSource)
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Error: "this member serves no mirror config"})
		return
	}
	yaml, hash := src.Config()
	if len(yaml) == 0 {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "no mirror config has been applied to the pair yet"})
		return
	}
	writeJSON(w, http.StatusOK, ConfigView{Hash: hash, YAML: string(yaml)})
}

package mapping

import (
	"strings"
	"testing"
)

// TestWarningsUsernameOverNone: a username login over None/None is valid
// but warned about, with file:line; over SignAndEncrypt it is not.
func TestWarningsUsernameOverNone(t *testing.T) {
	yml := `servers:
  - name: plc
    endpoints: [opc.tcp://plc:4840]
    auth: {type: username, username: op, password_env: PLC_PW}
  - name: scada
    endpoints: [opc.tcp://scada:4840]
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    auth: {type: username, username: op, password_env: SCADA_PW}
mappings:
  - {source: {server: plc, node: "ns=2;s=a"}, target: {server: scada, node: "ns=2;s=a"}}
`
	c, err := ParseYAML([]byte(yml), "m.yml")
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.HasPrefix(w[0], "m.yml:2: servers[0].auth: warning: server plc") || !strings.Contains(w[0], "None/None") {
		t.Fatalf("warnings: %q", w)
	}
}

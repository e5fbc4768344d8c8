package diagnostics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/nodeopcua"
	"github.com/uamirror/uamirror/uaserver"
)

// manyEngine is an engine with n ok mappings.
type manyEngine struct{ snap []bridge.MappingStatus }

func (e manyEngine) Snapshot() []bridge.MappingStatus { return e.snap }
func (e manyEngine) Stats() bridge.Stats              { return bridge.Stats{} }

// TestUAServerWithNodeOPCUAClient drives the secured pair endpoint with a
// third-party client, node-opcua 2.182.2 (the one test/nodeopcua
// installs), over Basic256Sha256 SignAndEncrypt: it browses the tree of
// 2,500 mappings in pages of 400 with BrowseNext, translates browse paths
// (to BuildInfo, to the Failover method, to ServerUriArray), reads
// BuildInfo, ServerArray, an operation limit, RedundancySupport and
// ServerStatus, reads Failover's argument definitions, and calls Failover
// anonymously (refused) and as the operator (done).
func TestUAServerWithNodeOPCUAClient(t *testing.T) {
	dir, err := nodeopcua.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-opcua", "package.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node-opcua is not installed in %s (CI must run npm ci there)", dir)
		}
		t.Skipf("node-opcua is not installed: run `npm ci` in %s", dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	const n = 2500
	snap := make([]bridge.MappingStatus, n)
	for i := range snap {
		snap[i] = bridge.MappingStatus{ID: fmt.Sprintf("m%05d", i), State: bridge.StateOK}
	}
	ctx := harness.Context(t)
	pair := activePair("a")
	der, key, err := uaserver.GenerateCertificate(diagnostics.UAServerURIPrefix+"a", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	const password = "node-opcua-operator-token"
	u, err := diagnostics.NewUAServer(diagnostics.UAServerConfig{Addr: "127.0.0.1:0", Pair: pair, Logger: zap.NewNop(),
		Engine: func() diagnostics.Engine { return manyEngine{snap} }, Version: "9.8.7",
		Security: &diagnostics.UASecurity{Certificate: der, Key: key, Operators: map[string]string{"operator": password}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = u.Run(rctx) }()
	defer func() { stop(); wg.Wait() }()

	arg, _ := json.Marshal(map[string]any{"endpoint": u.Endpoint(), "ns": diagnostics.UANamespaceURI,
		"pki": t.TempDir(), "user": "operator", "password": password, "maxRefs": 400})
	script, err := filepath.Abs(filepath.Join("testdata", "nodeopcua_client.js"))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "node", script, string(arg))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node-opcua client: %v\nstderr (tail): %s", err, tail(stderr.String(), 3000))
	}
	var got struct {
		NS, FirstPage, Items, Pages int
		Translate                   []struct{ Status, Target string }
		BuildInfo                   struct{ ProductName, SoftwareVersion, ManufacturerName string }
		ServerArray                 []string
		MaxNodesPerBrowse           uint32
		RedundancySupport           int
		ServerState                 int
		InputArguments              []string
		OutputArguments             []string
		AnonymousCall               string
		OperatorCall                string
	}
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatalf("client output %q: %v", stdout.String(), err)
	}
	t.Logf("node-opcua client: %s", stdout.String())
	if got.FirstPage != 400 || got.Items != n || got.Pages != 7 {
		t.Errorf("Mappings/Items: first page %d, %d items in %d pages; want 400, %d in 7", got.FirstPage, got.Items, got.Pages, n)
	}
	wantTargets := []string{"ns=0;i=2260", fmt.Sprintf("ns=%d;s=Pair/Failover", got.NS), fmt.Sprintf("ns=%d;s=ServerUriArray", got.NS)}
	for k, w := range wantTargets {
		if k >= len(got.Translate) || got.Translate[k].Status != "Good" || got.Translate[k].Target != w {
			t.Errorf("translate %d: %+v, want Good → %s", k, got.Translate, w)
		}
	}
	if got.BuildInfo.ProductName != "uamirror" || got.BuildInfo.SoftwareVersion != "9.8.7" || got.BuildInfo.ManufacturerName != "uamirror" {
		t.Errorf("BuildInfo %+v", got.BuildInfo)
	}
	if len(got.ServerArray) != 1 || got.ServerArray[0] != diagnostics.UAServerURIPrefix+"a" || got.MaxNodesPerBrowse != 1000 ||
		got.RedundancySupport != 3 || got.ServerState != 0 {
		t.Errorf("ServerArray %v, MaxNodesPerBrowse %d, RedundancySupport %d, ServerState %d",
			got.ServerArray, got.MaxNodesPerBrowse, got.RedundancySupport, got.ServerState)
	}
	if len(got.InputArguments) != 0 || len(got.OutputArguments) != 1 || got.OutputArguments[0] != "Error" {
		t.Errorf("Failover arguments: in %v, out %v", got.InputArguments, got.OutputArguments)
	}
	if got.AnonymousCall != "BadUserAccessDenied" || got.OperatorCall != "Good" {
		t.Errorf("Failover: anonymous %s, operator %s; want BadUserAccessDenied and Good", got.AnonymousCall, got.OperatorCall)
	}
	pair.mu.Lock()
	defer pair.mu.Unlock()
	if pair.switchover != 1 {
		t.Errorf("%d switchovers, want 1 (the operator's)", pair.switchover)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

package simserver_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/goleak"

	"github.com/uamirror/uamirror/simserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestIdentity: a simulation server has the simulation's namespace,
// folder and product name, not the core's.
func TestIdentity(t *testing.T) {
	s, err := simserver.New(simserver.Config{Vars: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := opcua.NewClient(s.Endpoint(), opcua.AutoReconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ns, err := c.FindNamespace(ctx, simserver.DefaultNamespaceURI)
	if err != nil || ns != s.NamespaceIndex() {
		t.Fatalf("namespace %s: %d %v", simserver.DefaultNamespaceURI, ns, err)
	}
	res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{
		{NodeID: ua.NewNumericNodeID(0, id.Server_ServerStatus_BuildInfo_ProductName), AttributeID: ua.AttributeIDValue},
		{NodeID: ua.NewStringNodeID(ns, simserver.DefaultFolder), AttributeID: ua.AttributeIDBrowseName},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Results[0].Value.Value(); got != simserver.ProductName {
		t.Errorf("ProductName %v, want %s", got, simserver.ProductName)
	}
	if qn, _ := res.Results[1].Value.Value().(*ua.QualifiedName); qn == nil || qn.Name != "Sim" {
		t.Errorf("folder browse name %v, want Sim", res.Results[1].Value)
	}
	if !strings.HasPrefix(s.Endpoint(), "opc.tcp://127.0.0.1:") {
		t.Errorf("endpoint %s", s.Endpoint())
	}
}

// TestProductionDoesNotImportSimserver: only tests and the command import
// the simulation server; the library packages use the core (uaserver).
func TestProductionDoesNotImportSimserver(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	cmd := exec.Command("go", "list", "-deps", "./diagnostics", "./bridge", "./redundancy", "./mapping", "./pki", "./uaserver")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/uamirror/uamirror/simserver" {
			t.Fatalf("a production package depends on %s", p)
		}
	}
}

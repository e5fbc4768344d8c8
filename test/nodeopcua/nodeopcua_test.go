package nodeopcua_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/test/nodeopcua"
)

const clientAppURI = "urn:uamirror:test:client"

// connect dials endpoint ep of the server with the given extra options and
// closes the client at the end of the test.
func connect(t *testing.T, ctx context.Context, s *nodeopcua.Server, policy string, mode ua.MessageSecurityMode, auth ua.UserTokenType, opts ...opcua.Option) *opcua.Client {
	t.Helper()
	c, err := dial(ctx, s, policy, mode, auth, opts...)
	if err != nil {
		t.Fatalf("connect %s %s: %v", policy, mode, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(cctx)
	})
	return c
}

func dial(ctx context.Context, s *nodeopcua.Server, policy string, mode ua.MessageSecurityMode, auth ua.UserTokenType, opts ...opcua.Option) (*opcua.Client, error) {
	eps, err := opcua.GetEndpoints(ctx, s.Endpoint())
	if err != nil {
		return nil, err
	}
	ep, err := opcua.SelectEndpoint(eps, policy, mode)
	if err != nil {
		return nil, err
	}
	all := []opcua.Option{
		opcua.AutoReconnect(false),
		opcua.ApplicationURI(clientAppURI),
		opcua.SecurityPolicy(ep.SecurityPolicyURI),
		opcua.SecurityMode(ep.SecurityMode),
	}
	all = append(all, opts...)
	// Takes the user token PolicyId from this endpoint: node-opcua's differ per endpoint.
	all = append(all, opcua.SecurityFromEndpoint(ep, auth))
	c, err := opcua.NewClient(s.Endpoint(), all...)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		c.Close(ctx)
		return nil, err
	}
	return c, nil
}

func nsIndex(t *testing.T, ctx context.Context, c *opcua.Client, uri string) uint16 {
	t.Helper()
	nsa, err := c.NamespaceArray(ctx)
	if err != nil {
		t.Fatalf("NamespaceArray: %v", err)
	}
	for i, ns := range nsa {
		if ns == uri {
			return uint16(i)
		}
	}
	t.Fatalf("namespace %q not in NamespaceArray %q", uri, nsa)
	return 0
}

func varID(ns uint16, i int) *ua.NodeID {
	return ua.NewStringNodeID(ns, "v"+strconv.Itoa(i))
}

// expected DataType, ValueRank and a value of each type, in the order of nodeopcua.Types.
var typeTable = []struct {
	name      string
	dataType  uint32
	valueRank int32
	sample    any
}{
	{"Boolean", id.Boolean, -1, true},
	{"SByte", id.SByte, -1, int8(-7)},
	{"Byte", id.Byte, -1, uint8(200)},
	{"Int16", id.Int16, -1, int16(-300)},
	{"UInt16", id.UInt16, -1, uint16(60000)},
	{"Int32", id.Int32, -1, int32(-70000)},
	{"UInt32", id.UInt32, -1, uint32(4000000000)},
	{"Int64", id.Int64, -1, int64(-5000000000)},
	{"UInt64", id.UInt64, -1, uint64(1) << 60},
	{"Float", id.Float, -1, float32(1.25)},
	{"Double", id.Double, -1, 3.5},
	{"String", id.String, -1, "hello"},
	{"DateTime", id.DateTime, -1, time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)},
	{"ByteString", id.ByteString, -1, []byte{1, 2, 3}},
	{"Double[]", id.Double, 1, []float64{1.5, -2, 3}},
	{"Int32[]", id.Int32, 1, []int32{1, -2, 3, 4}},
}

func TestTypeTableMatchesTypes(t *testing.T) {
	if len(typeTable) != len(nodeopcua.Types) {
		t.Fatalf("%d rows for %d types", len(typeTable), len(nodeopcua.Types))
	}
	for i, row := range typeTable {
		if row.name != nodeopcua.Types[i] {
			t.Errorf("row %d: %s, Types has %s", i, row.name, nodeopcua.Types[i])
		}
	}
}

// TestStatic runs the checks that can share one server without changing values.
func TestStatic(t *testing.T) {
	began := time.Now()
	s := nodeopcua.Start(t, nodeopcua.Options{Vars: 2 * len(nodeopcua.Types), Security: true, ServiceLevel: new(byte(100))})
	t.Logf("server ready at %s in %v", s.Endpoint(), time.Since(began))
	t.Run("TypesReadWrite", func(t *testing.T) { testTypesReadWrite(t, s) })
	t.Run("SecureChannel", func(t *testing.T) { testSecureChannel(t, s) })
	t.Run("ServiceLevel", func(t *testing.T) { testServiceLevel(t, s) })
}

func testTypesReadWrite(t *testing.T, s *nodeopcua.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := connect(t, ctx, s, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, ua.UserTokenTypeAnonymous)
	ns := nsIndex(t, ctx, c, nodeopcua.DefaultNamespace)
	if ns == 0 {
		t.Fatalf("namespace index 0")
	}

	// DataType and ValueRank of v0..v31 (two full cycles).
	var nodes []*ua.ReadValueID
	for i := 0; i < 2*len(typeTable); i++ {
		nodes = append(nodes,
			&ua.ReadValueID{NodeID: varID(ns, i), AttributeID: ua.AttributeIDDataType},
			&ua.ReadValueID{NodeID: varID(ns, i), AttributeID: ua.AttributeIDValueRank},
			&ua.ReadValueID{NodeID: varID(ns, i), AttributeID: ua.AttributeIDValue},
		)
	}
	res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: nodes, TimestampsToReturn: ua.TimestampsToReturnBoth})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	for i := 0; i < 2*len(typeTable); i++ {
		row := typeTable[i%len(typeTable)]
		dt, vr, val := res.Results[3*i], res.Results[3*i+1], res.Results[3*i+2]
		for _, r := range []*ua.DataValue{dt, vr, val} {
			if r.Status != ua.StatusOK {
				t.Fatalf("v%d (%s): read status %v", i, row.name, r.Status)
			}
		}
		got, ok := dt.Value.Value().(*ua.NodeID)
		if !ok || got.Namespace() != 0 || got.IntID() != row.dataType {
			t.Errorf("v%d (%s): DataType %v, want i=%d", i, row.name, dt.Value.Value(), row.dataType)
		}
		if got := vr.Value.Value(); got != row.valueRank {
			t.Errorf("v%d (%s): ValueRank %v, want %d", i, row.name, got, row.valueRank)
		}
		if got, want := reflect.TypeOf(val.Value.Value()), reflect.TypeOf(row.sample); got != want {
			t.Errorf("v%d (%s): initial value %v of Go type %v, want %v", i, row.name, val.Value.Value(), got, want)
		}
	}

	// Write a value of every type with a SourceTimestamp, read it back.
	ts := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var writes []*ua.WriteValue
	for i, row := range typeTable {
		writes = append(writes, &ua.WriteValue{
			NodeID:      varID(ns, i),
			AttributeID: ua.AttributeIDValue,
			Value: &ua.DataValue{
				// without the mask the value and timestamp are not encoded
				EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp,
				Value:           ua.MustVariant(row.sample),
				SourceTimestamp: ts.Add(time.Duration(i) * time.Second),
			},
		})
	}
	wres, err := c.Write(ctx, &ua.WriteRequest{NodesToWrite: writes})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	for i, st := range wres.Results {
		if st != ua.StatusOK {
			t.Errorf("write v%d (%s): %v", i, typeTable[i].name, st)
		}
	}
	nodes = nodes[:0]
	for i := range typeTable {
		nodes = append(nodes, &ua.ReadValueID{NodeID: varID(ns, i), AttributeID: ua.AttributeIDValue})
	}
	res, err = c.Read(ctx, &ua.ReadRequest{NodesToRead: nodes, TimestampsToReturn: ua.TimestampsToReturnBoth})
	if err != nil {
		t.Fatalf("Read back: %v", err)
	}
	for i, row := range typeTable {
		r := res.Results[i]
		if r.Status != ua.StatusOK {
			t.Errorf("read back v%d (%s): %v", i, row.name, r.Status)
			continue
		}
		if got := r.Value.Value(); !reflect.DeepEqual(got, row.sample) {
			t.Errorf("read back v%d (%s): %#v, want %#v", i, row.name, got, row.sample)
		}
		if want := ts.Add(time.Duration(i) * time.Second); !r.SourceTimestamp.Equal(want) {
			t.Errorf("read back v%d (%s): SourceTimestamp %v, want %v", i, row.name, r.SourceTimestamp, want)
		}
	}

	// Double into a Float variable: node-opcua checks the exact DataType.
	floatIdx := 9
	wres, err = c.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{
		NodeID:      varID(ns, floatIdx),
		AttributeID: ua.AttributeIDValue,
		Value:       &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(1.5)},
	}}})
	if err != nil {
		t.Fatalf("Write Double->Float: %v", err)
	}
	if got := wres.Results[0]; got != ua.StatusBadTypeMismatch {
		t.Errorf("Write Double->Float: %v, want BadTypeMismatch", got)
	}
}

func TestSubscribeChanging(t *testing.T) {
	const vars = 100
	s := nodeopcua.Start(t, nodeopcua.Options{Vars: vars, Type: "Double", Rate: 2000})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := connect(t, ctx, s, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, ua.UserTokenTypeAnonymous)
	ns := nsIndex(t, ctx, c, s.Namespace())

	dt, err := c.Node(varID(ns, vars-1)).Attribute(ctx, ua.AttributeIDDataType)
	if err != nil {
		t.Fatal(err)
	}
	if got := dt.NodeID(); got == nil || got.IntID() != id.Double {
		t.Fatalf("DataType of v%d: %v, want Double", vars-1, dt.Value())
	}

	notifs := make(chan *opcua.PublishNotificationData, 256)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 100 * time.Millisecond}, notifs)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var items []*ua.MonitoredItemCreateRequest
	for i := 0; i < vars; i++ {
		items = append(items, opcua.NewMonitoredItemCreateRequestWithDefaults(varID(ns, i), ua.AttributeIDValue, uint32(i)))
	}
	mres, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, items...)
	if err != nil {
		t.Fatalf("Monitor: %v", err)
	}
	for i, r := range mres.Results {
		if r.StatusCode != ua.StatusOK {
			t.Fatalf("monitor v%d: %v", i, r.StatusCode)
		}
	}

	// Every variable must be reported at least 3 times (initial value + changes).
	counts := make([]int, vars)
	last := make([]float64, vars)
	done := 0
	total := 0
	began := time.Now()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for done < vars {
		select {
		case n := <-notifs:
			if n.Error != nil {
				t.Fatalf("notification error: %v", n.Error)
			}
			dcn, ok := n.Value.(*ua.DataChangeNotification)
			if !ok {
				continue
			}
			for _, item := range dcn.MonitoredItems {
				h := int(item.ClientHandle)
				if h < 0 || h >= vars {
					t.Fatalf("unknown client handle %d", h)
				}
				v, ok := item.Value.Value.Value().(float64)
				if !ok {
					t.Fatalf("v%d: value %#v is not a float64", h, item.Value.Value.Value())
				}
				// the s-th value of Double variable h is h + s/4
				seq := (v - float64(h)) * 4
				if seq < 0 || seq != math.Trunc(seq) || (counts[h] > 0 && seq <= last[h]) {
					t.Fatalf("v%d: value %v after sequence %v breaks the deterministic sequence", h, v, last[h])
				}
				last[h] = seq
				total++
				counts[h]++
				if counts[h] == 3 {
					done++
				}
			}
		case <-deadline.C:
			t.Fatalf("after 20 s only %d of %d variables reported 3 times (%d notifications)", done, vars, total)
		}
	}
	t.Logf("%d notifications in %v until every variable had 3", total, time.Since(began))
}

func testServiceLevel(t *testing.T, s *nodeopcua.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := connect(t, ctx, s, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, ua.UserTokenTypeAnonymous)
	slID := ua.NewNumericNodeID(0, id.Server_ServiceLevel)

	v, err := c.Node(slID).Value(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Value(); got != byte(100) {
		t.Fatalf("initial ServiceLevel %#v, want byte(100)", got)
	}

	notifs := make(chan *opcua.PublishNotificationData, 16)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, notifs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, opcua.NewMonitoredItemCreateRequestWithDefaults(slID, ua.AttributeIDValue, 1)); err != nil {
		t.Fatal(err)
	}
	waitLevel := func(want byte) {
		t.Helper()
		deadline := time.NewTimer(10 * time.Second)
		defer deadline.Stop()
		for {
			select {
			case n := <-notifs:
				if n.Error != nil {
					t.Fatal(n.Error)
				}
				if dcn, ok := n.Value.(*ua.DataChangeNotification); ok {
					for _, it := range dcn.MonitoredItems {
						if it.Value.Value.Value() == want {
							return
						}
					}
				}
			case <-deadline.C:
				t.Fatalf("no ServiceLevel %d notification within 10 s", want)
			}
		}
	}
	waitLevel(100)
	for _, lvl := range []byte{0, 200, 1} {
		if err := s.SetServiceLevel(lvl); err != nil {
			t.Fatal(err)
		}
		waitLevel(lvl)
	}
}

// newClientCert makes a self-signed RSA 2048 certificate whose URI SAN is
// the client's ApplicationURI.
func newClientCert(t *testing.T, appURI string) ([]byte, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(appURI)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "uamirror test client", Organization: []string{"uamirror"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func testSecureChannel(t *testing.T, s *nodeopcua.Server) {
	cert, key := newClientCert(t, clientAppURI)
	for _, mode := range []ua.MessageSecurityMode{ua.MessageSecurityModeSign, ua.MessageSecurityModeSignAndEncrypt} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := connect(t, ctx, s, ua.SecurityPolicyURIBasic256Sha256, mode, ua.UserTokenTypeAnonymous,
				opcua.Certificate(cert), opcua.PrivateKey(key))
			if got := c.SecureChannel(); got == nil {
				t.Fatal("no secure channel")
			}
			ns := nsIndex(t, ctx, c, nodeopcua.DefaultNamespace)
			wres, err := c.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{
				NodeID:      varID(ns, 10),
				AttributeID: ua.AttributeIDValue,
				Value:       &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(42.5)},
			}}})
			if err != nil || wres.Results[0] != ua.StatusOK {
				t.Fatalf("Write: %v %v", err, wres)
			}
			v, err := c.Node(varID(ns, 10)).Value(ctx)
			if err != nil || v.Value() != 42.5 {
				t.Fatalf("read back: %v %v", v, err)
			}
		})
	}
}

func TestUntrustedCertificateRejected(t *testing.T) {
	trustedCert, trustedKey := newClientCert(t, clientAppURI)
	otherCert, otherKey := newClientCert(t, clientAppURI)
	s := nodeopcua.Start(t, nodeopcua.Options{Vars: 1, Security: true, NoAutoAccept: true,
		TrustedClientCerts: [][]byte{trustedCert}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	connect(t, ctx, s, ua.SecurityPolicyURIBasic256Sha256, ua.MessageSecurityModeSignAndEncrypt, ua.UserTokenTypeAnonymous,
		opcua.Certificate(trustedCert), opcua.PrivateKey(trustedKey))

	c, err := dial(ctx, s, ua.SecurityPolicyURIBasic256Sha256, ua.MessageSecurityModeSignAndEncrypt, ua.UserTokenTypeAnonymous,
		opcua.Certificate(otherCert), opcua.PrivateKey(otherKey))
	if err == nil {
		c.Close(ctx)
		t.Fatal("untrusted certificate accepted")
	}
	t.Logf("untrusted certificate: %v", err)
	// node-opcua files the refused certificate before it answers.
	rejected, _ := filepath.Glob(filepath.Join(s.PKIDir(), "server", "rejected", "*"))
	found := false
	for _, f := range rejected {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if blk, _ := pem.Decode(b); blk != nil {
			b = blk.Bytes
		}
		if bytes.Equal(b, otherCert) {
			found = true
		}
	}
	if !found {
		t.Errorf("refused certificate not in %s/server/rejected (%q)", s.PKIDir(), rejected)
	}
}

func TestUsername(t *testing.T) {
	s := nodeopcua.Start(t, nodeopcua.Options{Vars: 1, Security: true, Password: "s3cret", DenyAnonymous: true})
	cert, key := newClientCert(t, clientAppURI)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	channels := []struct {
		policy string
		mode   ua.MessageSecurityMode
		opts   []opcua.Option
	}{
		// on the None endpoint the password is encrypted with the token's
		// own policy (Basic256Sha256), so the server certificate is needed
		{ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, nil},
		{ua.SecurityPolicyURIBasic256Sha256, ua.MessageSecurityModeSignAndEncrypt, []opcua.Option{opcua.Certificate(cert), opcua.PrivateKey(key)}},
	}
	for _, ch := range channels {
		t.Run(ch.mode.String(), func(t *testing.T) {
			c := connect(t, ctx, s, ch.policy, ch.mode, ua.UserTokenTypeUserName,
				append([]opcua.Option{opcua.AuthUsername(nodeopcua.User, "s3cret")}, ch.opts...)...)
			if _, err := c.Node(ua.NewNumericNodeID(0, id.Server_ServiceLevel)).Value(ctx); err != nil {
				t.Fatal(err)
			}
			for _, bad := range []struct{ name, user, pass string }{
				{"wrong password", nodeopcua.User, "wrong"},
				{"wrong user", "nobody", "s3cret"},
			} {
				c, err := dial(ctx, s, ch.policy, ch.mode, ua.UserTokenTypeUserName,
					append([]opcua.Option{opcua.AuthUsername(bad.user, bad.pass)}, ch.opts...)...)
				if err == nil {
					c.Close(ctx)
					t.Errorf("%s: accepted", bad.name)
				} else if !errors.Is(err, ua.StatusBadUserAccessDenied) {
					t.Errorf("%s: %v, want BadUserAccessDenied", bad.name, err)
				}
			}
			c, err := dial(ctx, s, ch.policy, ch.mode, ua.UserTokenTypeAnonymous, ch.opts...)
			if err == nil {
				c.Close(ctx)
				t.Errorf("anonymous: accepted")
			} else if !errors.Is(err, ua.StatusBadIdentityTokenInvalid) {
				// the endpoint has no anonymous token, so gopcua sends PolicyId "Anonymous"
				t.Errorf("anonymous: %v, want BadIdentityTokenInvalid", err)
			}
		})
	}
}

func TestKillRestart(t *testing.T) {
	s := nodeopcua.Start(t, nodeopcua.Options{Vars: 16})
	endpoint := s.Endpoint()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := connect(t, ctx, s, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, ua.UserTokenTypeAnonymous)
	ns := nsIndex(t, ctx, c, nodeopcua.DefaultNamespace)

	s.Kill()
	if s.Running() {
		t.Fatal("running after Kill")
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := c.Node(varID(ns, 0)).Value(rctx)
	rcancel()
	if err == nil {
		t.Fatal("read succeeded on a killed server")
	}
	t.Logf("read after kill: %v", err)
	if _, err := dial(ctx, s, "", ua.MessageSecurityModeNone, ua.UserTokenTypeAnonymous); err == nil {
		t.Fatal("connect succeeded on a killed server")
	}

	began := time.Now()
	s.Restart(t)
	t.Logf("restarted in %v", time.Since(began))
	if s.Endpoint() != endpoint {
		t.Fatalf("endpoint changed: %s -> %s", endpoint, s.Endpoint())
	}
	c2 := connect(t, ctx, s, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, ua.UserTokenTypeAnonymous)
	if ns2 := nsIndex(t, ctx, c2, nodeopcua.DefaultNamespace); ns2 != ns {
		t.Logf("namespace index changed across restart: %d -> %d", ns, ns2)
	}

	began = time.Now()
	s.Stop()
	t.Logf("stopped in %v", time.Since(began))
	if s.Running() {
		t.Fatal("running after Stop")
	}

	// A new server on a given port (the one just freed).
	s2 := nodeopcua.Start(t, nodeopcua.Options{Vars: 1, Port: s.Port()})
	if s2.Port() != s.Port() {
		t.Fatalf("port %d, want %d", s2.Port(), s.Port())
	}
	c3 := connect(t, ctx, s2, ua.SecurityPolicyURINone, ua.MessageSecurityModeNone, ua.UserTokenTypeAnonymous)
	if err := s2.SetServiceLevel(5); err != nil {
		t.Fatal(err)
	}
	v, err := c3.Node(ua.NewNumericNodeID(0, id.Server_ServiceLevel)).Value(ctx)
	if err != nil || v.Value() != byte(5) {
		t.Fatalf("ServiceLevel after SetServiceLevel(5): %v %v", v, err)
	}
}

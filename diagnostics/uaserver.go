package diagnostics

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/uaserver"
)

// The pair's OPC UA endpoint: every node serves the pair's state in the
// standard model, so that a standard OPC UA client can watch the pair and
// switch it over.
//
// Namespace 0:
//
//	i=2267 Server.ServiceLevel (Byte; Part 4, 6.6.2.4.2 sub-ranges, see
//	       ServiceLevelFor)
//	i=2296 Server.ServerRedundancy, a NonTransparentRedundancyType (Part 5,
//	       6.3.9): RedundancySupport (i=3709, Hot = 3) and the property
//	       ServerUriArray (ns=<pair>;s=ServerUriArray, String[]): the server
//	       URI of every bridge node of the pair, this one included, in
//	       member order (served by the core, package uaserver)
//	i=2256 ServerStatus with a real BuildInfo (product "uamirror", the
//	       binary's version), ServerArray, ServerCapabilities (uaserver)
//
// Namespace UANamespaceURI (string node ids):
//
//	Role, Active (String), Epoch (UInt64), Ready (Boolean)
//	ServerUri (String): this node's own server URI (ApplicationUri)
//	Servers/<name>/Up (Boolean), Servers/<name>/ServiceLevel (Int32)
//	Servers/<name>/Members/<i>/Endpoint, /State, /Reason (String),
//	  /ServiceLevel (Int32), /InUse (Boolean): each member of a redundant
//	  server set (i from 0, config order)
//	Mappings/<state> (UInt32): flows per state (pending, ok, held, bad,
//	  quarantined, disabled); Mappings/Problems (String[]): "id: state:
//	  reason" of each flow neither ok nor disabled
//	Mappings/Items/<id>/State, /Reason, /From, /To (String), /Value (the
//	  last good value), /SourceTimestamp (DateTime): one mapping's health;
//	  Mappings/Items/<id>/Reverse/… for the reverse flow of a "both" one
//	LastSwitchover/Time (DateTime), /From, /To, /Reason (String),
//	  /Epoch (UInt64)
//	LastDrill/Time (DateTime), /Verdict ("PASS", "FAIL", "" before the
//	  first), /GapMS (Double: the worst target's gap, -1 unknown), /From,
//	  /To (String), /Epoch (UInt64), /Detail (String): the last drill
//	  (uamirror drill) journaled on this node
//	Method Pair/Failover on object Pair: performs a switchover (on the
//	  standby, forwards it to the active's admin API). No input; output:
//	  one String "Error", empty on success, else the error text (with a
//	  Bad status); both declared by its InputArguments and
//	  OutputArguments properties. With UAServerConfig.Security only an
//	  authenticated operator (a UserName session on a signed channel) may
//	  call it; anyone else gets Bad_UserAccessDenied.
//
// Every node is browsable from Objects/Pair (uatree.go). Values are read
// from the Pair and the engine at Read time; ServiceLevel
// and Role, Active, Epoch, Ready are also pushed to monitored items when
// they change (checked every UAServerConfig.Interval).

// UANamespaceURI is the namespace of the pair's variables.
const UANamespaceURI = "urn:uamirror:pair"

// UAServerURIPrefix + member id is a node's server URI (ApplicationUri).
const UAServerURIPrefix = "urn:uamirror:pair:"

// ServiceLevel values (Part 4, 6.6.2.4.2: 0 Maintenance, 1 NoData,
// 2–199 Degraded, 200–255 Healthy).
const (
	ServiceLevelMaintenance     byte = 0   // no role: arbiter, starting
	ServiceLevelNoData          byte = 1   // role unknown
	ServiceLevelStandbyDegraded byte = 100 // standby, not READY
	ServiceLevelActiveDegraded  byte = 150 // active, not writing or a server down
	ServiceLevelStandbyReady    byte = 200 // standby, READY to take over
	ServiceLevelActive          byte = 255 // active and healthy
)

// ServiceLevelFor maps a node's status to its ServiceLevel.
func ServiceLevelFor(st redundancy.Status) byte {
	down := false
	if st.Health != nil {
		for _, s := range st.Health.Servers {
			if !s.Up {
				down = true
			}
		}
	}
	switch st.Role {
	case redundancy.PairActive:
		if st.Ready && !down {
			return ServiceLevelActive
		}
		return ServiceLevelActiveDegraded
	case redundancy.PairStandby:
		if st.Ready {
			return ServiceLevelStandbyReady
		}
		return ServiceLevelStandbyDegraded
	case redundancy.PairArbiter, "":
		return ServiceLevelMaintenance
	}
	return ServiceLevelNoData
}

// UAPair is what the OPC UA endpoint needs of a pair member. All methods
// must be safe for concurrent use.
type UAPair interface {
	Status() redundancy.Status
	Events() []redundancy.Event
	Switchover(ctx context.Context, to string, force bool) error
}

// UAServerConfig configures a UAServer.
type UAServerConfig struct {
	// Addr is HOST:PORT to listen on (port 0: an ephemeral one).
	Addr string
	// Pair is the member served.
	Pair UAPair
	// Engine returns the running engine; nil or nil results serve no
	// mapping counts.
	Engine EngineFunc
	// Drills is the member's drill journal (nil: LastDrill serves empty
	// values), see Admin.SetDrills.
	Drills *redundancy.DrillJournal
	// Interval is how often changes are checked for notification
	// (default 200 ms).
	Interval time.Duration
	// Logger; nil discards.
	Logger *zap.Logger
	// Version is the software version in BuildInfo (default the
	// binary's build information).
	Version string
	// Security secures the endpoint; nil serves it without security,
	// which NewUAServer allows only on a loopback address or with
	// Insecure.
	Security *UASecurity
	// Insecure allows a non-loopback endpoint without Security (anyone
	// who reaches it may read the pair's state and call Failover).
	Insecure bool
	// Forward is how a standby forwards an operator's Failover to the
	// active's admin API: its bearer Token and, with ForwardTLS, https
	// (the node's own AdminAuth). The zero value forwards over plain
	// http without credentials.
	Forward AdminAuth
}

// UASecurity secures the pair's OPC UA endpoint (issue 12.4): only secure
// endpoints (Basic256Sha256 and Aes256_Sha256_RsaPss, Sign and
// SignAndEncrypt) with the node's certificate; anonymous sessions may
// read, browse and subscribe; Failover needs a user of Operators.
type UASecurity struct {
	// Certificate (DER, RSA) and Key are the endpoint's; the
	// certificate's URI SAN must be UAServerURIPrefix + the member id.
	Certificate []byte
	Key         *rsa.PrivateKey
	// Operators maps user names to passwords; each may call Failover
	// (role UAOperatorRole). A password is accepted only encrypted to
	// Certificate with the session's nonce.
	Operators map[string]string
}

// UAOperatorRole is the role that may call Failover.
const UAOperatorRole = "operator"

// ErrUAInsecure is returned by NewUAServer for a non-loopback address
// without UAServerConfig.Security or Insecure.
var ErrUAInsecure = errors.New("a non-loopback OPC UA endpoint needs security (certificate and operator users) or an explicit insecure flag")

// isLoopbackHost reports whether host names only the loopback interface.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// UAServer is a node's OPC UA endpoint. Start it, then Run it until its
// context ends (Run closes it).
type UAServer struct {
	cfg  UAServerConfig
	log  *zap.Logger
	srv  *uaserver.Server
	self string
	http *http.Client

	closeOnce sync.Once
	closeErr  error
}

// NewUAServer builds the endpoint of the member whose status pair reports.
func NewUAServer(cfg UAServerConfig) (*UAServer, error) {
	if cfg.Pair == nil {
		return nil, errors.New("diagnostics: UAServerConfig.Pair is nil")
	}
	host, portS, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("diagnostics: opcua address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("diagnostics: opcua address %q: bad port", cfg.Addr)
	}
	if cfg.Engine == nil {
		cfg.Engine = func() Engine { return nil }
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Security == nil && !cfg.Insecure && !isLoopbackHost(host) {
		return nil, fmt.Errorf("diagnostics: opcua address %q: %w", cfg.Addr, ErrUAInsecure)
	}
	u := &UAServer{cfg: cfg, log: cfg.Logger.Named("opcua"), self: cfg.Pair.Status().Node,
		http: &http.Client{Timeout: 10 * time.Second}}
	if cfg.Security == nil && !isLoopbackHost(host) {
		u.log.Warn("OPC UA endpoint without security on a non-loopback address: anyone who reaches it may call Failover",
			zap.String("addr", cfg.Addr))
	}
	ucfg := uaserver.Config{
		Host:           host,
		Port:           port,
		NamespaceURI:   UANamespaceURI,
		Folder:         uaFolder,
		ApplicationURI: UAServerURIPrefix + u.self,
		Logger:         cfg.Logger,
		LoggerName:     "opcua",
		Build: uaserver.Build{ApplicationName: "uamirror pair member " + u.self, ProductName: "uamirror",
			ProductURI: "urn:uamirror:pair", SoftwareVersion: cfg.Version},
		Redundancy: &uaserver.Redundancy{Support: ua.RedundancySupportHot, ServerURIs: u.serverURIs},
		Extension: &uaserver.Extension{
			Var:         u.variable,
			Call:        u.call,
			CallTimeout: 15 * time.Second,
			Node:        u.uaNode,
			Children:    u.uaChildren,
			// ServiceLevel is the pair's verdict, never a client's.
			ServiceLevelReadOnly: true,
		},
	}
	if sec := cfg.Security; sec != nil {
		if len(sec.Operators) == 0 {
			return nil, errors.New("diagnostics: UASecurity.Operators is empty: nobody could call Failover")
		}
		for _, p := range []string{"Basic256Sha256", "Aes256_Sha256_RsaPss"} {
			for _, m := range []ua.MessageSecurityMode{ua.MessageSecurityModeSign, ua.MessageSecurityModeSignAndEncrypt} {
				ucfg.Security = append(ucfg.Security, uaserver.SecurityPolicy{Policy: p, Mode: m})
			}
		}
		ucfg.SecureOnly, ucfg.AllowAnonymous = true, true
		ucfg.Certificate, ucfg.PrivateKey = sec.Certificate, sec.Key
		ucfg.Users, ucfg.Roles = map[string]string{}, map[string][]string{}
		for name, pw := range sec.Operators {
			ucfg.Users[name], ucfg.Roles[name] = pw, []string{UAOperatorRole}
		}
	}
	srv, err := uaserver.New(ucfg)
	if err != nil {
		return nil, fmt.Errorf("diagnostics: opcua endpoint: %w", err)
	}
	u.srv = srv
	return u, nil
}

// Start listens; the endpoint serves from then on.
func (u *UAServer) Start(ctx context.Context) error {
	if err := u.srv.Start(ctx); err != nil {
		return fmt.Errorf("diagnostics: opcua endpoint: %w", err)
	}
	u.srv.SetServiceLevel(ServiceLevelFor(u.cfg.Pair.Status()))
	return nil
}

// Endpoint returns the endpoint URL (opc.tcp://host:port); valid after
// Start.
func (u *UAServer) Endpoint() string { return u.srv.Endpoint() }

// Run pushes changes of ServiceLevel, Role, Active, Epoch and Ready to
// monitored items until ctx ends, then closes the server.
func (u *UAServer) Run(ctx context.Context) error {
	t := time.NewTicker(u.cfg.Interval)
	defer t.Stop()
	var last struct {
		level              byte
		role               redundancy.PairRole
		active             string
		epoch              uint64
		ready, initialised bool
	}
	for {
		st := u.cfg.Pair.Status()
		if lv := ServiceLevelFor(st); lv != u.srv.ServiceLevel() {
			u.srv.SetServiceLevel(lv)
		}
		if last.initialised {
			if st.Role != last.role {
				u.srv.NotifyExtra("Role")
			}
			if st.Active != last.active {
				u.srv.NotifyExtra("Active")
			}
			if st.Epoch != last.epoch {
				u.srv.NotifyExtra("Epoch")
			}
			if st.Ready != last.ready {
				u.srv.NotifyExtra("Ready")
			}
		}
		last.role, last.active, last.epoch, last.ready, last.initialised = st.Role, st.Active, st.Epoch, st.Ready, true
		select {
		case <-ctx.Done():
			return u.Close()
		case <-t.C:
		}
	}
}

// Close stops the endpoint. It is safe to call more than once.
func (u *UAServer) Close() error {
	u.closeOnce.Do(func() {
		u.closeErr = u.srv.Close()
		u.http.CloseIdleConnections()
	})
	return u.closeErr
}

func value(v any) *ua.DataValue {
	now := time.Now()
	return &ua.DataValue{
		EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value:           ua.MustVariant(v),
		SourceTimestamp: now,
		ServerTimestamp: now,
	}
}

// serverURIs returns the server URIs of the pair's bridge nodes, this
// one included, in member order (ServerUriArray, Part 5, 6.3.9).
func (u *UAServer) serverURIs() []string {
	st := u.cfg.Pair.Status()
	out := []string{}
	self := false
	for _, m := range st.Members {
		if m.Role == redundancy.RoleNode {
			out = append(out, UAServerURIPrefix+m.ID)
			self = self || m.ID == u.self
		}
	}
	if !self {
		out = append(out, UAServerURIPrefix+u.self)
	}
	return out
}

// variable serves the variables of namespace UANamespaceURI.
func (u *UAServer) variable(name string) (*ua.DataValue, bool) {
	switch name {
	case "Role", "Active", "Epoch", "Ready":
		st := u.cfg.Pair.Status()
		switch name {
		case "Role":
			return value(string(st.Role)), true
		case "Active":
			return value(st.Active), true
		case "Epoch":
			return value(st.Epoch), true
		default:
			return value(st.Ready), true
		}
	case "ServerUri":
		return value(UAServerURIPrefix + u.self), true
	case "Version", "PairProtocol", "MemberVersions":
		st := u.cfg.Pair.Status()
		switch name {
		case "Version":
			return value(st.Version.String()), true
		case "PairProtocol":
			return value(int32(st.PairProtocol)), true
		}
		out := []string{}
		for _, m := range st.Members {
			v := "unknown"
			if m.Version.Source != "unknown" && m.Version.Protocol > 0 {
				v = m.Version.String()
			}
			out = append(out, m.ID+"="+v)
		}
		return value(out), true
	}
	if rest, ok := strings.CutPrefix(name, "LastSwitchover/"); ok {
		evs := u.cfg.Pair.Events()
		var ev redundancy.Event
		if len(evs) > 0 {
			ev = evs[len(evs)-1]
		}
		switch rest {
		case "Time":
			return value(ev.Time), true
		case "From":
			return value(ev.From), true
		case "To":
			return value(ev.To), true
		case "Reason":
			return value(ev.Reason), true
		case "Epoch":
			return value(ev.Epoch), true
		}
		return nil, false
	}
	if strings.HasPrefix(name, "Servers/") && strings.Count(name, "/") == 4 {
		return u.memberVariable(name)
	}
	if rest, ok := strings.CutPrefix(name, "LastDrill/"); ok {
		return u.lastDrill(rest)
	}
	if rest, ok := strings.CutPrefix(name, "Servers/"); ok {
		srv, field, ok := strings.Cut(rest, "/")
		if !ok {
			return nil, false
		}
		s, ok := u.serverHealth(srv)
		switch {
		case !ok:
		case field == "Up":
			return value(s.Up), true
		case field == "ServiceLevel":
			return value(int32(s.ServiceLevel)), true
		}
		return nil, false
	}
	if rest, ok := strings.CutPrefix(name, uaItemsPrefix); ok {
		return u.itemVariable(rest)
	}
	if rest, ok := strings.CutPrefix(name, "Mappings/"); ok {
		return u.mappings(rest)
	}
	return nil, false
}

// serverHealth returns the health the pair reports for server name.
func (u *UAServer) serverHealth(name string) (redundancy.ServerHealth, bool) {
	if h := u.cfg.Pair.Status().Health; h != nil {
		for _, s := range h.Servers {
			if s.Name == name {
				return s, true
			}
		}
	}
	return redundancy.ServerHealth{}, false
}

// uaMappingStates are the names of bridge.State, in order.
var uaMappingStates = func() []string {
	var out []string
	for _, s := range bridge.States() {
		out = append(out, s.String())
	}
	return out
}()

// mappings serves Mappings/<state> and Mappings/Problems.
func (u *UAServer) mappings(name string) (*ua.DataValue, bool) {
	state := slices.Index(uaMappingStates, name)
	if state < 0 && name != "Problems" {
		return nil, false
	}
	e := u.cfg.Engine()
	var snap []bridge.MappingStatus
	if e != nil {
		snap = e.Snapshot()
	}
	if state >= 0 {
		var n uint32
		for _, m := range snap {
			if int(m.State) == state {
				n++
			}
		}
		return value(n), true
	}
	problems := []string{}
	for _, m := range snap {
		if m.State == bridge.StateOK || m.State == bridge.StateDisabled {
			continue
		}
		id := m.ID
		if m.Reverse {
			id += " (reverse)"
		}
		problems = append(problems, id+": "+m.State.String()+": "+m.Reason)
	}
	return value(problems), true
}

// Node ids of the Failover method and its object.
const (
	uaPairObject     = "Pair"
	uaFailoverMethod = "Pair/Failover"
)

// call serves the Failover method (Part 4, 5.11.2).
func (u *UAServer) call(ctx context.Context, req *ua.CallMethodRequest) *ua.CallMethodResult {
	if req.ObjectID.Type() != ua.NodeIDTypeString || req.ObjectID.StringID() != uaPairObject ||
		req.ObjectID.Namespace() == 0 {
		return &ua.CallMethodResult{StatusCode: ua.StatusBadNodeIDUnknown}
	}
	if req.MethodID.Type() != ua.NodeIDTypeString || req.MethodID.StringID() != uaFailoverMethod ||
		req.MethodID.Namespace() != req.ObjectID.Namespace() {
		return &ua.CallMethodResult{StatusCode: ua.StatusBadMethodInvalid}
	}
	if len(req.InputArguments) != 0 {
		return &ua.CallMethodResult{StatusCode: ua.StatusBadTooManyArguments}
	}
	if u.cfg.Security != nil {
		if c := uaserver.CallerFrom(ctx); !c.HasRole(UAOperatorRole) {
			who := c.User
			if who == "" {
				who = "anonymous"
			}
			u.log.Warn("OPC UA Failover refused: not an authenticated operator", zap.String("user", who),
				zap.String("channel", c.SecurityMode.String()))
			if rr, ok := u.cfg.Pair.(refusalRecorder); ok {
				rr.RecordRefusal("OPC UA", who, "Failover: not an authenticated operator")
			}
			return &ua.CallMethodResult{StatusCode: ua.StatusBadUserAccessDenied,
				OutputArguments: []*ua.Variant{ua.MustVariant("not an authenticated operator")}}
		}
	}
	err := u.cfg.Pair.Switchover(ctx, "", false)
	var na *redundancy.NotActiveError
	if errors.As(err, &na) && na.Admin != "" {
		err = u.forward(ctx, na.Active, na.Admin)
	}
	if err == nil {
		u.log.Warn("switchover done (OPC UA Failover)")
		u.srv.SetServiceLevel(ServiceLevelFor(u.cfg.Pair.Status()))
		return &ua.CallMethodResult{StatusCode: ua.StatusOK, OutputArguments: []*ua.Variant{ua.MustVariant("")}}
	}
	code := ua.StatusBadInternalError
	switch {
	case errors.As(err, &na), errors.Is(err, redundancy.ErrStandbyNotReady), errors.Is(err, redundancy.ErrNotActive):
		code = ua.StatusBadInvalidState
	case errors.Is(err, context.DeadlineExceeded):
		code = ua.StatusBadTimeout
	}
	u.log.Warn("OPC UA Failover refused", zap.Error(err))
	return &ua.CallMethodResult{StatusCode: code, OutputArguments: []*ua.Variant{ua.MustVariant(err.Error())}}
}

// forward asks the admin API of the active (member id at admin) for the
// switchover, as the admin API's own switchover does when it reaches a
// standby: with the node's token and over TLS when the pair's admin API
// is secured.
func (u *UAServer) forward(ctx context.Context, id, admin string) error {
	admin = strings.TrimPrefix(strings.TrimPrefix(admin, "http://"), "https://")
	base, client := "http://"+admin, u.http
	if f := u.cfg.Forward.ForwardTLS; f != nil {
		tr := &http.Transport{TLSClientConfig: f(id)}
		defer tr.CloseIdleConnections()
		base, client = "https://"+admin, &http.Client{Timeout: u.http.Timeout, Transport: tr}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/switchover", nil)
	if err != nil {
		return err
	}
	req.Header.Set(forwardedHeader, "1")
	if len(u.cfg.Forward.Token) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(u.cfg.Forward.Token))
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("forwarding to the active at %s: %w", admin, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var body apiError
		_ = json.NewDecoder(io.LimitReader(res.Body, 1<<16)).Decode(&body)
		if body.Error == "" {
			body.Error = res.Status
		}
		return fmt.Errorf("the active at %s refused: %s", admin, body.Error)
	}
	return nil
}

// lastDrill serves LastDrill/<field>.
func (u *UAServer) lastDrill(field string) (*ua.DataValue, bool) {
	var d redundancy.DrillRecord
	if u.cfg.Drills != nil {
		d, _ = u.cfg.Drills.Last()
	}
	ev := d.Event()
	switch field {
	case "Time":
		return value(d.Time), true
	case "Verdict":
		if d.Time.IsZero() {
			return value(""), true
		}
		return value(strings.TrimPrefix(ev.Reason, "drill ")), true
	case "GapMS":
		if ev.GapMS == nil {
			return value(-1.0), true
		}
		return value(*ev.GapMS), true
	case "From":
		return value(d.From), true
	case "To":
		return value(d.To), true
	case "Epoch":
		return value(d.Epoch), true
	case "Detail":
		return value(ev.Detail), true
	}
	return nil, false
}

package uaserver

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"
)

// Server is a running (or startable) simulation server.
//
// Concurrency: every method is safe for concurrent use. Start may be
// called once; Close any number of times (the first one stops the
// server). Value changes from the ticker, SetValue, SetStatus,
// SetServiceLevel and client Writes are serialised, so subscribers see
// the changes of one variable in the order they were stored.
//
// Goroutines: Start launches the relay's accept and copy goroutines and,
// when Rate > 0, the ticker; Close waits for all of them. gopcua's own
// goroutines (one per connection, one publish loop per subscription) are
// stopped by Close but not joined: the library offers no way to wait for
// them; they exit within a publishing interval.
type Server struct {
	cfg Config
	// clock is the offset of this server's clock from the system clock
	// (ns; Config.ClockOffset, moved by StepClock).
	clock   atomic.Int64
	log     *zap.Logger
	ns      *namespace
	vars    []simVar
	journal *journal

	// cert and key are loaded in New or generated in Start; appURI is
	// the loaded certificate's URI or set in Start.
	cert   []byte
	key    *rsa.PrivateKey
	appURI string

	serviceLevel atomic.Pointer[ua.DataValue]

	// userExt is Config.Extension as given (nil: none); cfg.Extension is
	// it with the core's nodes in front (ns0.go).
	userExt *Extension
	// started is the StartTime of ServerStatus.
	started time.Time

	// users records who each session is (users.go).
	users sessionUsers

	// cpMu guards cps, the Browse continuation points by id (view.go).
	cpMu sync.Mutex
	cps  map[string]*contPoint

	changes, writes, notified, dropped atomic.Uint64

	// stop is closed by Close; long-lived goroutines and blocked
	// deliveries select on it.
	stop chan struct{}
	wg   sync.WaitGroup // the ticker
	// stopCtx is cancelled by Close; it bounds Extension.Call.
	stopCtx    context.Context
	stopCancel context.CancelFunc

	mu        sync.Mutex // lifecycle; guards the fields below
	state     lifecycle
	endpoint  string
	front     *front
	gs        *server.Server
	libCancel context.CancelFunc

	// libMute silences gopcua's logging while it imports its nodeset and
	// from Close on (its goroutines outlive Close by a little).
	libMute *atomic.Bool

	// notifyMu serialises every value change with its fan-out; it guards
	// lib (nil before Start), stalled, targets and the vars' status.
	notifyMu sync.Mutex
	lib      *server.Server
	stalled  map[*server.Subscription]struct{}
	targets  []target
}

type lifecycle int

const (
	stateNew lifecycle = iota
	stateStarted
	stateClosed
)

// simVar is one simulated variable.
type simVar struct {
	typ   *varType
	nid   *ua.NodeID // set in Start, when the namespace index is known
	key   string     // nid.String(): gopcua's monitored-item index key
	value atomic.Pointer[ua.DataValue]
	// status is the sticky status set by SetStatus; guarded by notifyMu.
	status ua.StatusCode
}

// Stats are counters since New.
type Stats struct {
	// Changes is the number of automatic (Rate) value changes made.
	Changes uint64
	// Writes is the number of values accepted from client Writes.
	Writes uint64
	// Notifications is the number of data change notifications handed to
	// subscriptions.
	Notifications uint64
	// Dropped is the number of notifications not delivered because their
	// subscription died or stalled (its publish loop stopped taking them
	// for stallTimeout).
	Dropped uint64
}

// New validates cfg and builds a server with every variable at its initial
// value (ValueFor(type, i, 0)) and ServiceLevel 255. It loads the
// certificate and opens the journal; call Start to listen.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Security = append([]SecurityPolicy(nil), cfg.Security...)
	log := cfg.Logger.Named(cfg.LoggerName)
	s := &Server{
		cfg:     cfg,
		log:     log,
		stop:    make(chan struct{}),
		stalled: map[*server.Subscription]struct{}{},
		libMute: new(atomic.Bool),
		userExt: cfg.Extension,
		started: time.Now(),
		cps:     map[string]*contPoint{},
	}
	s.clock.Store(int64(cfg.ClockOffset))
	s.cfg.Extension = s.withCore(cfg.Extension)
	s.stopCtx, s.stopCancel = context.WithCancel(context.Background())
	if cfg.Certificate != nil {
		uri, err := certificateURI(cfg.Certificate, cfg.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("uaserver: %w", err)
		}
		s.cert, s.key, s.appURI = cfg.Certificate, cfg.PrivateKey, uri
	}
	if cfg.CertFile != "" {
		cert, key, uri, err := loadCertificate(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("uaserver: %w", err)
		}
		s.cert, s.key, s.appURI = cert, key, uri
	}
	j, err := openJournal(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("uaserver: %w", err)
	}
	s.journal = j

	now := s.Now()
	s.vars = make([]simVar, cfg.Vars)
	for i := range s.vars {
		v := &s.vars[i]
		v.typ = typeFor(i, cfg.Type)
		v.value.Store(&ua.DataValue{
			EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
			Value:           ua.MustVariant(valueFor(v.typ, i, 0)),
			SourceTimestamp: now,
			ServerTimestamp: now,
		})
	}
	s.serviceLevel.Store(scalarValue(byte(255), now))
	s.ns = &namespace{srv: s, uri: cfg.NamespaceURI, folder: cfg.Folder}
	return s, nil
}

func scalarValue(v any, ts time.Time) *ua.DataValue {
	return &ua.DataValue{
		EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value:           ua.MustVariant(v),
		SourceTimestamp: ts,
		ServerTimestamp: ts,
	}
}

// Start listens on Config.Host:Port, starts the gopcua server behind it
// and, when Rate > 0, the ticker. It returns once clients can connect.
// ctx bounds start-up only; Close stops the server.
//
// Port 0 is a real ephemeral port: we bind it ourselves (gopcua can listen
// on port 0 but cannot report the port it got). gopcua itself listens on
// a loopback port found by binding 127.0.0.1:0 and closing it; if another
// process takes that port before gopcua binds it, Start retries with a new
// one (up to 5 times).
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateStarted:
		return ErrStarted
	case stateClosed:
		return ErrClosed
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)))
	if err != nil {
		return fmt.Errorf("uaserver: listen: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	host := advertisedHost(s.cfg.Host)
	s.endpoint = "opc.tcp://" + net.JoinHostPort(host, strconv.Itoa(port))
	switch {
	case s.appURI != "": // from the loaded certificate
	case s.cfg.ApplicationURI != "":
		s.appURI = s.cfg.ApplicationURI
	default:
		s.appURI = s.cfg.ApplicationURIPrefix + net.JoinHostPort(host, strconv.Itoa(port))
	}
	if s.cert == nil && s.cfg.needsCert() {
		s.cert, s.key, err = GenerateCertificate(s.appURI, host, s.cfg.Host, "127.0.0.1", "localhost")
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("uaserver: %w", err)
		}
	}

	var (
		gs       *server.Server
		upstream string
		cancel   context.CancelFunc
	)
	for attempt := 1; ; attempt++ {
		internal, err := freeLoopbackPort()
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("uaserver: %w", err)
		}
		gs = s.newLib(internal, host, port)
		var libCtx context.Context
		libCtx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		quietStdLog(func() { err = gs.Start(libCtx) })
		if err == nil {
			upstream = net.JoinHostPort("127.0.0.1", strconv.Itoa(internal))
			break
		}
		cancel()
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			_ = ln.Close()
			return fmt.Errorf("uaserver: starting gopcua server: %w", err)
		}
		s.log.Debug("loopback port taken before gopcua bound it; retrying", zap.Int("port", internal))
	}
	s.gs, s.libCancel = gs, cancel

	s.notifyMu.Lock()
	s.lib = gs
	s.notifyMu.Unlock()

	s.front = newFront(ln, s.log)
	s.front.start(upstream)
	if s.cfg.Rate > 0 {
		s.wg.Add(1)
		go s.runTicker(s.cfg.Changing, s.cfg.Rate)
	}
	s.state = stateStarted
	s.log.Info("listening", zap.String("endpoint", s.endpoint), zap.Int("vars", len(s.vars)),
		zap.Float64("rate", s.cfg.Rate), zap.Int("changing", s.cfg.Changing),
		zap.Uint16("namespace_index", s.ns.idx), zap.String("application_uri", s.appURI))
	return nil
}

// advertisedHost is the host put in endpoint URLs: the listen host, or
// the machine's name when listening on all addresses.
func advertisedHost(h string) string {
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil && name != "" {
			return name
		}
		return "127.0.0.1"
	}
	return h
}

// freeLoopbackPort returns a port that was free on 127.0.0.1 a moment ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("finding a loopback port: %w", err)
	}
	return port, nil
}

// newLib builds the gopcua server: internal listener first (gopcua listens
// on its first endpoint), the public endpoint second (the one our
// discovery handlers advertise and clients' CreateSession matches).
func (s *Server) newLib(internalPort int, host string, port int) *server.Server {
	mute := s.libMute
	mute.Store(true)
	opts := []server.Option{
		server.EndPoint("127.0.0.1", internalPort),
		server.EndPoint(host, port),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous),
		server.ServerName(s.cfg.Build.ApplicationName),
		server.ManufacturerName(s.cfg.Build.ManufacturerName),
		server.ProductName(s.cfg.Build.ProductName),
		server.SoftwareVersion(s.cfg.Build.SoftwareVersion),
		server.SetLogger(libLogger{s: s.log.Named("gopcua").Sugar(), mute: mute}),
	}
	if s.cert != nil {
		opts = append(opts, server.Certificate(s.cert), server.PrivateKey(s.key))
	}
	if !s.cfg.SecureOnly {
		opts = append(opts, server.EnableSecurity("None", ua.MessageSecurityModeNone))
	}
	for _, p := range s.cfg.Security {
		if p.secure() {
			opts = append(opts, server.EnableSecurity(p.URI(), p.Mode))
		}
	}
	if len(s.cfg.Users) > 0 {
		opts = append(opts, server.EnableAuthMode(ua.UserTokenTypeUserName))
	}
	var gs *server.Server
	quietStdLog(func() { gs = server.New(opts...) })
	mute.Store(false)
	gs.AddNamespace(s.ns)
	if s.ns.folderRefs == nil {
		// SetValue may run concurrently and reads the keys.
		s.notifyMu.Lock()
		for i := range s.vars {
			s.vars[i].nid = ua.NewStringNodeID(s.ns.idx, NodeName(i))
			s.vars[i].key = s.vars[i].nid.String()
		}
		s.notifyMu.Unlock()
		s.ns.buildFolderRefs()
	}
	// Objects organizes Sim. AddRef is only safe before Start.
	if n0, err := gs.Namespace(0); err == nil {
		if objects := n0.Node(ua.NewNumericNodeID(0, id.ObjectsFolder)); objects != nil {
			objects.AddRef(s.ns.folderNode(), server.RefType(id.Organizes), true)
		}
	}
	s.registerHandlers(gs)
	if sessionServiceLayoutOK() {
		s.registerUserCheck(gs)
	}
	return gs
}

// Close stops the ticker, closes every client connection and the
// listeners, stops gopcua's server and its subscriptions, and closes the
// journal. It returns promptly (gopcua's own Close waits up to 10 s for
// connections that we have already closed).
func (s *Server) Close() error {
	s.mu.Lock()
	prev := s.state
	s.state = stateClosed
	s.mu.Unlock()
	if prev == stateClosed {
		return nil
	}
	close(s.stop)
	s.stopCancel()
	if prev == stateNew {
		return s.journal.close()
	}
	s.wg.Wait()
	// gopcua logs routine noise while shutting down, partly from
	// goroutines that outlive Close.
	s.libMute.Store(true)

	var errs []error
	if err := s.front.close(); err != nil {
		errs = append(errs, fmt.Errorf("closing listener: %w", err))
	}
	if err := s.gs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing gopcua server: %w", err))
	}
	s.libCancel()
	// Stop every subscription's publish loop (gopcua's Close does not).
	ss := s.gs.SubscriptionService
	ss.Mu.Lock()
	ids := make([]uint32, 0, len(ss.Subs))
	for id := range ss.Subs {
		ids = append(ids, id)
	}
	ss.Mu.Unlock()
	for _, id := range ids {
		ss.DeleteSubscription(id)
	}
	if err := s.journal.close(); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("closed", zap.String("endpoint", s.endpoint))
	return errors.Join(errs...)
}

// Endpoint returns the endpoint URL clients connect to
// (opc.tcp://127.0.0.1:PORT by default), or "" before Start.
func (s *Server) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoint
}

// NamespaceURI returns the URI of the variables' namespace.
func (s *Server) NamespaceURI() string { return s.cfg.NamespaceURI }

// NamespaceIndex returns the index of the variables' namespace in the
// server's NamespaceArray; valid after Start.
func (s *Server) NamespaceIndex() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns.idx
}

// NodeID returns the node id of variable i (ns=<index>;s=v<i>); valid
// after Start. It panics if i is out of range.
func (s *Server) NodeID(i int) *ua.NodeID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vars[i].nid
}

// Vars returns the number of variables.
func (s *Server) Vars() int { return len(s.vars) }

// TypeOf returns the type name of variable i. It panics if i is out of
// range.
func (s *Server) TypeOf(i int) string { return s.vars[i].typ.name }

// Value returns the current value of variable i. The DataValue is shared:
// callers must not modify it. It panics if i is out of range.
func (s *Server) Value(i int) *ua.DataValue { return s.vars[i].value.Load() }

// SetValue sets variable i to v (a value gopcua can put in a Variant, of
// any type: this is how a test simulates a misbehaving source) with source
// timestamp ts (now when zero) and the variable's sticky status (see
// SetStatus), and notifies subscribers. It panics if i is out of range or
// v is not a valid Variant value (a plain Go int is not).
func (s *Server) SetValue(i int, v any, ts time.Time) {
	now := s.Now()
	if ts.IsZero() {
		ts = now
	}
	dv := &ua.DataValue{
		EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value:           ua.MustVariant(v),
		SourceTimestamp: ts,
		ServerTimestamp: now,
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	v0 := &s.vars[i]
	withStatus(dv, v0.status)
	v0.value.Store(dv)
	s.fanOutLocked([]change{{key: v0.key, dv: dv}})
}

// SetStatus sets the status of variable i (to simulate a Bad source
// value): the current value is republished with that status and a new
// source timestamp, and the status sticks to later automatic changes and
// SetValue calls until SetStatus(i, ua.StatusGood). Client writes store
// the status they carry. It panics if i is out of range.
func (s *Server) SetStatus(i int, code ua.StatusCode) {
	now := s.Now()
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	v := &s.vars[i]
	v.status = code
	dv := *v.value.Load()
	dv.SourceTimestamp, dv.ServerTimestamp = now, now
	dv.EncodingMask |= ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp
	withStatus(&dv, code)
	v.value.Store(&dv)
	s.fanOutLocked([]change{{key: v.key, dv: &dv}})
}

// Now is this server's clock: the system clock plus its offset
// (Config.ClockOffset, StepClock). Every timestamp the server stamps is
// read from it.
func (s *Server) Now() time.Time { return time.Now().Add(time.Duration(s.clock.Load())) }

// StepClock moves this server's clock by d (negative: back), as an NTP
// step or a wrong manual setting does on a plant server: timestamps
// stamped from now on jump by d. Safe for concurrent use.
func (s *Server) StepClock(d time.Duration) { s.clock.Add(int64(d)) }

// ClockOffset returns the offset of this server's clock from the system
// clock.
func (s *Server) ClockOffset() time.Duration { return time.Duration(s.clock.Load()) }

// withStatus sets dv's status code and the matching encoding mask bit.
func withStatus(dv *ua.DataValue, code ua.StatusCode) {
	dv.Status = code
	if code == ua.StatusGood {
		dv.EncodingMask &^= ua.DataValueStatusCode
	} else {
		dv.EncodingMask |= ua.DataValueStatusCode
	}
}

// serviceLevelKey is gopcua's monitored-item key of ServiceLevel.
var serviceLevelKey = ua.NewNumericNodeID(0, id.Server_ServiceLevel).String()

// SetServiceLevel sets Server.ServiceLevel (ns=0;i=2267, Part 5, 6.3.3)
// and notifies its subscribers. Clients may also write it (a Byte).
func (s *Server) SetServiceLevel(level byte) {
	dv := scalarValue(level, s.Now())
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.serviceLevel.Store(dv)
	s.fanOutLocked([]change{{key: serviceLevelKey, dv: dv}})
}

// ServiceLevel returns the current ServiceLevel.
func (s *Server) ServiceLevel() byte {
	b, _ := s.serviceLevel.Load().Value.Value().(byte)
	return b
}

// Journal returns a copy of the accepted writes recorded in memory (nil
// unless Config.JournalMemory).
func (s *Server) Journal() []JournalEntry { return s.journal.entries() }

// WriteCount returns the number of values accepted from client Writes.
func (s *Server) WriteCount() uint64 { return s.writes.Load() }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Changes:       s.changes.Load(),
		Writes:        s.writes.Load(),
		Notifications: s.notified.Load(),
		Dropped:       s.dropped.Load(),
	}
}

// DropConnections closes every current client connection (each client
// sees its TCP connection reset while the server stays up, as after a
// network fault) and returns how many it closed.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	f := s.front
	s.mu.Unlock()
	if f == nil {
		return 0
	}
	return f.drop()
}

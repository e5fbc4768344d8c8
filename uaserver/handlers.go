package uaserver

import (
	"slices"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
	"go.uber.org/zap"
)

// Service handlers. gopcua (server/service_handlers.go) keeps the first
// handler registered per service and registers its own in Start, so ours,
// registered before Start, replace them. gopcua runs every handler on one
// goroutine (monitorConnections) and does not recover from panics: one
// panic ends the process. Every handler registered here is wrapped in
// guard, which answers Bad_InternalError instead.
//
// The services left to gopcua run unguarded: it offers no way to wrap
// them (its handler table is unexported and its service structs hold the
// server in an unexported field). They are the session services (built
// on unexported state) and the ones it answers Bad_ServiceUnsupported:
// node management, query, Call (unless Extension.Call is set: then ours,
// guarded, in extension.go), history, Cancel. The View services are ours
// (view.go).
//
// Where the Subscription services delegate to gopcua, they call the
// exported SubscriptionService, created by gopcua's Start, at request
// time.

// Limits of the publishing intervals we grant (Part 4, 5.13.2.2: the
// server revises the requested interval to what it supports). gopcua
// panics in its publish loop on an interval under 1 ms (time.NewTicker(0))
// and truncates to whole milliseconds.
const (
	minPublishingInterval = 10.0      // ms
	maxPublishingInterval = 3600000.0 // ms
	defaultKeepAliveCount = 10
)

func (s *Server) registerHandlers(gs *server.Server) {
	reg := func(typeID uint16, name string, h server.Handler) {
		gs.RegisterHandler(typeID, s.guard(name, h))
	}
	plain := func(h func(*server.Server, ua.Request) ua.Response) server.Handler {
		return func(_ *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
			return h(gs, r), nil
		}
	}
	reg(id.GetEndpointsRequest_Encoding_DefaultBinary, "GetEndpoints", plain(s.getEndpoints))
	reg(id.FindServersRequest_Encoding_DefaultBinary, "FindServers", plain(s.findServers))
	reg(id.ReadRequest_Encoding_DefaultBinary, "Read", plain(s.read))
	reg(id.WriteRequest_Encoding_DefaultBinary, "Write", plain(s.write))
	reg(id.BrowseRequest_Encoding_DefaultBinary, "Browse", plain(s.browse))
	reg(id.BrowseNextRequest_Encoding_DefaultBinary, "BrowseNext", plain(s.browseNext))
	reg(id.TranslateBrowsePathsToNodeIDsRequest_Encoding_DefaultBinary, "TranslateBrowsePathsToNodeIds",
		plain(s.translateBrowsePaths))
	reg(id.RegisterNodesRequest_Encoding_DefaultBinary, "RegisterNodes", plain(s.registerNodes))
	reg(id.UnregisterNodesRequest_Encoding_DefaultBinary, "UnregisterNodes", plain(s.unregisterNodes))
	if x := s.cfg.Extension; x != nil && x.Call != nil {
		reg(id.CallRequest_Encoding_DefaultBinary, "Call",
			func(sc *uasc.SecureChannel, r ua.Request, _ uint32) (ua.Response, error) {
				return s.call(gs, sc, r), nil
			})
	}

	reg(id.CreateSubscriptionRequest_Encoding_DefaultBinary, "CreateSubscription",
		func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
			return s.createSubscription(gs, sc, r, reqID)
		})
	reg(id.DeleteSubscriptionsRequest_Encoding_DefaultBinary, "DeleteSubscriptions", plain(s.deleteSubscriptions))
	reg(id.CreateMonitoredItemsRequest_Encoding_DefaultBinary, "CreateMonitoredItems", plain(s.createMonitoredItems))
	reg(id.DeleteMonitoredItemsRequest_Encoding_DefaultBinary, "DeleteMonitoredItems", plain(s.deleteMonitoredItems))
	reg(id.SetMonitoringModeRequest_Encoding_DefaultBinary, "SetMonitoringMode", plain(s.setMonitoringMode))

	// gopcua's own logic, guarded. Publish is safe with an unknown
	// session; the others answer Bad_ServiceUnsupported.
	sub := func(f func(*server.SubscriptionService) server.Handler) server.Handler {
		return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
			return f(gs.SubscriptionService)(sc, r, reqID)
		}
	}
	item := func(f func(*server.MonitoredItemService) server.Handler) server.Handler {
		return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
			return f(gs.MonitoredItemService)(sc, r, reqID)
		}
	}
	reg(id.PublishRequest_Encoding_DefaultBinary, "Publish",
		sub(func(ss *server.SubscriptionService) server.Handler { return ss.Publish }))
	reg(id.ModifySubscriptionRequest_Encoding_DefaultBinary, "ModifySubscription",
		sub(func(ss *server.SubscriptionService) server.Handler { return ss.ModifySubscription }))
	reg(id.SetPublishingModeRequest_Encoding_DefaultBinary, "SetPublishingMode", plain(s.setPublishingMode))
	reg(id.RepublishRequest_Encoding_DefaultBinary, "Republish",
		sub(func(ss *server.SubscriptionService) server.Handler { return ss.Republish }))
	reg(id.TransferSubscriptionsRequest_Encoding_DefaultBinary, "TransferSubscriptions",
		sub(func(ss *server.SubscriptionService) server.Handler { return ss.TransferSubscriptions }))
	reg(id.ModifyMonitoredItemsRequest_Encoding_DefaultBinary, "ModifyMonitoredItems",
		item(func(ms *server.MonitoredItemService) server.Handler { return ms.ModifyMonitoredItems }))
	reg(id.SetTriggeringRequest_Encoding_DefaultBinary, "SetTriggering",
		item(func(ms *server.MonitoredItemService) server.Handler { return ms.SetTriggering }))
}

// guard recovers a panic in h and answers Bad_InternalError.
func (s *Server) guard(name string, h server.Handler) server.Handler {
	return func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (resp ua.Response, err error) {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("service handler panicked; answered Bad_InternalError",
					zap.String("service", name), zap.Any("panic", p), zap.StackSkip("stack", 1))
				resp, err = fault(r, ua.StatusBadInternalError), nil
			}
		}()
		return h(sc, r, reqID)
	}
}

func respHeader(r ua.Request, code ua.StatusCode) *ua.ResponseHeader {
	var handle uint32
	if h := r.Header(); h != nil {
		handle = h.RequestHandle
	}
	return &ua.ResponseHeader{
		Timestamp:          time.Now(),
		RequestHandle:      handle,
		ServiceResult:      code,
		ServiceDiagnostics: &ua.DiagnosticInfo{},
		StringTable:        []string{},
		AdditionalHeader:   ua.NewExtensionObject(nil),
	}
}

// fault is a service-level failure (Part 4, 7.30).
func fault(r ua.Request, code ua.StatusCode) ua.Response {
	return &ua.ServiceFault{ResponseHeader: respHeader(r, code)}
}

func isServiceLevel(nid *ua.NodeID) bool {
	if nid == nil || nid.Namespace() != 0 {
		return false
	}
	switch nid.Type() {
	case ua.NodeIDTypeTwoByte, ua.NodeIDTypeFourByte, ua.NodeIDTypeNumeric:
		return nid.IntID() == id.Server_ServiceLevel
	}
	return false
}

// attribute reads one attribute of any node. gopcua's ServiceLevel node
// has no value, data type or access level, so those are answered here.
func (s *Server) attribute(gs *server.Server, nid *ua.NodeID, attr ua.AttributeID) *ua.DataValue {
	if nid == nil {
		return attrStatus(ua.StatusBadNodeIDInvalid)
	}
	if name, dv, ok := s.extraVar(nid); ok {
		var base func() *ua.DataValue
		if n, ok := s.extraNode(nid); ok && (attr == ua.AttributeIDBrowseName || attr == ua.AttributeIDDisplayName) {
			base = func() *ua.DataValue { return s.extraNodeAttribute(nid, n, attr) }
		}
		return s.extraAttribute(nid, name, dv, attr, base)
	}
	if n, ok := s.extraNode(nid); ok && n.Class != ua.NodeClassVariable {
		return s.extraNodeAttribute(nid, n, attr)
	}
	if nid.Namespace() == s.ns.idx {
		return s.ns.Attribute(nid, attr)
	}
	if dv, ok := s.extraNS0(nid); ok {
		var base func() *ua.DataValue
		if nsp, err := gs.Namespace(0); err == nil && gs.Node(nid) != nil {
			base = func() *ua.DataValue {
				if dv := nsp.Attribute(nid, attr); dv != nil {
					return dv
				}
				return attrStatus(ua.StatusBadAttributeIDInvalid)
			}
		}
		return s.extraAttribute(nid, "", dv, attr, base)
	}
	if isServiceLevel(nid) {
		switch attr {
		case ua.AttributeIDValue:
			return s.serviceLevel.Load()
		case ua.AttributeIDDataType:
			return attrValue(ua.NewNumericNodeID(0, id.Byte))
		case ua.AttributeIDValueRank:
			return attrValue(int32(-1))
		case ua.AttributeIDAccessLevel, ua.AttributeIDUserAccessLevel:
			if s.serviceLevelReadOnly() {
				return attrValue(byte(ua.AccessLevelTypeCurrentRead))
			}
			return attrValue(accessReadWrite)
		}
	}
	nsp, err := gs.Namespace(int(nid.Namespace()))
	if err != nil {
		return attrStatus(ua.StatusBadNodeIDUnknown)
	}
	if dv := nsp.Attribute(nid, attr); dv != nil {
		return dv
	}
	return attrStatus(ua.StatusBadAttributeIDInvalid)
}

// nodeExists reports whether nid names a node of the address space.
func (s *Server) nodeExists(gs *server.Server, nid *ua.NodeID) bool {
	if _, _, ok := s.extraVar(nid); ok {
		return true
	}
	if _, ok := s.extraNode(nid); ok {
		return true
	}
	if nid.Namespace() == s.ns.idx {
		return s.ns.exists(nid)
	}
	if _, ok := s.extraNS0(nid); ok {
		return true
	}
	return nid.Namespace() == 0 && gs.Node(nid) != nil
}

// stripTimestamps applies a Read's TimestampsToReturn to dv, copying it
// when something must go.
func stripTimestamps(dv *ua.DataValue, ttr ua.TimestampsToReturn) *ua.DataValue {
	var drop byte
	switch ttr {
	case ua.TimestampsToReturnSource:
		drop = ua.DataValueServerTimestamp | ua.DataValueServerPicoseconds
	case ua.TimestampsToReturnServer:
		drop = ua.DataValueSourceTimestamp | ua.DataValueSourcePicoseconds
	case ua.TimestampsToReturnNeither:
		drop = ua.DataValueServerTimestamp | ua.DataValueServerPicoseconds |
			ua.DataValueSourceTimestamp | ua.DataValueSourcePicoseconds
	}
	if dv.EncodingMask&drop == 0 {
		return dv
	}
	c := *dv
	c.EncodingMask &^= drop
	if drop&ua.DataValueServerTimestamp != 0 {
		c.ServerTimestamp, c.ServerPicoseconds = time.Time{}, 0
	}
	if drop&ua.DataValueSourceTimestamp != 0 {
		c.SourceTimestamp, c.SourcePicoseconds = time.Time{}, 0
	}
	return &c
}

// read serves Read (Part 4, 5.10.2).
func (s *Server) read(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.ReadRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid)
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.NodesToRead) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case req.MaxAge < 0:
		return fault(r, ua.StatusBadMaxAgeInvalid)
	case req.TimestampsToReturn > ua.TimestampsToReturnNeither:
		return fault(r, ua.StatusBadTimestampsToReturnInvalid)
	}
	results := make([]*ua.DataValue, len(req.NodesToRead))
	for k, rv := range req.NodesToRead {
		if rv == nil {
			results[k] = attrStatus(ua.StatusBadNodeIDInvalid)
			continue
		}
		results[k] = stripTimestamps(s.attribute(gs, rv.NodeID, rv.AttributeID), req.TimestampsToReturn)
	}
	return &ua.ReadResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

// write serves Write (Part 4, 5.10.4).
func (s *Server) write(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.WriteRequest)
	if !ok {
		return fault(r, ua.StatusBadRequestTypeInvalid)
	}
	sess := gs.Session(req.RequestHeader)
	switch {
	case sess == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.NodesToWrite) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	}
	return &ua.WriteResponse{
		ResponseHeader:  respHeader(r, ua.StatusOK),
		Results:         s.writeValues(sess.ID.String(), req.NodesToWrite),
		DiagnosticInfos: []*ua.DiagnosticInfo{},
	}
}

// writeBatch collects what one Write request stored.
type writeBatch struct {
	now     time.Time
	session string
	changes []change
	entries []JournalEntry
}

// writeValues stores the acceptable values of a Write, notifies
// subscribers and journals them.
func (s *Server) writeValues(session string, wvs []*ua.WriteValue) []ua.StatusCode {
	results := make([]ua.StatusCode, len(wvs))
	b := writeBatch{now: time.Now(), session: session}
	s.notifyMu.Lock()
	for k, wv := range wvs {
		results[k] = s.writeOneLocked(wv, &b)
	}
	s.fanOutLocked(b.changes)
	s.notifyMu.Unlock()
	s.writes.Add(uint64(len(b.entries)))
	s.journal.record(b.entries)
	return results
}

// writeOne is writeValues for a single value without a session.
func (s *Server) writeOne(wv *ua.WriteValue) ua.StatusCode {
	return s.writeValues("", []*ua.WriteValue{wv})[0]
}

// serviceLevelType is the type of ServiceLevel.
var serviceLevelType = typeList[2] // Byte

func (s *Server) writeOneLocked(wv *ua.WriteValue, b *writeBatch) ua.StatusCode {
	if wv == nil || wv.NodeID == nil {
		return ua.StatusBadNodeIDInvalid
	}
	var (
		t     *varType
		node  string
		key   string
		store func(*ua.DataValue)
	)
	if i, ok := s.ns.varIndex(wv.NodeID); ok {
		v := &s.vars[i]
		t, key, node = v.typ, v.key, "nsu="+s.cfg.NamespaceURI+";s="+NodeName(i)
		store = v.value.Store
	} else if isServiceLevel(wv.NodeID) && s.serviceLevelReadOnly() {
		return ua.StatusBadNotWritable
	} else if isServiceLevel(wv.NodeID) {
		t, key, node = serviceLevelType, serviceLevelKey, serviceLevelKey
		store = s.serviceLevel.Store
	} else if s.lib != nil && s.nodeExists(s.lib, wv.NodeID) {
		return ua.StatusBadNotWritable
	} else {
		return ua.StatusBadNodeIDUnknown
	}
	switch {
	case wv.AttributeID != ua.AttributeIDValue:
		return ua.StatusBadNotWritable
	case wv.IndexRange != "":
		return ua.StatusBadWriteNotSupported
	case wv.Value == nil || !wv.Value.Has(ua.DataValueValue):
		return ua.StatusBadTypeMismatch
	case s.cfg.RejectTimestamps && (wv.Value.Has(ua.DataValueSourceTimestamp) || wv.Value.Has(ua.DataValueServerTimestamp)):
		return ua.StatusBadWriteNotSupported
	}
	if code := checkVariant(t, wv.Value.Value); code != ua.StatusOK {
		return code
	}
	dv := storedValue(wv.Value, b.now.Add(s.ClockOffset()))
	store(dv)
	b.changes = append(b.changes, change{key: key, dv: dv})
	b.entries = append(b.entries, JournalEntry{
		Time: b.now, Session: b.session, Node: node, Value: wv.Value.Value.Value(),
		Type: t.name, SourceTimestamp: dv.SourceTimestamp, Status: dv.Status,
	})
	return ua.StatusOK
}

// storedValue is what a Write stores: the written value, source timestamp
// (now when absent) and status (Good when absent), and the server
// timestamp now.
func storedValue(w *ua.DataValue, now time.Time) *ua.DataValue {
	dv := &ua.DataValue{
		EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value:           w.Value,
		SourceTimestamp: now,
		ServerTimestamp: now,
	}
	if w.Has(ua.DataValueSourceTimestamp) && !w.SourceTimestamp.IsZero() {
		dv.SourceTimestamp = w.SourceTimestamp
		if w.Has(ua.DataValueSourcePicoseconds) {
			dv.SourcePicoseconds = w.SourcePicoseconds
			dv.EncodingMask |= ua.DataValueSourcePicoseconds
		}
	}
	if w.Has(ua.DataValueStatusCode) {
		withStatus(dv, w.Status)
	}
	return dv
}

// browse serves Browse (Part 4, 5.8.2): browseAll per node, cut to
// the reference limit with a continuation point (view.go).
func (s *Server) browse(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.BrowseRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid)
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.NodesToBrowse) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case tooMany(len(req.NodesToBrowse), s.cfg.Limits.MaxNodesPerBrowse):
		return fault(r, ua.StatusBadTooManyOperations)
	}
	max := s.browseLimit(req.RequestedMaxReferencesPerNode)
	results := make([]*ua.BrowseResult, len(req.NodesToBrowse))
	for k, bd := range req.NodesToBrowse {
		var (
			res  *ua.BrowseResult
			kids []kidRef
		)
		if n, ok := s.extraNode(bdNodeID(bd)); ok {
			res, kids = s.browseExtraParts(gs, bd, n)
		} else {
			res = s.browseAll(gs, bd)
		}
		if res.StatusCode == ua.StatusGood {
			res = s.page(gs, req.RequestHeader.AuthenticationToken, res.References, kids, max)
		}
		results[k] = res
	}
	return &ua.BrowseResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

func bdNodeID(bd *ua.BrowseDescription) *ua.NodeID {
	if bd == nil || bd.BrowseDirection > ua.BrowseDirectionBoth {
		return nil
	}
	return bd.NodeID
}

// browseAll returns every reference of one node that bd asks for: the
// extension's nodes, our namespace, and namespace 0 from gopcua's nodeset
// (asked for every reference and filtered here: gopcua's own filter loops
// on some reference types without subtypes) with the core's corrections
// (ns0.go) and the extension's children.
func (s *Server) browseAll(gs *server.Server, bd *ua.BrowseDescription) *ua.BrowseResult {
	switch {
	case bd == nil || bd.NodeID == nil:
		return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDInvalid}
	case bd.BrowseDirection > ua.BrowseDirectionBoth:
		return &ua.BrowseResult{StatusCode: ua.StatusBadBrowseDirectionInvalid}
	}
	if n, ok := s.extraNode(bd.NodeID); ok {
		return s.browseExtra(gs, bd, n)
	}
	nsp, err := gs.Namespace(int(bd.NodeID.Namespace()))
	if err != nil {
		return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
	}
	if bd.NodeID.Namespace() != 0 {
		return nsp.Browse(bd)
	}
	res := nsp.Browse(&ua.BrowseDescription{NodeID: bd.NodeID, BrowseDirection: ua.BrowseDirectionBoth,
		ReferenceTypeID: ua.NewTwoByteNodeID(0), IncludeSubtypes: true, ResultMask: uint32(ua.BrowseResultMaskAll)})
	if res.StatusCode != ua.StatusGood {
		return res
	}
	refs := s.fixNS0Refs(bd.NodeID, res.References)
	refs = append(refs, s.extraChildren(bd.NodeID, false)...)
	return filterRefs(bd, refs)
}

// publicEndpoints are gopcua's endpoint descriptions for the public URL,
// with the public URL as the only discovery URL (gopcua lists its
// internal listener too) and our application URI.
func (s *Server) publicEndpoints(gs *server.Server) []*ua.EndpointDescription {
	var out []*ua.EndpointDescription
	for _, ep := range gs.Endpoints() {
		if ep.EndpointURL != s.endpoint {
			continue
		}
		c := *ep
		app := *ep.Server
		app.ApplicationURI = s.appURI
		app.DiscoveryURLs = []string{s.endpoint}
		c.Server = &app
		out = append(out, &c)
	}
	return out
}

// getEndpoints serves GetEndpoints (Part 4, 5.4.4) with every public
// endpoint, whatever URL the client used to reach us.
func (s *Server) getEndpoints(gs *server.Server, r ua.Request) ua.Response {
	if _, ok := r.(*ua.GetEndpointsRequest); !ok {
		return fault(r, ua.StatusBadRequestTypeInvalid)
	}
	return &ua.GetEndpointsResponse{ResponseHeader: respHeader(r, ua.StatusOK), Endpoints: s.publicEndpoints(gs)}
}

// findServers serves FindServers (Part 4, 5.4.2) with this server.
func (s *Server) findServers(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.FindServersRequest)
	if !ok {
		return fault(r, ua.StatusBadRequestTypeInvalid)
	}
	want := func(uri string) bool { return len(req.ServerURIs) == 0 || slices.Contains(req.ServerURIs, uri) }
	var servers []*ua.ApplicationDescription
	self := ""
	if eps := s.publicEndpoints(gs); len(eps) > 0 && eps[0].Server != nil {
		self = eps[0].Server.ApplicationURI
		if want(self) {
			servers = append(servers, eps[0].Server)
		}
	}
	// The other servers of a redundant set whose discovery URLs are known.
	if rd := s.cfg.Redundancy; rd != nil && rd.ServerURIs != nil && rd.DiscoveryURLs != nil {
		for _, uri := range rd.ServerURIs() {
			if uri == self || !want(uri) {
				continue
			}
			if urls := rd.DiscoveryURLs(uri); len(urls) > 0 {
				servers = append(servers, &ua.ApplicationDescription{ApplicationURI: uri,
					ApplicationType: ua.ApplicationTypeServer, DiscoveryURLs: urls,
					ApplicationName: &ua.LocalizedText{EncodingMask: ua.LocalizedTextText, Text: uri}})
			}
		}
	}
	return &ua.FindServersResponse{ResponseHeader: respHeader(r, ua.StatusOK), Servers: servers}
}

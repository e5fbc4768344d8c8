package simserver

import (
	"context"
	"time"

	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/server/attrs"
	"github.com/gopcua/opcua/ua"
)

// Extension lets a caller serve, through the server's hardened handlers,
// read-only variables whose values are computed at read time, and
// methods. It is the extension point for servers other than the
// simulation (the pair's own endpoint, diagnostics/uaserver.go).
//
// Extra variables are read-only (a Write answers Bad_NotWritable); they
// can be read and monitored (a monitored item gets the value read when it
// is created, and further values only when the caller reports a change
// with [Server.NotifyExtra]). They are not browsable: a client addresses
// them by node id.
//
// Concurrency: the functions are called from gopcua's service goroutine
// (one for all connections) and from NotifyExtra's caller, concurrently;
// they must be safe for concurrent use and return promptly — a slow Call
// delays every other client's requests.
type Extension struct {
	// Var returns the value of the variable ns=<server's namespace>;s=name
	// and true, or false when there is no such variable. It must not
	// shadow the simulated variables (v0 …) or the folder (Sim).
	Var func(name string) (*ua.DataValue, bool)
	// NS0 returns the value of the namespace-0 variable with numeric id
	// i and true, or false to leave the node to gopcua's nodeset (which
	// serves no values). Its other attributes come from gopcua's nodeset
	// when it has the node. ServiceLevel (i=2267) is always the server's
	// own (SetServiceLevel).
	NS0 func(i uint32) (*ua.DataValue, bool)
	// Call performs one method call (Part 4, 5.11.2). nil leaves the
	// Call service to gopcua, which answers Bad_ServiceUnsupported. ctx
	// ends after CallTimeout or when the server closes. A nil result
	// answers Bad_MethodInvalid.
	Call func(ctx context.Context, req *ua.CallMethodRequest) *ua.CallMethodResult
	// CallTimeout bounds one method call (default 10 s).
	CallTimeout time.Duration
	// ServiceLevelReadOnly refuses client Writes of ServiceLevel
	// (Bad_NotWritable) and reports it read-only: the caller owns it
	// (SetServiceLevel).
	ServiceLevelReadOnly bool
}

// serviceLevelReadOnly reports whether clients may not write ServiceLevel.
func (s *Server) serviceLevelReadOnly() bool {
	return s.cfg.Extension != nil && s.cfg.Extension.ServiceLevelReadOnly
}

// extraVar returns the value of an extra variable of the server's
// namespace, if nid names one.
func (s *Server) extraVar(nid *ua.NodeID) (string, *ua.DataValue, bool) {
	x := s.cfg.Extension
	if x == nil || x.Var == nil || nid == nil || nid.Namespace() != s.ns.idx ||
		nid.Type() != ua.NodeIDTypeString {
		return "", nil, false
	}
	name := nid.StringID()
	if s.ns.exists(nid) {
		return "", nil, false
	}
	dv, ok := x.Var(name)
	return name, dv, ok && dv != nil
}

// extraNS0 returns the value of an extra namespace-0 variable, if nid
// names one.
func (s *Server) extraNS0(nid *ua.NodeID) (*ua.DataValue, bool) {
	x := s.cfg.Extension
	if x == nil || x.NS0 == nil || nid == nil || nid.Namespace() != 0 || isServiceLevel(nid) {
		return nil, false
	}
	switch nid.Type() {
	case ua.NodeIDTypeTwoByte, ua.NodeIDTypeFourByte, ua.NodeIDTypeNumeric:
	default:
		return nil, false
	}
	dv, ok := x.NS0(nid.IntID())
	return dv, ok && dv != nil
}

// extraAttribute answers the attributes of an extra variable: Value from
// the extension, the others derived from it (Part 3, 5.6). base answers
// the attributes it does not derive (nil: generic ones from name).
func (s *Server) extraAttribute(nid *ua.NodeID, name string, dv *ua.DataValue, attr ua.AttributeID, base func() *ua.DataValue) *ua.DataValue {
	array := dv.Value != nil && dv.Value.Has(ua.VariantArrayValues)
	switch attr {
	case ua.AttributeIDValue:
		return dv
	case ua.AttributeIDDataType:
		if dv.Value == nil {
			return attrValue(ua.NewNumericNodeID(0, 24)) // BaseDataType
		}
		return attrValue(ua.NewNumericNodeID(0, uint32(dv.Value.Type())))
	case ua.AttributeIDValueRank:
		if array {
			return attrValue(int32(1))
		}
		return attrValue(int32(-1))
	case ua.AttributeIDAccessLevel, ua.AttributeIDUserAccessLevel:
		return attrValue(byte(ua.AccessLevelTypeCurrentRead))
	case ua.AttributeIDAccessLevelEx:
		return attrValue(uint32(ua.AccessLevelTypeCurrentRead))
	}
	if base != nil {
		return base()
	}
	switch attr {
	case ua.AttributeIDNodeID:
		return attrValue(nid)
	case ua.AttributeIDNodeClass:
		return attrValue(int32(ua.NodeClassVariable))
	case ua.AttributeIDBrowseName:
		return attrValue(&ua.QualifiedName{NamespaceIndex: nid.Namespace(), Name: name})
	case ua.AttributeIDDisplayName:
		return attrValue(attrs.DisplayName(name, ""))
	case ua.AttributeIDDescription:
		return attrValue(attrs.DisplayName("", ""))
	case ua.AttributeIDWriteMask, ua.AttributeIDUserWriteMask:
		return attrValue(uint32(0))
	case ua.AttributeIDMinimumSamplingInterval:
		return attrValue(float64(0))
	case ua.AttributeIDHistorizing:
		return attrValue(false)
	}
	return attrStatus(ua.StatusBadAttributeIDInvalid)
}

// NotifyExtra hands the current value of the extra variable
// ns=<server's namespace>;s=name to its monitored items. Call it when
// the value changed; it is cheap when nobody monitors the variable.
func (s *Server) NotifyExtra(name string) {
	x := s.cfg.Extension
	if x == nil || x.Var == nil {
		return
	}
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if s.lib == nil {
		return
	}
	dv, ok := x.Var(name)
	if !ok || dv == nil {
		return
	}
	s.fanOutLocked([]change{{key: ua.NewStringNodeID(s.ns.idx, name).String(), dv: dv}})
}

// call serves Call (Part 4, 5.11.2) through Extension.Call. It runs on
// gopcua's service goroutine: each call is bounded by CallTimeout.
func (s *Server) call(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.CallRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid)
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.MethodsToCall) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	}
	timeout := s.cfg.Extension.CallTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	results := make([]*ua.CallMethodResult, len(req.MethodsToCall))
	for k, m := range req.MethodsToCall {
		var res *ua.CallMethodResult
		if m != nil && m.ObjectID != nil && m.MethodID != nil {
			ctx, cancel := context.WithTimeout(s.stopCtx, timeout)
			res = s.cfg.Extension.Call(ctx, m)
			cancel()
		}
		if res == nil {
			res = &ua.CallMethodResult{StatusCode: ua.StatusBadMethodInvalid}
		}
		if res.InputArgumentResults == nil {
			res.InputArgumentResults = []ua.StatusCode{}
		}
		if res.InputArgumentDiagnosticInfos == nil {
			res.InputArgumentDiagnosticInfos = []*ua.DiagnosticInfo{}
		}
		if res.OutputArguments == nil {
			res.OutputArguments = []*ua.Variant{}
		}
		results[k] = res
	}
	return &ua.CallResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

package uaserver

import (
	"context"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/server/attrs"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
)

// Extension lets a caller serve, through the server's hardened handlers,
// read-only variables whose values are computed at read time, and
// methods. It is the extension point for servers other than the
// simulation (the pair's own endpoint, diagnostics/uaserver.go).
//
// Extra variables are read-only (a Write answers Bad_NotWritable); they
// can be read and monitored (a monitored item gets the value read when it
// is created, and further values only when the caller reports a change
// with [Server.NotifyExtra]). They are browsable when the extension
// describes its tree (Node and Children): objects, variables and methods
// under the server's folder, and extra children of namespace-0 objects
// (NS0Children). A variable that Var serves but Node does not describe
// can still be read by its node id.
//
// Concurrency: the functions are called from gopcua's service goroutine
// (one for all connections) and from NotifyExtra's caller, concurrently;
// they must be safe for concurrent use and return promptly — a slow Call
// delays every other client's requests.
type Extension struct {
	// Var returns the value of the variable ns=<server's namespace>;s=name
	// and true, or false when there is no such variable. It must not
	// shadow the table's variables (v0 …), the folder (Config.Folder) or
	// the core's own nodes (ServerUriArray, <method>/InputArguments,
	// <method>/OutputArguments).
	Var func(name string) (*ua.DataValue, bool)
	// NS0 returns the value of the namespace-0 variable with numeric id
	// i and true, or false to leave the node to gopcua's nodeset (which
	// serves no values). Its other attributes come from gopcua's nodeset
	// when it has the node. ServiceLevel (i=2267) is always the server's
	// own (SetServiceLevel).
	NS0 func(i uint32) (*ua.DataValue, bool)
	// Call performs one method call (Part 4, 5.11.2). nil leaves the
	// Call service to gopcua, which answers Bad_ServiceUnsupported. ctx
	// ends after CallTimeout or when the server closes, and carries who
	// calls (CallerFrom): a method that changes something checks it. A
	// nil result answers Bad_MethodInvalid.
	Call func(ctx context.Context, req *ua.CallMethodRequest) *ua.CallMethodResult
	// CallTimeout bounds one method call (default 10 s).
	CallTimeout time.Duration
	// ServiceLevelReadOnly refuses client Writes of ServiceLevel
	// (Bad_NotWritable) and reports it read-only: the caller owns it
	// (SetServiceLevel).
	ServiceLevelReadOnly bool

	// Node describes the browsable extra node ns=<server's namespace>;
	// s=name (an Object, a Variable served by Var, or a Method served by
	// Call), or reports false. nil: no extra node is browsable.
	Node func(name string) (ExtraNode, bool)
	// Children lists the extra nodes whose Parent is parent ("" for the
	// server's folder), in browse order.
	Children func(parent string) []ExtraNode
	// NS0Children lists extra nodes of the server's namespace that a
	// Browse of the namespace-0 node i shows as its children, besides
	// those of gopcua's nodeset (their Parent is ignored).
	NS0Children func(i uint32) []ExtraNode
}

// ExtraNode describes a browsable node of an Extension.
type ExtraNode struct {
	// Name is the node's string id in the server's namespace.
	Name string
	// Parent is the Name of the Object the node belongs to; "" is the
	// server's folder, unless ParentNS0 is set.
	Parent string
	// ParentNS0, when not 0, is the numeric id of the namespace-0 node
	// the node belongs to (see Extension.NS0Children).
	ParentNS0 uint32
	// BrowseName is the node's browse and display name (default Name).
	BrowseName string
	// BrowseNS0 puts BrowseName in namespace 0, for nodes that stand for
	// a standard child (ServerUriArray under ServerRedundancy).
	BrowseNS0 bool
	// Class is ua.NodeClassObject, ua.NodeClassVariable or
	// ua.NodeClassMethod.
	Class ua.NodeClass
	// Property makes a variable a Property (HasProperty, PropertyType)
	// rather than a component (HasComponent, BaseDataVariableType).
	Property bool
	// DataType, when not 0, is the numeric namespace-0 id of a
	// variable's DataType (default: the type of the value read).
	DataType uint32
	// Arguments gives a method its InputArguments and OutputArguments
	// properties (Part 3, 5.7; node ids <Name>/InputArguments and
	// <Name>/OutputArguments, browse names in namespace 0) with these
	// values.
	Arguments                       bool
	InputArguments, OutputArguments []*ua.Argument
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

// extraNode returns the browsable extra node nid names, if any.
func (s *Server) extraNode(nid *ua.NodeID) (ExtraNode, bool) {
	x := s.cfg.Extension
	if x == nil || x.Node == nil || nid == nil || nid.Namespace() != s.ns.idx ||
		nid.Type() != ua.NodeIDTypeString || s.ns.exists(nid) {
		return ExtraNode{}, false
	}
	return x.Node(nid.StringID())
}

func (s *Server) browseName(n ExtraNode) *ua.QualifiedName {
	name := n.BrowseName
	if name == "" {
		name = n.Name
	}
	if n.BrowseNS0 {
		return &ua.QualifiedName{Name: name}
	}
	return &ua.QualifiedName{NamespaceIndex: s.ns.idx, Name: name}
}

// extraNodeAttribute answers the attributes of an extra Object or Method
// (Part 3, 5.5 and 5.7); variables go through extraAttribute.
func (s *Server) extraNodeAttribute(nid *ua.NodeID, n ExtraNode, attr ua.AttributeID) *ua.DataValue {
	switch attr {
	case ua.AttributeIDNodeID:
		return attrValue(nid)
	case ua.AttributeIDNodeClass:
		return attrValue(int32(n.Class))
	case ua.AttributeIDBrowseName:
		return attrValue(s.browseName(n))
	case ua.AttributeIDDisplayName:
		return attrValue(attrs.DisplayName(s.browseName(n).Name, ""))
	case ua.AttributeIDDescription:
		return attrValue(attrs.DisplayName("", ""))
	case ua.AttributeIDWriteMask, ua.AttributeIDUserWriteMask:
		return attrValue(uint32(0))
	}
	switch {
	case n.Class == ua.NodeClassObject && attr == ua.AttributeIDEventNotifier:
		return attrValue(byte(0))
	case n.Class == ua.NodeClassMethod && (attr == ua.AttributeIDExecutable || attr == ua.AttributeIDUserExecutable):
		return attrValue(true)
	}
	return attrStatus(ua.StatusBadAttributeIDInvalid)
}

// typeDefinition returns the type definition of an extra node.
func typeDefinition(n ExtraNode) (*ua.ExpandedNodeID, string, ua.NodeClass) {
	switch {
	case n.Class == ua.NodeClassObject:
		return ua.NewNumericExpandedNodeID(0, id.BaseObjectType), "BaseObjectType", ua.NodeClassObjectType
	case n.Class == ua.NodeClassVariable && n.Property:
		return ua.NewNumericExpandedNodeID(0, id.PropertyType), "PropertyType", ua.NodeClassVariableType
	case n.Class == ua.NodeClassVariable:
		return ua.NewNumericExpandedNodeID(0, id.BaseDataVariableType), "BaseDataVariableType", ua.NodeClassVariableType
	}
	return ua.NewTwoByteExpandedNodeID(0), "", ua.NodeClassUnspecified
}

// extraRef is the forward reference from n's parent to the extra node n.
func (s *Server) extraRef(n ExtraNode) *ua.ReferenceDescription {
	ref := refHasComponent
	if n.Property {
		ref = refHasProperty
	}
	td, _, _ := typeDefinition(n)
	bn := s.browseName(n)
	return &ua.ReferenceDescription{
		ReferenceTypeID: ref,
		IsForward:       true,
		NodeID:          ua.NewStringExpandedNodeID(s.ns.idx, n.Name),
		BrowseName:      bn,
		DisplayName:     attrs.DisplayName(bn.Name, ""),
		NodeClass:       n.Class,
		TypeDefinition:  td,
	}
}

// browseExtra answers Browse of an extra node: its type definition, its
// parent (inverse) and its children.
func (s *Server) browseExtra(gs *server.Server, bd *ua.BrowseDescription, n ExtraNode) *ua.BrowseResult {
	res, kids := s.browseExtraParts(gs, bd, n)
	for _, k := range kids {
		res.References = append(res.References, s.extraRef(k.node()))
	}
	return res
}

// kidRef is an extension child that a Browse returns, kept compact until
// its reference is sent: a continuation point over 100,000 children holds
// these, not 100,000 ReferenceDescriptions (~400 B each).
type kidRef struct {
	name, browseName    string
	class               ua.NodeClass
	property, browseNS0 bool
}

func (k kidRef) node() ExtraNode {
	return ExtraNode{Name: k.name, BrowseName: k.browseName, BrowseNS0: k.browseNS0, Class: k.class, Property: k.property}
}

// browseExtraParts answers Browse of an extra node as references (type
// definition, parent, method properties) and the matching children.
func (s *Server) browseExtraParts(gs *server.Server, bd *ua.BrowseDescription, n ExtraNode) (*ua.BrowseResult, []kidRef) {
	var all []*ua.ReferenceDescription
	if td, tdName, tdClass := typeDefinition(n); tdName != "" {
		all = append(all, &ua.ReferenceDescription{
			ReferenceTypeID: refHasTypeDefinition, IsForward: true, NodeID: td,
			BrowseName: &ua.QualifiedName{Name: tdName}, DisplayName: attrs.DisplayName(tdName, ""),
			NodeClass: tdClass, TypeDefinition: ua.NewTwoByteExpandedNodeID(0),
		})
	}
	up := &ua.ReferenceDescription{
		ReferenceTypeID: refHasComponent,
		NodeID:          ua.NewStringExpandedNodeID(s.ns.idx, s.ns.folder),
		BrowseName:      &ua.QualifiedName{NamespaceIndex: s.ns.idx, Name: s.ns.folder},
		DisplayName:     attrs.DisplayName(s.ns.folder, ""),
		NodeClass:       ua.NodeClassObject,
		TypeDefinition:  ua.NewNumericExpandedNodeID(0, id.FolderType),
	}
	if n.Property {
		up.ReferenceTypeID = refHasProperty
	}
	switch {
	case n.ParentNS0 != 0:
		pid := ua.NewNumericNodeID(0, n.ParentNS0)
		up.NodeID = ua.NewNumericExpandedNodeID(0, n.ParentNS0)
		if pn := gs.Node(pid); pn != nil {
			up.BrowseName, up.DisplayName, up.NodeClass = pn.BrowseName(), pn.DisplayName(), pn.NodeClass()
			up.TypeDefinition = ua.NewTwoByteExpandedNodeID(0)
		}
	case n.Parent != "":
		if p, ok := s.cfg.Extension.Node(n.Parent); ok {
			pr := s.extraRef(p)
			up.NodeID, up.BrowseName, up.DisplayName, up.TypeDefinition = pr.NodeID, pr.BrowseName, pr.DisplayName, pr.TypeDefinition
		}
	}
	all = append(all, up)
	for _, p := range methodProperties(n) {
		all = append(all, s.extraRef(p))
	}
	var kids []kidRef
	if n.Class == ua.NodeClassObject && s.cfg.Extension.Children != nil {
		for _, c := range s.cfg.Extension.Children(n.Name) {
			ref := refHasComponent
			if c.Property {
				ref = refHasProperty
			}
			if !refMatches(bd, &ua.ReferenceDescription{ReferenceTypeID: ref, IsForward: true, NodeClass: c.Class}) {
				continue
			}
			bn := c.BrowseName
			if bn == "" {
				bn = c.Name
			}
			kids = append(kids, kidRef{name: c.Name, browseName: bn, class: c.Class, property: c.Property, browseNS0: c.BrowseNS0})
		}
	}
	return filterRefs(bd, all), kids
}

// extraChildren returns the forward references to the extension's
// children of the folder ("") or of the namespace-0 node nid.
func (s *Server) extraChildren(nid *ua.NodeID, folder bool) []*ua.ReferenceDescription {
	x := s.cfg.Extension
	if x == nil {
		return nil
	}
	var kids []ExtraNode
	switch {
	case folder && x.Children != nil:
		kids = x.Children("")
	case !folder && x.NS0Children != nil && nid.Namespace() == 0 && isNumeric(nid):
		kids = x.NS0Children(nid.IntID())
	}
	refs := make([]*ua.ReferenceDescription, 0, len(kids))
	for _, c := range kids {
		refs = append(refs, s.extraRef(c))
	}
	return refs
}

func isNumeric(nid *ua.NodeID) bool {
	switch nid.Type() {
	case ua.NodeIDTypeTwoByte, ua.NodeIDTypeFourByte, ua.NodeIDTypeNumeric:
		return true
	}
	return false
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
		if dt := s.extraDataType(nid); dt != 0 {
			return attrValue(ua.NewNumericNodeID(0, dt))
		}
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

// extraDataType returns the declared DataType of an extra variable or a
// core namespace-0 variable, or 0 when its value's type says it.
func (s *Server) extraDataType(nid *ua.NodeID) uint32 {
	if nid.Namespace() == 0 && isNumeric(nid) {
		return ns0DataTypes[nid.IntID()]
	}
	if n, ok := s.extraNode(nid); ok {
		return n.DataType
	}
	return 0
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
func (s *Server) call(gs *server.Server, sc *uasc.SecureChannel, r ua.Request) ua.Response {
	req, ok := r.(*ua.CallRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid)
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.MethodsToCall) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case tooMany(len(req.MethodsToCall), s.cfg.Limits.MaxNodesPerMethodCall):
		return fault(r, ua.StatusBadTooManyOperations)
	}
	who := s.caller(sc, req.RequestHeader)
	timeout := s.cfg.Extension.CallTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	results := make([]*ua.CallMethodResult, len(req.MethodsToCall))
	for k, m := range req.MethodsToCall {
		var res *ua.CallMethodResult
		if m != nil && m.ObjectID != nil && m.MethodID != nil {
			ctx, cancel := context.WithTimeout(context.WithValue(s.stopCtx, callerKey{}, who), timeout)
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

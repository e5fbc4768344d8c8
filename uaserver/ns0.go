package uaserver

import (
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// The standard Server object (Part 5, 6.3.1) as the core serves it.
// gopcua's nodeset has the nodes but wrong or no values: BuildInfo reads
// as an empty String, BuildNumber as the version, ServerArray,
// ServerCapabilities and most OperationLimits have no value, and
// Server.ServerRedundancy is typed ServerRedundancyType with no
// ServerUriArray. The core answers the values itself (ns0Value) and
// corrects the references it browses (fixNS0Refs); every other attribute
// still comes from gopcua's nodeset.

// Redundancy makes Server.ServerRedundancy a NonTransparentRedundancyType
// (i=2039, Part 5, 6.3.9 and Part 4, 6.6.2): RedundancySupport (i=3709)
// reads Support, and its ServerUriArray property (the variable
// ns=<server's namespace>;s=ServerUriArray, browse name 0:ServerUriArray)
// reads ServerURIs.
type Redundancy struct {
	// Support is the redundancy mode: one of the non-transparent ones
	// (Cold, Warm, Hot, HotAndMirrored).
	Support ua.RedundancySupport
	// ServerURIs returns the ServerUri of every server of the redundant
	// set, this one included. It is called at read time, concurrently.
	ServerURIs func() []string
	// DiscoveryURLs, if set, returns the discovery URLs of another
	// server of the set by its ServerUri (nil: unknown): FindServers
	// (Part 4, 5.4.2) then describes those servers too, so a client can
	// turn ServerUriArray into endpoints. Called concurrently.
	DiscoveryURLs func(serverURI string) []string
}

// ServerURIArrayName is the string id of Server.ServerRedundancy's
// ServerUriArray property in the server's namespace.
const ServerURIArrayName = "ServerUriArray"

// Limits are the server's operation limits (Part 5, 6.3.11), enforced and
// readable under Server.ServerCapabilities. 0 means no limit.
type Limits struct {
	// MaxReferencesPerNode caps the references of one node in a Browse
	// or BrowseNext response, whatever the client asks (default 1000).
	MaxReferencesPerNode int
	// MaxBrowseContinuationPoints is how many continuation points one
	// session may hold (default 10; at least 1).
	MaxBrowseContinuationPoints int
	// MaxNodesPerBrowse bounds the nodes of a Browse or BrowseNext
	// (default 1000).
	MaxNodesPerBrowse int
	// MaxNodesPerTranslateBrowsePathsToNodeIds bounds the paths of a
	// TranslateBrowsePathsToNodeIds (default 1000).
	MaxNodesPerTranslateBrowsePathsToNodeIds int
	// MaxNodesPerRegisterNodes bounds RegisterNodes and UnregisterNodes
	// (default 1000).
	MaxNodesPerRegisterNodes int
	// MaxNodesPerMethodCall bounds the methods of one Call (default 100).
	MaxNodesPerMethodCall int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxReferencesPerNode, 1000)
	def(&l.MaxBrowseContinuationPoints, 10)
	def(&l.MaxNodesPerBrowse, 1000)
	def(&l.MaxNodesPerTranslateBrowsePathsToNodeIds, 1000)
	def(&l.MaxNodesPerRegisterNodes, 1000)
	def(&l.MaxNodesPerMethodCall, 100)
	return l
}

// serverProfile is the profile the core claims (Part 7): the standard
// UA server profile's transport and services it implements are those of
// a micro embedded device server plus the view services.
const serverProfile = "http://opcfoundation.org/UA-Profile/Server/MicroEmbeddedDevice2017"

// ns0DataTypes are the DataTypes of the namespace-0 variables whose value
// the core serves as an ExtensionObject or an enumeration (their Variant
// type says Structure or Int32).
var ns0DataTypes = map[uint32]uint32{
	id.Server_ServerStatus:                              id.ServerStatusDataType,
	id.Server_ServerStatus_BuildInfo:                    id.BuildInfo,
	id.Server_ServerStatus_State:                        id.ServerState,
	id.Server_ServerStatus_BuildInfo_BuildDate:          id.UtcTime,
	id.Server_ServerStatus_StartTime:                    id.UtcTime,
	id.Server_ServerStatus_CurrentTime:                  id.UtcTime,
	id.Server_ServerRedundancy_RedundancySupport:        id.RedundancySupport,
	id.Server_ServerCapabilities_LocaleIDArray:          id.LocaleID,
	id.Server_ServerCapabilities_MinSupportedSampleRate: id.Duration,
}

// ns0Value answers the namespace-0 variables the core owns, or false.
func (s *Server) ns0Value(i uint32) (*ua.DataValue, bool) {
	b := s.cfg.Build
	l := s.cfg.Limits
	u32 := func(n int) any { return uint32(n) }
	var v any
	switch i {
	case id.Server_ServerArray:
		v = []string{s.appURI}
	case id.Server_ServerStatus:
		v = ua.NewExtensionObject(s.serverStatus())
	case id.Server_ServerStatus_StartTime:
		v = s.started
	case id.Server_ServerStatus_CurrentTime:
		v = s.Now()
	case id.Server_ServerStatus_State:
		v = int32(ua.ServerStateRunning)
	case id.Server_ServerStatus_SecondsTillShutdown:
		v = uint32(0)
	case id.Server_ServerStatus_ShutdownReason:
		v = &ua.LocalizedText{}
	case id.Server_ServerStatus_BuildInfo:
		v = ua.NewExtensionObject(s.buildInfo())
	case id.Server_ServerStatus_BuildInfo_ProductURI:
		v = b.ProductURI
	case id.Server_ServerStatus_BuildInfo_ManufacturerName:
		v = b.ManufacturerName
	case id.Server_ServerStatus_BuildInfo_ProductName:
		v = b.ProductName
	case id.Server_ServerStatus_BuildInfo_SoftwareVersion:
		v = b.SoftwareVersion
	case id.Server_ServerStatus_BuildInfo_BuildNumber:
		v = b.BuildNumber
	case id.Server_ServerStatus_BuildInfo_BuildDate:
		v = b.BuildDate
	case id.Server_Auditing:
		v = false
	case id.Server_ServerCapabilities_ServerProfileArray:
		v = []string{serverProfile}
	case id.Server_ServerCapabilities_LocaleIDArray:
		v = []string{"en"}
	case id.Server_ServerCapabilities_MinSupportedSampleRate:
		v = float64(minPublishingInterval)
	case id.Server_ServerCapabilities_MaxBrowseContinuationPoints:
		v = uint16(min(l.MaxBrowseContinuationPoints, 0xffff))
	case id.Server_ServerCapabilities_MaxQueryContinuationPoints,
		id.Server_ServerCapabilities_MaxHistoryContinuationPoints:
		v = uint16(0)
	case id.Server_ServerCapabilities_MaxArrayLength, id.Server_ServerCapabilities_MaxStringLength,
		id.Server_ServerCapabilities_MaxByteStringLength:
		v = uint32(0)
	case id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadData,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryReadEvents,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryUpdateData,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerHistoryUpdateEvents,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerNodeManagement,
		id.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall:
		v = uint32(0)
	case id.Server_ServerCapabilities_OperationLimits_MaxNodesPerMethodCall:
		v = u32(l.MaxNodesPerMethodCall)
	case id.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse:
		v = u32(l.MaxNodesPerBrowse)
	case id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRegisterNodes:
		v = u32(l.MaxNodesPerRegisterNodes)
	case id.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIDs:
		v = u32(l.MaxNodesPerTranslateBrowsePathsToNodeIds)
	case id.Server_ServerRedundancy_RedundancySupport:
		if s.cfg.Redundancy == nil {
			return nil, false // the extension's, else None (withCore)
		}
		v = int32(s.cfg.Redundancy.Support)
	default:
		return nil, false
	}
	now := time.Now()
	return &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value: ua.MustVariant(v), SourceTimestamp: now, ServerTimestamp: now}, true
}

func (s *Server) buildInfo() *ua.BuildInfo {
	b := s.cfg.Build
	return &ua.BuildInfo{ProductURI: b.ProductURI, ManufacturerName: b.ManufacturerName, ProductName: b.ProductName,
		SoftwareVersion: b.SoftwareVersion, BuildNumber: b.BuildNumber, BuildDate: b.BuildDate}
}

func (s *Server) serverStatus() *ua.ServerStatusDataType {
	return &ua.ServerStatusDataType{StartTime: s.started, CurrentTime: s.Now(), State: ua.ServerStateRunning,
		BuildInfo: s.buildInfo(), ShutdownReason: &ua.LocalizedText{}}
}

// serverURIArrayNode is the ServerUriArray property's descriptor.
func serverURIArrayNode() ExtraNode {
	return ExtraNode{Name: ServerURIArrayName, BrowseName: ServerURIArrayName, BrowseNS0: true,
		Class: ua.NodeClassVariable, Property: true, ParentNS0: id.Server_ServerRedundancy, DataType: id.String}
}

// Argument property names of a method (Part 3, 5.7).
const (
	inputArguments  = "InputArguments"
	outputArguments = "OutputArguments"
)

// withCore returns the extension the server runs with: x (nil: none)
// with the core's own nodes in front — the namespace-0 values above, the
// ServerUriArray property with Redundancy, and the InputArguments and
// OutputArguments properties of x's methods.
func (s *Server) withCore(x *Extension) *Extension {
	var user Extension
	if x != nil {
		user = *x
	}
	c := user
	c.NS0 = func(i uint32) (*ua.DataValue, bool) {
		if dv, ok := s.ns0Value(i); ok {
			return dv, true
		}
		if user.NS0 != nil {
			if dv, ok := user.NS0(i); ok {
				return dv, true
			}
		}
		if i == id.Server_ServerRedundancy_RedundancySupport {
			return s.scalarOrArray(int32(ua.RedundancySupportNone)), true
		}
		return nil, false
	}
	c.Var = func(name string) (*ua.DataValue, bool) {
		if name == ServerURIArrayName && s.cfg.Redundancy != nil {
			return s.scalarOrArray(s.cfg.Redundancy.ServerURIs()), true
		}
		if m, which, ok := s.argumentsOf(name); ok {
			args := m.InputArguments
			if which == outputArguments {
				args = m.OutputArguments
			}
			eos := make([]*ua.ExtensionObject, len(args))
			for k, a := range args {
				eos[k] = ua.NewExtensionObject(a)
			}
			return s.scalarOrArray(eos), true
		}
		if user.Var != nil {
			return user.Var(name)
		}
		return nil, false
	}
	c.Node = func(name string) (ExtraNode, bool) {
		if name == ServerURIArrayName && s.cfg.Redundancy != nil {
			return serverURIArrayNode(), true
		}
		if _, which, ok := s.argumentsOf(name); ok {
			return argumentsNode(strings.TrimSuffix(name, "/"+which), which), true
		}
		if user.Node != nil {
			return user.Node(name)
		}
		return ExtraNode{}, false
	}
	c.NS0Children = func(i uint32) []ExtraNode {
		var out []ExtraNode
		if i == id.Server_ServerRedundancy && s.cfg.Redundancy != nil {
			out = append(out, serverURIArrayNode())
		}
		if user.NS0Children != nil {
			out = append(out, user.NS0Children(i)...)
		}
		return out
	}
	return &c
}

func (s *Server) scalarOrArray(v any) *ua.DataValue {
	now := time.Now()
	return &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value: ua.MustVariant(v), SourceTimestamp: now, ServerTimestamp: now}
}

func argumentsNode(method, which string) ExtraNode {
	return ExtraNode{Name: method + "/" + which, Parent: method, BrowseName: which, BrowseNS0: true,
		Class: ua.NodeClassVariable, Property: true, DataType: id.Argument}
}

// argumentsOf resolves name as "<method>/InputArguments" or
// "<method>/OutputArguments" of a method of the user's extension that
// declares its arguments.
func (s *Server) argumentsOf(name string) (ExtraNode, string, bool) {
	x := s.userExt
	if x == nil || x.Node == nil {
		return ExtraNode{}, "", false
	}
	for _, which := range []string{inputArguments, outputArguments} {
		method, ok := strings.CutSuffix(name, "/"+which)
		if !ok {
			continue
		}
		m, ok := x.Node(method)
		if ok && m.Class == ua.NodeClassMethod && m.Arguments {
			return m, which, true
		}
	}
	return ExtraNode{}, "", false
}

// methodProperties lists the argument properties of method m.
func methodProperties(m ExtraNode) []ExtraNode {
	if m.Class != ua.NodeClassMethod || !m.Arguments {
		return nil
	}
	return []ExtraNode{argumentsNode(m.Name, inputArguments), argumentsNode(m.Name, outputArguments)}
}

// fixNS0Refs corrects the references gopcua's nodeset gives a
// namespace-0 node: duplicates dropped (its import adds some references
// twice, RedundancySupport among them) and, with Redundancy,
// Server.ServerRedundancy's type definition NonTransparentRedundancyType.
func (s *Server) fixNS0Refs(nid *ua.NodeID, refs []*ua.ReferenceDescription) []*ua.ReferenceDescription {
	out := make([]*ua.ReferenceDescription, 0, len(refs))
	seen := make(map[string]bool, len(refs))
	redundancy := s.cfg.Redundancy != nil && isNumeric(nid) && nid.IntID() == id.Server_ServerRedundancy
	for _, r := range refs {
		if r == nil || r.NodeID == nil || r.ReferenceTypeID == nil {
			continue
		}
		if redundancy && r.IsForward && r.ReferenceTypeID.IntID() == id.HasTypeDefinition &&
			r.ReferenceTypeID.Namespace() == 0 {
			c := *r
			c.NodeID = ua.NewNumericExpandedNodeID(0, id.NonTransparentRedundancyType)
			c.BrowseName = &ua.QualifiedName{Name: "NonTransparentRedundancyType"}
			c.DisplayName = &ua.LocalizedText{EncodingMask: ua.LocalizedTextText, Text: "NonTransparentRedundancyType"}
			r = &c
		}
		k := r.ReferenceTypeID.String() + "|" + r.NodeID.String()
		if r.IsForward {
			k += "|f"
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, r)
	}
	return out
}

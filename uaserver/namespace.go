package uaserver

import (
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/server/attrs"
	"github.com/gopcua/opcua/ua"
)

// DefaultFolder is the string id (and browse name) of the folder under
// Objects that organizes the variables, unless Config.Folder names another.
const DefaultFolder = "Vars"

// accessReadWrite is AccessLevel CurrentRead|CurrentWrite.
const accessReadWrite = byte(ua.AccessLevelTypeCurrentRead | ua.AccessLevelTypeCurrentWrite)

// namespace serves the simulated variables to gopcua (server.NameSpace).
// Its attributes other than Value are fixed at construction; values live
// in the Server (atomic pointers), so every method is safe for concurrent
// use without a lock. Writes do not come through SetAttribute: the Write
// service is ours (handlers.go).
type namespace struct {
	srv      *Server
	uri      string
	folder   string // the folder's string id and browse name
	idx      uint16 // set by gopcua's AddNamespace before Start
	folderID *ua.NodeID
	// folderRefs is the Browse result of the folder (one HasComponent
	// per variable, built once: the references are never modified).
	folderRefs []*ua.ReferenceDescription
}

var _ server.NameSpace = (*namespace)(nil)

// Name implements server.NameSpace.
func (ns *namespace) Name() string { return ns.uri }

// ID implements server.NameSpace.
func (ns *namespace) ID() uint16 { return ns.idx }

// SetID implements server.NameSpace; gopcua calls it from AddNamespace.
func (ns *namespace) SetID(idx uint16) {
	ns.idx = idx
	ns.folderID = ua.NewStringNodeID(idx, ns.folder)
}

// AddNode implements server.NameSpace; the address space is fixed.
func (ns *namespace) AddNode(n *server.Node) *server.Node { return n }

// Node implements server.NameSpace. gopcua uses it to describe reference
// targets when browsing namespace 0 (Objects → Sim); only the folder has a
// descriptor.
func (ns *namespace) Node(nid *ua.NodeID) *server.Node {
	if nid == nil || !nid.Equal(ns.folderID) {
		return nil
	}
	return ns.folderNode()
}

// folderNode builds the gopcua descriptor of the Sim folder. gopcua's
// Browse reports a target's "DataType" attribute as its TypeDefinition,
// hence FolderType there.
func (ns *namespace) folderNode() *server.Node {
	return server.NewNode(ns.folderID, server.Attributes{
		ua.AttributeIDNodeClass:   server.DataValueFromValue(uint32(ua.NodeClassObject)),
		ua.AttributeIDBrowseName:  server.DataValueFromValue(&ua.QualifiedName{NamespaceIndex: ns.idx, Name: ns.folder}),
		ua.AttributeIDDisplayName: server.DataValueFromValue(attrs.DisplayName(ns.folder, "")),
		ua.AttributeIDDataType:    server.DataValueFromValue(ua.NewNumericExpandedNodeID(0, id.FolderType)),
	}, nil, nil)
}

// Objects implements server.NameSpace.
func (ns *namespace) Objects() *server.Node { return ns.folderNode() }

// Root implements server.NameSpace.
func (ns *namespace) Root() *server.Node { return ns.folderNode() }

// varIndex returns the variable a node id names, if any.
func (ns *namespace) varIndex(nid *ua.NodeID) (int, bool) {
	if nid == nil || nid.Namespace() != ns.idx || nid.Type() != ua.NodeIDTypeString {
		return 0, false
	}
	i, ok := parseNodeName(nid.StringID())
	if !ok || i >= len(ns.srv.vars) {
		return 0, false
	}
	return i, true
}

func (ns *namespace) isFolder(nid *ua.NodeID) bool {
	return nid != nil && nid.Namespace() == ns.idx && nid.Type() == ua.NodeIDTypeString &&
		nid.StringID() == ns.folder
}

// exists reports whether nid names a node of this namespace.
func (ns *namespace) exists(nid *ua.NodeID) bool {
	_, ok := ns.varIndex(nid)
	return ok || ns.isFolder(nid)
}

func attrValue(v any) *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(v)}
}

func attrStatus(code ua.StatusCode) *ua.DataValue {
	return &ua.DataValue{
		EncodingMask:    ua.DataValueServerTimestamp | ua.DataValueStatusCode,
		ServerTimestamp: time.Now(),
		Status:          code,
	}
}

// Attribute implements server.NameSpace (Part 3, 5.6 for a Variable, 5.5
// for the folder Object). The Value attribute is the stored DataValue,
// which is never modified once stored.
func (ns *namespace) Attribute(nid *ua.NodeID, attr ua.AttributeID) *ua.DataValue {
	if i, ok := ns.varIndex(nid); ok {
		return ns.varAttribute(i, nid, attr)
	}
	if ns.isFolder(nid) {
		switch attr {
		case ua.AttributeIDNodeID:
			return attrValue(ns.folderID)
		case ua.AttributeIDNodeClass:
			return attrValue(int32(ua.NodeClassObject))
		case ua.AttributeIDBrowseName:
			return attrValue(&ua.QualifiedName{NamespaceIndex: ns.idx, Name: ns.folder})
		case ua.AttributeIDDisplayName:
			return attrValue(attrs.DisplayName(ns.folder, ""))
		case ua.AttributeIDDescription:
			return attrValue(attrs.DisplayName("", ""))
		case ua.AttributeIDWriteMask, ua.AttributeIDUserWriteMask:
			return attrValue(uint32(0))
		case ua.AttributeIDEventNotifier:
			return attrValue(byte(0))
		}
		return attrStatus(ua.StatusBadAttributeIDInvalid)
	}
	return attrStatus(ua.StatusBadNodeIDUnknown)
}

func (ns *namespace) varAttribute(i int, nid *ua.NodeID, attr ua.AttributeID) *ua.DataValue {
	t := ns.srv.vars[i].typ
	name := NodeName(i)
	switch attr {
	case ua.AttributeIDValue:
		return ns.srv.vars[i].value.Load()
	case ua.AttributeIDNodeID:
		return attrValue(ua.NewStringNodeID(ns.idx, name))
	case ua.AttributeIDNodeClass:
		return attrValue(int32(ua.NodeClassVariable))
	case ua.AttributeIDBrowseName:
		return attrValue(&ua.QualifiedName{NamespaceIndex: ns.idx, Name: name})
	case ua.AttributeIDDisplayName:
		return attrValue(attrs.DisplayName(name, ""))
	case ua.AttributeIDDescription:
		return attrValue(attrs.DisplayName(t.name, ""))
	case ua.AttributeIDWriteMask, ua.AttributeIDUserWriteMask:
		return attrValue(uint32(0))
	case ua.AttributeIDDataType:
		return attrValue(ua.NewNumericNodeID(0, uint32(t.id)))
	case ua.AttributeIDValueRank:
		if t.array {
			return attrValue(int32(1))
		}
		return attrValue(int32(-1))
	case ua.AttributeIDArrayDimensions:
		if t.array {
			return attrValue([]uint32{0})
		}
		return attrStatus(ua.StatusBadAttributeIDInvalid)
	case ua.AttributeIDAccessLevel, ua.AttributeIDUserAccessLevel:
		return attrValue(accessReadWrite)
	case ua.AttributeIDAccessLevelEx:
		return attrValue(uint32(accessReadWrite))
	case ua.AttributeIDMinimumSamplingInterval:
		return attrValue(float64(0))
	case ua.AttributeIDHistorizing:
		return attrValue(false)
	}
	return attrStatus(ua.StatusBadAttributeIDInvalid)
}

// SetAttribute implements server.NameSpace. Our Write handler does not
// call it; it exists for completeness and type-checks like Write.
func (ns *namespace) SetAttribute(nid *ua.NodeID, attr ua.AttributeID, dv *ua.DataValue) ua.StatusCode {
	return ns.srv.writeOne(&ua.WriteValue{NodeID: nid, AttributeID: attr, Value: dv})
}

// reference type nodes used in Browse results.
var (
	refHasComponent      = ua.NewNumericNodeID(0, id.HasComponent)
	refOrganizes         = ua.NewNumericNodeID(0, id.Organizes)
	refHasTypeDefinition = ua.NewNumericNodeID(0, id.HasTypeDefinition)
	refHasProperty       = ua.NewNumericNodeID(0, id.HasProperty)
)

// refSupertypes lists, for each reference type we return, the types it is
// a subtype of (Part 5, 11), for Browse with IncludeSubtypes.
var refSupertypes = map[uint32][]uint32{
	id.HasComponent:        {id.Aggregates, id.HasChild, id.HierarchicalReferences, id.References},
	id.HasOrderedComponent: {id.HasComponent, id.Aggregates, id.HasChild, id.HierarchicalReferences, id.References},
	id.HasProperty:         {id.Aggregates, id.HasChild, id.HierarchicalReferences, id.References},
	id.HasSubtype:          {id.HasChild, id.HierarchicalReferences, id.References},
	id.Organizes:           {id.HierarchicalReferences, id.References},
	id.HasEventSource:      {id.HierarchicalReferences, id.References},
	id.HasNotifier:         {id.HasEventSource, id.HierarchicalReferences, id.References},
	id.HasTypeDefinition:   {id.NonHierarchicalReferences, id.References},
	id.HasModellingRule:    {id.NonHierarchicalReferences, id.References},
	id.HasEncoding:         {id.NonHierarchicalReferences, id.References},
	id.HasDescription:      {id.NonHierarchicalReferences, id.References},
	id.GeneratesEvent:      {id.NonHierarchicalReferences, id.References},
}

func refMatches(bd *ua.BrowseDescription, r *ua.ReferenceDescription) bool {
	switch bd.BrowseDirection {
	case ua.BrowseDirectionForward:
		if !r.IsForward {
			return false
		}
	case ua.BrowseDirectionInverse:
		if r.IsForward {
			return false
		}
	}
	if bd.NodeClassMask != 0 && bd.NodeClassMask&uint32(r.NodeClass) == 0 {
		return false
	}
	want := bd.ReferenceTypeID
	if want == nil || (want.Namespace() == 0 && want.IntID() == 0) || want.Equal(r.ReferenceTypeID) {
		return true
	}
	if !bd.IncludeSubtypes || want.Namespace() != 0 {
		return false
	}
	for _, sup := range refSupertypes[r.ReferenceTypeID.IntID()] {
		if want.IntID() == sup {
			return true
		}
	}
	return false
}

func (ns *namespace) buildFolderRefs() {
	typeDef := ua.NewNumericExpandedNodeID(0, id.BaseDataVariableType)
	refs := make([]*ua.ReferenceDescription, len(ns.srv.vars))
	for i := range refs {
		name := NodeName(i)
		refs[i] = &ua.ReferenceDescription{
			ReferenceTypeID: refHasComponent,
			IsForward:       true,
			NodeID:          ua.NewStringExpandedNodeID(ns.idx, name),
			BrowseName:      &ua.QualifiedName{NamespaceIndex: ns.idx, Name: name},
			DisplayName:     attrs.DisplayName(name, ""),
			NodeClass:       ua.NodeClassVariable,
			TypeDefinition:  typeDef,
		}
	}
	ns.folderRefs = refs
}

// Browse implements server.NameSpace: every reference of the node that bd
// asks for (the Browse service pages them, view.go); ResultMask is
// ignored (every field is filled).
func (ns *namespace) Browse(bd *ua.BrowseDescription) *ua.BrowseResult {
	var all []*ua.ReferenceDescription
	noType := ua.NewTwoByteExpandedNodeID(0)
	_, isVar := ns.varIndex(bd.NodeID)
	switch {
	case ns.isFolder(bd.NodeID):
		all = append([]*ua.ReferenceDescription{{
			ReferenceTypeID: refHasTypeDefinition,
			IsForward:       true,
			NodeID:          ua.NewNumericExpandedNodeID(0, id.FolderType),
			BrowseName:      &ua.QualifiedName{Name: "FolderType"},
			DisplayName:     attrs.DisplayName("FolderType", ""),
			NodeClass:       ua.NodeClassObjectType,
			TypeDefinition:  noType,
		}, {
			ReferenceTypeID: refOrganizes,
			IsForward:       false,
			NodeID:          ua.NewNumericExpandedNodeID(0, id.ObjectsFolder),
			BrowseName:      &ua.QualifiedName{Name: "Objects"},
			DisplayName:     attrs.DisplayName("Objects", ""),
			NodeClass:       ua.NodeClassObject,
			TypeDefinition:  ua.NewNumericExpandedNodeID(0, id.FolderType),
		}}, ns.folderRefs...)
	case isVar:
		all = []*ua.ReferenceDescription{{
			ReferenceTypeID: refHasTypeDefinition,
			IsForward:       true,
			NodeID:          ua.NewNumericExpandedNodeID(0, id.BaseDataVariableType),
			BrowseName:      &ua.QualifiedName{Name: "BaseDataVariableType"},
			DisplayName:     attrs.DisplayName("BaseDataVariableType", ""),
			NodeClass:       ua.NodeClassVariableType,
			TypeDefinition:  noType,
		}, {
			ReferenceTypeID: refHasComponent,
			IsForward:       false,
			NodeID:          ua.NewStringExpandedNodeID(ns.idx, ns.folder),
			BrowseName:      &ua.QualifiedName{NamespaceIndex: ns.idx, Name: ns.folder},
			DisplayName:     attrs.DisplayName(ns.folder, ""),
			NodeClass:       ua.NodeClassObject,
			TypeDefinition:  ua.NewNumericExpandedNodeID(0, id.FolderType),
		}}
	default:
		return &ua.BrowseResult{StatusCode: ua.StatusBadNodeIDUnknown}
	}
	if ns.isFolder(bd.NodeID) {
		all = append(all, ns.srv.extraChildren(bd.NodeID, true)...)
	}
	return filterRefs(bd, all)
}

// filterRefs returns the Browse result of the references in all that
// match bd.
func filterRefs(bd *ua.BrowseDescription, all []*ua.ReferenceDescription) *ua.BrowseResult {
	out := make([]*ua.ReferenceDescription, 0, len(all))
	for _, r := range all {
		if refMatches(bd, r) {
			out = append(out, r)
		}
	}
	return &ua.BrowseResult{StatusCode: ua.StatusGood, References: out}
}

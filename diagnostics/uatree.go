package diagnostics

import (
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/uaserver"
)

// The browsable tree of the pair's endpoint (see uaserver.go for the
// variables): Objects/Pair is the folder of namespace UANamespaceURI,
//
//	Pair
//	  Role, Active, Epoch, Ready, ServerUri
//	  Version, PairProtocol, MemberVersions (String, Int32, String[] "id=version (protocol …)")
//	  Failover()                       (node id Pair/Failover)
//	  Servers/<name>/{Up, ServiceLevel}
//	  Servers/<name>/Members/<i>/{Endpoint, State, ServiceLevel, InUse, Reason}
//	                                   (a redundant server set only; i from 0
//	                                   in config order, from the engine)
//	  Mappings/{pending, ok, …, Problems}
//	  Mappings/Items/<id>/{State, Reason, Value, SourceTimestamp, From, To}
//	  Mappings/Items/<id>/Reverse/{…}  (the reverse flow of a "both" mapping)
//	  LastSwitchover/{Time, From, To, Reason, Epoch}
//	  LastDrill/{Time, Verdict, GapMS, From, To, Epoch, Detail}
//
// (ServerUriArray, the property of Server.ServerRedundancy, and the
// Failover method's InputArguments and OutputArguments are the core's,
// package uaserver.)
//
// The tree is computed at Browse time from the pair's status and the
// engine; Mappings/Items lists every mapping, which the core pages with
// continuation points (at most uaserver.Limits.MaxReferencesPerNode
// references per response, BrowseNext for the rest).

// uaFolder is the folder's string id: the Pair object.
const uaFolder = uaPairObject

var (
	uaTopVars      = []string{"Role", "Active", "Epoch", "Ready", "ServerUri", "Version", "PairProtocol", "MemberVersions"}
	uaTopObjects   = []string{"Servers", "Mappings", "LastSwitchover", "LastDrill"}
	uaServerFields = []string{"Up", "ServiceLevel"}
	uaMemberFields = []string{"Endpoint", "State", "ServiceLevel", "InUse", "Reason"}
	uaSwitchFields = []string{"Time", "From", "To", "Reason", "Epoch"}
	uaDrillFields  = []string{"Time", "Verdict", "GapMS", "From", "To", "Epoch", "Detail"}
	uaItemFields   = []string{"State", "Reason", "Value", "SourceTimestamp", "From", "To"}
)

const (
	uaItemsObject = "Mappings/Items"
	uaItemsPrefix = uaItemsObject + "/"
	uaReverse     = "Reverse"
)

// failoverNode is the Failover method: no input, one String output.
func failoverNode() uaserver.ExtraNode {
	return uaserver.ExtraNode{Name: uaFailoverMethod, BrowseName: "Failover", Class: ua.NodeClassMethod,
		Arguments: true, InputArguments: []*ua.Argument{},
		OutputArguments: []*ua.Argument{{Name: "Error", DataType: ua.NewNumericNodeID(0, id.String), ValueRank: -1,
			ArrayDimensions: []uint32{},
			Description:     &ua.LocalizedText{EncodingMask: ua.LocalizedTextText, Text: "empty on success, else why the switchover was refused"}}}}
}

func uaVar(name, parent string) uaserver.ExtraNode {
	return uaserver.ExtraNode{Name: name, Parent: parent, BrowseName: lastSegment(name), Class: ua.NodeClassVariable}
}

func uaObject(name, parent string) uaserver.ExtraNode {
	return uaserver.ExtraNode{Name: name, Parent: parent, BrowseName: lastSegment(name), Class: ua.NodeClassObject}
}

func lastSegment(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}

// parentOf returns the parent object of a node of the tree.
func parentOf(name string) string {
	i := strings.LastIndexByte(name, '/')
	if i < 0 || name == uaFailoverMethod {
		return ""
	}
	return name[:i]
}

// uaNode describes the node name of the tree, if it exists now.
func (u *UAServer) uaNode(name string) (uaserver.ExtraNode, bool) {
	if name == uaFailoverMethod {
		return failoverNode(), true
	}
	parent := parentOf(name)
	if parent == uaItemsObject {
		// One mapping's object: a lookup, not a scan of every mapping.
		id := strings.TrimPrefix(name, uaItemsPrefix)
		if f := u.mappingFlows(id); len(f) > 0 && !strings.Contains(id, "/") {
			return uaObject(name, parent), true
		}
		return uaserver.ExtraNode{}, false
	}
	for _, c := range u.uaChildren(parent) {
		if c.Name == name {
			return c, true
		}
	}
	return uaserver.ExtraNode{}, false
}

// uaChildren lists the children of the object parent ("" is the folder).
func (u *UAServer) uaChildren(parent string) []uaserver.ExtraNode {
	var out []uaserver.ExtraNode
	switch {
	case parent == "":
		for _, v := range uaTopVars {
			out = append(out, uaVar(v, ""))
		}
		for _, o := range uaTopObjects {
			out = append(out, uaObject(o, ""))
		}
		out = append(out, failoverNode())
	case parent == "Servers":
		if h := u.cfg.Pair.Status().Health; h != nil {
			for _, s := range h.Servers {
				out = append(out, uaObject("Servers/"+s.Name, parent))
			}
		}
	case parent == "LastSwitchover":
		out = fields(out, parent, uaSwitchFields)
	case parent == "LastDrill":
		out = fields(out, parent, uaDrillFields)
	case parent == "Mappings":
		for _, s := range uaMappingStates {
			out = append(out, uaVar("Mappings/"+s, parent))
		}
		out = append(out, uaVar("Mappings/Problems", parent), uaObject(uaItemsObject, parent))
	case parent == uaItemsObject:
		if e := u.cfg.Engine(); e != nil {
			for _, m := range e.Snapshot() {
				if !m.Reverse {
					out = append(out, uaObject(uaItemsPrefix+m.ID, parent))
				}
			}
		}
	case strings.HasPrefix(parent, "Servers/") && strings.Count(parent, "/") == 1:
		srv := strings.TrimPrefix(parent, "Servers/")
		if _, ok := u.serverHealth(srv); ok {
			out = fields(out, parent, uaServerFields)
			if len(u.serverMembers(srv)) > 0 {
				out = append(out, uaObject(parent+"/Members", parent))
			}
		}
	case strings.HasPrefix(parent, "Servers/") && strings.HasSuffix(parent, "/Members") && strings.Count(parent, "/") == 2:
		srv := strings.TrimSuffix(strings.TrimPrefix(parent, "Servers/"), "/Members")
		for i := range u.serverMembers(srv) {
			out = append(out, uaObject(parent+"/"+strconv.Itoa(i), parent))
		}
	case strings.HasPrefix(parent, "Servers/") && strings.Count(parent, "/") == 3:
		if _, ok := u.member(parent); ok {
			out = fields(out, parent, uaMemberFields)
		}
	case strings.HasPrefix(parent, uaItemsPrefix):
		id, rev := strings.CutSuffix(strings.TrimPrefix(parent, uaItemsPrefix), "/"+uaReverse)
		flows := u.mappingFlows(id)
		if len(flows) == 0 || (rev && len(flows) < 2) || strings.Contains(id, "/") {
			return nil
		}
		out = fields(out, parent, uaItemFields)
		if !rev && len(flows) == 2 {
			out = append(out, uaObject(parent+"/"+uaReverse, parent))
		}
	}
	return out
}

func fields(out []uaserver.ExtraNode, parent string, names []string) []uaserver.ExtraNode {
	for _, f := range names {
		out = append(out, uaVar(parent+"/"+f, parent))
	}
	return out
}

// mappingLookup is the optional engine capability of finding one
// mapping's flows without a snapshot of all (bridge.Engine has it).
type mappingLookup interface {
	Mapping(id string) []bridge.MappingStatus
}

// mappingFlows returns the flows of mapping id (forward first).
func (u *UAServer) mappingFlows(id string) []bridge.MappingStatus {
	e := u.cfg.Engine()
	if e == nil {
		return nil
	}
	if l, ok := e.(mappingLookup); ok {
		return l.Mapping(id)
	}
	var out []bridge.MappingStatus
	for _, m := range e.Snapshot() {
		if m.ID == id {
			out = append(out, m)
		}
	}
	return out
}

// itemVariable serves Mappings/Items/<id>[/Reverse]/<field>.
func (u *UAServer) itemVariable(rest string) (*ua.DataValue, bool) {
	path, field, ok := cutLast(rest)
	if !ok {
		return nil, false
	}
	id, rev := strings.CutSuffix(path, "/"+uaReverse)
	if strings.Contains(id, "/") {
		return nil, false
	}
	flows := u.mappingFlows(id)
	k := 0
	if rev {
		k = 1
	}
	if k >= len(flows) {
		return nil, false
	}
	f := flows[k]
	switch field {
	case "State":
		return value(f.State.String()), true
	case "Reason":
		return value(f.Reason), true
	case "From":
		return value(f.From), true
	case "To":
		return value(f.To), true
	case "SourceTimestamp":
		return value(f.SourceTS), true
	case "Value":
		if f.Value == nil {
			now := time.Now()
			return &ua.DataValue{EncodingMask: ua.DataValueStatusCode | ua.DataValueServerTimestamp,
				Status: ua.StatusBadWaitingForInitialData, ServerTimestamp: now}, true
		}
		return &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
			Value: f.Value, SourceTimestamp: f.SourceTS, ServerTimestamp: time.Now()}, true
	}
	return nil, false
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// serverMembers returns the members of server set name as the engine
// sees them (nil for a single server or without an engine).
func (u *UAServer) serverMembers(name string) []bridge.MemberStats {
	e := u.cfg.Engine()
	if e == nil {
		return nil
	}
	for _, s := range e.Stats().Servers {
		if s.Name == name {
			return s.Members
		}
	}
	return nil
}

// member returns the member of object path Servers/<name>/Members/<i>.
func (u *UAServer) member(path string) (bridge.MemberStats, bool) {
	parts := strings.Split(path, "/")
	if len(parts) != 4 || parts[0] != "Servers" || parts[2] != "Members" {
		return bridge.MemberStats{}, false
	}
	i, err := strconv.Atoi(parts[3])
	ms := u.serverMembers(parts[1])
	if err != nil || i < 0 || i >= len(ms) || strconv.Itoa(i) != parts[3] {
		return bridge.MemberStats{}, false
	}
	return ms[i], true
}

// memberVariable serves Servers/<name>/Members/<i>/<field>.
func (u *UAServer) memberVariable(name string) (*ua.DataValue, bool) {
	path, field, ok := cutLast(name)
	if !ok {
		return nil, false
	}
	m, ok := u.member(path)
	if !ok {
		return nil, false
	}
	switch field {
	case "Endpoint":
		return value(m.Endpoint), true
	case "State":
		return value(m.State.String()), true
	case "ServiceLevel":
		return value(int32(m.ServiceLevel)), true
	case "InUse":
		return value(m.InUse), true
	case "Reason":
		return value(m.Reason), true
	}
	return nil, false
}

package uaserver

import (
	"crypto/rand"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
)

// The View service set (Part 4, 5.8): Browse with continuation points,
// BrowseNext, TranslateBrowsePathsToNodeIds, RegisterNodes and
// UnregisterNodes. gopcua answers all but Browse with
// Bad_ServiceUnsupported and its Browse ignores
// RequestedMaxReferencesPerNode.
//
// A Browse returns at most min(RequestedMaxReferencesPerNode,
// Limits.MaxReferencesPerNode) references per node (0 from the client:
// the server's limit); the rest waits behind a continuation point that
// BrowseNext pages through (Part 4, 5.8.3 and 7.9). A continuation point
// holds the rest of the result computed at Browse time, so paging is
// consistent and costs nothing to compute; it belongs to the session that
// made it (another session's BrowseNext gets
// Bad_ContinuationPointInvalid), a session holds at most
// Limits.MaxBrowseContinuationPoints (the next Browse that needs one gets
// Bad_NoContinuationPoints for that node), and it is dropped when it is
// read to the end, released, older than continuationPointTTL, or its
// session is gone; all sessions together hold at most
// maxContinuationPoints.

// continuationPointTTL bounds how long an unreleased continuation point
// is kept.
const continuationPointTTL = 10 * time.Minute

// maxContinuationPoints bounds the continuation points of all sessions
// together (a point may hold the rest of a 100,000-reference result):
// many sessions cannot pile them up.
const maxContinuationPoints = 16

// contPoint is the rest of one node's Browse result: references, then
// extension children made into references page by page (at 100,000
// mappings a point holds ~9 MiB, not the ~42 MiB of their references).
type contPoint struct {
	session string // the authentication token of the session that made it
	refs    []*ua.ReferenceDescription
	kids    []kidRef
	max     int // references per BrowseNext page
	created time.Time
}

// take removes and returns the next n references of cp.
func (s *Server) take(cp *contPoint, n int) []*ua.ReferenceDescription {
	out := make([]*ua.ReferenceDescription, 0, min(n, len(cp.refs)+len(cp.kids)))
	for len(out) < n && len(cp.refs) > 0 {
		out = append(out, cp.refs[0])
		cp.refs = cp.refs[1:]
	}
	for len(out) < n && len(cp.kids) > 0 {
		out = append(out, s.extraRef(cp.kids[0].node()))
		cp.kids = cp.kids[1:]
	}
	return out
}

func (cp *contPoint) empty() bool { return len(cp.refs) == 0 && len(cp.kids) == 0 }

// browseLimit returns how many references per node a Browse may return.
func (s *Server) browseLimit(requested uint32) int {
	lim := s.cfg.Limits.MaxReferencesPerNode
	if requested > 0 && (lim == 0 || int(requested) < lim) {
		lim = int(requested)
	}
	return lim
}

// page returns the first max references of refs followed by kids and
// stores the rest in a continuation point of session.
func (s *Server) page(gs *server.Server, session *ua.NodeID, refs []*ua.ReferenceDescription, kids []kidRef, max int) *ua.BrowseResult {
	cp := &contPoint{refs: refs, kids: kids, max: max}
	if max <= 0 || len(refs)+len(kids) <= max {
		return &ua.BrowseResult{StatusCode: ua.StatusGood, References: s.take(cp, len(refs)+len(kids))}
	}
	first := s.take(cp, max)
	id, ok := s.newContPoint(gs, session, cp)
	if !ok {
		return &ua.BrowseResult{StatusCode: ua.StatusBadNoContinuationPoints}
	}
	return &ua.BrowseResult{StatusCode: ua.StatusGood, References: first, ContinuationPoint: id}
}

// newContPoint stores the rest cp for session, or reports false when the
// session (or the server) holds its maximum of continuation points.
func (s *Server) newContPoint(gs *server.Server, session *ua.NodeID, cp *contPoint) ([]byte, bool) {
	key := session.String()
	now := time.Now()
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	n := 0
	for k, cp := range s.cps {
		switch {
		case now.Sub(cp.created) > continuationPointTTL:
			delete(s.cps, k)
		case cp.session == key:
			n++
		}
	}
	if n >= s.cfg.Limits.MaxBrowseContinuationPoints {
		return nil, false
	}
	// Sessions that are gone leave their points behind: drop them when
	// the table grows.
	if len(s.cps) >= min(4*s.cfg.Limits.MaxBrowseContinuationPoints, maxContinuationPoints) {
		alive := map[string]bool{}
		for k, cp := range s.cps {
			a, seen := alive[cp.session]
			if !seen {
				tok, err := ua.ParseNodeID(cp.session)
				a = err == nil && gs.Session(&ua.RequestHeader{AuthenticationToken: tok}) != nil
				alive[cp.session] = a
			}
			if !a {
				delete(s.cps, k)
			}
		}
	}
	if len(s.cps) >= maxContinuationPoints {
		return nil, false
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id) // crypto/rand.Read never fails (Go 1.24)
	cp.session, cp.created = key, now
	s.cps[string(id)] = cp
	return id, true
}

// browseNext serves BrowseNext (Part 4, 5.8.3).
func (s *Server) browseNext(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.BrowseNextRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid)
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.ContinuationPoints) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case tooMany(len(req.ContinuationPoints), s.cfg.Limits.MaxNodesPerBrowse):
		return fault(r, ua.StatusBadTooManyOperations)
	}
	key := req.RequestHeader.AuthenticationToken.String()
	results := make([]*ua.BrowseResult, len(req.ContinuationPoints))
	s.cpMu.Lock()
	for k, id := range req.ContinuationPoints {
		cp, ok := s.cps[string(id)]
		if !ok || cp.session != key {
			results[k] = &ua.BrowseResult{StatusCode: ua.StatusBadContinuationPointInvalid}
			continue
		}
		if req.ReleaseContinuationPoints {
			delete(s.cps, string(id))
			results[k] = &ua.BrowseResult{StatusCode: ua.StatusGood, References: []*ua.ReferenceDescription{}}
			continue
		}
		res := &ua.BrowseResult{StatusCode: ua.StatusGood, References: s.take(cp, cp.max)}
		if cp.empty() {
			delete(s.cps, string(id))
		} else {
			res.ContinuationPoint = id
		}
		results[k] = res
	}
	s.cpMu.Unlock()
	return &ua.BrowseNextResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

// tooMany reports whether n operations exceed the limit (0: no limit).
func tooMany(n, limit int) bool { return limit > 0 && n > limit }

// maxPathTargets bounds the targets of one TranslateBrowsePaths result.
const maxPathTargets = 1000

// translateBrowsePaths serves TranslateBrowsePathsToNodeIds (Part 4,
// 5.8.4): each element of a path is resolved by browsing every node
// reached so far with the element's reference type, direction and
// subtypes flag and matching the target's BrowseName.
func (s *Server) translateBrowsePaths(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.TranslateBrowsePathsToNodeIDsRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid)
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.BrowsePaths) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case tooMany(len(req.BrowsePaths), s.cfg.Limits.MaxNodesPerTranslateBrowsePathsToNodeIds):
		return fault(r, ua.StatusBadTooManyOperations)
	}
	results := make([]*ua.BrowsePathResult, len(req.BrowsePaths))
	for k, p := range req.BrowsePaths {
		results[k] = s.translate(gs, p)
	}
	return &ua.TranslateBrowsePathsToNodeIDsResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

func (s *Server) translate(gs *server.Server, p *ua.BrowsePath) *ua.BrowsePathResult {
	if p == nil || p.StartingNode == nil {
		return &ua.BrowsePathResult{StatusCode: ua.StatusBadNodeIDInvalid, Targets: []*ua.BrowsePathTarget{}}
	}
	if p.RelativePath == nil || len(p.RelativePath.Elements) == 0 {
		return &ua.BrowsePathResult{StatusCode: ua.StatusBadNothingToDo, Targets: []*ua.BrowsePathTarget{}}
	}
	if !s.nodeExists(gs, p.StartingNode) {
		return &ua.BrowsePathResult{StatusCode: ua.StatusBadNodeIDUnknown, Targets: []*ua.BrowsePathTarget{}}
	}
	current := []*ua.NodeID{p.StartingNode}
	for _, el := range p.RelativePath.Elements {
		if el == nil || el.TargetName == nil || el.TargetName.Name == "" {
			return &ua.BrowsePathResult{StatusCode: ua.StatusBadBrowseNameInvalid, Targets: []*ua.BrowsePathTarget{}}
		}
		dir := ua.BrowseDirectionForward
		if el.IsInverse {
			dir = ua.BrowseDirectionInverse
		}
		refType := el.ReferenceTypeID
		if refType == nil {
			refType = ua.NewNumericNodeID(0, id.HierarchicalReferences)
		}
		var next []*ua.NodeID
		seen := map[string]bool{}
		for _, n := range current {
			res := s.browseAll(gs, &ua.BrowseDescription{NodeID: n, BrowseDirection: dir, ReferenceTypeID: refType,
				IncludeSubtypes: el.IncludeSubtypes, ResultMask: uint32(ua.BrowseResultMaskAll)})
			if res.StatusCode != ua.StatusGood {
				continue
			}
			for _, ref := range res.References {
				bn := ref.BrowseName
				if bn == nil || bn.Name != el.TargetName.Name || bn.NamespaceIndex != el.TargetName.NamespaceIndex ||
					ref.NodeID == nil || ref.NodeID.NodeID == nil || ref.NodeID.ServerIndex != 0 {
					continue
				}
				if k := ref.NodeID.NodeID.String(); !seen[k] && len(next) < maxPathTargets {
					seen[k] = true
					next = append(next, ref.NodeID.NodeID)
				}
			}
		}
		if len(next) == 0 {
			return &ua.BrowsePathResult{StatusCode: ua.StatusBadNoMatch, Targets: []*ua.BrowsePathTarget{}}
		}
		current = next
	}
	targets := make([]*ua.BrowsePathTarget, len(current))
	for k, n := range current {
		targets[k] = &ua.BrowsePathTarget{TargetID: ua.NewExpandedNodeID(n, "", 0), RemainingPathIndex: ^uint32(0)}
	}
	return &ua.BrowsePathResult{StatusCode: ua.StatusGood, Targets: targets}
}

// registerNodes serves RegisterNodes (Part 4, 5.8.5): every node id is
// already as fast to use as it can be, so the registered ids are the
// given ones.
func (s *Server) registerNodes(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.RegisterNodesRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid)
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.NodesToRegister) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case tooMany(len(req.NodesToRegister), s.cfg.Limits.MaxNodesPerRegisterNodes):
		return fault(r, ua.StatusBadTooManyOperations)
	}
	for _, n := range req.NodesToRegister {
		if n == nil {
			return fault(r, ua.StatusBadNodeIDInvalid)
		}
	}
	return &ua.RegisterNodesResponse{ResponseHeader: respHeader(r, ua.StatusOK),
		RegisteredNodeIDs: append([]*ua.NodeID(nil), req.NodesToRegister...)}
}

// unregisterNodes serves UnregisterNodes (Part 4, 5.8.6).
func (s *Server) unregisterNodes(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.UnregisterNodesRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid)
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.NodesToUnregister) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case tooMany(len(req.NodesToUnregister), s.cfg.Limits.MaxNodesPerRegisterNodes):
		return fault(r, ua.StatusBadTooManyOperations)
	}
	return &ua.UnregisterNodesResponse{ResponseHeader: respHeader(r, ua.StatusOK)}
}

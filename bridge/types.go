package bridge

import (
	"context"
	"fmt"
	"math"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// builtinOf returns the built-in type whose encoding a DataType node's
// values use, when the node says so itself: a built-in type (ns=0;i=1…25)
// or Enumeration (i=29, encoded as Int32, Part 6, 5.2.4).
func builtinOf(n *ua.NodeID) (ua.TypeID, bool) {
	if n == nil || n.Namespace() != 0 {
		return 0, false
	}
	switch i := n.IntID(); {
	case i >= 1 && i <= 25:
		return ua.TypeID(i), true
	case i == id.Enumeration:
		return ua.TypeIDInt32, true
	}
	return 0, false
}

// maxTypeDepth bounds the HasSubtype chain followed from a DataType to
// its built-in supertype (the standard ones are at most 3 deep).
const maxTypeDepth = 8

// resolveTypes resolves the DataType nodes types to the built-in types
// their values are encoded as, following HasSubtype references up
// (Part 3, 5.8.2: Duration → Double, UtcTime → DateTime, an enumeration
// → Enumeration → Int32), one Browse per level for all of them. Results
// are cached in the session (a server's type tree does not change within
// a session; a new session resolves again). A type that does not lead to
// a built-in one (a structure) maps to 0: unknown.
func (c *conn) resolveTypes(ctx context.Context, s *session, types []*ua.NodeID) error {
	if s.types == nil {
		s.types = map[string]ua.TypeID{}
	}
	// cur[k] is the node reached so far from the DataType origin[k].
	var origin, cur []*ua.NodeID
	for _, t := range types {
		if _, ok := builtinOf(t); ok {
			continue
		}
		if _, ok := s.types[t.String()]; ok {
			continue
		}
		s.types[t.String()] = 0 // until resolved; also dedups
		origin, cur = append(origin, t), append(cur, t)
	}
	for depth := 0; depth < maxTypeDepth && len(cur) > 0; depth++ {
		req := &ua.BrowseRequest{NodesToBrowse: make([]*ua.BrowseDescription, len(cur))}
		for k, n := range cur {
			req.NodesToBrowse[k] = &ua.BrowseDescription{NodeID: n, BrowseDirection: ua.BrowseDirectionInverse,
				ReferenceTypeID: ua.NewNumericNodeID(0, id.HasSubtype), IncludeSubtypes: false,
				NodeClassMask: uint32(ua.NodeClassDataType), ResultMask: uint32(ua.BrowseResultMaskAll)}
		}
		rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
		res, err := s.client.Browse(rctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("browsing data type supertypes: %w", err)
		}
		if len(res.Results) != len(cur) {
			return fmt.Errorf("browsing data type supertypes: %d results for %d nodes", len(res.Results), len(cur))
		}
		var nextO, nextC []*ua.NodeID
		for k, r := range res.Results {
			if r.StatusCode != ua.StatusOK || len(r.References) == 0 || r.References[0].NodeID == nil {
				continue // no supertype: unknown
			}
			super := r.References[0].NodeID.NodeID
			if bt, ok := builtinOf(super); ok {
				s.types[origin[k].String()] = bt
				continue
			}
			if bt, ok := s.types[super.String()]; ok && bt != 0 {
				s.types[origin[k].String()] = bt
				continue
			}
			nextO, nextC = append(nextO, origin[k]), append(nextC, super)
		}
		origin, cur = nextO, nextC
	}
	return nil
}

// typeOf returns the built-in type of DataType node n resolved on session
// s (0: unknown).
func (s *session) typeOf(n *ua.NodeID) ua.TypeID {
	if bt, ok := builtinOf(n); ok {
		return bt
	}
	if n == nil {
		return 0
	}
	return s.types[n.String()]
}

// percentWithoutScaling reports whether f's mapping has a percent
// deadband and no scaling: its range is then the source's EURange.
func (f *flow) percentWithoutScaling() bool {
	db := f.ms.m.Deadband
	return db != nil && db.Type == mapping.DeadbandPercent && db.Value > 0 && f.ms.m.Scaling == nil
}

// readEURanges reads the EURange property (Part 8, 5.6.2) of the source
// node of every flow in flows that has a percent deadband and no scaling,
// and gives each flow its client-side deadband in source units. A source
// without an EURange leaves that flow without a client-side deadband
// (every change passes), with a warning: the percent has no range.
func (c *conn) readEURanges(ctx context.Context, s *session, flows []*flow) error {
	var need []*flow
	for _, f := range flows {
		if f.percentWithoutScaling() && f.node(false) != nil {
			need = append(need, f)
		}
	}
	for start := 0; start < len(need); start += s.batchRead {
		batch := need[start:min(start+s.batchRead, len(need))]
		req := &ua.BrowseRequest{NodesToBrowse: make([]*ua.BrowseDescription, len(batch))}
		for k, f := range batch {
			req.NodesToBrowse[k] = &ua.BrowseDescription{NodeID: f.node(false), BrowseDirection: ua.BrowseDirectionForward,
				ReferenceTypeID: ua.NewNumericNodeID(0, id.HasProperty), IncludeSubtypes: true,
				NodeClassMask: uint32(ua.NodeClassVariable), ResultMask: uint32(ua.BrowseResultMaskAll)}
		}
		rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
		res, err := s.client.Browse(rctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("browsing EURange properties: %w", err)
		}
		var props []*ua.ReadValueID
		var owners []*flow
		for k, r := range res.Results {
			if k >= len(batch) {
				break
			}
			found := false
			for _, ref := range r.References {
				if ref.BrowseName != nil && ref.BrowseName.Name == "EURange" && ref.NodeID != nil {
					props = append(props, &ua.ReadValueID{NodeID: ref.NodeID.NodeID, AttributeID: ua.AttributeIDValue})
					owners = append(owners, batch[k])
					found = true
					break
				}
			}
			if !found {
				batch[k].setEURange(0, false)
			}
		}
		if len(props) == 0 {
			continue
		}
		vals, err := c.readAll(ctx, s, props, s.batchRead)
		if err != nil {
			return fmt.Errorf("reading EURange properties: %w", err)
		}
		for k, dv := range vals {
			rg := euRangeOf(dv)
			owners[k].setEURange(rg, rg > 0)
		}
	}
	for _, f := range need {
		if f.euSpan() == 0 {
			c.log.Warn("percent deadband without a range: no scaling and the source has no EURange; every change passes",
				zap.String("mapping", f.ms.m.ID), zap.String("source", f.srcStr()))
		}
	}
	return nil
}

// euRangeOf returns the span (high − low) of an EURange value (0: none).
func euRangeOf(dv *ua.DataValue) float64 {
	if dv == nil || dv.Status != ua.StatusOK || dv.Value == nil {
		return 0
	}
	eo, ok := dv.Value.Value().(*ua.ExtensionObject)
	if !ok || eo == nil {
		return 0
	}
	var r *ua.Range
	switch x := eo.Value.(type) {
	case *ua.Range:
		r = x
	case ua.Range:
		r = &x
	default:
		return 0
	}
	span := r.High - r.Low
	if math.IsNaN(span) || math.IsInf(span, 0) || span <= 0 {
		return 0
	}
	return span
}

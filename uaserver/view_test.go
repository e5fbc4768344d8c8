package uaserver

import (
	"fmt"
	"testing"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// TestBrowseContinuationPoints: a Browse of the folder of 2,500 variables
// returns at most the requested (or the server's) number of references and
// a continuation point; BrowseNext pages through the rest, every variable
// once; a released point is gone; another session cannot use one; a
// session holds at most MaxBrowseContinuationPoints.
func TestBrowseContinuationPoints(t *testing.T) {
	const n = 2500
	s := startServer(t, Config{Vars: n, Limits: Limits{MaxReferencesPerNode: 1000, MaxBrowseContinuationPoints: 2}})
	c := connect(t, s.Endpoint())
	ctx := testCtx(t)
	folder := ua.NewStringNodeID(s.NamespaceIndex(), DefaultFolder)
	desc := func() []*ua.BrowseDescription {
		return []*ua.BrowseDescription{{NodeID: folder, BrowseDirection: ua.BrowseDirectionForward,
			ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true,
			ResultMask: uint32(ua.BrowseResultMaskAll)}}
	}
	browse := func(max uint32) *ua.BrowseResult {
		t.Helper()
		res, err := c.Browse(ctx, &ua.BrowseRequest{NodesToBrowse: desc(), RequestedMaxReferencesPerNode: max})
		if err != nil {
			t.Fatalf("Browse: %v", err)
		}
		return res.Results[0]
	}
	next := func(release bool, cps ...[]byte) []*ua.BrowseResult {
		t.Helper()
		res, err := c.BrowseNext(ctx, &ua.BrowseNextRequest{ReleaseContinuationPoints: release, ContinuationPoints: cps})
		if err != nil {
			t.Fatalf("BrowseNext: %v", err)
		}
		return res.Results
	}

	for _, tc := range []struct {
		max      uint32
		wantPage int
	}{{max: 300, wantPage: 300}, {max: 0, wantPage: 1000}, {max: 5000, wantPage: 1000}} {
		r := browse(tc.max)
		seen := map[string]bool{}
		pages := 0
		for {
			pages++
			if r.StatusCode != ua.StatusGood || len(r.References) > tc.wantPage {
				t.Fatalf("max %d: page %d: status %v, %d references (want ≤ %d)", tc.max, pages, r.StatusCode, len(r.References), tc.wantPage)
			}
			for _, ref := range r.References {
				if k := ref.NodeID.NodeID.String(); seen[k] {
					t.Fatalf("max %d: %s twice", tc.max, k)
				} else {
					seen[k] = true
				}
			}
			if len(r.ContinuationPoint) == 0 {
				break
			}
			r = next(false, r.ContinuationPoint)[0]
		}
		if len(seen) != n || pages != (n+tc.wantPage-1)/tc.wantPage {
			t.Fatalf("max %d: %d variables in %d pages, want %d in %d", tc.max, len(seen), pages, n, (n+tc.wantPage-1)/tc.wantPage)
		}
	}

	// Released: gone.
	r := browse(100)
	if got := next(true, r.ContinuationPoint)[0].StatusCode; got != ua.StatusGood {
		t.Fatalf("release: %v", got)
	}
	if got := next(false, r.ContinuationPoint)[0].StatusCode; got != ua.StatusBadContinuationPointInvalid {
		t.Fatalf("BrowseNext after release: %v, want Bad_ContinuationPointInvalid", got)
	}
	// At most 2 per session.
	a, b := browse(100), browse(100)
	if third := browse(100); third.StatusCode != ua.StatusBadNoContinuationPoints {
		t.Fatalf("third continuation point: %v, want Bad_NoContinuationPoints", third.StatusCode)
	}
	// Another session cannot use them.
	other := connect(t, s.Endpoint())
	res, err := other.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: [][]byte{a.ContinuationPoint}})
	if err != nil || res.Results[0].StatusCode != ua.StatusBadContinuationPointInvalid {
		t.Fatalf("another session's BrowseNext: %v %v, want Bad_ContinuationPointInvalid", err, res)
	}
	next(true, a.ContinuationPoint, b.ContinuationPoint)
}

// TestTranslateAndRegister: TranslateBrowsePathsToNodeIds resolves paths
// from the Root through namespace 0 and into the server's namespace;
// RegisterNodes and UnregisterNodes answer.
func TestTranslateAndRegister(t *testing.T) {
	s := startServer(t, Config{Vars: 3})
	c := connect(t, s.Endpoint())
	ctx := testCtx(t)
	ns := s.NamespaceIndex()
	hier := ua.NewNumericNodeID(0, id.HierarchicalReferences)
	aggr := ua.NewNumericNodeID(0, id.Aggregates)
	path := func(start uint32, els ...*ua.RelativePathElement) *ua.BrowsePath {
		return &ua.BrowsePath{StartingNode: ua.NewNumericNodeID(0, start), RelativePath: &ua.RelativePath{Elements: els}}
	}
	el := func(ref *ua.NodeID, ns uint16, name string) *ua.RelativePathElement {
		return &ua.RelativePathElement{ReferenceTypeID: ref, IncludeSubtypes: true, TargetName: &ua.QualifiedName{NamespaceIndex: ns, Name: name}}
	}
	var res *ua.TranslateBrowsePathsToNodeIDsResponse
	err := c.Send(ctx, &ua.TranslateBrowsePathsToNodeIDsRequest{BrowsePaths: []*ua.BrowsePath{
		path(id.RootFolder, el(hier, 0, "Objects"), el(hier, 0, "Server"), el(aggr, 0, "ServerStatus"), el(aggr, 0, "BuildInfo")),
		path(id.RootFolder, el(hier, 0, "Objects"), el(hier, ns, DefaultFolder), el(hier, ns, "v2")),
		path(id.ObjectsFolder, el(hier, 0, "Nothing")),
		path(id.ObjectsFolder, el(hier, 0, "")),
	}}, func(r ua.Response) error {
		var ok bool
		if res, ok = r.(*ua.TranslateBrowsePathsToNodeIDsResponse); !ok {
			return fmt.Errorf("response %T", r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("TranslateBrowsePathsToNodeIds: %v", err)
	}
	want := []struct {
		code ua.StatusCode
		id   *ua.NodeID
	}{
		{ua.StatusGood, ua.NewNumericNodeID(0, id.Server_ServerStatus_BuildInfo)},
		{ua.StatusGood, s.NodeID(2)},
		{ua.StatusBadNoMatch, nil},
		{ua.StatusBadBrowseNameInvalid, nil},
	}
	for k, w := range want {
		r := res.Results[k]
		if r.StatusCode != w.code {
			t.Errorf("path %d: %v, want %v", k, r.StatusCode, w.code)
			continue
		}
		if w.id != nil && (len(r.Targets) != 1 || r.Targets[0].TargetID.NodeID.String() != w.id.String() ||
			r.Targets[0].RemainingPathIndex != ^uint32(0)) {
			t.Errorf("path %d: targets %v, want %v", k, r.Targets, w.id)
		}
	}

	reg, err := c.RegisterNodes(ctx, &ua.RegisterNodesRequest{NodesToRegister: []*ua.NodeID{s.NodeID(0), s.NodeID(1)}})
	if err != nil || len(reg.RegisteredNodeIDs) != 2 || !reg.RegisteredNodeIDs[1].Equal(s.NodeID(1)) {
		t.Fatalf("RegisterNodes: %v %v", err, reg)
	}
	if got := read(t, c, ua.AttributeIDValue, reg.RegisteredNodeIDs[0])[0]; got.Status != ua.StatusOK {
		t.Errorf("read of a registered node: %v", got.Status)
	}
	if _, err := c.UnregisterNodes(ctx, &ua.UnregisterNodesRequest{NodesToUnregister: reg.RegisteredNodeIDs}); err != nil {
		t.Fatalf("UnregisterNodes: %v", err)
	}
}

// TestServerObject: BuildInfo is a real BuildInfo with the configured
// identity, ServerStatus carries it, ServerArray names this server, the
// capabilities and operation limits are readable, and with Redundancy
// Server.ServerRedundancy is a NonTransparentRedundancyType with one
// RedundancySupport and a ServerUriArray including this server.
func TestServerObject(t *testing.T) {
	s := startServer(t, Config{Vars: 1, ApplicationURI: "urn:test:me",
		Build: Build{ProductName: "test product", SoftwareVersion: "1.2.3"},
		Redundancy: &Redundancy{Support: ua.RedundancySupportHot,
			ServerURIs: func() []string { return []string{"urn:test:me", "urn:test:partner"} }}})
	c := connect(t, s.Endpoint())
	ctx := testCtx(t)
	n := func(i uint32) *ua.NodeID { return ua.NewNumericNodeID(0, i) }
	got := read(t, c, ua.AttributeIDValue, n(id.Server_ServerStatus_BuildInfo), n(id.Server_ServerStatus),
		n(id.Server_ServerArray), n(id.Server_ServerStatus_BuildInfo_ProductName),
		n(id.Server_ServerCapabilities_MaxBrowseContinuationPoints),
		n(id.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse),
		n(id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead),
		n(id.Server_ServerCapabilities_ServerProfileArray),
		n(id.Server_ServerRedundancy_RedundancySupport),
		ua.NewStringNodeID(s.NamespaceIndex(), ServerURIArrayName))
	for k, dv := range got {
		if dv.Status != ua.StatusOK || dv.Value == nil {
			t.Fatalf("value %d: %v %v", k, dv.Status, dv.Value)
		}
	}
	bi, ok := got[0].Value.Value().(*ua.ExtensionObject).Value.(*ua.BuildInfo)
	if !ok || bi.ProductName != "test product" || bi.SoftwareVersion != "1.2.3" || bi.ManufacturerName != "uamirror" || bi.BuildDate.IsZero() {
		t.Fatalf("BuildInfo %#v", got[0].Value.Value())
	}
	st, ok := got[1].Value.Value().(*ua.ExtensionObject).Value.(*ua.ServerStatusDataType)
	if !ok || st.State != ua.ServerStateRunning || st.BuildInfo.ProductName != "test product" {
		t.Fatalf("ServerStatus %#v", got[1].Value.Value())
	}
	if v := got[2].Value.Value(); len(v.([]string)) != 1 || v.([]string)[0] != "urn:test:me" {
		t.Errorf("ServerArray %v", v)
	}
	if got[3].Value.Value() != "test product" || got[4].Value.Value() != uint16(10) || got[5].Value.Value() != uint32(1000) ||
		got[6].Value.Value() != uint32(0) || got[8].Value.Value() != int32(ua.RedundancySupportHot) {
		t.Errorf("values %v %v %v %v %v", got[3].Value, got[4].Value, got[5].Value, got[6].Value, got[8].Value)
	}
	if v := got[9].Value.Value().([]string); len(v) != 2 || v[0] != "urn:test:me" {
		t.Errorf("ServerUriArray %v, want this server first", v)
	}
	if dt := read(t, c, ua.AttributeIDDataType, n(id.Server_ServerStatus_BuildInfo))[0]; dt.Value.NodeID().IntID() != id.BuildInfo {
		t.Errorf("BuildInfo DataType %v, want i=338", dt.Value)
	}

	res, err := c.Browse(ctx, &ua.BrowseRequest{NodesToBrowse: []*ua.BrowseDescription{{NodeID: n(id.Server_ServerRedundancy),
		BrowseDirection: ua.BrowseDirectionForward, ReferenceTypeID: ua.NewNumericNodeID(0, id.References), IncludeSubtypes: true,
		ResultMask: uint32(ua.BrowseResultMaskAll)}}})
	if err != nil {
		t.Fatalf("Browse: %v", err)
	}
	var typeDef string
	count := map[string]int{}
	for _, r := range res.Results[0].References {
		if r.ReferenceTypeID.IntID() == id.HasTypeDefinition {
			typeDef = r.NodeID.NodeID.String()
		}
		count[r.BrowseName.Name]++
	}
	if typeDef != n(id.NonTransparentRedundancyType).String() || count["RedundancySupport"] != 1 || count["ServerUriArray"] != 1 {
		t.Errorf("ServerRedundancy: type %s, references %v; want i=2039, one RedundancySupport, one ServerUriArray", typeDef, count)
	}
}

package diagnostics_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/test/harness"
)

// TestUAItemsBrowse100k: the per-mapping tree of 100,000 mappings is
// never one multi-MB Browse. A client asking for everything
// (RequestedMaxReferencesPerNode 0) gets at most 1,000 references and a
// continuation point per response; BrowseNext pages through all 100,000.
// The sizes and times are logged (docs: the figures in the report).
func TestUAItemsBrowse100k(t *testing.T) {
	if testing.Short() {
		t.Skip("100k mappings")
	}
	const n = 100_000
	snap := make([]bridge.MappingStatus, n)
	for i := range snap {
		snap[i] = bridge.MappingStatus{ID: fmt.Sprintf("3f0c6a2e-0000-4000-8000-%012d", i), State: bridge.StateOK}
	}
	ctx := harness.Context(t)
	u, err := diagnostics.NewUAServer(diagnostics.UAServerConfig{Addr: "127.0.0.1:0", Pair: activePair("a"), Logger: zap.NewNop(),
		Engine: func() diagnostics.Engine { return manyEngine{snap} }})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = u.Run(rctx) }()
	defer func() { stop(); wg.Wait() }()
	c := dialUA(t, ctx, u.Endpoint())
	ns, err := c.FindNamespace(ctx, diagnostics.UANamespaceURI)
	if err != nil {
		t.Fatal(err)
	}
	size := func(v any) int {
		b, err := ua.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	start := time.Now()
	res, err := c.Browse(ctx, &ua.BrowseRequest{NodesToBrowse: []*ua.BrowseDescription{{
		NodeID: ua.NewStringNodeID(ns, "Mappings/Items"), BrowseDirection: ua.BrowseDirectionForward,
		ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true,
		ResultMask: uint32(ua.BrowseResultMaskAll)}}})
	if err != nil {
		t.Fatal(err)
	}
	first, firstBytes := time.Since(start), size(res)
	held := int64(heap()) - int64(before) // the continuation point holds the other 99,000
	r := res.Results[0]
	items, pages, maxBytes := len(r.References), 1, firstBytes
	if items > 1000 || len(r.ContinuationPoint) == 0 {
		t.Fatalf("first response: %d references, continuation point %x; want ≤ 1000 and one", items, r.ContinuationPoint)
	}
	for cp := r.ContinuationPoint; len(cp) > 0; {
		nr, err := c.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: [][]byte{cp}})
		if err != nil || nr.Results[0].StatusCode != ua.StatusOK {
			t.Fatalf("BrowseNext after %d: %v %v", items, err, nr)
		}
		maxBytes = max(maxBytes, size(nr))
		items += len(nr.Results[0].References)
		pages++
		cp = nr.Results[0].ContinuationPoint
	}
	all := time.Since(start)
	if items != n {
		t.Fatalf("%d items, want %d", items, n)
	}
	if maxBytes > 256<<10 {
		t.Errorf("largest response %d bytes, want ≤ 256 KiB", maxBytes)
	}
	// One mapping's object is found without a scan of all of them.
	one := time.Now()
	br, err := c.Browse(ctx, &ua.BrowseRequest{NodesToBrowse: []*ua.BrowseDescription{{
		NodeID: ua.NewStringNodeID(ns, "Mappings/Items/"+snap[n-1].ID), BrowseDirection: ua.BrowseDirectionForward,
		ReferenceTypeID: ua.NewNumericNodeID(0, id.References), IncludeSubtypes: true,
		ResultMask: uint32(ua.BrowseResultMaskAll)}}})
	if err != nil || br.Results[0].StatusCode != ua.StatusOK || len(br.Results[0].References) < 6 {
		t.Fatalf("browse of one mapping: %v %v %d", err, br.Results[0].StatusCode, len(br.Results[0].References))
	}
	t.Logf("100k mappings: first Browse %d refs, %d bytes in %v (heap held by its continuation point ~%d KiB); all %d in %d pages in %v (largest response %d bytes); one mapping's Browse %v",
		len(r.References), firstBytes, first.Round(time.Millisecond), held>>10, items, pages, all.Round(time.Millisecond), maxBytes,
		time.Since(one).Round(time.Microsecond))
}

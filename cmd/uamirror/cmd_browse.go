package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"github.com/spf13/cobra"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
)

// browseFlags are the options of `uamirror browse`.
type browseFlags struct {
	endpoint, config, output string
	recursive                bool
	depth, limit             int
	timeout                  time.Duration
}

func newBrowseCmd(a *app) *cobra.Command {
	var f browseFlags
	cmd := &cobra.Command{
		Use:   "browse {--endpoint URL | SERVER --config FILE} [NODE]",
		Short: "List the nodes under a node of an OPC UA server (to write mappings)",
		Long: `browse connects to an OPC UA server and lists the nodes that NODE (default
Objects, i=85) organizes or contains (its hierarchical references):
NodeID in the nsu= form mappings use, BrowseName, NodeClass and, for
variables, DataType. With --recursive it descends --depth levels.

The server is given either by --endpoint (security None, anonymous) or by
name, from the servers of a config file (--config), with that server's
endpoints, identity and timeouts. NODE may be in any NodeID form (i=85,
ns=2;s=Line1, nsu=urn:example;s=Line1).

  uamirror browse --endpoint opc.tcp://127.0.0.1:4840
  uamirror browse --endpoint opc.tcp://127.0.0.1:4840 "nsu=urn:uamirror:simserver;s=Sim"
  uamirror browse plc --config mirror.yml --recursive --depth 3`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBrowse(cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "", "server endpoint URL (opc.tcp://host:port)")
	fl.StringVarP(&f.config, "config", "c", "", "config file whose server SERVER to browse")
	fl.BoolVarP(&f.recursive, "recursive", "r", false, "descend into the nodes found")
	fl.IntVar(&f.depth, "depth", 3, "levels to descend with --recursive (1: children only)")
	fl.IntVar(&f.limit, "limit", 10000, "stop after this many nodes")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	return cmd
}

// browsedNode is one node found by browse.
type browsedNode struct {
	NodeID      string `json:"node_id"`
	BrowseName  string `json:"browse_name"`
	DisplayName string `json:"display_name,omitempty"`
	NodeClass   string `json:"node_class"`
	DataType    string `json:"data_type,omitempty"`
	// Path is the BrowseName path from the start node ("Sim/v0").
	Path  string `json:"path"`
	Depth int    `json:"depth"`

	id       *ua.NodeID
	class    ua.NodeClass
	children []*browsedNode
}

func runBrowse(cmd *cobra.Command, f browseFlags, args []string) error {
	usage := func(format string, a ...any) error {
		return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
	}
	if f.output != "table" && f.output != "json" {
		return usage("--output %q: want table or json", f.output)
	}
	if f.depth < 1 {
		return usage("--depth %d: want 1 or more", f.depth)
	}
	if !f.recursive {
		f.depth = 1
	}
	var (
		srv      *mapping.Server
		nodeArg  = "i=85"
		rest     = args
		forEndpt = f.endpoint != ""
	)
	switch {
	case forEndpt && f.config != "":
		return usage("give --endpoint or SERVER with --config, not both")
	case forEndpt:
		if len(rest) > 1 {
			return usage("with --endpoint, give at most one argument (NODE)")
		}
		srv = &mapping.Server{Name: "endpoint", Endpoints: []string{f.endpoint}}
	default:
		if len(rest) == 0 || f.config == "" {
			return usage("give --endpoint URL, or SERVER and --config FILE")
		}
		cfg, err := loadConfig(f.config)
		if err != nil {
			printConfigErrors(cmd, err)
			return &exitError{code: exitFailed, err: errBadConfig}
		}
		for i := range cfg.Servers {
			if cfg.Servers[i].Name == rest[0] {
				srv = &cfg.Servers[i]
			}
		}
		if srv == nil {
			names := make([]string, len(cfg.Servers))
			for i, s := range cfg.Servers {
				names[i] = s.Name
			}
			return usage("server %q is not in %s (servers: %s)", rest[0], f.config, strings.Join(names, ", "))
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		nodeArg = rest[0]
	}
	start, err := mapping.ParseNodeID(nodeArg)
	if err != nil {
		return usage("NODE: %w", err)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	c, err := dialServer(ctx, srv)
	if err != nil {
		return &exitError{code: exitNoNode, err: err}
	}
	defer c.Close(context.Background())
	b := &browser{c: c, limit: f.limit}
	if b.ns, err = c.NamespaceArray(ctx); err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("reading the NamespaceArray: %w", err)}
	}
	startID, err := start.Resolve(b.ns)
	if err != nil {
		return &exitError{code: exitFailed, err: err}
	}
	root := &browsedNode{id: startID}
	if err := b.walk(ctx, root, f.depth); err != nil {
		return &exitError{code: exitFailed, err: err}
	}
	var flat []*browsedNode
	var visit func(n *browsedNode)
	visit = func(n *browsedNode) {
		for _, ch := range n.children {
			flat = append(flat, ch)
			visit(ch)
		}
	}
	visit(root)
	out := cmd.OutOrStdout()
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if flat == nil {
			flat = []*browsedNode{}
		}
		if err := enc.Encode(flat); err != nil {
			return err
		}
	} else {
		printBrowse(out, flat, f.recursive)
	}
	if b.truncated {
		fmt.Fprintf(cmd.ErrOrStderr(), "stopped after %d nodes (--limit)\n", f.limit)
	}
	return nil
}

// dialServer connects to the first of srv's endpoints that answers, with
// srv's identity and timeouts.
func dialServer(ctx context.Context, srv *mapping.Server) (*opcua.Client, error) {
	t := srv.EffectiveTimeouts()
	var errs []error
	for _, ep := range srv.Endpoints {
		cctx, cancel := context.WithTimeout(ctx, t.Connect)
		opts, err := bridge.DefaultClientOptions(cctx, srv, ep)
		if err == nil {
			opts = append(opts, opcua.AutoReconnect(false), opcua.RequestTimeout(t.Request),
				opcua.DialTimeout(t.Connect), opcua.SessionTimeout(t.Session),
				opcua.ApplicationName("uamirror browse"), opcua.ApplicationURI("urn:uamirror:client"))
			var c *opcua.Client
			if c, err = opcua.NewClient(ep, opts...); err == nil {
				if err = c.Connect(cctx); err == nil {
					cancel()
					return c, nil
				}
			}
		}
		cancel()
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return nil, fmt.Errorf("cannot connect to %s: %w", srv.Name, errors.Join(errs...))
}

// browser walks a server's hierarchy.
type browser struct {
	c         *opcua.Client
	ns        []string
	limit     int
	seen      int
	truncated bool
}

// browseChunk bounds the nodes per Browse and Read request.
const browseChunk = 100

// walk browses root's hierarchy, level by level (one Browse request per
// chunk of nodes of a level), down to depth levels, visiting each node
// once.
func (b *browser) walk(ctx context.Context, root *browsedNode, depth int) error {
	visited := map[string]bool{root.id.String(): true}
	level := []*browsedNode{root}
	for d := 1; d <= depth && len(level) > 0 && !b.truncated; d++ {
		var next []*browsedNode
		for i := 0; i < len(level); i += browseChunk {
			chunk := level[i:min(i+browseChunk, len(level))]
			if err := b.browse(ctx, chunk, d, visited); err != nil {
				return err
			}
			for _, n := range chunk {
				next = append(next, n.children...)
			}
		}
		if err := b.dataTypes(ctx, next); err != nil {
			return err
		}
		level = next
	}
	return nil
}

// hierarchical are the standard hierarchical reference types (Part 5,
// 11.2 ff.); a reference of another namespace-0 type is dropped, one of
// a vendor type is kept (the server filtered for subtypes of
// HierarchicalReferences).
var hierarchical = map[uint32]bool{
	id.HierarchicalReferences: true, id.HasChild: true, id.Organizes: true, id.HasEventSource: true,
	id.Aggregates: true, id.HasSubtype: true, id.HasProperty: true, id.HasComponent: true,
	id.HasNotifier: true, id.HasOrderedComponent: true,
}

func (b *browser) browse(ctx context.Context, parents []*browsedNode, depth int, visited map[string]bool) error {
	req := &ua.BrowseRequest{View: &ua.ViewDescription{ViewID: ua.NewTwoByteNodeID(0)}}
	for _, p := range parents {
		req.NodesToBrowse = append(req.NodesToBrowse, &ua.BrowseDescription{
			NodeID: p.id, BrowseDirection: ua.BrowseDirectionForward,
			ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true,
			NodeClassMask: 0, ResultMask: uint32(ua.BrowseResultMaskAll),
		})
	}
	res, err := b.c.Browse(ctx, req)
	if err != nil {
		return fmt.Errorf("browse: %w", err)
	}
	if len(res.Results) != len(parents) {
		return fmt.Errorf("browse: %d results for %d nodes", len(res.Results), len(parents))
	}
	for k, r := range res.Results {
		p := parents[k]
		if r.StatusCode != ua.StatusOK {
			if depth == 1 {
				return fmt.Errorf("browse %s: %w", b.format(ua.NewExpandedNodeID(p.id, "", 0)), r.StatusCode)
			}
			continue // a node deeper down that cannot be browsed: leave it a leaf
		}
		refs := r.References
		for cp := r.ContinuationPoint; len(cp) > 0; {
			nr, err := b.c.BrowseNext(ctx, &ua.BrowseNextRequest{ContinuationPoints: [][]byte{cp}})
			if err != nil || len(nr.Results) != 1 || nr.Results[0].StatusCode != ua.StatusOK {
				break // the server cannot continue: keep what we have
			}
			refs = append(refs, nr.Results[0].References...)
			cp = nr.Results[0].ContinuationPoint
		}
		for _, ref := range refs {
			if !ref.IsForward || ref.NodeID == nil || ref.NodeID.NodeID == nil {
				continue
			}
			if rt := ref.ReferenceTypeID; rt != nil && rt.Namespace() == 0 && !hierarchical[rt.IntID()] {
				continue
			}
			if ref.NodeID.ServerIndex != 0 {
				continue // on another server
			}
			key := b.format(ref.NodeID)
			if visited[key] {
				continue
			}
			if b.seen >= b.limit {
				b.truncated = true
				return nil
			}
			visited[key] = true
			b.seen++
			name := ""
			if ref.BrowseName != nil {
				name = ref.BrowseName.Name
			}
			display := ""
			if ref.DisplayName != nil {
				display = ref.DisplayName.Text
			}
			path := name
			if p.Path != "" {
				path = p.Path + "/" + name
			}
			p.children = append(p.children, &browsedNode{NodeID: key, BrowseName: name, DisplayName: display,
				NodeClass: nodeClassName(ref.NodeClass), Path: path, Depth: depth,
				id: b.local(ref.NodeID), class: ref.NodeClass})
		}
	}
	return nil
}

// dataTypes reads the DataType of the variables among nodes and names it.
func (b *browser) dataTypes(ctx context.Context, nodes []*browsedNode) error {
	var vars []*browsedNode
	for _, n := range nodes {
		if n.class == ua.NodeClassVariable && n.id != nil {
			vars = append(vars, n)
		}
	}
	for i := 0; i < len(vars); i += browseChunk {
		chunk := vars[i:min(i+browseChunk, len(vars))]
		req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither}
		for _, n := range chunk {
			req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: n.id, AttributeID: ua.AttributeIDDataType})
		}
		res, err := b.c.Read(ctx, req)
		if err != nil {
			return fmt.Errorf("reading DataType: %w", err)
		}
		var custom []*browsedNode
		var customIDs []*ua.NodeID
		for k, r := range res.Results {
			if k >= len(chunk) || r == nil || r.Status != ua.StatusOK || r.Value == nil {
				continue
			}
			dt, ok := r.Value.Value().(*ua.NodeID)
			if !ok || dt == nil {
				continue
			}
			if dt.Namespace() == 0 {
				chunk[k].DataType = id.Name(dt.IntID())
				continue
			}
			chunk[k].DataType = b.format(ua.NewExpandedNodeID(dt, "", 0))
			custom, customIDs = append(custom, chunk[k]), append(customIDs, dt)
		}
		// A vendor data type: show its BrowseName with its NodeID.
		if len(custom) > 0 {
			req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither}
			for _, dt := range customIDs {
				req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: dt, AttributeID: ua.AttributeIDBrowseName})
			}
			if res, err := b.c.Read(ctx, req); err == nil {
				for k, r := range res.Results {
					if qn, ok := r.Value.Value().(*ua.QualifiedName); ok && k < len(custom) && r.Status == ua.StatusOK {
						custom[k].DataType = qn.Name + " (" + custom[k].DataType + ")"
					}
				}
			}
		}
	}
	return nil
}

// format returns an expanded node id in the form mappings use: nsu=URI
// for namespaces other than 0.
func (b *browser) format(x *ua.ExpandedNodeID) string {
	n := x.NodeID
	uri := x.NamespaceURI
	if uri == "" && n.Namespace() != 0 && int(n.Namespace()) < len(b.ns) {
		uri = b.ns[n.Namespace()]
	}
	if uri == "" && n.Namespace() != 0 {
		return mapping.NodeID{ID: n}.String() // index not in the array: keep ns=
	}
	if uri == "" {
		return mapping.NodeID{ID: n}.String()
	}
	return mapping.NodeID{NamespaceURI: uri, ID: n}.String()
}

// local returns the node id to use in requests to this server.
func (b *browser) local(x *ua.ExpandedNodeID) *ua.NodeID {
	if x.NamespaceURI == "" {
		return x.NodeID
	}
	nid, err := mapping.NodeID{NamespaceURI: x.NamespaceURI, ID: x.NodeID}.Resolve(b.ns)
	if err != nil {
		return nil
	}
	return nid
}

func nodeClassName(c ua.NodeClass) string {
	switch c {
	case ua.NodeClassObject:
		return "Object"
	case ua.NodeClassVariable:
		return "Variable"
	case ua.NodeClassMethod:
		return "Method"
	case ua.NodeClassObjectType:
		return "ObjectType"
	case ua.NodeClassVariableType:
		return "VariableType"
	case ua.NodeClassReferenceType:
		return "ReferenceType"
	case ua.NodeClassDataType:
		return "DataType"
	case ua.NodeClassView:
		return "View"
	}
	return "Unspecified"
}

// printBrowse prints the nodes as a table; recursive listings indent the
// BrowseName by depth, so the table reads as a tree.
func printBrowse(w io.Writer, nodes []*browsedNode, tree bool) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODEID\tBROWSENAME\tCLASS\tDATATYPE")
	for _, n := range nodes {
		name := n.BrowseName
		if tree {
			name = strings.Repeat("  ", n.Depth-1) + name
		}
		dt := n.DataType
		if dt == "" {
			dt = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.NodeID, name, n.NodeClass, dt)
	}
	tw.Flush()
}

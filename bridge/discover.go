package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"
)

// Discovery of a server set's members (redundancy.discover): the first
// endpoint's Server.ServerRedundancy.ServerUriArray (Part 5, 6.3.9) names
// the servers of the set by ServerUri; FindServers (Part 4, 5.4.2) on the
// same endpoint turns each into its discovery URL, which becomes a member
// beside the listed ones.

// errNoServerURIArray: the server is not a non-transparent redundant set.
var errNoServerURIArray = errors.New("no ServerRedundancy.ServerUriArray (not a non-transparent redundant server)")

// discover finds the set's members until it succeeds once or ctx ends,
// and sends the endpoints not listed yet on out (1-buffered; owned by
// superviseSet, which waits for this goroutine).
func (c *conn) discover(ctx context.Context, out chan<- []string) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		eps, err := c.discoverOnce(ctx)
		if err == nil {
			c.log.Info("server set: members discovered", zap.Strings("new_endpoints", eps))
			select {
			case out <- eps:
			case <-ctx.Done():
			}
			return
		}
		wait := c.e.backoff(attempt)
		c.log.Warn("server set: discovery failed; retrying", zap.Error(err), zap.Duration("retry_in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// discoverOnce reads ServerUriArray on the first endpoint and resolves it
// with FindServers there; it returns the opc.tcp discovery URL (the
// first) of each server not among the listed endpoints.
func (c *conn) discoverOnce(ctx context.Context) ([]string, error) {
	ep := c.server().Endpoints[0]
	s, err := c.openSession(ctx, ep)
	if err != nil {
		return nil, err
	}
	defer closeSession(s)
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	defer cancel()
	br, err := s.client.Browse(rctx, &ua.BrowseRequest{NodesToBrowse: []*ua.BrowseDescription{{
		NodeID: ua.NewNumericNodeID(0, id.Server_ServerRedundancy), BrowseDirection: ua.BrowseDirectionForward,
		ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true,
		ResultMask: uint32(ua.BrowseResultMaskBrowseName)}}})
	if err != nil {
		return nil, fmt.Errorf("browse ServerRedundancy: %w", err)
	}
	var arrayID *ua.NodeID
	if len(br.Results) == 1 {
		for _, r := range br.Results[0].References {
			if r.BrowseName != nil && r.BrowseName.NamespaceIndex == 0 && r.BrowseName.Name == "ServerUriArray" && r.NodeID != nil {
				arrayID = r.NodeID.NodeID
			}
		}
	}
	if arrayID == nil {
		return nil, errNoServerURIArray
	}
	// ServerArray's first entry is the answering server's own URI (Part
	// 5, 6.3.2): it is listed already, whatever URL FindServers gives.
	rr, err := s.client.Read(rctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{
		{NodeID: arrayID, AttributeID: ua.AttributeIDValue},
		{NodeID: ua.NewNumericNodeID(0, id.Server_ServerArray), AttributeID: ua.AttributeIDValue}}})
	if err != nil {
		return nil, fmt.Errorf("read ServerUriArray: %w", err)
	}
	if len(rr.Results) != 2 || rr.Results[0].Status != ua.StatusOK || rr.Results[0].Value == nil {
		return nil, errNoServerURIArray
	}
	all, _ := rr.Results[0].Value.Value().([]string)
	var self string
	if rr.Results[1].Value != nil {
		if sa, ok := rr.Results[1].Value.Value().([]string); ok && len(sa) > 0 {
			self = sa[0]
		}
	}
	var uris []string
	for _, u := range all {
		if u != self {
			uris = append(uris, u)
		}
	}
	if len(uris) == 0 {
		return nil, nil // a set of one, or only the listed server
	}
	var apps []*ua.ApplicationDescription
	err = s.client.Send(rctx, &ua.FindServersRequest{EndpointURL: ep, ServerURIs: uris}, func(v ua.Response) error {
		r, ok := v.(*ua.FindServersResponse)
		if !ok {
			return fmt.Errorf("unexpected response %T", v)
		}
		apps = r.Servers
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("FindServers: %w", err)
	}
	return c.newMemberEndpoints(uris, apps), nil
}

// newMemberEndpoints picks, for each server URI of the set in order, the
// first opc.tcp discovery URL FindServers gave for it, leaving out the
// listed endpoints; a URI without one is logged and skipped (the server
// that answered, listed already, has no need of one).
func (c *conn) newMemberEndpoints(uris []string, apps []*ua.ApplicationDescription) []string {
	var out []string
	for _, uri := range uris {
		var url string
		for _, a := range apps {
			if a == nil || a.ApplicationURI != uri {
				continue
			}
			for _, u := range a.DiscoveryURLs {
				if strings.HasPrefix(strings.ToLower(u), "opc.tcp://") {
					url = u
					break
				}
			}
		}
		switch {
		case url == "":
			c.log.Debug("server set: no discovery URL for a server of the set", zap.String("server_uri", uri))
		case slices.Contains(c.server().Endpoints, url) || slices.Contains(out, url):
		default:
			out = append(out, url)
		}
	}
	return out
}

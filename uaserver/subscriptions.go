package uaserver

import (
	"math"

	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
	"go.uber.org/zap"
)

// The Subscription and MonitoredItem services (Part 4, 5.12 and 5.13) on
// gopcua's exported tables: gopcua keeps the sessions and runs each
// subscription's publish loop; we validate, keep ids unique and maintain
// the monitored items.

// createSubscription revises the request (Part 4, 5.13.2) and hands it to
// gopcua, after making sure the id gopcua will pick is free.
func (s *Server) createSubscription(gs *server.Server, sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
	req, ok := r.(*ua.CreateSubscriptionRequest)
	switch {
	case !ok:
		return fault(r, ua.StatusBadRequestTypeInvalid), nil
	case gs.Session(req.RequestHeader) == nil:
		return fault(r, ua.StatusBadSessionIDInvalid), nil
	}
	interval := req.RequestedPublishingInterval
	if !(interval >= minPublishingInterval) { // also catches NaN
		interval = minPublishingInterval
	}
	interval = math.Floor(math.Min(interval, maxPublishingInterval))
	if interval != req.RequestedPublishingInterval {
		s.log.Debug("revised publishing interval",
			zap.Float64("requested_ms", req.RequestedPublishingInterval), zap.Float64("revised_ms", interval))
	}
	req.RequestedPublishingInterval = interval
	if req.RequestedMaxKeepAliveCount == 0 {
		req.RequestedMaxKeepAliveCount = defaultKeepAliveCount
	}
	if req.RequestedLifetimeCount < 3*req.RequestedMaxKeepAliveCount {
		req.RequestedLifetimeCount = 3 * req.RequestedMaxKeepAliveCount
	}
	padSubscriptionIDs(gs.SubscriptionService)
	return gs.SubscriptionService.CreateSubscription(sc, req, reqID)
}

// padSubscriptionIDs makes gopcua's next subscription id free. gopcua
// picks len(Subs)+1, which after a deletion can be the id of another
// session's live subscription (whose map entry and monitored items would
// then be mixed with the new one's). We fill the lowest free ids with
// inert placeholders (no session, no publish loop) until len(Subs)+1 is
// free. A subscription that dies between this and gopcua's choice can
// still cause a collision; that window is microseconds.
func padSubscriptionIDs(ss *server.SubscriptionService) {
	ss.Mu.Lock()
	defer ss.Mu.Unlock()
	for {
		if _, taken := ss.Subs[uint32(len(ss.Subs))+1]; !taken {
			return
		}
		for k := uint32(1); ; k++ {
			if _, ok := ss.Subs[k]; !ok {
				ph := server.NewSubscription()
				ph.ID = k
				ss.Subs[k] = ph
				break
			}
		}
	}
}

// sessionSub returns the live subscription subID of the request's
// session, or the status to fault with.
func sessionSub(gs *server.Server, hdr *ua.RequestHeader, subID uint32) (*server.Subscription, ua.StatusCode) {
	sess := gs.Session(hdr)
	if sess == nil {
		return nil, ua.StatusBadSessionIDInvalid
	}
	ss := gs.SubscriptionService
	ss.Mu.Lock()
	defer ss.Mu.Unlock()
	sub, ok := ss.Subs[subID]
	if !ok || sub.Session == nil || sub.Session != sess {
		return nil, ua.StatusBadSubscriptionIDInvalid
	}
	return sub, ua.StatusOK
}

// deleteSubscriptions serves DeleteSubscriptions (Part 4, 5.13.8).
// gopcua's dereferences a nil session.
func (s *Server) deleteSubscriptions(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.DeleteSubscriptionsRequest)
	if !ok {
		return fault(r, ua.StatusBadRequestTypeInvalid)
	}
	sess := gs.Session(req.RequestHeader)
	switch {
	case sess == nil:
		return fault(r, ua.StatusBadSessionIDInvalid)
	case len(req.SubscriptionIDs) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	}
	results := make([]ua.StatusCode, len(req.SubscriptionIDs))
	var del []uint32
	for k, subID := range req.SubscriptionIDs {
		if _, code := sessionSub(gs, req.RequestHeader, subID); code != ua.StatusOK {
			results[k] = code
			continue
		}
		del = append(del, subID)
	}
	for _, subID := range del {
		gs.SubscriptionService.DeleteSubscription(subID)
	}
	return &ua.DeleteSubscriptionsResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

// createMonitoredItems serves CreateMonitoredItems (Part 4, 5.12.2) on
// gopcua's monitored-item tables. gopcua's own version accepts unknown
// nodes, locks the two services' mutexes in the opposite order to
// DeleteSubscription, and sends the initial values through the
// ChangeNotification that can block forever (notify.go).
func (s *Server) createMonitoredItems(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.CreateMonitoredItemsRequest)
	if !ok {
		return fault(r, ua.StatusBadRequestTypeInvalid)
	}
	sub, code := sessionSub(gs, req.RequestHeader, req.SubscriptionID)
	switch {
	case code != ua.StatusOK:
		return fault(r, code)
	case len(req.ItemsToCreate) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case req.TimestampsToReturn > ua.TimestampsToReturnNeither:
		return fault(r, ua.StatusBadTimestampsToReturnInvalid)
	}
	mis := gs.MonitoredItemService
	results := make([]*ua.MonitoredItemCreateResult, len(req.ItemsToCreate))
	items := make([]*server.MonitoredItem, 0, len(req.ItemsToCreate))
	keys := make([]string, 0, len(req.ItemsToCreate))
	for k, it := range req.ItemsToCreate {
		key, code := s.validateItem(gs, it)
		if code != ua.StatusOK {
			results[k] = &ua.MonitoredItemCreateResult{StatusCode: code, FilterResult: ua.NewExtensionObject(nil)}
			continue
		}
		item := &server.MonitoredItem{ID: mis.NextID(), Sub: sub, Req: it, Mode: it.MonitoringMode}
		items, keys = append(items, item), append(keys, key)
		results[k] = &ua.MonitoredItemCreateResult{
			StatusCode:              ua.StatusOK,
			MonitoredItemID:         item.ID,
			RevisedSamplingInterval: sub.RevisedPublishingInterval,
			RevisedQueueSize:        1, // gopcua keeps the latest value per item and publish
			FilterResult:            ua.NewExtensionObject(nil),
		}
	}

	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	mis.Mu.Lock()
	for k, item := range items {
		mis.Items[item.ID] = item
		mis.Nodes[keys[k]] = append(mis.Nodes[keys[k]], item)
		mis.Subs[sub.ID] = append(mis.Subs[sub.ID], item)
	}
	mis.Mu.Unlock()
	if !s.subAlive(sub) {
		// The subscription died meanwhile; its cleanup may have run before
		// our items were in the tables.
		for _, item := range items {
			mis.DeleteMonitoredItem(item.ID)
		}
		return fault(r, ua.StatusBadSubscriptionIDInvalid)
	}
	// The first notification of an item carries the current value
	// (Part 4, 5.12.1.2).
	for _, item := range items {
		if item.Mode == ua.MonitoringModeReporting {
			s.deliverLocked(sub, &ua.MonitoredItemNotification{
				ClientHandle: item.Req.RequestedParameters.ClientHandle,
				Value:        s.attribute(gs, item.Req.ItemToMonitor.NodeID, item.Req.ItemToMonitor.AttributeID),
			})
		}
	}
	return &ua.CreateMonitoredItemsResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

// validateItem checks one item to create, canonicalises its node id and
// returns its key in gopcua's node index.
func (s *Server) validateItem(gs *server.Server, it *ua.MonitoredItemCreateRequest) (string, ua.StatusCode) {
	switch {
	case it == nil || it.ItemToMonitor == nil || it.ItemToMonitor.NodeID == nil:
		return "", ua.StatusBadNodeIDInvalid
	case it.RequestedParameters == nil:
		return "", ua.StatusBadInvalidArgument
	case it.MonitoringMode > ua.MonitoringModeReporting:
		return "", ua.StatusBadMonitoringModeInvalid
	case it.ItemToMonitor.AttributeID == ua.AttributeIDEventNotifier:
		return "", ua.StatusBadMonitoredItemFilterUnsupported // no events
	}
	nid := it.ItemToMonitor.NodeID
	if i, ok := s.ns.varIndex(nid); ok {
		// gopcua's DeleteMonitoredItem finds the item by Req's node id.
		it.ItemToMonitor.NodeID = s.vars[i].nid
	} else if !s.nodeExists(gs, nid) {
		return "", ua.StatusBadNodeIDUnknown
	}
	if attr := it.ItemToMonitor.AttributeID; attr != ua.AttributeIDValue {
		if dv := s.attribute(gs, nid, attr); dv.Has(ua.DataValueStatusCode) && dv.Status == ua.StatusBadAttributeIDInvalid {
			return "", ua.StatusBadAttributeIDInvalid
		}
	}
	return it.ItemToMonitor.NodeID.String(), ua.StatusOK
}

// deleteMonitoredItems serves DeleteMonitoredItems (Part 4, 5.12.6).
// gopcua's dereferences the item of an unknown id (a crash).
func (s *Server) deleteMonitoredItems(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.DeleteMonitoredItemsRequest)
	if !ok {
		return fault(r, ua.StatusBadRequestTypeInvalid)
	}
	sub, code := sessionSub(gs, req.RequestHeader, req.SubscriptionID)
	switch {
	case code != ua.StatusOK:
		return fault(r, code)
	case len(req.MonitoredItemIDs) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	}
	mis := gs.MonitoredItemService
	results := make([]ua.StatusCode, len(req.MonitoredItemIDs))
	var del []uint32
	mis.Mu.Lock()
	for k, itemID := range req.MonitoredItemIDs {
		if item, ok := mis.Items[itemID]; !ok || item.Sub != sub {
			results[k] = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		del = append(del, itemID)
	}
	mis.Mu.Unlock()
	for _, itemID := range del {
		mis.DeleteMonitoredItem(itemID)
	}
	return &ua.DeleteMonitoredItemsResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

// setMonitoringMode serves SetMonitoringMode (Part 4, 5.12.4). gopcua's
// dereferences the item of an unknown id (a crash) and ignores the mode
// when publishing; we honour it, and an item switched to Reporting
// reports its current value.
func (s *Server) setMonitoringMode(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.SetMonitoringModeRequest)
	if !ok {
		return fault(r, ua.StatusBadRequestTypeInvalid)
	}
	sub, code := sessionSub(gs, req.RequestHeader, req.SubscriptionID)
	switch {
	case code != ua.StatusOK:
		return fault(r, code)
	case len(req.MonitoredItemIDs) == 0:
		return fault(r, ua.StatusBadNothingToDo)
	case req.MonitoringMode > ua.MonitoringModeReporting:
		return fault(r, ua.StatusBadMonitoringModeInvalid)
	}
	mis := gs.MonitoredItemService
	results := make([]ua.StatusCode, len(req.MonitoredItemIDs))
	var nowReporting []*server.MonitoredItem
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	mis.Mu.Lock()
	for k, itemID := range req.MonitoredItemIDs {
		item, ok := mis.Items[itemID]
		if !ok || item.Sub != sub {
			results[k] = ua.StatusBadMonitoredItemIDInvalid
			continue
		}
		if item.Mode != ua.MonitoringModeReporting && req.MonitoringMode == ua.MonitoringModeReporting {
			nowReporting = append(nowReporting, item)
		}
		item.Mode = req.MonitoringMode
	}
	mis.Mu.Unlock()
	for _, item := range nowReporting {
		s.deliverLocked(sub, &ua.MonitoredItemNotification{
			ClientHandle: item.Req.RequestedParameters.ClientHandle,
			Value:        s.attribute(gs, item.Req.ItemToMonitor.NodeID, item.Req.ItemToMonitor.AttributeID),
		})
	}
	return &ua.SetMonitoringModeResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

// setPublishingMode serves SetPublishingMode (Part 4, 5.13.4) for the
// request's own subscriptions: Good for a live one, BadSubscriptionIdInvalid
// otherwise. gopcua answers Bad_ServiceUnsupported, which the mirror
// engine's data-age probe relies on. Publishing stays enabled: a disable
// request is acknowledged but not honoured (documented simulation limit).
func (s *Server) setPublishingMode(gs *server.Server, r ua.Request) ua.Response {
	req, ok := r.(*ua.SetPublishingModeRequest)
	if !ok {
		return fault(r, ua.StatusBadRequestTypeInvalid)
	}
	if gs.Session(req.RequestHeader) == nil {
		return fault(r, ua.StatusBadSessionIDInvalid)
	}
	if len(req.SubscriptionIDs) == 0 {
		return fault(r, ua.StatusBadNothingToDo)
	}
	results := make([]ua.StatusCode, len(req.SubscriptionIDs))
	for k, subID := range req.SubscriptionIDs {
		_, results[k] = sessionSub(gs, req.RequestHeader, subID)
	}
	return &ua.SetPublishingModeResponse{ResponseHeader: respHeader(r, ua.StatusOK), Results: results,
		DiagnosticInfos: []*ua.DiagnosticInfo{}}
}

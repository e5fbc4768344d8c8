// Package uaserver is uamirror's hardened OPC UA server core: the server
// that the simulation server (package simserver, for tests, benchmarks
// and the demo) and the pair's own OPC UA face (diagnostics/uaserver.go)
// are both built on. Production code imports this package, never
// simserver.
//
// It owns:
//   - a namespace of N typed variables (ns=<idx>;s=v0 … v<N-1>, browsable
//     under Objects/<Folder>) that accept type-checked Writes recorded in
//     a journal and, when Config.Rate > 0, change deterministically and
//     are pushed to subscribers (the simulation uses this; the pair's
//     face has none);
//   - the standard ServiceLevel variable (ns=0;i=2267), settable from Go
//     and, unless the Extension makes it read-only, by an OPC UA Write;
//   - the standard Server object's values that gopcua's nodeset lacks or
//     gets wrong (ns0.go): ServerStatus and a real BuildInfo (Config.Build),
//     ServerArray, ServerCapabilities and its OperationLimits, and, with
//     Config.Redundancy, Server.ServerRedundancy typed as
//     NonTransparentRedundancyType with RedundancySupport and
//     ServerUriArray (Part 5, 6.3.7–6.3.9);
//   - the View services gopcua lacks (view.go): Browse honouring
//     RequestedMaxReferencesPerNode with continuation points and
//     BrowseNext, TranslateBrowsePathsToNodeIds, RegisterNodes and
//     UnregisterNodes;
//   - an Extension point (extension.go) for computed read-only variables,
//     a browsable tree of objects, variables and methods (with their
//     InputArguments and OutputArguments properties) and a Call handler
//     that learns the calling session's authenticated user.
//
// It is built on gopcua's server package (v0.9.0) and keeps that library's
// session, secure channel and subscription (publish loop) machinery, but
// replaces the parts that crash, deadlock or race (see handlers.go and
// notify.go):
//
//   - DeleteMonitoredItems and SetMonitoringMode with an unknown id, and a
//     publishing interval under 1 ms, crash the whole process in gopcua;
//     our handlers validate and return per-item Bad status codes or revise
//     the interval, and every handler we register recovers from panics.
//   - gopcua's ChangeNotification holds the monitored-item lock while it
//     blocks on a subscription's 100-slot channel; when that subscription
//     dies at the wrong moment the lock is never released and the server
//     stops serving subscriptions. We fan out changes ourselves and never
//     block while holding a library lock.
//   - gopcua derives subscription ids from the number of live ones, so a
//     new subscription can take the id of another session's live one; we
//     keep ids unique.
//   - gopcua's Close blocks ~10 s and leaves client sockets open. Clients
//     connect to a listener we own and whose connections we relay to
//     gopcua's listener on a loopback port, so Close (and DropConnections)
//     closes every client socket at once.
//   - gopcua prints to the standard library's logger while importing its
//     nodeset and starting ("New Node Set…", "doing objects."); those
//     lines are filtered out (stdlog.go), every other line passes.
//   - gopcua accepts any user name and password; with Config.Users only
//     the configured identities open a session, and a method call learns
//     who called it (users.go).
//
// The package must never read flags or environment, and never log through
// a global logger; it takes a [Config] and a *zap.Logger.
package uaserver

// Package simserver is a simulation OPC UA server for uamirror's tests,
// benchmarks and demo.
//
// It owns a namespace of N variables (ns=<idx>;s=v0 … v<N-1>, browsable
// under Objects/Sim) whose types cycle through [Types], whose values change
// deterministically at a configured rate and are pushed to subscribers, and
// which accept type-checked Writes that are recorded in a journal. The
// standard ServiceLevel variable (ns=0;i=2267) is settable from Go and by an
// OPC UA Write.
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
//
// [Config.Extension] lets another server reuse this hardening (the pair's
// own endpoint, diagnostics/uaserver.go): read-only variables computed at
// read time, a Call handler, a ServiceLevel only the caller sets.
//
// The package must never read flags or environment, and never log through
// a global logger; it takes a [Config] and a *zap.Logger.
package simserver

// Package simserver is the simulation OPC UA server for uamirror's tests,
// benchmarks, the demo and the `uamirror simserver` command.
//
// It is the hardened server core (package uaserver) with the simulation's
// identity: N variables whose types cycle through [Types] and whose values
// change deterministically at a configured rate (Config.Vars, Rate),
// product name "uamirror simserver", application URIs
// urn:uamirror:simserver:<host>:<port> and its logger named "simserver".
// Every type here is the core's (aliases), so a Server is a
// *uaserver.Server.
//
// Production code must not import this package: it imports uaserver.
package simserver

import (
	"crypto/rsa"

	"github.com/uamirror/uamirror/uaserver"
)

// Types of the core, under the names the tests and the demo use.
type (
	// Server is a running (or startable) simulation server.
	Server = uaserver.Server
	// Config configures a Server; see uaserver.Config.
	Config = uaserver.Config
	// SecurityPolicy is one endpoint security configuration.
	SecurityPolicy = uaserver.SecurityPolicy
	// Extension adds computed variables, a tree and methods.
	Extension = uaserver.Extension
	// ExtraNode describes a browsable node of an Extension.
	ExtraNode = uaserver.ExtraNode
	// JournalEntry is one accepted Write.
	JournalEntry = uaserver.JournalEntry
	// Stats are a server's counters.
	Stats = uaserver.Stats
	// Redundancy makes the server a member of a non-transparent
	// redundant set.
	Redundancy = uaserver.Redundancy
)

// Defaults of the simulation.
const (
	DefaultHost          = uaserver.DefaultHost
	DefaultNamespaceURI  = "urn:uamirror:simserver"
	DefaultFolder        = "Sim"
	ApplicationURIPrefix = "urn:uamirror:simserver:"
	ProductName          = "uamirror simserver"
)

// Sentinel errors (the core's).
var (
	ErrInvalidConfig = uaserver.ErrInvalidConfig
	ErrClosed        = uaserver.ErrClosed
	ErrStarted       = uaserver.ErrStarted
)

// New builds a simulation server: uaserver.New with the simulation's
// identity (namespace urn:uamirror:simserver, folder Sim, product
// "uamirror simserver") in the fields cfg leaves empty.
func New(cfg Config) (*Server, error) {
	if cfg.NamespaceURI == "" {
		cfg.NamespaceURI = DefaultNamespaceURI
	}
	if cfg.Folder == "" {
		cfg.Folder = DefaultFolder
	}
	if cfg.LoggerName == "" {
		cfg.LoggerName = "simserver"
	}
	if cfg.ApplicationURIPrefix == "" {
		cfg.ApplicationURIPrefix = ApplicationURIPrefix
	}
	if cfg.Build.ProductName == "" {
		cfg.Build.ProductName = ProductName
	}
	if cfg.Build.ApplicationName == "" {
		cfg.Build.ApplicationName = ProductName
	}
	if cfg.Build.ProductURI == "" {
		cfg.Build.ProductURI = "urn:uamirror:simserver"
	}
	return uaserver.New(cfg)
}

// DefaultConfig returns the simserver command's defaults: 100 variables
// of cycling types on 127.0.0.1, ephemeral port, static values.
func DefaultConfig() Config {
	c := uaserver.DefaultConfig()
	c.NamespaceURI, c.Folder = DefaultNamespaceURI, DefaultFolder
	return c
}

// ParseSecurity parses a comma-separated list of security policies
// ("None,Basic256Sha256:Sign").
func ParseSecurity(s string) ([]SecurityPolicy, error) { return uaserver.ParseSecurity(s) }

// ParseValue parses s as a value of the named type.
func ParseValue(typ, s string) (any, error) { return uaserver.ParseValue(typ, s) }

// Types returns the names of the simulated types in cycling order.
func Types() []string { return uaserver.Types() }

// TypeOf returns the type name of variable i under cfg.
func TypeOf(i int, cfg Config) string { return uaserver.TypeOf(i, cfg) }

// ValueFor returns the deterministic value of variable i of type typ at
// step n.
func ValueFor(typ string, i int, n uint64) any { return uaserver.ValueFor(typ, i, n) }

// NodeName returns the string id of variable i ("v<i>").
func NodeName(i int) string { return uaserver.NodeName(i) }

// GenerateCertificate returns a self-signed certificate and key for an
// OPC UA application (see uaserver.GenerateCertificate).
func GenerateCertificate(appURI string, hosts ...string) ([]byte, *rsa.PrivateKey, error) {
	return uaserver.GenerateCertificate(appURI, hosts...)
}

package actors

import (
	"context"
	"fmt"
	"sync"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// StaticRegistrar is an ergo node.Registrar that resolves node names from a
// table instead of asking EPMD. Nodes started with the same StaticRegistrar
// in one OS process find each other without any daemon (each node's own
// listening port is recorded when ergo registers it); nodes in other
// processes are added with Add.
//
// Use it where EPMD is unwanted: tests that run many test binaries at once
// (an EPMD embedded in one of them vanishes when that binary exits), or
// clusters whose addresses are known up front. ergo's own
// StaticRoutesOnly mode cannot be used for this: with no registrar, ergo
// v1.999.224 dereferences a nil registrar on the first connection attempt.
//
// A StaticRegistrar is safe for concurrent use.
type StaticRegistrar struct {
	mu     sync.RWMutex
	routes map[string]node.Route // node name → where it listens
}

var _ node.Registrar = (*StaticRegistrar)(nil)

// NewStaticRegistrar returns an empty table.
func NewStaticRegistrar() *StaticRegistrar {
	return &StaticRegistrar{routes: make(map[string]node.Route)}
}

// Add records that the node name listens on host:port, replacing any
// earlier entry for name.
func (r *StaticRegistrar) Add(name, host string, port uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[name] = node.Route{Node: name, Host: host, Port: port}
}

// Remove forgets name.
func (r *StaticRegistrar) Remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routes, name)
}

// Register records a node of this process when ergo starts its listener.
// The node is reachable on loopback under its port.
func (r *StaticRegistrar) Register(_ context.Context, nodename string, options node.RegisterOptions) error {
	r.Add(nodename, "127.0.0.1", options.Port)
	return nil
}

// Resolve returns where peername listens, or lib.ErrNoRoute.
func (r *StaticRegistrar) Resolve(peername string) (node.Route, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	route, ok := r.routes[peername]
	if !ok {
		return node.Route{}, fmt.Errorf("%w: %s is not in the static registrar", lib.ErrNoRoute, peername)
	}
	return route, nil
}

// ResolveProxy reports that no proxy routes exist.
func (r *StaticRegistrar) ResolveProxy(string) (node.ProxyRoute, error) {
	return node.ProxyRoute{}, lib.ErrProxyNoRoute
}

// RegisterProxy is not supported.
func (r *StaticRegistrar) RegisterProxy(string, int, node.ProxyFlags) error {
	return lib.ErrUnsupported
}

// UnregisterProxy is not supported.
func (r *StaticRegistrar) UnregisterProxy(string) error { return lib.ErrUnsupported }

// Config is not supported.
func (r *StaticRegistrar) Config() (node.RegistrarConfig, error) {
	return node.RegistrarConfig{}, lib.ErrUnsupported
}

// ConfigItem is not supported.
func (r *StaticRegistrar) ConfigItem(string) (etf.Term, error) { return nil, lib.ErrUnsupported }

// SetConfigUpdateCallback is not supported.
func (r *StaticRegistrar) SetConfigUpdateCallback(func(string, etf.Term) error) error {
	return lib.ErrUnsupported
}

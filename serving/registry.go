package serving

import (
	"sync"
	"sync/atomic"
)

// The registry maps (node, serving name) to the engine of a running
// serving, for callers on the same node. ergo's own registry
// (node.ProcessByName) knows the same processes, but reading it takes a
// reader lock shared by every caller of every serving on the node; at a
// million requests per second on two cores the cache line that lock lives
// on bounces between cores on every call. The registry is an immutable
// map behind one atomic pointer: readers never write shared memory.
//
// A serving is registered when its actor has initialised and
// unregistered as soon as it starts to stop, so that new callers get
// ErrNoProc at once, as they would from ergo once the process is gone.

type registryKey struct{ node, name string }

var (
	registryMu sync.Mutex // serialises writers
	registry   atomic.Pointer[map[registryKey]*engine]
)

// register makes e the engine of serving name on node.
func register(node, name string, e *engine) {
	registryMu.Lock()
	defer registryMu.Unlock()
	next := map[registryKey]*engine{}
	if old := registry.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[registryKey{node, name}] = e
	registry.Store(&next)
}

// unregister forgets serving name on node if e is its engine.
func unregister(node, name string, e *engine) {
	registryMu.Lock()
	defer registryMu.Unlock()
	old := registry.Load()
	if old == nil || (*old)[registryKey{node, name}] != e {
		return
	}
	next := make(map[registryKey]*engine, len(*old))
	for k, v := range *old {
		next[k] = v
	}
	delete(next, registryKey{node, name})
	registry.Store(&next)
}

// registered returns the engine of serving name on node, or nil.
func registered(node, name string) *engine {
	m := registry.Load()
	if m == nil {
		return nil
	}
	return (*m)[registryKey{node, name}]
}

// Endpoints, one per node, are registered the same way.
var (
	endpointsMu sync.Mutex
	endpoints   atomic.Pointer[map[string]*endpoint]
)

func registerEndpoint(node string, ep *endpoint) {
	endpointsMu.Lock()
	defer endpointsMu.Unlock()
	next := map[string]*endpoint{}
	if old := endpoints.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[node] = ep
	endpoints.Store(&next)
}

func unregisterEndpoint(node string, ep *endpoint) {
	endpointsMu.Lock()
	defer endpointsMu.Unlock()
	old := endpoints.Load()
	if old == nil || (*old)[node] != ep {
		return
	}
	next := make(map[string]*endpoint, len(*old))
	for k, v := range *old {
		if k != node {
			next[k] = v
		}
	}
	endpoints.Store(&next)
}

// endpointOf returns the serving endpoint of node, or nil.
func endpointOf(node string) *endpoint {
	m := endpoints.Load()
	if m == nil {
		return nil
	}
	return (*m)[node]
}

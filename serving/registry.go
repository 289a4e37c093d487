package serving

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/ergonx/ergonx/actors"
)

// The registries map (node, serving name) to the engine of a running
// serving, and a node to its serving endpoint, for callers on the same
// node. ergo's own registry (node.ProcessByName) knows the same processes,
// but reading it takes a reader lock shared by every caller of every
// serving on the node; at a million requests per second on two cores the
// cache line that lock lives on bounces between cores on every call.
//
// A serving is registered when its actor has initialised and
// unregistered as soon as it starts to stop, so that new callers get
// ErrNoProc at once, as they would from ergo once the process is gone.
//
// Servings without a node are registered under the node name "" (no ergo
// node has it); locals holds their handles from their start until they
// have stopped, which keeps their names taken meanwhile, as a stopping
// supervisor keeps its name on a node.

type registryKey struct{ node, name string }

var (
	engines   cowMap[registryKey, *engine]
	endpoints cowMap[string, *endpoint]
	locals    cowMap[string, *Handle]
)

// nodeName is nd's name, or "" for callers without a node.
func nodeName(nd node.Node) string {
	if nd == nil {
		return ""
	}
	return nd.Name()
}

func register(node, name string, e *engine)   { engines.put(registryKey{node, name}, e) }
func unregister(node, name string, e *engine) { engines.remove(registryKey{node, name}, e) }

// registered returns the engine of serving name on node, or nil.
func registered(node, name string) *engine { return engines.get(registryKey{node, name}) }

func registerEndpoint(node string, ep *endpoint)   { endpoints.put(node, ep) }
func unregisterEndpoint(node string, ep *endpoint) { endpoints.remove(node, ep) }

// endpointOf returns the serving endpoint of node, or nil.
func endpointOf(node string) *endpoint { return endpoints.get(node) }

// cowMap is an immutable map behind one atomic pointer, replaced on every
// write: readers never write shared memory. Writes are rare (a serving
// starting or stopping).
type cowMap[K comparable, V comparable] struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[K]V]
}

func (c *cowMap[K, V]) get(k K) V {
	var zero V
	m := c.m.Load()
	if m == nil {
		return zero
	}
	return (*m)[k]
}

// size is the number of keys.
func (c *cowMap[K, V]) size() int {
	m := c.m.Load()
	if m == nil {
		return 0
	}
	return len(*m)
}

func (c *cowMap[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.copyLocked()
	next[k] = v
	c.m.Store(&next)
}

// putNew stores v under k unless k has a value; it reports whether it
// stored it.
func (c *cowMap[K, V]) putNew(k K, v V) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	if old := c.m.Load(); old != nil && (*old)[k] != zero {
		return false
	}
	next := c.copyLocked()
	next[k] = v
	c.m.Store(&next)
	return true
}

// remove deletes k if its value is v (a newer registration stays).
func (c *cowMap[K, V]) remove(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m.Load(); old == nil || (*old)[k] != v {
		return
	}
	next := c.copyLocked()
	delete(next, k)
	c.m.Store(&next)
}

func (c *cowMap[K, V]) copyLocked() map[K]V {
	next := map[K]V{}
	if old := c.m.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	return next
}

// lookup finds the engine of the serving registered as name on nd (nil:
// the serving without a node of that name).
func lookup(nd node.Node, name string) (*engine, error) {
	if e := registered(nodeName(nd), name); e != nil {
		return e, nil
	}
	if nd == nil {
		if locals.get(name) != nil {
			return nil, fmt.Errorf("%w: serving %q (without a node) is starting or stopping", ErrNoProc, name)
		}
		return nil, fmt.Errorf("%w: could not find a serving without a node named %q in this process; "+
			"make sure it is started (serving.Start(nil, ...)) and the name is right, or pass the node "+
			"the serving runs on", ErrNoProc, name)
	}
	// Not running: say why as precisely as ergo's registry can.
	if p := nd.ProcessByName(name); p != nil {
		if !isServing(p) {
			return nil, fmt.Errorf("%w: the process named %q on node %s is not a serving", ErrNoProc, name, nd.Name())
		}
		return nil, fmt.Errorf("%w: serving %q on node %s is starting or stopping", ErrNoProc, name, nd.Name())
	}
	return nil, fmt.Errorf("%w: could not find a serving named %q on node %s; "+
		"make sure it is started (serving.Start) and the name is right", ErrNoProc, name, nd.Name())
}

// isServing reports whether p runs a serving actor.
func isServing(p gen.Process) bool {
	a, ok := p.Behavior().(*actors.Actor)
	if !ok {
		return false
	}
	_, ok = a.Behavior().(*server)
	return ok
}

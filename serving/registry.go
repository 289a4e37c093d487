package serving

import (
	"fmt"

	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/cowmap"
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
	engines   cowmap.Map[registryKey, *engine]
	endpoints cowmap.Map[string, *endpoint]
	locals    cowmap.Map[string, *Handle]
)

// nodeName is nd's name, or "" for callers without a node.
func nodeName(nd node.Node) string {
	if nd == nil {
		return ""
	}
	return nd.Name()
}

func register(node, name string, e *engine)   { engines.Put(registryKey{node, name}, e) }
func unregister(node, name string, e *engine) { engines.Remove(registryKey{node, name}, e) }

// registered returns the engine of serving name on node, or nil.
func registered(node, name string) *engine { return engines.Get(registryKey{node, name}) }

func registerEndpoint(node string, ep *endpoint)   { endpoints.Put(node, ep) }
func unregisterEndpoint(node string, ep *endpoint) { endpoints.Remove(node, ep) }

// endpointOf returns the serving endpoint of node, or nil.
func endpointOf(node string) *endpoint { return endpoints.Get(node) }

// lookup finds the engine of the serving registered as name on nd (nil:
// the serving without a node of that name).
func lookup(nd node.Node, name string) (*engine, error) {
	if e := registered(nodeName(nd), name); e != nil {
		return e, nil
	}
	if nd == nil {
		if locals.Get(name) != nil {
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

package serving

import (
	"context"
	"fmt"
	"sync"

	"github.com/ergo-services/ergo/etf"

	"github.com/ergonx/ergonx/actors/wire"
)

// Go calls Nx: a member of a serving's process group that lives on a node
// without an ergonx endpoint is an Nx serving on an Erlang or Elixir node.
// It is called the way Nx calls it: spawn
// Nx.Serving.__distributed_batched_run__ on its node with a monitor, and
// read the result from the DOWN's reason, {Ref, Result}. Members of the
// serving's own group are Nx v0.10+ (function /4); members of
// NxSharedGroup are Nx v0.5 to v0.9, which have /3 (v0.5) or /4 (v0.6+):
// /4 is tried first, and a node whose DOWN says it has no /4 (undef) is
// remembered as an Nx v0.5 node and called with /3.

// nxArity remembers the arity of __distributed_batched_run__ on nodes
// that turned out to be Nx v0.5 (3); other nodes get 4.
type nxArity struct {
	mu    sync.Mutex
	nodes map[string]int // guarded by mu
}

func (a *nxArity) get(node string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n, ok := a.nodes[node]; ok {
		return n
	}
	return 4
}

func (a *nxArity) set(node string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nodes == nil {
		a.nodes = map[string]int{}
	}
	a.nodes[node] = n
}

// nxCall runs one request on the Nx serving name on member's node. input
// is the Nx form of the caller's input (see nxWireInput), in external
// term format. It returns ErrNoProc when that node has no such serving
// (the caller tries another member), ErrNodeDown when the node goes away,
// a *DownError with a *RemoteError for any other failure.
func (ep *endpoint) nxCall(ctx context.Context, member etf.Pid, name string, input []byte) (any, error) {
	peer := string(member.Node)
	for {
		arity := ep.nxArity.get(peer)
		ref := ep.proc.MakeRef()
		args := []etf.Term{ref, etf.Atom(name), wire.RawTerm(input)}
		if arity == 4 {
			args = append([]etf.Term{ep.self}, args...)
		}
		reason, err := ep.nxSpawn(ctx, peer, args)
		if err != nil {
			return nil, err
		}
		if t, ok := reason.(etf.Tuple); ok && len(t) == 2 && t[0] == etf.Term(ref) {
			if t[1] == etf.Atom("streaming") {
				return nil, &DownError{Serving: name, Reason: &RemoteError{Node: peer, Kind: "streaming",
					Message: "the Nx serving streams its results, which ergonx callers cannot read yet"}}
			}
			out, err := wire.Decode(t[1])
			if err != nil {
				return nil, fmt.Errorf("%w: result of Nx serving %q on node %s: %v", ErrWire, name, peer, err)
			}
			return out, nil
		}
		switch {
		case reason == etf.Atom("noproc"):
			return nil, fmt.Errorf("%w: no serving named %q on node %s", ErrNoProc, name, peer)
		case reason == etf.Atom("noconnection"):
			return nil, fmt.Errorf("%w: node %s (noconnection)", ErrNodeDown, peer)
		case arity == 4 && isNxUndef(reason, 4):
			ep.nxArity.set(peer, 3) // an Nx v0.5 node: call it again with /3
			continue
		}
		return nil, &DownError{Serving: name, Reason: &RemoteError{Node: peer, Kind: "exit", Message: describeTerm(reason, 2048)}}
	}
}

// isNxUndef reports whether reason says __distributed_batched_run__/arity
// is not defined: {undef, [{NxModule, Function, Args, _} | _]}.
func isNxUndef(reason etf.Term, arity int) bool {
	t, ok := reason.(etf.Tuple)
	if !ok || len(t) != 2 || t[0] != etf.Atom("undef") {
		return false
	}
	stack, ok := t[1].(etf.List)
	if !ok || len(stack) == 0 {
		return false
	}
	top, ok := stack[0].(etf.Tuple)
	if !ok || len(top) != 4 || top[0] != etf.Atom(NxModule) || top[1] != etf.Atom(nxFunction) {
		return false
	}
	switch a := top[2].(type) {
	case etf.List:
		return len(a) == arity
	case int:
		return a == arity
	}
	return false
}

package pg

import (
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
)

// LendNode lends the examples (package pg_test) a node from the pool,
// which TestMain stops after the run. Examples cannot start their own: see
// TestMain on node starts under -race.
func LendNode() node.Node {
	nd, ok := takeNode()
	if !ok {
		panic("pg tests: the node pool is empty: raise nodesPerRun")
	}
	pool.mu.Lock()
	pool.lent = append(pool.lent, nd)
	pool.mu.Unlock()
	return nd
}

// serverOf returns the behaviour of a running scope; touch its fields
// only on the scope's process (onScope).
func serverOf(s *Scope) *server {
	return s.proc.Behavior().(*actors.Actor).Behavior().(*server)
}

package pg

import "github.com/ergo-services/ergo/node"

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

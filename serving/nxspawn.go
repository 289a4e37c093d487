package serving

import (
	"context"
	"fmt"

	"github.com/ergo-services/ergo/etf"

	"github.com/ergonx/ergonx/internal/erldist"
)

// nxSpawn spawns __distributed_batched_run__ with args on peer, with a
// monitor (Erlang's spawn_monitor), and returns the reason of its DOWN.
// While it waits, the call counts as pending on peer, so that the
// endpoint's liveness check can end it if peer freezes. A cancelled ctx
// demonitors it and returns ctx.Err(): the request may still run there
// (Nx has no cancellation).
func (ep *endpoint) nxSpawn(ctx context.Context, peer string, args []etf.Term) (etf.Term, error) {
	aborted := make(chan error, 1)
	c := &remoteCall{node: peer, abort: func(err error) { aborted <- err }}
	ep.mu.Lock()
	if ep.stopped {
		ep.mu.Unlock()
		return nil, fmt.Errorf("%w: node %s", ErrNoEndpoint, ep.node)
	}
	id := ep.addLocked(c)
	ep.mu.Unlock()
	defer func() {
		ep.mu.Lock()
		if ep.pending[id] == c {
			ep.removeLocked(id, c)
		}
		ep.mu.Unlock()
	}()

	sp, err := erldist.SpawnMonitor(ctx, ep.proc, peer, NxModule, nxFunction, args)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: cannot reach node %s: %v", ErrNodeDown, peer, err)
	}
	select {
	case reason := <-sp.Down():
		// A refused spawn comes as its error atom, as spawn_monitor's DOWN
		// would; a lost connection as noconnection.
		return reason, nil
	case err := <-aborted:
		sp.Cancel()
		return nil, err
	case <-ctx.Done():
		sp.Cancel()
		return nil, ctx.Err()
	}
}

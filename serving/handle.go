package serving

import (
	"context"
	"fmt"
	"sync"

	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/supervisor"
)

// Handle is a serving that Start started: it stops it, reports on it and
// calls it without looking it up by name. A Handle is safe for concurrent
// use.
//
// A handle stands for one start of a serving: once that serving has
// stopped, Stats and BatchedRun return ErrNoProc even if another serving
// was started under the same name since.
type Handle struct {
	name string
	nd   node.Node   // nil for a serving without a node
	sup  gen.Process // the serving's supervisor; nil without a node
	e    *engine

	// A serving without a node stops once: stopOnce starts its shutdown,
	// which closes done when over.
	stopOnce sync.Once
	done     chan struct{}
}

// Name returns the serving's name (Options.Name).
func (h *Handle) Name() string { return h.name }

// Node returns the serving's node, or nil for a serving without a node.
func (h *Handle) Node() node.Node { return h.nd }

// Process returns the serving's supervisor process (registered as
// Name+".Supervisor"), for linking or monitoring it from your own
// processes, or nil for a serving without a node.
func (h *Handle) Process() gen.Process { return h.sup }

// Stop stops the serving and waits until it is gone or ctx ends: stacked
// and queued callers get ErrNoProc at once, running batches finish first
// (bounded by Options.Shutdown); if ctx ends first, Stop returns ctx.Err()
// and the shutdown goes on. Stopping a serving that has stopped already
// returns nil.
func (h *Handle) Stop(ctx context.Context) error {
	if h.sup != nil {
		return supervisor.Stop(ctx, h.sup)
	}
	h.stopOnce.Do(func() {
		go func() {
			h.e.shutdown()
			locals.Remove(h.name, h)
			close(h.done)
		}()
	})
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done returns a channel closed once the serving has stopped: by Stop, or,
// for a serving on a node, in any other way (its supervisor was stopped,
// a child failed, the node stopped).
func (h *Handle) Done() <-chan struct{} {
	if h.sup != nil {
		return h.sup.Context().Done()
	}
	return h.done
}

// Stats returns a snapshot of the serving, or ErrNoProc once it has
// begun to stop.
func (h *Handle) Stats() (Stats, error) {
	st := h.e.stats()
	if st.Stopped {
		return Stats{}, h.stopped()
	}
	return st, nil
}

// BatchedRun runs input on the serving, as the package's BatchedRun does
// for a serving on the caller's node, without looking the serving up by
// name. It returns ErrNoProc once the serving has begun to stop.
func (h *Handle) BatchedRun(ctx context.Context, input any, opts ...CallOption) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	return h.e.call(ctx, input, o)
}

func (h *Handle) stopped() error {
	if h.nd == nil {
		return fmt.Errorf("%w: serving %q (without a node) has stopped", ErrNoProc, h.name)
	}
	return fmt.Errorf("%w: serving %q on node %s has stopped", ErrNoProc, h.name, h.nd.Name())
}

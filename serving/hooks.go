package serving

import (
	"fmt"
	"sync/atomic"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// Streaming hooks (Nx's streaming(hooks: [...])): the serving gives every
// partition's compiler.Options one function per declared hook. A
// computation calls it during an execution with a container whose tensors
// keep the batch on axis 0; the function hands each caller of the batch
// running on that partition its own rows, as a hook event queued before
// the batch's own event. Nx does the same through an ETS table keyed by
// partition; here each partition has a slot holding the task it runs.
//
// A hook is called on whatever goroutine the computation calls it from,
// and must be called before the execution returns: a call while nothing
// runs on the partition is dropped, and a late call from an execution
// that has finished would reach the callers of the next batch (as in Nx).

// hookRouter routes hook calls to the task running on each partition.
// It is safe for concurrent use.
type hookRouter struct {
	running []atomic.Pointer[task] // by partition
	// errs holds, by partition, the first hook call of the running
	// execution whose value its callers could not take their rows from:
	// the batch fails with it.
	errs []atomic.Pointer[error]
}

func newHookRouter(partitions int) *hookRouter {
	return &hookRouter{running: make([]atomic.Pointer[task], partitions), errs: make([]atomic.Pointer[error], partitions)}
}

// withHooks returns copies of partitions whose Hooks hold a function per
// name routed through h, on top of the hooks the options had already.
func (h *hookRouter) withHooks(partitions []compiler.Options, names []string) []compiler.Options {
	out := make([]compiler.Options, len(partitions))
	for p, opts := range partitions {
		hooks := make(map[string]func(any), len(opts.Hooks)+len(names))
		for n, f := range opts.Hooks {
			hooks[n] = f
		}
		for _, name := range names {
			hooks[name] = func(value any) { h.call(p, name, value) }
		}
		opts.Hooks = hooks
		out[p] = opts
	}
	return out
}

// enter marks t as running on its partition.
func (h *hookRouter) enter(t *task) {
	h.errs[t.partition].Store(nil)
	h.running[t.partition].Store(t)
}

// leave unmarks t and returns the error of its hook calls, if any.
func (h *hookRouter) leave(t *task) error {
	h.running[t.partition].CompareAndSwap(t, nil)
	if err := h.errs[t.partition].Swap(nil); err != nil {
		return *err
	}
	return nil
}

// call delivers one hook call made on partition p.
func (h *hookRouter) call(p int, name string, value any) {
	t := h.running[p].Load()
	if t == nil {
		return
	}
	if err := t.hook(name, value); err != nil {
		h.errs[p].CompareAndSwap(nil, &err)
	}
}

// hook hands each streaming caller of t its rows of value. A value the
// callers cannot take their rows from is an error that fails the batch
// (returned, not panicked: a hook may run on a goroutine of the
// computation's own, where a panic would take the process down).
func (t *task) hook(name string, value any) error {
	s, err := batch.NewSlicer(value)
	if err == nil && s.Len() < t.size {
		err = fmt.Errorf("%d rows for a batch of %d", s.Len(), t.size)
	}
	if err != nil {
		return fmt.Errorf("%w: the value of hook %q is not a container of tensors with the batch on axis 0: %v",
			ErrBadCallback, name, err)
	}
	out := &output{value: value, slicer: s}
	start := 0
	for _, p := range t.parts {
		n := p.b.Size()
		if p.req.stream != nil {
			if err := s.Prepare(n); err == nil {
				p.req.hook(p.gen, name, piece{out: out, start: start, size: n, offset: p.offset})
			}
		}
		start += n
	}
	return nil
}

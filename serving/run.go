package serving

import (
	"context"
	"fmt"
	"iter"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// Run runs s on input inline, in the calling goroutine (Nx's run/2):
// it preprocesses input (the default accepts a non-empty *batch.Batch or
// an input stream, see BatchStream), initialises the module for Inline
// with one partition whose options carry the first batch's key in
// BatchKeys (once per call, as Nx does), runs HandleBatch for partition 0
// and the function it returns, keeps the first Size() rows of every
// output tensor (padding added inside the function is dropped) and
// postprocesses.
//
// With a BatchSize (Serving.BatchSize), an input larger than it runs as
// several executions of at most that many rows, in order, and so does
// each batch of an input stream; the outputs are concatenated in order,
// and the metadata is the last execution's (Nx v0.6.2's batch_size/2).
// Without one, a batch runs whole.
//
// ctx is checked before each execution; an execution that has started
// runs to its end. Failures of user code come back as *CallbackError
// wrapping the cause.
func Run(ctx context.Context, s *Serving, input any) (any, error) {
	if s.misuse != nil {
		return nil, s.misuse
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, src, info, err := preprocessInput(s, input)
	if err != nil {
		return nil, err
	}
	in := &inliner{s: s}
	var parts []any
	var meta any
	err = in.run(ctx, b, src, nil, func(out, m any) bool {
		parts = append(parts, out)
		meta = m
		return true
	})
	if err != nil {
		return nil, err
	}
	out := parts[0]
	if len(parts) > 1 {
		if out, err = batch.ConcatRows(parts...); err != nil {
			return nil, err
		}
	}
	return postprocess(s, out, meta, info)
}

// RunStream runs s on input inline, as Run does, and returns the result
// as a stream of events (Nx's run/2 on a streaming serving): a batch event
// per execution, after client postprocessing of its rows, each preceded
// by the hook events of its execution when the serving has streaming
// hooks (the execution then runs on a goroutine of its own, so that they
// come as they are emitted). The execution starts when the range loop
// starts; each range runs it anew. An error ends the stream as its last
// item. Breaking out of the loop or ctx ending stops before the next
// execution; one that has started runs to its end first.
func RunStream(ctx context.Context, s *Serving, input any) iter.Seq2[StreamEvent, error] {
	return func(yield func(StreamEvent, error) bool) {
		stopped := false
		each := func(ev StreamEvent) bool {
			if !yield(ev, nil) {
				stopped = true
				return false
			}
			return true
		}
		err := runStream(ctx, s, input, each)
		if err != nil && !stopped {
			yield(StreamEvent{}, err)
		}
	}
}

func runStream(ctx context.Context, s *Serving, input any, yield func(StreamEvent) bool) error {
	if s.misuse != nil {
		return s.misuse
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b, src, info, err := preprocessInput(s, input)
	if err != nil {
		return err
	}
	in := &inliner{s: s}
	var postErr error
	err = in.run(ctx, b, src, yield, func(out, meta any) bool {
		res, err := postprocess(s, out, meta, info)
		if err != nil {
			postErr = err
			return false
		}
		return yield(StreamEvent{Value: res, Metadata: meta})
	})
	if postErr != nil {
		return postErr
	}
	return err
}

// inliner runs a serving's executions inline, initialising its module
// once, for the first batch.
type inliner struct {
	s      *Serving
	state  any
	inited bool
	hooks  *hookRouter
}

// run executes b (split into pieces of at most the serving's batch size)
// or each batch of src, in order, and hands each output, cut to its
// rows, to emit. With hook set, the executions' hook events go to it as
// they come. It returns errStopped when hook or emit returned false.
func (in *inliner) run(ctx context.Context, b *batch.Batch, src *source, hook func(StreamEvent) bool,
	emit func(out, meta any) bool) error {
	limit := in.s.batchSize
	if len(in.s.hooks) > 0 {
		switch {
		case src != nil:
			src.close()
			return ErrStreamingHooks
		case limit > 0 && b.Size() > limit:
			return fmt.Errorf("%w: batch size (%d) cannot exceed the serving's batch size of %d when streaming hooks",
				ErrBatchTooLarge, b.Size(), limit)
		}
	}
	if src != nil {
		defer src.close()
	}
	ran := false
	for {
		var next *batch.Batch
		switch {
		case src != nil:
			it := src.next(ctx)
			switch {
			case it.err != nil:
				return it.err
			case it.end:
				if !ran {
					return fmt.Errorf("%w: the input stream yielded no batch", ErrEmptyBatch)
				}
				return nil
			}
			if err := checkBatch(it.b, limit); err != nil {
				return err
			}
			next = it.b
		case b == nil:
			return nil
		case limit > 0 && b.Size() > limit:
			head, rest, err := b.Split(limit)
			if err != nil {
				return err
			}
			next, b = head, rest
		default:
			next, b = b, nil
		}
		out, meta, err := in.execute(ctx, next, hook)
		if err != nil {
			return err
		}
		ran = true
		if !emit(out, meta) {
			return errStopped
		}
	}
}

// execute runs one batch: Init (first batch only), HandleBatch for
// partition 0, the execution with its telemetry span, and cuts the
// output to the batch's rows.
func (in *inliner) execute(ctx context.Context, b *batch.Batch, hook func(StreamEvent) bool) (any, any, error) {
	s := in.s
	if !in.inited {
		opts := s.defn
		opts.BatchKeys = []string{b.Key()}
		opts.Context = ctx
		parts := []compiler.Options{opts}
		if len(s.hooks) > 0 {
			in.hooks = newHookRouter(1)
			parts = in.hooks.withHooks(parts, s.hooks)
		}
		state, err := callInit(s.module, Inline, s.arg, parts)
		if err != nil {
			return nil, nil, err
		}
		in.state, in.inited = state, true
	}
	exec, _, err := callHandleBatch(s.module, b, 0, in.state)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	module := s.moduleName()
	sp := startSpan(Event{Name: ExecuteStart, Module: module}, ExecuteStop, ExecuteException)
	var out, meta any
	if in.hooks == nil {
		out, meta, err = callExec(module, exec)
	} else {
		out, meta, err = in.executeHooked(b, exec, hook)
	}
	sp.end(Event{Module: module, Metadata: meta, Err: err})
	if err != nil {
		return nil, nil, err
	}
	if out, err = trimRows(module, out, b.Size()); err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// executeHooked runs an execution whose hooks stream: the execution runs
// on a goroutine of its own while this one hands its hook events to hook
// (when set) as they come. A hook that returns false drops the events
// that follow; the execution runs to its end either way.
func (in *inliner) executeHooked(b *batch.Batch, exec ExecFunc, hook func(StreamEvent) bool) (out, meta any, err error) {
	r := newRequest(b.Size())
	if hook != nil {
		r = newStreamRequest(b.Size())
	}
	t := &task{partition: 0, parts: []part{{req: r, b: b}}, size: b.Size()}
	type result struct {
		out, meta any
		err       error
	}
	done := make(chan result, 1)
	module := in.s.moduleName()
	go func() {
		in.hooks.enter(t)
		out, meta, err := callExec(module, exec)
		if herr := in.hooks.leave(t); herr != nil && err == nil {
			err = callbackErr(module, "execute", herr)
		}
		done <- result{out, meta, err}
	}()
	listening := hook != nil
	pass := func() {
		if !listening {
			return
		}
		r.mu.Lock()
		evs := r.stream.events
		r.stream.events = nil
		r.mu.Unlock()
		got, _ := convertEvents(evs, nil) // (hook pieces were checked when queued)
		for _, ev := range got {
			if !hook(ev) {
				listening = false
				return
			}
		}
	}
	var wake <-chan struct{}
	if listening {
		wake = r.stream.notify
	}
	for {
		select {
		case <-wake:
			pass()
		case res := <-done:
			pass()
			if res.err == nil && hook != nil && !listening {
				res.err = errStopped
			}
			return res.out, res.meta, res.err
		}
	}
}

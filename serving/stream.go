package serving

import (
	"context"
	"fmt"
	"iter"
	"reflect"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/batch"
)

// StreamEvent is one item of a streamed result (Nx's streaming events):
// a hook's value or a batch's output, always only the caller's rows.
type StreamEvent struct {
	// Hook names the hook that emitted Value (see Serving.Streaming); it
	// is "" for a batch event.
	Hook string
	// Value is the caller's rows: of the hook's value for a hook event; of
	// the execution's output, after client postprocessing, for a batch
	// event.
	Value any
	// Metadata is the execution's metadata (batch events only).
	Metadata any
}

// Stream runs input on the serving named name, as BatchedRun does, and
// returns the result as a stream of events (Nx's batched_run on a
// streaming serving), in order: a batch event as each execution holding
// some of the caller's rows finishes (a request split across executions
// yields several, in row order; an input stream yields at least one per
// batch), each preceded by the hook events of its execution when the
// serving has streaming hooks. Client postprocessing runs on each batch
// event's rows, with the execution's metadata (on the serving's node for
// distributed calls, then the serving's distributed postprocessing).
// Any serving can be streamed; one without hooks yields batch events only.
//
// The request starts when the range loop starts; each range runs it
// anew. An error ends the stream as its last item, with a zero event.
// Breaking out of the loop, or ctx ending, takes the request's rows that
// have not run out of the serving (a distributed call tells the serving's
// node); ctx ending yields ctx.Err(). Events are queued for the caller as
// they are produced, whatever the pace it reads them at (as in Nx); an
// input stream is pulled no faster than they are read (see BatchStream).
func Stream[T Target](ctx context.Context, nd node.Node, name T, input any, opts ...CallOption) iter.Seq2[StreamEvent, error] {
	return func(yield func(StreamEvent, error) bool) {
		stopped := false
		each := func(ev StreamEvent) bool {
			if !yield(ev, nil) {
				stopped = true
				return false
			}
			return true
		}
		err := stream(ctx, nd, name, input, opts, each)
		if err != nil && !stopped {
			yield(StreamEvent{}, err)
		}
	}
}

func stream[T Target](ctx context.Context, nd node.Node, name T, input any, opts []CallOption, yield func(StreamEvent) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	n := ""
	distributed := false
	switch t := any(name).(type) {
	case LocalTarget:
		n = t.Name
	case DistributedTarget:
		n, distributed = t.Name, true
	default:
		n = reflect.ValueOf(name).String()
		distributed = registered(nodeName(nd), n) == nil && endpointOf(nodeName(nd)) != nil
	}
	if distributed {
		return distributedStream(ctx, nd, n, input, o, yield)
	}
	e, err := lookup(nd, n)
	if err != nil {
		return err
	}
	return e.stream(ctx, input, o, yield)
}

// unit is one batch of a call in flight: a request in a local serving or
// a call to a remote one. Its events come out of take, in order.
type unit interface {
	// wake is signalled when take may have something new.
	wake() <-chan struct{}
	// take returns the events ready, whether the unit is over, and the
	// error that ended it.
	take() (evs []StreamEvent, over bool, err error)
	// stop takes what is left of the unit out of its serving.
	stop(err error)
}

// pump runs the batches of src through start, at most window of them at
// once, and yields their events in input order (Nx's streaming
// batched_run with its flow control). limit bounds the rows of each
// batch (0: none). It returns nil when the input is over and every event
// was yielded, errStopped when yield returned false, or the error that
// ended the call; units still in flight are then stopped.
func pump(ctx context.Context, src *source, window, limit int, start func(*batch.Batch) (unit, error),
	yield func(StreamEvent) bool) (err error) {
	if window <= 0 {
		window = DefaultInputWindow
	}
	var inflight []unit
	defer func() {
		src.close()
		for _, u := range inflight {
			u.stop(cancelCause(ctx, err))
		}
	}()
	inputDone := false
	for {
		if len(inflight) > 0 {
			evs, over, err := inflight[0].take()
			for _, ev := range evs {
				if !yield(ev) {
					return errStopped
				}
			}
			if err != nil {
				return err // (stopping a unit that is over does nothing)
			}
			if over {
				inflight[0] = nil
				inflight = inflight[1:]
				continue
			}
		} else if inputDone {
			return nil
		}
		var wake <-chan struct{}
		if len(inflight) > 0 {
			wake = inflight[0].wake()
		}
		ch, items := src.channels(!inputDone && len(inflight) < window)
		var it sourceItem
		select {
		case <-wake:
			continue
		case <-ctx.Done():
			return ctx.Err()
		case b, ok := <-ch:
			it = sourceItem{b: b, end: !ok}
		case it = <-items:
			src.received()
		}
		switch {
		case it.err != nil:
			return it.err
		case it.end:
			inputDone = true
			continue
		}
		if err := checkBatch(it.b, limit); err != nil {
			return err
		}
		u, err := start(it.b)
		if err != nil {
			return err
		}
		inflight = append(inflight, u)
	}
}

// cancelCause is how units left in flight are answered when a call ends
// with err.
func cancelCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		return errStopped
	}
	return err
}

// singleSource is a source of one batch (a call whose input is one batch
// goes through the same loop as a stream).
func singleSource(b *batch.Batch) *source {
	ch := make(chan *batch.Batch, 1)
	ch <- b
	close(ch)
	return &source{ch: ch}
}

// localUnit is a streaming request in a serving of this node. post, if
// set, postprocesses each batch event.
type localUnit struct {
	e    *engine
	r    *request
	post func(out, meta any) (any, error)
}

func (u *localUnit) wake() <-chan struct{} { return u.r.stream.notify }

func (u *localUnit) take() ([]StreamEvent, bool, error) {
	evs, over, err := u.r.take()
	out, cerr := convertEvents(evs, u.post)
	if cerr != nil {
		return out, true, cerr
	}
	return out, over, err
}

func (u *localUnit) stop(err error) { u.e.cancel(u.r, err) }

// convertEvents cuts each event's rows out of its execution's output and
// postprocesses batch events with post (nil: none).
func convertEvents(evs []event, post func(out, meta any) (any, error)) ([]StreamEvent, error) {
	out := make([]StreamEvent, 0, len(evs))
	for _, ev := range evs {
		rows, err := ev.p.out.slicer.Rows(ev.p.start, ev.p.size)
		if err != nil {
			return out, err
		}
		if ev.hook != "" {
			out = append(out, StreamEvent{Hook: ev.hook, Value: rows})
			continue
		}
		meta := ev.p.out.metadata
		if post != nil {
			if rows, err = post(rows, meta); err != nil {
				return out, err
			}
		}
		out = append(out, StreamEvent{Value: rows, Metadata: meta})
	}
	return out, nil
}

// stream runs input through the serving and yields its events (Stream
// on this node): client preprocessing, then every batch (one, or each of
// an input stream) through the pump, each batch event postprocessed.
func (e *engine) stream(ctx context.Context, input any, o callOptions, yield func(StreamEvent) bool) error {
	b, src, info, err := preprocessInput(e.serving, input)
	if err != nil {
		return err
	}
	// The batches of an input stream are at most a batch each; one batch
	// of any size is split by the serving.
	limit := e.batchSize
	if src == nil {
		src, limit = singleSource(b), 0
	} else if e.hooks != nil {
		src.close()
		return fmt.Errorf("serving %q: %w", e.name, ErrStreamingHooks)
	}
	post := func(out, meta any) (any, error) { return postprocess(e.serving, out, meta, info) }
	return pump(ctx, src, int(o.window), limit, e.startUnit(ctx, o, post), yield)
}

// startUnit returns the pump's start function for this serving.
func (e *engine) startUnit(ctx context.Context, o callOptions, post func(out, meta any) (any, error)) func(*batch.Batch) (unit, error) {
	return func(b *batch.Batch) (unit, error) {
		r, err := e.submitRequest(ctx, newStreamRequest(b.Size()), b, false, o.waitRoom)
		if err != nil {
			return nil, err
		}
		return &localUnit{e: e, r: r, post: post}, nil
	}
}

// collectStream runs an input stream through the serving and returns
// every batch's output concatenated in order, with the last execution's
// metadata (BatchedRun with an input stream); postprocessing runs once,
// on the whole.
func (e *engine) collectStream(ctx context.Context, src *source, info any, o callOptions) (any, error) {
	if e.hooks != nil {
		src.close()
		return nil, fmt.Errorf("serving %q: %w", e.name, ErrStreamingHooks)
	}
	out, meta, err := collect(ctx, src, int(o.window), e.batchSize, e.startUnit(ctx, o, nil))
	if err != nil {
		return nil, err
	}
	return postprocess(e.serving, out, meta, info)
}

// collect pumps src and concatenates the batch events' values in order.
// An input stream without batches is ErrEmptyBatch.
func collect(ctx context.Context, src *source, window, limit int, start func(*batch.Batch) (unit, error)) (out, meta any, err error) {
	var parts []any
	err = pump(ctx, src, window, limit, start, func(ev StreamEvent) bool {
		if ev.Hook == "" {
			parts = append(parts, ev.Value)
			meta = ev.Metadata
		}
		return true
	})
	switch {
	case err != nil:
		return nil, nil, err
	case len(parts) == 0:
		return nil, nil, fmt.Errorf("%w: the input stream yielded no batch", ErrEmptyBatch)
	case len(parts) == 1:
		return parts[0], meta, nil
	}
	out, err = batch.ConcatRows(parts...)
	return out, meta, err
}

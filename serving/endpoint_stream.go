package serving

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// Streaming across nodes. Stream to a serving on another ergonx node
// sends an ergonx_stream request; the serving's node runs it through its
// engine's stream and sends each event as it comes (endpoint_protocol.go), and the
// caller's endpoint queues the events of the call for the caller, which
// decodes them in its own goroutine. A caller that stops reading, or
// whose context ends, abandons the call: the serving's node takes its
// rows out.
//
// An input stream cannot cross nodes (it is a Go iterator or channel): the
// caller sends each of its batches as a request of its own to one member
// of the serving's group, in order, with the same window as on its node
// (no retry on another member: the batches of one stream stay together).
// Each such request is postprocessed on the serving's node, so BatchedRun
// concatenates postprocessed results there, which must keep the batch
// axis.

// wireEvent is one event of a remote stream as received: its value and
// metadata are still wire binaries.
type wireEvent struct {
	hook  string
	value []byte
	meta  []byte
}

// remoteStream queues the events of one streaming call as the endpoint
// receives them. It is safe for concurrent use.
type remoteStream struct {
	notify chan struct{} // capacity 1, signalled on every change

	mu     sync.Mutex // guards the fields below
	events []wireEvent
	got    int // events received in all
	over   bool
	err    error
	sent   int // events the serving says it sent (its final reply)
}

func newRemoteStream() *remoteStream { return &remoteStream{notify: make(chan struct{}, 1)} }

func (s *remoteStream) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// push queues an event (from the endpoint's process, in arrival order).
func (s *remoteStream) push(ev wireEvent) {
	s.mu.Lock()
	if !s.over {
		s.events = append(s.events, ev)
		s.got++
	}
	s.mu.Unlock()
	s.signal()
}

// finish ends the stream with the serving's final reply (or a failure).
func (s *remoteStream) finish(r remoteReply) {
	s.mu.Lock()
	if !s.over {
		s.over = true
		s.err = r.err
		if r.err == nil {
			n, ok := toUint64(r.result)
			if !ok {
				s.err = fmt.Errorf("%w: the end of a stream carries %T, not an event count", ErrWire, r.result)
			}
			s.sent = int(n)
		}
	}
	s.mu.Unlock()
	s.signal()
}

// remoteUnit is a streaming call to a serving on another ergonx node.
type remoteUnit struct {
	ep   *endpoint
	id   uint64
	c    *remoteCall
	name string
}

// startStream sends a streaming request for serving name to node.
func (ep *endpoint) startStream(node, name string, input []byte) (*remoteUnit, error) {
	c := &remoteCall{node: node, stream: newRemoteStream()}
	id, err := ep.send(c, tagStream, name, input)
	if err != nil {
		return nil, err
	}
	return &remoteUnit{ep: ep, id: id, c: c, name: name}, nil
}

func (u *remoteUnit) wake() <-chan struct{} { return u.c.stream.notify }

func (u *remoteUnit) take() ([]StreamEvent, bool, error) {
	s := u.c.stream
	s.mu.Lock()
	evs := s.events
	s.events = nil
	over, err, got, sent := s.over, s.err, s.got, s.sent
	s.mu.Unlock()
	out := make([]StreamEvent, 0, len(evs))
	for _, ev := range evs {
		v, err := wire.Unmarshal(ev.value)
		if err != nil {
			return out, true, fmt.Errorf("%w: an event of serving %q from node %s: %v", ErrWire, u.name, u.c.node, err)
		}
		if ev.hook != "" {
			out = append(out, StreamEvent{Hook: ev.hook, Value: v})
			continue
		}
		meta, err := wire.Unmarshal(ev.meta)
		if err != nil {
			return out, true, fmt.Errorf("%w: the metadata of an event of serving %q from node %s: %v", ErrWire, u.name, u.c.node, err)
		}
		out = append(out, StreamEvent{Value: v, Metadata: meta})
	}
	if over && err == nil && got != sent {
		err = fmt.Errorf("%w: serving %q on node %s sent %d events and %d arrived", ErrWire, u.name, u.c.node, sent, got)
	}
	var down *DownError
	if errors.As(err, &down) && down.Serving == "" {
		down.Serving = u.name
	}
	return out, over, err
}

func (u *remoteUnit) stop(error) { u.ep.abandon(u.id, u.c) }

// asyncUnit runs one synchronous call (a batch of an input stream sent
// to another node, or a call to an Nx serving) on a goroutine of its own;
// its result is one batch event.
type asyncUnit struct {
	done   chan struct{}
	cancel context.CancelFunc
	res    any
	err    error
	taken  bool
}

func startAsync(ctx context.Context, f func(context.Context) (any, error)) *asyncUnit {
	cctx, cancel := context.WithCancel(ctx)
	u := &asyncUnit{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(u.done)
		u.res, u.err = f(cctx)
	}()
	return u
}

func (u *asyncUnit) wake() <-chan struct{} { return u.done }

func (u *asyncUnit) take() ([]StreamEvent, bool, error) {
	select {
	case <-u.done:
	default:
		return nil, false, nil
	}
	u.cancel()
	if u.err != nil || u.taken {
		return nil, true, u.err
	}
	u.taken = true
	return []StreamEvent{{Value: u.res}}, true, nil
}

// stop cancels the call and waits for its goroutine (a cancelled call
// returns at once).
func (u *asyncUnit) stop(error) {
	u.cancel()
	<-u.done
}

// drain yields the events of one unit until it is over.
func drain(ctx context.Context, u unit, yield func(StreamEvent) bool) error {
	for {
		evs, over, err := u.take()
		for _, ev := range evs {
			if !yield(ev) {
				u.stop(errStopped)
				return errStopped
			}
		}
		if err != nil || over {
			return err
		}
		select {
		case <-u.wake():
		case <-ctx.Done():
			u.stop(ctx.Err())
			return ctx.Err()
		}
	}
}

// distTarget is what a distributed call needs: the node's endpoint and
// process-group scope.
func distTarget(nd node.Node, o callOptions) (*endpoint, *pg.Scope, error) {
	if nd == nil {
		return nil, nil, fmt.Errorf("%w: a caller without a node cannot reach servings on other nodes; start a node "+
			"(cluster.StartNode) and pass it", ErrNoEndpoint)
	}
	ep := endpointOf(nd.Name())
	if ep == nil {
		return nil, nil, fmt.Errorf("%w: node %s cannot reach servings on other nodes; start the cluster application "+
			"(apps/cluster) or serving.StartEndpoint", ErrNoEndpoint, nd.Name())
	}
	scope := ep.lookupScope(nd, o.scopeName())
	if scope == nil {
		return nil, nil, fmt.Errorf("%w: node %s runs no process-group scope %q; start the cluster application (apps/cluster)",
			ErrNoEndpoint, nd.Name(), o.scopeName())
	}
	return ep, scope, nil
}

// startMember starts one request for in on member: a streaming call on an
// ergonx node when stream is set, else a call on its own goroutine (Nx
// nodes always: their streaming protocol is not read here yet).
func (in *distInput) startMember(ctx context.Context, ep *endpoint, scope *pg.Scope, member etf.Pid, stream bool) (unit, error) {
	node := string(member.Node)
	ergonx := scope.HasMemberOn(EndpointGroup, node)
	if stream && ergonx {
		if err := in.encodeErgonx(); err != nil {
			return nil, err
		}
		return ep.startStream(node, in.name, in.ergonx)
	}
	return startAsync(ctx, func(ctx context.Context) (any, error) {
		if ergonx {
			return in.callErgonx(ctx, ep, node)
		}
		return in.callNx(ctx, ep, member)
	}), nil
}

// distributedStream is Stream through the serving's process group: the
// member choice and the 3 attempts of distributedBatchedRun (a member
// without the serving is retried only before any event was yielded), or,
// for an input stream, each batch sent to one member.
func distributedStream(ctx context.Context, nd node.Node, name string, input any, o callOptions, yield func(StreamEvent) bool) error {
	ep, scope, err := distTarget(nd, o)
	if err != nil {
		return err
	}
	if src, ok := streamOf(input); ok {
		member, ok := ep.pickMember(scope, name, nil)
		if !ok {
			src.close()
			return noMembers(name, scope)
		}
		return pump(ctx, src, int(o.window), 0, func(b *batch.Batch) (unit, error) {
			in, err := distBatch(name, b, o)
			if err != nil {
				return nil, err
			}
			return in.startMember(ctx, ep, scope, member, true)
		}, yield)
	}
	if o.distPre != nil {
		if input, err = o.distPre(input); err != nil {
			return fmt.Errorf("serving: distributed preprocessing: %w", err)
		}
	}
	in := &distInput{name: name, value: input}
	var last error
	var tried []etf.Pid
	for attempt := 1; attempt <= distributedAttempts; attempt++ {
		member, ok := ep.pickMember(scope, name, tried)
		if !ok {
			return noMembers(name, scope)
		}
		u, err := in.startMember(ctx, ep, scope, member, true)
		yielded := false
		if err == nil {
			err = drain(ctx, u, func(ev StreamEvent) bool {
				yielded = true
				return yield(ev)
			})
		}
		if err == nil {
			return nil
		}
		var down *DownError
		if errors.As(err, &down) && down.Serving == "" {
			down.Serving = name
		}
		if yielded || !errors.Is(err, ErrNoProc) || ctx.Err() != nil {
			return err
		}
		last = err
		tried = append(tried, member)
	}
	return fmt.Errorf("%w: serving %q: %d attempts on members of its process group found none running (last: %v)",
		ErrNoProc, name, distributedAttempts, last)
}

// distributedCollect is BatchedRun of an input stream through the
// serving's process group: each batch is a request of its own to one
// member, and the results are concatenated in order.
func distributedCollect(ctx context.Context, ep *endpoint, scope *pg.Scope, name string, src *source, o callOptions) (any, error) {
	member, ok := ep.pickMember(scope, name, nil)
	if !ok {
		src.close()
		return nil, noMembers(name, scope)
	}
	out, _, err := collect(ctx, src, int(o.window), 0, func(b *batch.Batch) (unit, error) {
		in, err := distBatch(name, b, o)
		if err != nil {
			return nil, err
		}
		return in.startMember(ctx, ep, scope, member, false)
	})
	return out, err
}

// distBatch is the distributed input of one batch of an input stream,
// after the caller's distributed preprocessing.
func distBatch(name string, b *batch.Batch, o callOptions) (*distInput, error) {
	var v any = b
	if o.distPre != nil {
		var err error
		if v, err = o.distPre(b); err != nil {
			return nil, fmt.Errorf("serving: distributed preprocessing: %w", err)
		}
	}
	return &distInput{name: name, value: v}, nil
}

func noMembers(name string, scope *pg.Scope) error {
	return fmt.Errorf("%w: could not find a serving named %q on any node of the cluster "+
		"(its process group in scope %q is empty); make sure it is started", ErrNoProc, name, scope.Name())
}

// serveStream runs a stream request from another node on the local
// serving name, handing each event to send as a reply item ({batch,
// Value, Metadata} after the serving's distributed postprocessing, or
// {hook, Name, Value}), and returns the final item: {ok, Count} or an
// error.
func (ep *endpoint) serveStream(ctx context.Context, name string, in etf.Term, local bool, send func(etf.Tuple)) etf.Tuple {
	e, input, fail := ep.served(name, in, local)
	if fail != nil {
		return fail
	}
	n := 0
	var sendErr error
	err := e.stream(ctx, input, callOptions{}, func(ev StreamEvent) bool {
		item, err := eventItem(e.serving, name, ev)
		if err != nil {
			sendErr = err
			return false
		}
		send(item)
		n++
		return true
	})
	if sendErr != nil {
		err = sendErr
	}
	if err != nil {
		return replyError(err)
	}
	return etf.Tuple{atomOK, int64(n)}
}

// eventItem encodes one event for the wire.
func eventItem(s *Serving, name string, ev StreamEvent) (etf.Tuple, error) {
	if ev.Hook != "" {
		v, err := wire.Marshal(ev.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: the value of hook %q of serving %q: %v", ErrWire, ev.Hook, name, err)
		}
		return etf.Tuple{atomHook, etf.Atom(ev.Hook), v}, nil
	}
	res, err := distributedPostprocess(s, ev.Value)
	if err != nil {
		return nil, err
	}
	v, err := wire.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("%w: result of serving %q: %v", ErrWire, name, err)
	}
	meta, err := wire.Marshal(ev.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%w: metadata of serving %q: %v", ErrWire, name, err)
	}
	return etf.Tuple{atomBatch, v, meta}, nil
}

package serving

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// The endpoint protocol. Every message is a 3-tuple {Tag, FromEndpoint,
// Items} whose items are a list (never a bare top-level list: ergo's
// encoder loops forever on a top-level empty one):
//
//	{ergonx_run,    From, [{Id, ServingName, Input}]}   caller → serving node
//	{ergonx_stream, From, [{Id, ServingName, Input}]}   caller → serving node
//	{ergonx_cancel, From, [Id]}                          caller → serving node
//	{ergonx_reply,  From, [{Id, ok, Result} |            serving node → caller
//	                       {Id, batch, Value, Metadata} |
//	                       {Id, hook, HookName, Value} |
//	                       {Id, error, Kind, Message} |
//	                       {Id, error, overloaded, Message,
//	                        {Waiting, Rows, MaxQueue, RetryAfterNanos}}]}
//
// A stream request (Stream) is answered with its events as they are
// produced — batch and hook items, in order, Value and Metadata as wire
// binaries like results — then {Id, ok, Count}, Count being the number of
// events sent, so that the caller knows none was lost (ergo drops what
// reaches a full mailbox), or an error item. Items of one request travel
// in order: they leave through one outbox per destination node, and ergo
// keeps the order of messages between two processes.
//
// Ids are the caller endpoint's own 64-bit counter; names travel as atoms;
// inputs and results as binaries holding the wire codec's Nx term shape in
// external term format (wire.Marshal: term_to_binary of the Nx term), so
// that the costly encoding runs in the callers' goroutines rather than on
// ergo's one encoder goroutine per connection;
// Kind is an atom naming the error (see errorKind), Message a binary.
// Results travel as messages, never as exit reasons: ergo sends reasons as
// atoms of at most 255 characters and silently drops longer ones.
const (
	tagRun    = etf.Atom("ergonx_run")
	tagStream = etf.Atom("ergonx_stream")
	tagCancel = etf.Atom("ergonx_cancel")
	tagReply  = etf.Atom("ergonx_reply")
	atomOK    = etf.Atom("ok")
	atomError = etf.Atom("error")
	atomBatch = etf.Atom("batch")
	atomHook  = etf.Atom("hook")
)

// outbox queues items for one tag and destination node. The first item
// leaves at once (on a goroutine of its own); items queued while a send is
// in progress leave together in the next message.
type outbox struct {
	ep   *endpoint
	node string
	tag  etf.Atom

	mu      sync.Mutex // guards items and sending
	items   etf.List
	sending bool
}

type outboxKey struct {
	node string
	tag  etf.Atom
}

// outboxFor returns the outbox of tag to node.
func (ep *endpoint) outboxFor(node string, tag etf.Atom) *outbox {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	k := outboxKey{node, tag}
	o := ep.outboxes[k]
	if o == nil {
		o = &outbox{ep: ep, node: node, tag: tag}
		ep.outboxes[k] = o
	}
	return o
}

func (o *outbox) put(item etf.Term) {
	o.mu.Lock()
	o.items = append(o.items, item)
	start := !o.sending
	o.sending = true
	o.mu.Unlock()
	if start {
		go o.flush()
	}
}

func (o *outbox) flush() {
	for {
		// ergo's Send only queues the message for the connection's
		// encoder, so without this the loop would send each item as soon
		// as it arrives (2.2 items a message were measured at 256
		// callers). Yielding first lets the runnable callers (or
		// batches) queue theirs: under load a message carries tens of
		// items; when idle, Gosched returns at once and adds nothing.
		runtime.Gosched()
		o.mu.Lock()
		items := o.items
		o.items = nil
		if len(items) == 0 {
			o.sending = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		to := gen.ProcessID{Name: EndpointName, Node: o.node}
		if err := o.ep.proc.Send(to, etf.Tuple{o.tag, o.ep.self, items}); err != nil {
			o.ep.sendFailed(o.node, o.tag, items, err)
		}
	}
}

// sendFailed fails the callers of run items that could not be sent.
func (ep *endpoint) sendFailed(node string, tag etf.Atom, items etf.List, err error) {
	if tag != tagRun && tag != tagStream {
		return // a lost reply or cancel: the peer's callers see the node down
	}
	for _, it := range items {
		t, ok := it.(etf.Tuple)
		if !ok || len(t) != 3 {
			continue
		}
		if id, ok := toUint64(t[0]); ok {
			ep.answer(id, node, remoteReply{err: fmt.Errorf("%w: cannot reach node %s: %v", ErrNodeDown, node, err)})
		}
	}
}

// answer completes the pending call id, if it still waits for node. A
// reply from another node than the one the call went to is a stray, and
// so is one whose id matches no call: ids are random (newIDLocked), so a
// peer cannot guess another caller's.
func (ep *endpoint) answer(id uint64, node string, r remoteReply) {
	ep.mu.Lock()
	c := ep.pending[id]
	if c == nil || c.node != node {
		ep.mu.Unlock()
		return
	}
	if r.event != nil {
		// An event of a stream: the call goes on.
		ep.mu.Unlock()
		if c.stream != nil {
			c.stream.push(*r.event)
		}
		return
	}
	ep.removeLocked(id, c)
	ep.mu.Unlock()
	if c.stream != nil {
		c.stream.finish(r)
		return
	}
	c.reply <- r
}

// call sends a request for serving name to node's endpoint and waits for
// the answer or ctx. The input is already in wire form. A caller that
// gives up tells the serving node, which takes its rows out if they have
// not run.
func (ep *endpoint) call(ctx context.Context, node, name string, input []byte) (etf.Term, error) {
	c := &remoteCall{node: node, reply: make(chan remoteReply, 1)}
	id, err := ep.send(c, tagRun, name, input)
	if err != nil {
		return nil, err
	}
	select {
	case r := <-c.reply:
		return r.result, r.err
	case <-ctx.Done():
		ep.abandon(id, c)
		return nil, ctx.Err()
	}
}

// send records c as pending and sends its request (tag tagRun or
// tagStream) to c.node.
func (ep *endpoint) send(c *remoteCall, tag etf.Atom, name string, input []byte) (uint64, error) {
	ep.mu.Lock()
	if ep.stopped {
		ep.mu.Unlock()
		return 0, fmt.Errorf("%w: node %s", ErrNoEndpoint, ep.node)
	}
	id := ep.addLocked(c)
	_, watched := ep.watching[c.node]
	ep.mu.Unlock()
	if !watched {
		ep.watch(c.node)
	}
	ep.outboxFor(c.node, tag).put(etf.Tuple{int64(id), etf.Atom(name), input})
	return id, nil
}

// abandon forgets call id (its caller gave up) and tells the serving node,
// which takes its rows out if they have not run.
func (ep *endpoint) abandon(id uint64, c *remoteCall) {
	ep.mu.Lock()
	waiting := ep.pending[id] == c
	if waiting {
		ep.removeLocked(id, c)
	}
	ep.mu.Unlock()
	if waiting {
		ep.outboxFor(c.node, tagCancel).put(int64(id))
	}
}

// addLocked records a pending call under a new id. ep.mu must be held.
func (ep *endpoint) addLocked(c *remoteCall) uint64 {
	id := ep.newIDLocked()
	ep.pending[id] = c
	ep.outstanding[c.node]++
	ep.watchHealthLocked(c.node, time.Now())
	return id
}

// removeLocked forgets pending call id. ep.mu must be held.
func (ep *endpoint) removeLocked(id uint64, c *remoteCall) {
	delete(ep.pending, id)
	if ep.outstanding[c.node]--; ep.outstanding[c.node] <= 0 {
		delete(ep.outstanding, c.node)
		if h := ep.health[c.node]; h != nil && !h.ejected {
			delete(ep.health, c.node) // nothing waits on it: stop watching
		}
	}
}

// newIDLocked returns a request id no pending call has: 63 random bits
// (ids travel as non-negative integers), from a generator seeded by the
// operating system's. ep.mu must be held.
func (ep *endpoint) newIDLocked() uint64 {
	for {
		id := ep.ids.Uint64() >> 1
		if _, taken := ep.pending[id]; id != 0 && !taken {
			return id
		}
	}
}

// watch monitors the endpoint of node: its DOWN (the node died or
// disconnected, or its endpoint stopped) fails every call waiting on it.
// It runs before the caller's request leaves. The monitor is set up
// outside ep.mu (ergo may dial the node), so its DOWN can overtake the
// recording of its reference: such a DOWN waits in ep.early.
func (ep *endpoint) watch(node string) {
	ref := ep.proc.MonitorProcess(gen.ProcessID{Name: EndpointName, Node: node})
	ep.mu.Lock()
	if _, ok := ep.watching[node]; ok {
		ep.mu.Unlock()
		ep.proc.DemonitorProcess(ref) // another caller won the race
		return
	}
	ep.watching[node] = ref
	down, early := ep.early[ref]
	delete(ep.early, ref)
	ep.mu.Unlock()
	if early {
		ep.peerDown(down)
	}
}

// peerDown fails the calls waiting on a peer whose endpoint went away, if
// m is the DOWN of our monitor of that endpoint.
func (ep *endpoint) peerDown(m gen.MessageDown) {
	node := m.ProcessID.Node
	if m.ProcessID.Name != EndpointName || node == "" {
		return // not a monitor of ours: we monitor endpoints by name
	}
	ep.mu.Lock()
	ref, ok := ep.watching[node]
	if !ok || ref != m.Ref {
		if !ok {
			ep.keepEarlyLocked(m)
		}
		ep.mu.Unlock()
		return
	}
	ep.mu.Unlock()
	var err error
	if m.Reason == "noproc" {
		// The node runs no serving endpoint: as good as no serving there.
		err = fmt.Errorf("%w: node %s runs no serving endpoint", ErrNoProc, node)
	} else {
		err = fmt.Errorf("%w: node %s (%s)", ErrNodeDown, node, m.Reason)
	}
	ep.mu.Lock()
	if ep.watching[node] != m.Ref {
		ep.mu.Unlock()
		return // another DOWN of the same monitor got here first
	}
	delete(ep.watching, node)
	delete(ep.health, node)
	failed := ep.takeNodeLocked(node)
	ep.mu.Unlock()
	for _, c := range failed {
		c.fail(err)
	}
}

// takeNodeLocked removes and returns every pending call to node. ep.mu
// must be held.
func (ep *endpoint) takeNodeLocked(node string) []*remoteCall {
	var taken []*remoteCall
	for id, c := range ep.pending {
		if c.node == node {
			taken = append(taken, c)
			ep.removeLocked(id, c)
		}
	}
	return taken
}

// keepEarlyLocked keeps a DOWN whose monitor's reference is not recorded
// yet. ep.mu must be held.
func (ep *endpoint) keepEarlyLocked(m gen.MessageDown) {
	const most = 1024
	if _, ok := ep.early[m.Ref]; ok {
		return
	}
	if len(ep.earlyRefs) == most {
		delete(ep.early, ep.earlyRefs[0])
		ep.earlyRefs = ep.earlyRefs[1:]
	}
	ep.early[m.Ref] = m
	ep.earlyRefs = append(ep.earlyRefs, m.Ref)
}

// handle dispatches one protocol message.
func (ep *endpoint) handle(m etf.Tuple) error {
	if len(m) != 3 {
		return fmt.Errorf("a %d-tuple is not an endpoint message", len(m))
	}
	tag, _ := m[0].(etf.Atom)
	from, ok := m[1].(etf.Pid)
	if !ok {
		return fmt.Errorf("%s: sender is %T, not a pid", tag, m[1])
	}
	items, ok := m[2].(etf.List)
	if !ok {
		return fmt.Errorf("%s: items are %T, not a list", tag, m[2])
	}
	ep.mu.Lock()
	ep.heardLocked(string(from.Node), time.Now())
	ep.mu.Unlock()
	switch tag {
	case tagRun, tagStream:
		for _, it := range items {
			if err := ep.startRun(from, it, tag == tagStream); err != nil {
				return err
			}
		}
	case tagCancel:
		for _, it := range items {
			id, ok := toUint64(it)
			if !ok {
				return fmt.Errorf("cancel: id is %T", it)
			}
			ep.mu.Lock()
			cancel := ep.running[runKey{from, id}]
			ep.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	case tagReply:
		for _, it := range items {
			id, r, err := parseReply(it, string(from.Node))
			if err != nil {
				return err
			}
			ep.answer(id, string(from.Node), r)
		}
	default:
		return fmt.Errorf("unknown tag %s", describeTerm(m[0], logTermBytes))
	}
	return nil
}

// startRun starts serving one request from another node (streamed to
// the caller with stream).
func (ep *endpoint) startRun(from etf.Pid, it etf.Term, stream bool) error {
	t, ok := it.(etf.Tuple)
	if !ok || len(t) != 3 {
		return fmt.Errorf("run: item is %T, not {Id, Name, Input}", it)
	}
	id, ok := toUint64(t[0])
	if !ok {
		return fmt.Errorf("run: id is %T", t[0])
	}
	name, ok := t[1].(etf.Atom)
	if !ok {
		return fmt.Errorf("run: serving name is %T, not an atom", t[1])
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := runKey{from, id}
	ep.mu.Lock()
	if ep.stopped {
		ep.mu.Unlock()
		cancel()
		return nil
	}
	ep.running[k] = cancel
	ep.mu.Unlock()
	go func() {
		local := from.Node == etf.Atom(ep.node)
		var reply etf.Tuple
		if stream {
			out := ep.outboxFor(string(from.Node), tagReply)
			reply = ep.serveStream(ctx, string(name), t[2], local, func(item etf.Tuple) {
				out.put(append(etf.Tuple{int64(id)}, item...))
			})
		} else {
			reply = ep.serve(ctx, string(name), t[2], local)
		}
		ep.mu.Lock()
		delete(ep.running, k)
		ep.mu.Unlock()
		cancel()
		ep.outboxFor(string(from.Node), tagReply).put(append(etf.Tuple{int64(id)}, reply...))
	}()
	return nil
}

// toUint64 reads an id: ergo decodes small integers as int, larger as
// int64 (or *big.Int, which no id of ours reaches).
func toUint64(t etf.Term) (uint64, bool) {
	switch v := t.(type) {
	case int:
		return uint64(v), v >= 0
	case int64:
		return uint64(v), v >= 0
	case uint64:
		return v, true
	case int32:
		return uint64(v), v >= 0
	case uint32:
		return uint64(v), true
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	}
	return 0, false
}

// errorKind names err on the wire, so that the caller's node can give its
// caller an error it can test with errors.Is.
func errorKind(err error) etf.Atom {
	var down *DownError
	switch {
	case errors.Is(err, ErrNoProc):
		return "noproc"
	case errors.As(err, &down):
		return "down"
	case errors.Is(err, ErrShutdownTimeout):
		return "shutdown_timeout"
	case errors.Is(err, ErrNotBatch):
		return "not_batch"
	case errors.Is(err, ErrEmptyBatch):
		return "empty_batch"
	case errors.Is(err, ErrBatchKey):
		return "batch_key"
	case errors.Is(err, ErrInputStream):
		return "input_stream"
	case errors.Is(err, ErrBatchTooLarge):
		return "batch_too_large"
	case errors.Is(err, ErrStreamingHooks):
		return "streaming_hooks"
	case errors.Is(err, ErrWire):
		return "wire"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrOverloaded):
		return "overloaded"
	}
	var ce *CallbackError
	if errors.As(err, &ce) {
		return "callback"
	}
	return "error"
}

// kindSentinels maps wire error kinds to the errors they stand for.
var kindSentinels = map[etf.Atom]error{
	"noproc":           ErrNoProc,
	"shutdown_timeout": ErrShutdownTimeout,
	"not_batch":        ErrNotBatch,
	"empty_batch":      ErrEmptyBatch,
	"batch_key":        ErrBatchKey,
	"input_stream":     ErrInputStream,
	"batch_too_large":  ErrBatchTooLarge,
	"streaming_hooks":  ErrStreamingHooks,
	"wire":             ErrWire,
	"canceled":         context.Canceled,
	"overloaded":       ErrOverloaded,
}

// RemoteError is an error that happened on the node that served a
// distributed call. Kind names it (noproc, down, not_batch, callback...);
// errors.Is matches the sentinel the kind stands for (ErrNoProc,
// ErrEmptyBatch...). A failed batch comes as a *DownError whose Reason is a
// RemoteError.
type RemoteError struct {
	Node    string
	Kind    string
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("on node %s: %s", e.Node, e.Message)
}

// Is matches the sentinel of the error's kind.
func (e *RemoteError) Is(target error) bool {
	s, ok := kindSentinels[etf.Atom(e.Kind)]
	return ok && s == target
}

// remoteErr rebuilds a caller-side error from a reply.
func remoteErr(node, serving string, kind etf.Atom, msg string) error {
	re := &RemoteError{Node: node, Kind: string(kind), Message: msg}
	if kind == "down" {
		return &DownError{Serving: serving, Reason: re}
	}
	return re
}

// parseReply reads one reply item.
func parseReply(it etf.Term, node string) (uint64, remoteReply, error) {
	t, ok := it.(etf.Tuple)
	if !ok || len(t) < 3 {
		return 0, remoteReply{}, fmt.Errorf("reply: item is %T, not {Id, ok|error, ...}", it)
	}
	id, ok := toUint64(t[0])
	if !ok {
		return 0, remoteReply{}, fmt.Errorf("reply: id is %T", t[0])
	}
	switch t[1] {
	case atomOK:
		return id, remoteReply{result: t[2]}, nil
	case atomBatch, atomHook:
		if len(t) != 4 {
			return 0, remoteReply{}, fmt.Errorf("reply: %s event is a %d-tuple", t[1], len(t))
		}
		ev := &wireEvent{}
		if t[1] == atomHook {
			name, ok := t[2].(etf.Atom)
			value, ok2 := t[3].([]byte)
			if !ok || !ok2 || name == "" {
				return 0, remoteReply{}, fmt.Errorf("reply: hook event is not {Id, hook, Name, Value}")
			}
			ev.hook, ev.value = string(name), value
		} else {
			value, ok := t[2].([]byte)
			meta, ok2 := t[3].([]byte)
			if !ok || !ok2 {
				return 0, remoteReply{}, fmt.Errorf("reply: batch event is not {Id, batch, Value, Metadata}")
			}
			ev.value, ev.meta = value, meta
		}
		return id, remoteReply{event: ev}, nil
	case atomError:
		kind, _ := t[2].(etf.Atom)
		switch {
		case kind == "overloaded" && len(t) == 5:
			if over, ok := overloadedFromReply(node, t[4]); ok {
				return id, remoteReply{err: over}, nil
			}
		case len(t) != 4:
			return 0, remoteReply{}, fmt.Errorf("reply: error is a %d-tuple", len(t))
		}
		return id, remoteReply{err: remoteErr(node, "", kind, termString(t[3]))}, nil
	}
	return 0, remoteReply{}, fmt.Errorf("reply: status is %s", describeTerm(t[1], logTermBytes))
}

// overloadedFromReply rebuilds a remote serving's *OverloadedError.
func overloadedFromReply(node string, t etf.Term) (*OverloadedError, bool) {
	f, ok := t.(etf.Tuple)
	if !ok || len(f) != 4 {
		return nil, false
	}
	var n [4]uint64
	for i := range n {
		if n[i], ok = toUint64(f[i]); !ok {
			return nil, false
		}
	}
	return &OverloadedError{Node: node, Waiting: int(n[0]), Rows: int(n[1]), MaxQueue: int(n[2]),
		RetryAfter: time.Duration(n[3])}, true
}

// termString reads a message that arrived as a binary or a charlist.
func termString(t etf.Term) string {
	switch v := t.(type) {
	case []byte:
		return string(v)
	case string:
		return v
	}
	return fmt.Sprint(t)
}

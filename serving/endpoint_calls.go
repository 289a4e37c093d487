package serving

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

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
	k := outboxKey{node, tag}
	ep.outMu.RLock()
	o := ep.outboxes[k]
	ep.outMu.RUnlock()
	if o != nil {
		return o
	}
	ep.outMu.Lock()
	defer ep.outMu.Unlock()
	o = ep.outboxes[k]
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
	ep.outstanding[c.node] += c.weight()
	ep.watchHealthLocked(c.node)
	return id
}

// removeLocked forgets pending call id. ep.mu must be held.
func (ep *endpoint) removeLocked(id uint64, c *remoteCall) {
	delete(ep.pending, id)
	if ep.outstanding[c.node] -= c.weight(); ep.outstanding[c.node] <= 0 {
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

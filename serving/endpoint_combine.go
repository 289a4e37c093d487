package serving

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/cowmap"
)

// Row combining. The calls that goroutines of one node make at the same
// time to one serving on another ergonx node leave as one request: their
// batches are merged, encoded once, sent as one item, run on the serving
// node as one request of all their rows, and the result, decoded once,
// is cut into each caller's rows here. Without it every call costs both
// nodes an encoding, a decoding, a protocol item, a request and a reply
// of its own (measured: 48 allocations and ~13 µs of CPU per call at 256
// callers, a quarter of the local rate); with it those costs are paid
// once per few tens of calls.
//
// Only rows whose meaning does not depend on the request they travel in
// are combined: the serving must have no client preprocessing or
// postprocessing, no distributed postprocessing and no streaming (hooks
// see batches, callbacks see requests). Such a serving says so by joining
// rowsGroup(name) besides its own group; callers combine only towards
// nodes where it is a member of both, so an older node, or a serving with
// callbacks, gets one request per call as before. Inputs with padding,
// input streams and streaming calls are never combined.
//
// What a caller sees is what an uncombined call returns: its own rows,
// or the error of the request that carried them. Two differences remain,
// both within what batching already does: rows combined with others share
// their request's fate on the serving node (an overloaded queue refuses
// them together, as a failing batch fails all its callers), and a caller
// that gives up returns at once but takes its rows out only if they have
// not left, or if every caller of their request gave up (the request is
// then cancelled as a lone call is). The serving node counts one request
// per combined request.

// rowsGroupPrefix starts the name of the process group that marks a
// serving whose requests may carry several callers' rows.
const rowsGroupPrefix = "ergonx.rows:"

// rowsGroup is the marker group of serving name. The names callers ask
// for are kept, so that a call does not build one.
func rowsGroup(name string) string {
	return rowsGroups.GetOrPut(name, maxRowsGroupNames, func() string { return rowsGroupPrefix + name })
}

// rowsGroups caches rowsGroup's names, up to maxRowsGroupNames.
var rowsGroups cowmap.Map[string, string]

const maxRowsGroupNames = 1024

// maxCombinedRows bounds the rows of one combined request (and so the
// size of its message); the serving node splits a request larger than
// its batch size over batches, as it would any other.
const maxCombinedRows = 1024

// rowwise reports whether the serving's requests may carry the rows of
// several callers: nothing between the caller and the batch sees a
// request as a whole.
func (s *Serving) rowwise() bool {
	return s.pre == nil && s.streamPre == nil && s.post == nil && s.distPost == nil && !s.streaming && len(s.hooks) == 0
}

// combinableInput returns input as a batch if its rows may travel with
// other callers' rows.
func combinableInput(input any) (*batch.Batch, bool) {
	b, ok := input.(*batch.Batch)
	if !ok || b == nil || b.Size() == 0 || b.Padding() != 0 || b.Size() > maxCombinedRows {
		return nil, false
	}
	return b, true
}

// combines reports whether calls to serving name on node may be combined.
func combines(scope *pg.Scope, name, node string) bool {
	return scope.HasMemberOn(rowsGroup(name), node)
}

// combiner gathers the calls to one serving on one node. The first call
// while no flush runs starts one; calls that arrive while it yields or
// sends leave together in its next round.
type combiner struct {
	ep   *endpoint
	node string
	name string

	mu       sync.Mutex // guards queue and flushing
	queue    []*combinedPart
	flushing bool
}

// combinedPart is one caller's rows in a combined request.
type combinedPart struct {
	b    *batch.Batch
	done chan combinedResult // capacity 1: the answer never blocks

	// Guarded by the combiner's mu: gaveUp is set when the caller's
	// context ends first; req once the part has left.
	gaveUp bool
	req    *combinedRequest
}

// combinedRequest is one request sent with the rows of several calls.
type combinedRequest struct {
	id   uint64
	call *remoteCall
	// waiting counts its callers still waiting (guarded by the
	// combiner's mu); when the last gives up, the request is abandoned:
	// the serving node takes its rows out if they have not run, as it
	// does for a call of its own.
	waiting int
	// abandoned is closed then: nothing answers the call any more.
	abandoned chan struct{}
}

type combinedResult struct {
	rows any
	err  error
}

type combinerKey struct{ node, name string }

// combinerFor returns the combiner of calls to serving name on node. The
// combiners are read without a lock (every call reads them; one is added
// per serving and node called).
func (ep *endpoint) combinerFor(node, name string) *combiner {
	return ep.combiners.GetOrPut(combinerKey{node, name}, math.MaxInt, func() *combiner {
		return &combiner{ep: ep, node: node, name: name}
	})
}

// call runs b's rows on the serving, with whatever other calls are
// waiting to leave, and returns its rows of the result. A caller whose
// ctx ends returns at once: rows that have not left stay here; rows that
// left run with the others unless every caller of their request gave up.
func (cb *combiner) call(ctx context.Context, b *batch.Batch) (any, error) {
	p := partPool.Get().(*combinedPart)
	p.b = b
	cb.mu.Lock()
	cb.queue = append(cb.queue, p)
	start := !cb.flushing
	cb.flushing = true
	cb.mu.Unlock()
	if start {
		go cb.flush()
	}
	var r combinedResult
	if done := ctx.Done(); done == nil {
		r = <-p.done // a context that never ends: no select
	} else {
		select {
		case r = <-p.done:
		case <-done:
			cb.giveUp(p) // not pooled: its answer may still come
			return nil, ctx.Err()
		}
	}
	// Answered: nothing refers to p any more (the request's goroutine
	// is past it), so it is used again.
	*p = combinedPart{done: p.done}
	partPool.Put(p)
	return r.rows, r.err
}

// partPool recycles the parts, and their channels, of answered calls.
var partPool = sync.Pool{New: func() any { return &combinedPart{done: make(chan combinedResult, 1)} }}

// giveUp records that p's caller stopped waiting.
func (cb *combiner) giveUp(p *combinedPart) {
	cb.mu.Lock()
	p.gaveUp = true
	req := p.req
	last := req != nil && req.left()
	cb.mu.Unlock()
	if last {
		cb.abandon(req)
	}
}

// left counts one caller of r less and reports whether none waits. The
// combiner's mu must be held.
func (r *combinedRequest) left() bool {
	r.waiting--
	return r.waiting == 0
}

// abandon tells the serving node that nobody waits for r any more.
func (cb *combiner) abandon(r *combinedRequest) {
	close(r.abandoned)
	cb.ep.abandon(r.id, r.call)
}

// flush sends what the queue holds, round after round, until a round
// finds it empty.
func (cb *combiner) flush() {
	for {
		cb.yield()
		cb.mu.Lock()
		parts := slices.DeleteFunc(cb.queue, func(p *combinedPart) bool { return p.gaveUp })
		cb.queue = nil
		if len(parts) == 0 {
			cb.flushing = false
			cb.mu.Unlock()
			return
		}
		cb.mu.Unlock()
		for len(parts) > 0 {
			n := combinedRun(parts)
			cb.send(parts[:n])
			parts = parts[n:]
		}
	}
}

// yield is what a flush round does before it takes the queue: it
// yields, as the outbox does, so that the callers that are runnable
// queue their rows and leave in this round rather than one by one. When
// nothing else is runnable, Gosched returns at once. (Tests set the
// endpoint's holdRound to know which calls leave together.)
func (cb *combiner) yield() {
	if hold := cb.ep.holdRound; hold != nil {
		hold(cb)
		return
	}
	runtime.Gosched()
}

// queued is the number of calls waiting for the next round.
func (cb *combiner) queued() int {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return len(cb.queue)
}

// combinedRun counts the leading parts that can share one request: the
// first's batch key and template, at most maxCombinedRows rows.
func combinedRun(parts []*combinedPart) int {
	first := parts[0].b
	rows := first.Size()
	n := 1
	for ; n < len(parts); n++ {
		b := parts[n].b
		if b.Key() != first.Key() || rows+b.Size() > maxCombinedRows || !sameTemplate(first, b) {
			break
		}
		rows += b.Size()
	}
	return n
}

func sameTemplate(a, b *batch.Batch) bool {
	ta, tb := a.Template(), b.Template()
	return ta == tb || (ta != nil && tb != nil && ta.Equal(tb))
}

// send merges the parts' batches into one request and sends it; a
// goroutine of its own waits for the answer.
func (cb *combiner) send(parts []*combinedPart) {
	batches := make([]*batch.Batch, len(parts))
	for i, p := range parts {
		batches[i] = p.b
	}
	merged, err := batch.Merge(batches...)
	if err != nil { // cannot be: combinedRun checked keys and templates
		failParts(parts, fmt.Errorf("%w: input for serving %q: %v", ErrWire, cb.name, err))
		return
	}
	bin, err := encodeInput(cb.name, merged)
	if err != nil {
		failParts(parts, err)
		return
	}
	req := &combinedRequest{
		call:      &remoteCall{node: cb.node, reply: make(chan remoteReply, 1), callers: len(parts)},
		waiting:   len(parts),
		abandoned: make(chan struct{}),
	}
	id, err := cb.ep.send(req.call, tagRun, cb.name, bin)
	if err != nil {
		failParts(parts, err)
		return
	}
	// The parts whose callers gave up meanwhile are counted out now.
	cb.mu.Lock()
	req.id = id
	last := false
	for _, p := range parts {
		if p.gaveUp {
			last = req.left()
		} else {
			p.req = req
		}
	}
	cb.mu.Unlock()
	if last {
		cb.abandon(req)
		return
	}
	go cb.await(req, parts, merged.Size())
}

// await hands each part its rows of the combined request's result, or
// the request's error.
func (cb *combiner) await(req *combinedRequest, parts []*combinedPart, rows int) {
	var r remoteReply
	select {
	case r = <-req.call.reply: // the endpoint answers or fails every call it sent
	case <-req.abandoned:
		return
	}
	if r.err != nil {
		var down *DownError
		if errors.As(r.err, &down) && down.Serving == "" {
			// Named here, once, before the callers share the error: they
			// only read it.
			down.Serving = cb.name
		}
		failParts(parts, r.err)
		return
	}
	out, err := decodeResult(cb.name, cb.node, r.result)
	if err != nil {
		failParts(parts, err)
		return
	}
	sl, err := batch.NewSlicer(out)
	if err == nil && sl.Len() != rows {
		err = fmt.Errorf("%d rows for a request of %d", sl.Len(), rows)
	}
	if err != nil {
		failParts(parts, fmt.Errorf("%w: result of serving %q from node %s: %v", ErrWire, cb.name, cb.node, err))
		return
	}
	sl.EachRows(len(parts), func(i int) int { return parts[i].b.Size() }, func(i int, rows any, err error) {
		parts[i].done <- combinedResult{rows: rows, err: err}
	})
}

func failParts(parts []*combinedPart, err error) {
	for _, p := range parts {
		p.done <- combinedResult{err: err}
	}
}

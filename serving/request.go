package serving

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ergonx/ergonx/batch"
)

// request is one caller's BatchedRun on the serving's node. The engine
// owns its place in the stack and queue; partition workers deliver its
// pieces; the caller waits on done.
type request struct {
	id   uint64 // our own counter: ergo refs repeat every 262,144
	size int    // rows

	// gen counts the request's uses (requests are pooled): parts carry
	// the generation they were stacked with, and a delivery or failure for
	// an earlier generation is dropped. Changed under mu.
	gen uint64

	// done receives one token, once, when every row has been delivered
	// or the request failed or was cancelled; the caller, the only one to
	// wait on it, takes it (selecting on it together with ctx.Done()). A
	// token rather than a close, so that a pooled request keeps its
	// channel (see acquireRequest).
	done chan struct{}

	// answered, when set, counts the request as answered (the engine's
	// count) before done is closed, so that whoever sees done closed sees
	// the count too. Set once, under the engine's lock, before any
	// delivery.
	answered *atomic.Uint64

	// stream, for a caller that streams (Stream), queues its events in
	// order instead of collecting pieces; nil otherwise. Set before the
	// request is submitted.
	stream *streamState

	mu        sync.Mutex // guards the fields below
	finished  bool
	err       error
	remaining int     // rows not delivered yet
	pieces    []piece // delivered pieces, in delivery order
	one       [1]piece
}

// piece is the output of one execution that holds some of a request's
// rows: rows [start, start+size) of out are the request's rows [offset,
// offset+size).
type piece struct {
	out    *output
	start  int
	size   int
	offset int
	// rows, when set, are rows [start, start+size) of out, cut by the
	// task that delivered the piece (batch.Slicer.EachRows).
	rows any
}

// cut returns the piece's rows of its output.
func (p piece) cut() (any, error) {
	if p.rows != nil {
		return p.rows, nil
	}
	return p.out.slicer.Rows(p.start, p.size)
}

// output is one execution's result, shared by all its callers.
type output struct {
	value    any
	metadata any
	slicer   *batch.Slicer
}

func newRequest(size int) *request {
	return &request{size: size, remaining: size, done: make(chan struct{}, 1)}
}

// requestPool recycles the requests of BatchedRun's callers: a request
// and its channel are two of the allocations a call would otherwise make
// (measured: 8 per call before pooling, at 400,000 calls a second).
var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// acquireRequest returns a request of size rows, from the pool. Give it
// back with release once its answer is read, and only after a success:
// then every part of it was delivered and nothing in the serving will
// touch it again. A request that failed or was cancelled may still be
// referred to by a running task (which drops what it delivers to a
// finished request), so it is left to the garbage collector instead.
func acquireRequest(size int) *request {
	r := requestPool.Get().(*request)
	r.size, r.remaining = size, size
	return r
}

// release puts a successful request back in the pool, cleared: its
// pieces would otherwise keep their executions' outputs alive.
func (r *request) release() {
	r.mu.Lock()
	r.gen++
	r.mu.Unlock()
	r.id = 0
	r.answered = nil
	r.finished = false
	r.err = nil
	r.pieces = nil
	r.one = [1]piece{}
	requestPool.Put(r)
}

// isFinished reports whether r has been answered, without taking the
// token (for tests and statistics).
func (r *request) isFinished() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.finished
}

// streamState is what a streaming caller reads: its events, in order.
// Its slices are guarded by the request's mu.
type streamState struct {
	// notify is signalled after every change (capacity 1: a delivery
	// never blocks on the caller).
	notify chan struct{}
	events []event // ready for the caller, in order
	held   []piece // batch pieces that came before earlier rows
	next   int     // offset of the next row the caller gets
}

// event is one streamed item: a hook's rows or a batch piece.
type event struct {
	hook string // "" for a batch piece
	p    piece
}

func newStreamRequest(size int) *request {
	r := newRequest(size)
	r.stream = &streamState{notify: make(chan struct{}, 1)}
	return r
}

// signal wakes the streaming caller. r.mu must be held.
func (r *request) signal() {
	select {
	case r.stream.notify <- struct{}{}:
	default:
	}
}

// add queues a batch piece, holding it until the rows before it have
// been queued: pieces of a split request may finish out of order on
// several partitions, and a caller streams its rows in order.
func (s *streamState) add(p piece) {
	if p.offset != s.next {
		s.held = append(s.held, p)
		return
	}
	s.events = append(s.events, event{p: p})
	s.next += p.size
	for i := 0; i < len(s.held); {
		if h := s.held[i]; h.offset == s.next {
			s.events = append(s.events, event{p: h})
			s.next += h.size
			s.held = append(s.held[:i], s.held[i+1:]...)
			i = 0
			continue
		}
		i++
	}
}

// hook queues a hook's rows for a streaming request of generation gen;
// a finished request's are dropped.
func (r *request) hook(gen uint64, name string, p piece) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished || r.gen != gen {
		return
	}
	r.stream.events = append(r.stream.events, event{hook: name, p: p})
	r.signal()
}

// take returns the events queued since the last take, whether the
// request is over (every row delivered, or failed) and its error. The
// events come before the end: a failed request's earlier events are
// still the caller's.
func (r *request) take() (evs []event, finished bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs = r.stream.events
	r.stream.events = nil
	return evs, r.finished, r.err
}

// deliver records a piece of the request's generation gen; the last one
// completes the request, and deliver then reports true. Pieces of a
// finished request (failed or cancelled), or of an earlier use of a pooled
// one, are dropped.
func (r *request) deliver(gen uint64, p piece) bool {
	r.mu.Lock()
	if r.finished || r.gen != gen {
		r.mu.Unlock()
		return false
	}
	if r.stream != nil {
		r.stream.add(p)
		r.signal()
	} else {
		if r.pieces == nil {
			r.pieces = r.one[:0]
		}
		r.pieces = append(r.pieces, p)
	}
	r.remaining -= p.size
	if r.remaining > 0 {
		r.mu.Unlock()
		return false
	}
	r.finished = true
	if r.answered != nil {
		r.answered.Add(1)
	}
	r.mu.Unlock()
	// The token goes after mu is released: the caller it wakes may run
	// at once on the other core, and would otherwise find mu still held
	// when it releases the request. Nothing writes r after finished is
	// set but the caller.
	r.done <- struct{}{}
	return true
}

// complete counts the answer and wakes the caller. r.mu must be held.
// It runs once per request: the token never finds the channel full.
func (r *request) complete() {
	if r.answered != nil {
		r.answered.Add(1)
	}
	r.done <- struct{}{}
}

// fail completes r with err unless it is already complete, and reports
// whether it did.
func (r *request) fail(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failLocked(err)
}

// failPart is fail for the request of a part stacked at generation gen:
// a pooled request that has moved on is left alone.
func (r *request) failPart(gen uint64, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen != gen {
		return false
	}
	return r.failLocked(err)
}

func (r *request) failLocked(err error) bool {
	if r.finished {
		return false
	}
	r.finished = true
	r.err = err
	r.pieces = nil
	r.complete()
	if r.stream != nil {
		r.stream.held = nil
		r.signal()
	}
	return true
}

// result assembles the caller's rows once done is closed: one piece is
// sliced out of its execution's output; pieces of a split request are
// sliced and concatenated in row order. The metadata is the last piece's.
//
// It reads without r.mu: the caller calls it once it has taken the done
// token, which the completing goroutine sent after its last write (under
// mu), and a finished request's fields are never written again.
func (r *request) result() (out, metadata any, err error) {
	if r.err != nil {
		return nil, nil, r.err
	}
	if len(r.pieces) == 1 {
		p := r.pieces[0]
		out, err := p.cut()
		return out, p.out.metadata, err
	}
	slices.SortFunc(r.pieces, func(a, b piece) int { return a.offset - b.offset })
	parts := make([]any, len(r.pieces))
	for i, p := range r.pieces {
		if parts[i], err = p.cut(); err != nil {
			return nil, nil, err
		}
	}
	out, err = batch.ConcatRows(parts...)
	return out, r.pieces[len(r.pieces)-1].out.metadata, err
}

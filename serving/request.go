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

	// done is closed exactly once, when every row has been delivered or
	// the request failed or was cancelled. Waiting on a closed channel
	// lets the caller select on it together with ctx.Done().
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
}

// output is one execution's result, shared by all its callers.
type output struct {
	value    any
	metadata any
	slicer   *batch.Slicer
}

func newRequest(size int) *request {
	return &request{size: size, remaining: size, done: make(chan struct{})}
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

// hook queues a hook's rows for a streaming request; a finished
// request's are dropped.
func (r *request) hook(name string, p piece) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
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

// deliver records a piece; the last one completes the request, and
// deliver then reports true. Pieces of a finished request (failed or
// cancelled) are dropped.
func (r *request) deliver(p piece) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return false
	}
	if r.stream != nil {
		r.stream.add(p)
		defer r.signal()
	} else {
		if r.pieces == nil {
			r.pieces = r.one[:0]
		}
		r.pieces = append(r.pieces, p)
	}
	r.remaining -= p.size
	if r.remaining > 0 {
		return false
	}
	r.finished = true
	r.complete()
	return true
}

// complete counts the answer and wakes the caller. r.mu must be held.
func (r *request) complete() {
	if r.answered != nil {
		r.answered.Add(1)
	}
	close(r.done)
}

// fail completes r with err unless it is already complete, and reports
// whether it did.
func (r *request) fail(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
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
func (r *request) result() (out, metadata any, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, nil, r.err
	}
	if len(r.pieces) == 1 {
		p := r.pieces[0]
		out, err := p.out.slicer.Rows(p.start, p.size)
		return out, p.out.metadata, err
	}
	slices.SortFunc(r.pieces, func(a, b piece) int { return a.offset - b.offset })
	parts := make([]any, len(r.pieces))
	for i, p := range r.pieces {
		if parts[i], err = p.out.slicer.Rows(p.start, p.size); err != nil {
			return nil, nil, err
		}
	}
	out, err = batch.ConcatRows(parts...)
	return out, r.pieces[len(r.pieces)-1].out.metadata, err
}

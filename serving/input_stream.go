package serving

import (
	"context"
	"fmt"
	"iter"

	"github.com/ergonx/ergonx/batch"
)

// BatchStream is an input stream of batches (Nx v0.6.2's input
// streaming): the default client preprocessing takes one as input, as it
// takes a channel of batches (<-chan *batch.Batch or chan *batch.Batch,
// ending when it is closed), and ClientStreamPreprocessing returns one.
//
// Each batch of the stream is stacked in the serving as a request of its
// own, in order; each must hold between 1 and the serving's batch size
// rows (ErrInputStream, ErrBatchTooLarge). The caller pulls the next
// batch only while fewer than the window (InputWindow, default
// DefaultInputWindow) of its batches are in the serving or waiting to be
// read, so a slow consumer of the results slows the pulling of input.
// BatchedRun returns the outputs of every batch concatenated in order;
// Stream yields them batch by batch.
//
// A stream that yields an error or panics ends the call with an error
// matching ErrInputStream (and the stream's error, or a *PanicError); the
// rows of its batches already in the serving are taken out. The stream
// runs on a goroutine of its own, so that a caller whose context ends
// returns at once even while the stream blocks; that goroutine returns
// when the stream's next yield does (a stream that blocks forever keeps
// it, as it would keep any goroutine).
type BatchStream = iter.Seq2[*batch.Batch, error]

// DefaultInputWindow is how many batches of an input stream a caller has
// in a serving at most, unless InputWindow says otherwise.
const DefaultInputWindow = 2

// InputWindow sets how many batches of an input stream may be in the
// serving, or answered and not read yet, at once (n < 1 means 1).
func InputWindow(n int) CallOption {
	return func(o *callOptions) { o.window = int32(min(max(n, 1), 1<<30)) }
}

// source yields the batches of an input stream, one at a time, when the
// consumer asks. A channel is read directly; an iterator runs on a
// producer goroutine that pulls one batch per request, so that the
// consumer can select on it together with its context and its results.
type source struct {
	ch    <-chan *batch.Batch // a channel input, or nil
	items chan sourceItem     // from the producer of an iterator input
	want  chan struct{}       // capacity 1: asks the producer for one more
	stop  chan struct{}       // closed by close: the producer returns
	asked bool                // a want is pending
	done  bool                // closed
}

type sourceItem struct {
	b   *batch.Batch
	err error
	end bool
}

// streamOf returns a source for v if v is an input stream.
func streamOf(v any) (*source, bool) {
	switch x := v.(type) {
	case BatchStream:
		return iterSource(x), x != nil
	case func(func(*batch.Batch, error) bool):
		return iterSource(x), x != nil
	case <-chan *batch.Batch:
		return &source{ch: x}, x != nil
	case chan *batch.Batch:
		return &source{ch: x}, x != nil
	}
	return nil, false
}

// isStream reports whether v is an input stream.
func isStream(v any) bool {
	switch x := v.(type) {
	case BatchStream:
		return x != nil
	case func(func(*batch.Batch, error) bool):
		return x != nil
	case <-chan *batch.Batch:
		return x != nil
	case chan *batch.Batch:
		return x != nil
	}
	return false
}

func iterSource(seq BatchStream) *source {
	s := &source{items: make(chan sourceItem), want: make(chan struct{}, 1), stop: make(chan struct{})}
	go s.produce(seq)
	return s
}

// produce runs on the producer goroutine: it waits for a request, pulls
// one batch, hands it over, and so on; it returns when the stream ends or
// the consumer closes the source.
func (s *source) produce(seq BatchStream) {
	defer func() {
		if r := recover(); r != nil {
			s.send(sourceItem{err: fmt.Errorf("%w: %w", ErrInputStream, newPanicError(r))})
		}
	}()
	if !s.await() {
		return
	}
	for b, err := range seq {
		if err != nil {
			s.send(sourceItem{err: fmt.Errorf("%w: %w", ErrInputStream, err)})
			return
		}
		if !s.send(sourceItem{b: b}) || !s.await() {
			return
		}
	}
	s.send(sourceItem{end: true})
}

func (s *source) await() bool {
	select {
	case <-s.want:
		return true
	case <-s.stop:
		return false
	}
}

func (s *source) send(it sourceItem) bool {
	select {
	case s.items <- it:
		return true
	case <-s.stop:
		return false
	}
}

// channels returns the channels the consumer selects on for the next
// batch (one of them nil), asking the producer for it. With open false
// (the window is full) both are nil: nothing is pulled.
func (s *source) channels(open bool) (<-chan *batch.Batch, <-chan sourceItem) {
	if !open || s.done {
		return nil, nil
	}
	if s.ch != nil {
		return s.ch, nil
	}
	if !s.asked {
		s.asked = true
		s.want <- struct{}{} // never blocks: the producer took the last want
	}
	return nil, s.items
}

// received records that the item the consumer asked for arrived.
func (s *source) received() { s.asked = false }

// next pulls one batch, waiting at most until ctx ends.
func (s *source) next(ctx context.Context) sourceItem {
	ch, items := s.channels(true)
	select {
	case b, ok := <-ch:
		if !ok {
			return sourceItem{end: true}
		}
		return sourceItem{b: b}
	case it := <-items:
		s.received()
		return it
	case <-ctx.Done():
		return sourceItem{err: ctx.Err()}
	}
}

// close tells the producer to return (it does once the stream's current
// yield returns).
func (s *source) close() {
	if !s.done {
		s.done = true
		if s.stop != nil {
			close(s.stop)
		}
	}
}

// checkBatch validates one batch of an input stream: non-empty, at most
// limit rows (0: no limit).
func checkBatch(b *batch.Batch, limit int) error {
	switch {
	case b == nil:
		return fmt.Errorf("%w: it yielded a nil *batch.Batch", ErrInputStream)
	case b.Size() == 0:
		return fmt.Errorf("%w: it yielded an empty batch: %w", ErrInputStream, ErrEmptyBatch)
	case limit > 0 && b.Size() > limit:
		return fmt.Errorf("%w: %w: client preprocessing must return a stream of batches of at most %d rows, got %d",
			ErrInputStream, ErrBatchTooLarge, limit, b.Size())
	}
	return nil
}

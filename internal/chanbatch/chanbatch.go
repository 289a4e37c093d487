// Package chanbatch is the batcher a Go developer writes by hand in an
// afternoon, kept as the baseline that ergonx's serving is measured
// against (issue 14): one goroutine drains a channel of requests, runs
// the batched computation when batchSize rows have come or timeout has
// passed since the first, and answers each caller on its own reply
// channel with its row of the output.
//
// It has none of a serving's guarantees — no partitions, no cancellation
// of queued rows, no bound on the queue, no supervision, no failure
// isolation beyond the batch, no cluster — and is not meant for use; it
// exists so that benchmarks compare ergonx with what it replaces.
package chanbatch

import (
	"context"
	"errors"
	"time"

	"gorgonia.org/tensor"
)

// Func is the batched computation: rows stacked on axis 0 in, one output
// row per input row out (of any width).
type Func func(in *tensor.Dense) (*tensor.Dense, error)

// ErrClosed is returned by Call after Close.
var ErrClosed = errors.New("chanbatch: closed")

// Batcher batches rows of width floats.
type Batcher struct {
	fn        Func
	width     int
	batchSize int
	timeout   time.Duration
	requests  chan request
	done      chan struct{}
}

type request struct {
	row   []float32
	reply chan result
}

type result struct {
	row []float32
	err error
}

// New starts a batcher of rows of width floats.
func New(fn Func, width, batchSize int, timeout time.Duration) *Batcher {
	b := &Batcher{fn: fn, width: width, batchSize: batchSize, timeout: timeout,
		requests: make(chan request, 4*batchSize), done: make(chan struct{})}
	go b.loop()
	return b
}

// Call sends row and waits for its row of the output.
func (b *Batcher) Call(ctx context.Context, row []float32) ([]float32, error) {
	reply := make(chan result, 1)
	select {
	case <-b.done:
		return nil, ErrClosed
	default:
	}
	select {
	case b.requests <- request{row: row, reply: reply}:
	case <-b.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.row, r.err
	case <-b.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the batcher; requests not yet taken get ErrClosed.
func (b *Batcher) Close() { close(b.done) }

func (b *Batcher) loop() {
	pending := make([]request, 0, b.batchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-b.done:
			for _, r := range pending {
				r.reply <- result{err: ErrClosed}
			}
			return
		case r := <-b.requests:
			pending = append(pending, r)
			if len(pending) == 1 {
				timer.Reset(b.timeout)
			}
			if len(pending) < b.batchSize {
				continue
			}
			timer.Stop()
		case <-timer.C:
		}
		if len(pending) > 0 {
			b.run(pending)
			pending = pending[:0]
		}
	}
}

// run stacks the rows, computes, and hands each caller its row.
func (b *Batcher) run(pending []request) {
	data := make([]float32, 0, len(pending)*b.width)
	for _, r := range pending {
		data = append(data, r.row...)
	}
	out, err := b.fn(tensor.New(tensor.WithShape(len(pending), b.width), tensor.WithBacking(data)))
	if err != nil {
		for _, r := range pending {
			r.reply <- result{err: err}
		}
		return
	}
	rows := out.Data().([]float32)
	w := len(rows) / len(pending) // output rows may be narrower than input rows (a classifier's)
	for i, r := range pending {
		r.reply <- result{row: rows[i*w : (i+1)*w : (i+1)*w]}
	}
}

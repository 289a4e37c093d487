// Package loadgen drives load against a call — an in-process serving or
// an HTTP endpoint — and measures it: a closed loop (a fixed number of
// callers, each calling again as soon as it has its answer) or an open
// loop (calls started at a fixed rate, whatever the answers do). It is
// what `ergonx demo` and `ergonx bench` are made of.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Call makes one request. i numbers the calls of a run from 0.
type Call func(ctx context.Context, i int) error

// Options configure a run. Exactly one of Requests and Duration bounds a
// closed loop; an open loop needs Rate and Duration.
type Options struct {
	// Callers is the number of concurrent callers of a closed loop
	// (default 1), and the most calls an open loop keeps in flight
	// (default 10,000; calls due while that many are in flight are
	// counted as Dropped, not made).
	Callers int
	// Requests stops a closed loop after this many calls.
	Requests int
	// Duration stops a run after this long.
	Duration time.Duration
	// Rate makes an open loop: calls per second.
	Rate float64
	// Timeout bounds each call (0: none).
	Timeout time.Duration
	// Progress, if set, is called with the number of calls completed so
	// far, at most every 50 ms, from one goroutine.
	Progress func(done int)
}

// Report is what a run measured.
type Report struct {
	Requests int           // calls completed (with or without error)
	Errors   int           // calls that returned an error
	Dropped  int           // open loop: calls not started (too many in flight)
	Elapsed  time.Duration // wall time of the run
	// Latency holds every completed call's latency in microseconds.
	Latency *hdrhistogram.Histogram
	// FirstError is the first error seen, for the report.
	FirstError error
}

// Throughput returns completed calls per second.
func (r *Report) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile returns the latency at quantile q (0-100).
func (r *Report) Percentile(q float64) time.Duration {
	return time.Duration(r.Latency.ValueAtQuantile(q)) * time.Microsecond
}

// ErrOptions is returned for options that describe no run.
var ErrOptions = errors.New("loadgen: invalid options")

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
}

// Run runs the load described by o against call until it is done or ctx
// ends.
func Run(ctx context.Context, o Options, call Call) (*Report, error) {
	switch {
	case o.Rate < 0 || o.Requests < 0 || o.Duration < 0 || o.Callers < 0:
		return nil, fmt.Errorf("%w: negative values", ErrOptions)
	case o.Rate > 0 && o.Duration == 0:
		return nil, fmt.Errorf("%w: an open loop (Rate) needs a Duration", ErrOptions)
	case o.Rate == 0 && o.Requests == 0 && o.Duration == 0:
		return nil, fmt.Errorf("%w: give Requests or Duration", ErrOptions)
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	r := &run{opts: o, call: call}
	stopProgress := r.progress()
	begin := time.Now()
	if o.Rate > 0 {
		r.open(ctx)
	} else {
		r.closed(ctx)
	}
	rep := &Report{Elapsed: time.Since(begin), Latency: newHistogram()}
	stopProgress()
	for _, h := range r.hists {
		rep.Latency.Merge(h)
	}
	rep.Requests = int(r.done.Load())
	rep.Errors = int(r.errors.Load())
	rep.Dropped = int(r.dropped.Load())
	if e := r.firstErr.Load(); e != nil {
		rep.FirstError = *e
	}
	return rep, nil
}

type run struct {
	opts     Options
	call     Call
	next     atomic.Int64 // next call number
	done     atomic.Int64
	errors   atomic.Int64
	dropped  atomic.Int64
	firstErr atomic.Pointer[error]
	mu       sync.Mutex
	hists    []*hdrhistogram.Histogram // one per worker; merged at the end
}

func (r *run) histogram() *hdrhistogram.Histogram {
	h := newHistogram()
	r.mu.Lock()
	r.hists = append(r.hists, h)
	r.mu.Unlock()
	return h
}

// one makes call i and records it in h.
func (r *run) one(ctx context.Context, i int, h *hdrhistogram.Histogram) {
	cctx := ctx
	if r.opts.Timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
	}
	start := time.Now()
	err := r.call(cctx, i)
	if err != nil && ctx.Err() != nil {
		return // the run ended under this call: not a result
	}
	_ = h.RecordValue(max(time.Since(start).Microseconds(), 1))
	if err != nil {
		r.errors.Add(1)
		r.firstErr.CompareAndSwap(nil, &err)
	}
	r.done.Add(1)
}

// closed runs Callers workers, each calling until Requests are taken or
// ctx ends.
func (r *run) closed(ctx context.Context) {
	callers := max(r.opts.Callers, 1)
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		h := r.histogram()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(r.next.Add(1) - 1)
				if r.opts.Requests > 0 && i >= r.opts.Requests {
					return
				}
				r.one(ctx, i, h)
			}
		}()
	}
	wg.Wait()
}

// open starts calls at Rate per second until ctx ends, each in its own
// goroutine, at most Callers in flight.
func (r *run) open(ctx context.Context) {
	limit := r.opts.Callers
	if limit == 0 {
		limit = 10_000
	}
	slots := make(chan *hdrhistogram.Histogram, limit)
	for i := 0; i < limit; i++ {
		slots <- nil
	}
	interval := time.Duration(float64(time.Second) / r.opts.Rate)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := 0; ; i++ {
		due := begin.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case h := <-slots:
			if h == nil {
				h = r.histogram()
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r.one(ctx, i, h)
				slots <- h
			}(i)
		default:
			r.dropped.Add(1)
		}
	}
	wg.Wait()
}

// progress reports completions every 50 ms until the returned stop.
func (r *run) progress() (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				r.opts.Progress(int(r.done.Load()))
				return
			case <-t.C:
				r.opts.Progress(int(r.done.Load()))
			}
		}
	}()
	return func() { close(quit); <-finished }
}

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

// Report is what a run measured. Failed calls are counted apart: they
// never enter Throughput or Latency, so that a run whose calls fail fast
// does not look fast.
type Report struct {
	Requests int           // calls completed (with or without error)
	Errors   int           // calls that returned an error (included in Requests)
	Dropped  int           // open loop: calls not started (too many in flight)
	Elapsed  time.Duration // wall time of the run
	// Interrupted is true when the run's context ended before the run
	// did (a Ctrl-C): the report covers the calls completed until then.
	Interrupted bool
	// Latency holds every successful call's latency in microseconds.
	Latency *hdrhistogram.Histogram
	// ErrorLatency holds every failed call's latency in microseconds.
	ErrorLatency *hdrhistogram.Histogram
	// FirstError is the first error seen, for the report.
	FirstError error
	// ErrorCounts counts failed calls by error message: the first
	// MaxErrorKinds distinct messages, the rest under OtherErrors.
	ErrorCounts map[string]int
}

// MaxErrorKinds bounds Report.ErrorCounts.
const MaxErrorKinds = 8

// OtherErrors is the key of Report.ErrorCounts for the errors past the
// first MaxErrorKinds distinct messages.
const OtherErrors = "(other errors)"

// Succeeded returns the calls that completed without error.
func (r *Report) Succeeded() int { return r.Requests - r.Errors }

// Throughput returns successful calls per second.
func (r *Report) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Succeeded()) / r.Elapsed.Seconds()
}

// Percentile returns the latency of successful calls at quantile q
// (0-100); 0 when none succeeded.
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
	parent := ctx // its end is an interrupt; the Duration's is the run's own end
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	r := &run{opts: o, call: call, errorCounts: map[string]int{}}
	stopProgress := r.progress()
	begin := time.Now()
	if o.Rate > 0 {
		r.open(ctx)
	} else {
		r.closed(ctx)
	}
	rep := &Report{Elapsed: time.Since(begin), Latency: newHistogram(), ErrorLatency: newHistogram(),
		Interrupted: parent.Err() != nil}
	stopProgress()
	for _, h := range r.hists {
		rep.Latency.Merge(h.ok)
		if h.failed != nil {
			rep.ErrorLatency.Merge(h.failed)
		}
	}
	rep.ErrorCounts = r.errorCounts
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
	mu       sync.Mutex    // guards the fields below
	hists    []*histograms // at most maxHistograms, shared by workers; merged at the end
	nextHist int           // the next worker's share, once hists is full
	// errorCounts counts errors by message (see Report.ErrorCounts).
	errorCounts map[string]int
}

// histograms hold the latencies of some workers, successes and failures
// apart; failed is made at the first failure.
type histograms struct {
	mu         sync.Mutex // guards the histograms: workers may share them
	ok, failed *hdrhistogram.Histogram
}

// maxHistograms bounds the histograms of a run: each takes ~200 KB (3
// significant digits up to a minute), so one per worker cost 4,096
// callers some 1.7 GB, and the run measured its own cache misses (its
// rate at 4,096 callers fell to 0.59x of 256 callers' where the same
// serving under a harness without them keeps 1.06x). Workers beyond it
// share, each histogram behind its own lock.
const maxHistograms = 64

// histogram returns the histograms of the next worker.
func (r *run) histogram() *histograms {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.hists) < maxHistograms {
		h := &histograms{ok: newHistogram()}
		r.hists = append(r.hists, h)
		return h
	}
	h := r.hists[r.nextHist%len(r.hists)]
	r.nextHist++
	return h
}

// record adds one call's latency, in microseconds.
func (h *histograms) record(us int64, failed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !failed {
		_ = h.ok.RecordValue(us)
		return
	}
	if h.failed == nil {
		h.failed = newHistogram()
	}
	_ = h.failed.RecordValue(us)
}

// one makes call i and records it in h.
func (r *run) one(ctx context.Context, i int, h *histograms) {
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
	us := max(time.Since(start).Microseconds(), 1)
	h.record(us, err != nil)
	if err != nil {
		r.errors.Add(1)
		r.firstErr.CompareAndSwap(nil, &err)
		r.countError(err)
	}
	r.done.Add(1)
}

// countError counts err under its message.
func (r *run) countError(err error) {
	msg := err.Error()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.errorCounts[msg]; !ok && len(r.errorCounts) >= MaxErrorKinds {
		msg = OtherErrors
	}
	r.errorCounts[msg]++
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
	slots := make(chan *histograms, limit)
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

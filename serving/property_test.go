package serving

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// The property test drives an engine through random schedules — request
// sizes, batch sizes, partitions, timer firings (stale ones too), task
// successes and crashes, cancellations, and a shutdown at a random moment
// — from one goroutine, waiting for the engine after every step instead of
// sleeping, and then checks what every caller got against a simple model:
//
//   - every request is answered exactly once;
//   - an answer with rows has exactly the request's rows, doubled, in order;
//   - an error is one the schedule explains: Canceled only for a cancelled
//     request, ErrNoProc only once shutdown began, a DownError only if one
//     of the request's rows ran in a batch that crashed;
//   - a request that was not cancelled, not shut out and not crashed
//     succeeds;
//   - no batch is larger than the batch size, no row runs twice, a
//     cancelled request's rows never start after the cancellation;
//   - with a queue bound, the rows waiting never exceed it (unless one
//     request larger than the bound was admitted into an empty queue), and
//     a request is turned away with ErrOverloaded exactly when its rows
//     would pass the bound while others wait;
//   - with batch keys, no batch mixes keys, and every key's rows run;
//   - a streaming caller's batch events hold exactly its rows, doubled,
//     in order (a failed one's events are a prefix of them);
//   - with streaming hooks, a request is never split across batches,
//     one larger than the batch size is turned away with
//     ErrBatchTooLarge, and a streaming caller gets the hook's event
//     (its input rows) before each batch event;
//   - the machine's bookkeeping holds after every step (machine.check);
//   - at the end nobody waits and no partition is busy.

// propModule is executeSync with bookkeeping for the property test: each
// HandleBatch counts a dispatch, each execution announces its input rows
// and waits for the test.
type propModule struct {
	dispatched atomic.Int64
	executions chan execution
}

// Init keeps the partitions' options: their hook, when the schedule
// has hooks, is called with each execution's input.
func (*propModule) Init(_ Kind, _ any, partitions []compiler.Options) (any, error) {
	return partitions, nil
}

func (m *propModule) HandleBatch(b *batch.Batch, partition int, state any) (ExecFunc, any, error) {
	m.dispatched.Add(1)
	hook := state.([]compiler.Options)[partition].Hook("h")
	return func() (any, any, error) {
		in, err := b.Materialize()
		if err != nil {
			return nil, nil, err
		}
		hook(in)
		x := execution{partition: partition, key: b.Key(), size: b.Size(), pad: b.Padding(), release: make(chan bool)}
		if x.size > 0 {
			x.input = floats(nopTB{}, in)[:x.size]
		}
		m.executions <- x
		if !<-x.release {
			panic(errOops)
		}
		out, err := times2(in)
		return out, "metadata", err
	}, state, nil
}

// nopTB lets floats run outside a test's goroutine without failing it.
type nopTB struct{ testing.TB }

func (nopTB) Helper() {}

// propRequest is the model's view of one request.
type propRequest struct {
	r         *request
	key       string
	stream    bool      // the caller streams
	values    []float32 // its input rows
	rejected  error     // submit failed
	cancelled bool      // cancelled by the schedule before it was answered
	shutOut   bool      // shutdown began before it was answered
	crashed   bool      // one of its rows ran in a batch that crashed
}

// propRun is one schedule's state.
type propRun struct {
	t        *rapid.T
	e        *engine
	clock    *fakeClock
	mod      *propModule
	limit    int
	maxQueue int     // 0: no bound
	largest  int     // largest request admitted
	next     float32 // next row value; each row of the schedule is unique
	reqs     []*propRequest
	owner    map[float32]*propRequest
	started  []execution // announced and not released
	seen     int64       // announcements received
	ran      map[float32]bool
	freed    chan int
	shutdown chan struct{} // closed when engine.shutdown returned
	stopping bool
	keys     []string
	hooks    bool // the serving has a streaming hook: requests are never split
}

func TestPropertyEveryRequestGetsExactlyOneAnswer(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		p := &propRun{
			t:     rt,
			clock: newFakeClock(),
			mod:   &propModule{executions: make(chan execution, 256)},
			limit: rapid.IntRange(1, 6).Draw(rt, "batchSize"),
			next:  1,
			owner: map[float32]*propRequest{},
			ran:   map[float32]bool{},
			freed: make(chan int, 64),
		}
		partitions := rapid.IntRange(1, 3).Draw(rt, "partitions")
		p.maxQueue = rapid.IntRange(0, 2*p.limit+2).Draw(rt, "maxQueue")
		p.keys = []string{batch.DefaultKey, "k1", "k2"}[:rapid.IntRange(1, 3).Draw(rt, "keys")]
		p.hooks = rapid.IntRange(0, 3).Draw(rt, "hooks?") == 0
		parts := make([]compiler.Options, partitions)
		var router *hookRouter
		if p.hooks {
			router = newHookRouter(partitions)
			parts = router.withHooks(parts, []string{"h"})
		}
		p.e = newEngine(engineConfig{
			name: "prop", serving: NewModule(p.mod, nil), batchSize: p.limit,
			batchTimeout: time.Millisecond, shutdownTimeout: 10 * time.Second,
			partitions: parts, clock: p.clock, keys: p.keys, hooks: router,
		}, parts)
		p.e.testHookTaskDone = func(int) { p.freed <- 1 }
		p.e.maxQueue = p.maxQueue

		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			p.step(rapid.IntRange(0, 9).Draw(rt, "op"))
		}
		p.finish()
		p.check()
	})
}

func (p *propRun) step(op int) {
	switch {
	case op <= 3:
		p.submit(rapid.IntRange(1, 2*p.limit+1).Draw(p.t, "size"))
	case op == 4:
		p.clock.fire()
		p.settle()
	case op == 5:
		p.clock.fireStale()
		p.settle()
	case op <= 7 && len(p.started) > 0:
		k := rapid.IntRange(0, len(p.started)-1).Draw(p.t, "which")
		p.release(k, rapid.IntRange(0, 4).Draw(p.t, "crash?") > 0)
	case op == 8 && len(p.reqs) > 0:
		pr := p.reqs[rapid.IntRange(0, len(p.reqs)-1).Draw(p.t, "cancel")]
		if pr.r != nil && !isDone(pr.r) {
			pr.cancelled = true
			p.e.cancel(pr.r, context.Canceled)
			p.settle()
		}
	case op == 9 && !p.stopping && rapid.IntRange(0, 3).Draw(p.t, "shutdown?") == 0:
		p.stopping = true
		for _, pr := range p.reqs {
			if pr.r != nil && !isDone(pr.r) {
				pr.shutOut = true
			}
		}
		p.shutdown = make(chan struct{})
		go func() { p.e.shutdown(); close(p.shutdown) }()
		p.waitStopped()
	}
}

func isDone(r *request) bool { return r.isFinished() }

// waitStopped waits until the shutdown goroutine has marked the engine
// stopped, so that later steps see a stopping serving.
func (p *propRun) waitStopped() {
	deadline := time.Now().Add(10 * time.Second)
	for !p.e.stats().Stopped {
		if time.Now().After(deadline) {
			p.t.Fatal("engine not stopped within 10 s")
		}
		time.Sleep(50 * time.Microsecond) // polling a condition, bounded
	}
}

func (p *propRun) submit(size int) {
	values := make([]float32, size)
	for i := range values {
		values[i] = p.next
		p.next++
	}
	b, err := batch.Concatenate(row(values...))
	if err != nil {
		p.t.Fatal(err)
	}
	pr := &propRequest{values: values, key: p.keys[rapid.IntRange(0, len(p.keys)-1).Draw(p.t, "key")]}
	pr.stream = rapid.Bool().Draw(p.t, "stream?")
	b.SetKey(pr.key)
	for _, v := range values {
		p.owner[v] = pr
	}
	p.reqs = append(p.reqs, pr)
	before := p.waitingRows()
	r := newRequest(size)
	if pr.stream {
		r = newStreamRequest(size)
	}
	pr.r, pr.rejected = p.e.submitRequest(context.Background(), r, b, false, false)
	full := p.maxQueue > 0 && before > 0 && before+size > p.maxQueue
	tooLarge := p.hooks && size > p.limit
	switch {
	case tooLarge:
		if !errors.Is(pr.rejected, ErrBatchTooLarge) {
			p.t.Fatalf("%d rows with hooks and batch size %d: got %v, want ErrBatchTooLarge", size, p.limit, pr.rejected)
		}
	case pr.rejected == nil:
		if full {
			p.t.Fatalf("%d rows admitted with %d waiting and a bound of %d", size, before, p.maxQueue)
		}
		p.largest = max(p.largest, size)
	case errors.Is(pr.rejected, ErrOverloaded):
		if !full {
			p.t.Fatalf("%d rows turned away with %d waiting and a bound of %d: %v", size, before, p.maxQueue, pr.rejected)
		}
	case p.stopping && errors.Is(pr.rejected, ErrNoProc):
	default:
		p.t.Fatalf("submit of %d rows: %v", size, pr.rejected)
	}
	p.settle()
}

// waitingRows is the rows stacked and queued, checked against the bound.
func (p *propRun) waitingRows() int {
	st := p.e.stats()
	w := st.StackedRows + st.QueuedRows
	if p.maxQueue > 0 && w > max(p.maxQueue, p.largest) {
		p.t.Fatalf("%d rows wait with a bound of %d (largest request %d)", w, p.maxQueue, p.largest)
	}
	return w
}

// settle collects the announcements of every batch dispatched so far.
func (p *propRun) settle() {
	defer p.waitingRows()
	defer func() {
		p.e.mu.Lock()
		err := p.e.m.check()
		p.e.mu.Unlock()
		if err != nil {
			p.t.Fatalf("machine: %v", err)
		}
	}()
	for p.seen < p.mod.dispatched.Load() {
		select {
		case x := <-p.mod.executions:
			p.seen++
			p.observe(x)
		case <-time.After(10 * time.Second):
			p.t.Fatalf("a dispatched batch did not start within 10 s")
		}
	}
	// Batches dispatched in one step announce themselves from their own
	// goroutines in any order; order them by their rows so that a schedule
	// replays exactly (rapid shrinks failures by replaying).
	slices.SortFunc(p.started, func(a, b execution) int { return cmp.Compare(a.input[0], b.input[0]) })
}

// observe checks a batch when it starts.
func (p *propRun) observe(x execution) {
	if x.size < 1 || x.size > p.limit {
		p.t.Fatalf("batch of %d rows with batch size %d", x.size, p.limit)
	}
	inBatch := map[*propRequest]int{}
	for _, v := range x.input {
		if p.ran[v] {
			p.t.Fatalf("row %v ran twice", v)
		}
		p.ran[v] = true
		pr := p.owner[v]
		if pr.cancelled {
			p.t.Fatalf("row %v started after its request was cancelled", v)
		}
		if pr.key != x.key {
			p.t.Fatalf("row %v of key %q ran in a batch of key %q", v, pr.key, x.key)
		}
		inBatch[pr]++
	}
	if p.hooks {
		for pr, n := range inBatch {
			if n != len(pr.values) {
				p.t.Fatalf("with hooks, %d of a request's %d rows ran in one batch: it was split", n, len(pr.values))
			}
		}
	}
	p.started = append(p.started, x)
}

// release lets execution k finish (or crash) and waits until the engine
// has freed its partition and started whatever comes next.
func (p *propRun) release(k int, ok bool) {
	x := p.started[k]
	p.started = append(p.started[:k], p.started[k+1:]...)
	if !ok {
		for _, v := range x.input {
			p.owner[v].crashed = true
		}
	}
	x.release <- ok
	select {
	case <-p.freed:
	case <-time.After(10 * time.Second):
		p.t.Fatal("task did not finish within 10 s")
	}
	p.settle()
}

// finish lets everything run to its end: timers fire, batches succeed,
// and the serving stops.
func (p *propRun) finish() {
	for rounds := 0; ; rounds++ {
		if rounds > 1000 {
			p.t.Fatal("schedule does not finish")
		}
		if len(p.started) > 0 {
			p.release(0, true)
			continue
		}
		if p.clock.fire() > 0 {
			p.settle()
			continue
		}
		break
	}
	if !p.stopping {
		p.stopping = true
		p.shutdown = make(chan struct{})
		go func() { p.e.shutdown(); close(p.shutdown) }()
	}
	select {
	case <-p.shutdown:
	case <-time.After(10 * time.Second):
		p.t.Fatal("shutdown did not return within 10 s")
	}
}

func (p *propRun) check() {
	for i, pr := range p.reqs {
		if pr.r == nil {
			continue // turned away at submit (overloaded, or stopping): an answer already
		}
		if !isDone(pr.r) {
			p.t.Fatalf("request %d (%v) was never answered", i, pr.values)
		}
		var out any
		var err error
		if pr.stream {
			out, err = p.streamed(i, pr)
		} else {
			out, _, err = pr.r.result()
		}
		switch {
		case err == nil:
			got := floats(nopTB{}, out)
			if len(got) != len(pr.values) {
				p.t.Fatalf("request %d: %d rows, want %d", i, len(got), len(pr.values))
			}
			for j, v := range pr.values {
				if got[j] != 2*v {
					p.t.Fatalf("request %d: row %d = %v, want %v (got %v)", i, j, got[j], 2*v, got)
				}
			}
		case errors.Is(err, context.Canceled):
			if !pr.cancelled {
				p.t.Fatalf("request %d cancelled but the schedule never cancelled it", i)
			}
		case errors.Is(err, ErrNoProc):
			if !pr.shutOut {
				p.t.Fatalf("request %d got %v before any shutdown", i, err)
			}
		case errors.Is(err, errOops):
			if !pr.crashed {
				p.t.Fatalf("request %d got a crash but none of its rows crashed", i)
			}
		default:
			p.t.Fatalf("request %d: unexpected error %v", i, err)
		}
		if err != nil && !pr.cancelled && !pr.shutOut && !pr.crashed {
			p.t.Fatalf("request %d failed (%v) though nothing happened to it", i, err)
		}
	}
	st := p.e.stats()
	if st.Waiting != 0 || st.BusyPartitions != 0 {
		p.t.Fatalf("after the end: %d callers waiting, %d partitions busy", st.Waiting, st.BusyPartitions)
	}
}

// streamed checks a streaming request's events and returns its rows as
// one tensor (or its error): hook events (with hooks) hold its input rows
// and come right before each batch event; batch events hold its rows,
// doubled, in order, a prefix of them when it failed.
func (p *propRun) streamed(i int, pr *propRequest) (any, error) {
	evs, finished, err := pr.r.take()
	if !finished {
		p.t.Fatalf("request %d: stream not over", i)
	}
	var parts []any
	var got []float32
	pendingHook := false
	for _, e := range evs {
		rows, rerr := e.p.out.slicer.Rows(e.p.start, e.p.size)
		if rerr != nil {
			p.t.Fatalf("request %d: %v", i, rerr)
		}
		xs := floats(nopTB{}, rows)
		if e.hook != "" {
			if !p.hooks || e.hook != "h" || pendingHook {
				p.t.Fatalf("request %d: unexpected hook event %q", i, e.hook)
			}
			want := pr.values[len(got) : len(got)+len(xs)]
			if !slices.Equal(xs, want) {
				p.t.Fatalf("request %d: hook rows %v, want %v", i, xs, want)
			}
			pendingHook = true
			continue
		}
		if p.hooks && !pendingHook {
			p.t.Fatalf("request %d: batch event without its hook event", i)
		}
		pendingHook = false
		for j, v := range xs {
			if k := len(got) + j; k >= len(pr.values) || v != 2*pr.values[k] {
				p.t.Fatalf("request %d: batch event rows %v out of order (values %v, so far %v)", i, xs, pr.values, got)
			}
		}
		got = append(got, xs...)
		parts = append(parts, rows)
	}
	if err != nil {
		return nil, err
	}
	if len(got) != len(pr.values) {
		p.t.Fatalf("request %d: streamed %d rows of %d", i, len(got), len(pr.values))
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	out, cerr := batch.ConcatRows(parts...)
	if cerr != nil {
		p.t.Fatalf("request %d: %v", i, cerr)
	}
	return out, nil
}

package serving

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// taskRunner starts a task in a goroutine it watches (the serving's task
// supervisor). Go fails when the runner is stopping.
type taskRunner interface {
	Go(fn func()) error
}

// goRunner runs tasks on plain goroutines, for engines without a node.
type goRunner struct{}

func (goRunner) Go(fn func()) error {
	go fn()
	return nil
}

// engineConfig is everything an engine needs, resolved from Options.
type engineConfig struct {
	name            string
	serving         *Serving
	batchSize       int
	batchTimeout    time.Duration
	shutdownTimeout time.Duration
	partitions      []compiler.Options
	clock           Clock
	runner          taskRunner
}

// engine runs one serving: the state machine plus everything it needs
// done — the timer, HandleBatch, tasks on partitions, replies to callers.
// It is the heart of the serving process, kept apart from ergo so that it
// can be driven directly by tests.
//
// The engine is safe for concurrent use. Its callers never go through an
// ergo mailbox: a caller's goroutine stacks its request under mu (and, if
// that fills the batch, starts it on a partition), partition workers
// reply to callers directly and tell the engine their partition is free.
// mu is held only for bookkeeping, merging a batch, and HandleBatch (which
// therefore runs serialised, as it does in Nx's serving process).
type engine struct {
	engineConfig
	module     Module
	moduleName string
	waiting    atomic.Int64 // requests submitted and not yet answered

	mu       sync.Mutex // guards the fields below
	m        *machine
	state    any           // the module's state
	stopped  bool          // no more requests: the serving is stopping
	disarm   func() bool   // stops the armed timer
	running  map[int]*task // partition → running task
	nextID   uint64
	counters Counters
	idle     chan struct{} // closed when stopped and no task runs

	// testHookTaskDone, if set, is called (without mu) after a task's
	// partition has been freed. Tests use it to wait for the engine
	// instead of sleeping.
	testHookTaskDone func(partition int)
}

// task is a batch running on a partition.
type task struct {
	parts []part
	size  int
}

func newEngine(cfg engineConfig, state any) *engine {
	if cfg.clock == nil {
		cfg.clock = realClock{}
	}
	if cfg.runner == nil {
		cfg.runner = goRunner{}
	}
	return &engine{
		engineConfig: cfg,
		module:       cfg.serving.module,
		moduleName:   cfg.serving.moduleName(),
		m:            newMachine(cfg.batchSize, len(cfg.partitions)),
		state:        state,
		running:      map[int]*task{},
		idle:         make(chan struct{}),
	}
}

// submit stacks b for a caller and returns its request. It never waits for
// the execution: callers wait on the request's done channel.
func (e *engine) submit(b *batch.Batch) (*request, error) {
	if b.Key() != batch.DefaultKey {
		return nil, fmt.Errorf("%w: batch key %q: this serving has no batch keys; send batches with the default key", ErrBatchKey, b.Key())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil, e.noProc()
	}
	e.nextID++
	r := newRequest(e.nextID, b.Size(), &e.waiting)
	e.counters.Requests++
	e.m.push(r, b, e.clock.Now())
	e.performLocked()
	return r, nil
}

// noProc is the error of a request the stopping serving will not run.
func (e *engine) noProc() error {
	return fmt.Errorf("%w: serving %q is stopping or stopped", ErrNoProc, e.name)
}

// wait blocks until r is answered or ctx ends. A caller that gives up
// takes its rows out of the stack and queue; rows already running are
// dropped when they arrive.
func (e *engine) wait(ctx context.Context, r *request) (out, metadata any, err error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		e.cancel(r, ctx.Err())
		<-r.done
	}
	return r.result()
}

// cancel takes r out of the serving with err as its answer.
func (e *engine) cancel(r *request, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.fail(err) {
		e.counters.Cancelled++
		e.m.remove(r)
		e.performLocked()
	}
}

// performLocked carries out the machine's actions. e.mu must be held.
// Executing a batch can free its partition at once (HandleBatch failed),
// which produces more actions, hence the loop.
func (e *engine) performLocked() {
	for {
		acts := e.m.takeActions()
		if len(acts) == 0 {
			return
		}
		for _, a := range acts {
			switch a.kind {
			case actArm:
				gen := a.gen
				e.disarm = e.clock.AfterFunc(e.batchTimeout, func() { e.onTimeout(gen) })
			case actDisarm:
				if e.disarm != nil {
					e.disarm()
					e.disarm = nil
				}
			case actExecute:
				e.executeLocked(a.partition, a.batch)
			}
		}
	}
}

// onTimeout is the timer's callback.
func (e *engine) onTimeout(gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	e.m.timeout(gen)
	e.performLocked()
}

// executeLocked runs batch p on partition: merge, HandleBatch (on the
// serving, serialised by e.mu), then the returned function as a task.
// e.mu must be held.
func (e *engine) executeLocked(partition int, p pending) {
	batches := make([]*batch.Batch, len(p.parts))
	for i, q := range p.parts {
		batches[i] = q.b
	}
	merged, err := batch.Merge(batches...)
	if err != nil {
		// push keeps one template per batch; a failure here is a bug.
		err = fmt.Errorf("serving: internal error: merging a batch: %w", err)
	}
	var exec ExecFunc
	if err == nil {
		exec, e.state, err = callHandleBatch(e.module, merged, partition, e.state)
	}
	t := &task{parts: p.parts, size: p.count}
	stats := BatchStats{
		Serving:   e.name,
		Partition: partition,
		Size:      p.count,
		Requests:  len(p.parts),
		QueueWait: e.clock.Now().Sub(p.first()),
	}
	if merged != nil {
		stats.Padding = merged.Padding()
	}
	if err == nil {
		e.running[partition] = t
		err = e.runner.Go(func() { e.runTask(partition, t, exec, stats) })
		if err != nil {
			delete(e.running, partition)
			err = fmt.Errorf("%w: serving %q cannot start tasks: %v", ErrNoProc, e.name, err)
		}
	}
	if err != nil {
		// The batch never ran: fail its callers and free the partition.
		e.counters.Batches++
		e.counters.FailedBatches++
		e.failPartsLocked(t.parts, &DownError{Serving: e.name, Reason: err})
		e.m.taskDone(partition)
	}
}

// runTask runs on a partition worker: execute, reply to every caller of
// the batch, free the partition.
func (e *engine) runTask(partition int, t *task, exec ExecFunc, stats BatchStats) {
	sp := startSpan(Event{Name: ExecuteStart, Module: e.moduleName, Batch: &stats}, ExecuteStop, ExecuteException)
	start := e.clock.Now()
	value, meta, err := callExec(e.moduleName, exec)
	var out *output
	if err == nil {
		out, err = e.checkOutput(value, meta, t.size)
	}
	stats.Execution = e.clock.Now().Sub(start)
	sp.end(Event{Module: e.moduleName, Metadata: meta, Err: err, Batch: &stats})

	if err != nil {
		e.mu.Lock()
		e.failPartsLocked(t.parts, &DownError{Serving: e.name, Reason: err})
		e.mu.Unlock()
	} else {
		start := 0
		for _, p := range t.parts {
			n := p.b.Size()
			p.req.deliver(piece{out: out, start: start, size: n, offset: p.offset})
			start += n
		}
	}

	e.mu.Lock()
	e.counters.Batches++
	e.counters.Rows += uint64(t.size)
	if err != nil {
		e.counters.FailedBatches++
	}
	delete(e.running, partition)
	if !e.stopped {
		e.m.taskDone(partition)
		e.performLocked()
	}
	e.checkIdleLocked()
	hook := e.testHookTaskDone
	e.mu.Unlock()
	if hook != nil {
		hook(partition)
	}
}

// checkOutput makes sure every caller can take its rows from value.
func (e *engine) checkOutput(value, meta any, size int) (*output, error) {
	s, err := batch.NewSlicer(value)
	if err != nil {
		return nil, callbackErr(e.moduleName, "execute", fmt.Errorf("%w: output is not a container of tensors with a batch axis: %v", ErrBadCallback, err))
	}
	if s.Len() < size {
		return nil, callbackErr(e.moduleName, "execute", fmt.Errorf("%w: %d rows for a batch of %d; every output tensor must keep the batch on axis 0", ErrOutputRows, s.Len(), size))
	}
	return &output{value: value, metadata: meta, slicer: s}, nil
}

// failPartsLocked fails the requests of parts with err, and takes their
// other parts out of the stack and queue: a caller that got an error will
// not read them. e.mu must be held.
func (e *engine) failPartsLocked(parts []part, err error) {
	for _, p := range parts {
		if p.req.fail(err) {
			e.m.remove(p.req)
		}
	}
}

// checkIdleLocked closes idle once a stopped engine has no task left.
func (e *engine) checkIdleLocked() {
	if e.stopped && len(e.running) == 0 {
		select {
		case <-e.idle:
		default:
			close(e.idle)
		}
	}
}

// shutdown stops the serving the way Nx's terminate does: callers whose
// rows are queued or stacked get ErrNoProc at once; running tasks go on
// and their callers get results. It then waits for the running tasks, at
// most e.shutdownTimeout (negative: no bound); callers of tasks still running
// after that get ErrShutdownTimeout, and their tasks' results are dropped
// when they finish (a goroutine cannot be killed). shutdown is idempotent.
func (e *engine) shutdown() {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		reqs := e.m.drain()
		e.performLocked()
		for _, r := range reqs {
			r.fail(e.noProc())
		}
		e.checkIdleLocked()
	}
	e.mu.Unlock()

	if e.shutdownTimeout < 0 {
		<-e.idle
		return
	}
	timer := time.NewTimer(e.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-e.idle:
	case <-timer.C:
		e.mu.Lock()
		for _, t := range e.running {
			e.failPartsLocked(t.parts, fmt.Errorf("%w: serving %q stopped after waiting %v for its running batches", ErrShutdownTimeout, e.name, e.shutdownTimeout))
		}
		e.mu.Unlock()
	}
}

// stats returns a snapshot of the engine.
func (e *engine) stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{
		Name:           e.name,
		BatchSize:      e.batchSize,
		BatchTimeout:   e.batchTimeout,
		Partitions:     len(e.partitions),
		StackedRows:    e.m.stackedRows(),
		QueuedBatches:  e.m.queuedBatches(),
		QueuedRows:     e.m.queuedRows(),
		BusyPartitions: len(e.running),
		Waiting:        int(e.waiting.Load()),
		Stopped:        e.stopped,
		Counters:       e.counters,
	}
}

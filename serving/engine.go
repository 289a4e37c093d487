package serving

import (
	"context"
	"fmt"
	"slices"
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
	node            string // the node's name, for the registry
	name            string
	serving         *Serving
	batchSize       int
	batchTimeout    time.Duration
	shutdownTimeout time.Duration
	partitions      []compiler.Options
	clock           Clock
	runner          taskRunner
	// maxQueue bounds the rows waiting (stacked and queued, every key);
	// 0 or negative: no bound.
	maxQueue int
	// keys are the batch keys (nil: batch.DefaultKey alone).
	keys []string
	// hooks routes the hook calls of executions to their callers; nil
	// for servings without streaming hooks.
	hooks *hookRouter
	// cancelExecs ends the partitions' compiler.Options.Context once the
	// engine has shut down (nil: nothing to end).
	cancelExecs context.CancelFunc
}

// engine runs one serving: the state machine plus everything it needs
// done — the timer, HandleBatch, tasks on partitions, replies to callers.
// It is the heart of the serving process, kept apart from ergo so that it
// can be driven directly by tests.
//
// The engine is safe for concurrent use. Its callers never go through an
// ergo mailbox: a caller's goroutine stacks its own request, and if that
// fills the batch, starts the batch on a partition; partition workers
// reply to callers directly and hand their partition back.
//
// Two locks: mu guards the machine and the bookkeeping and is held for
// a few hundred nanoseconds at a time (hundreds of callers take it per
// millisecond; anything slower there makes them queue up behind it, which
// measured as half of a 2-core machine idle). The work a full batch needs
// (merging, HandleBatch, starting the task) happens after mu is released,
// under handleMu, which serialises HandleBatch and the module's state as
// Nx's serving process does.
type engine struct {
	engineConfig
	module     Module
	moduleName string

	handleMu sync.Mutex // serialises HandleBatch
	state    any        // the module's state; guarded by handleMu

	// keyIndex maps a batch key to its index in the machine; nil when the
	// serving has only one key (the common case: a string comparison).
	keyIndex map[string]int

	mu      sync.Mutex // guards the fields below
	m       *machine
	stopped bool          // no more requests: the serving is stopping
	disarm  []func() bool // stops each key's armed timer
	// tasks are the batches taken from the machine and not finished:
	// starting, computing, or replying to their callers after their
	// partition was freed. Shutdown waits for them.
	tasks     map[*task]struct{}
	computing int // tasks whose partition is not free yet
	nextID    uint64
	counters  Counters
	idle      chan struct{} // closed when stopped and no task is left
	// waiters are callers waiting for room in the queue (WaitWhenFull),
	// oldest first. While any waits, new callers do not overtake them.
	waiters []*admission
	// execEWMA is a moving average of batch execution times, for the
	// back-off an OverloadedError suggests.
	execEWMA time.Duration

	// answered counts requests answered (result or error); a request
	// counts itself before it wakes its caller (see request.answered).
	answered atomic.Uint64

	// onStop, if set before the engine serves, runs once when the engine
	// starts to stop (the serving leaves its process group).
	onStop func()

	// testHookTaskDone, if set, is called (without mu) after a task has
	// freed its partition and replied to its callers.
	testHookTaskDone func(partition int)
}

// task is a batch taken from the machine to run on a partition.
type task struct {
	partition int
	parts     []part
	size      int
	since     time.Time // when its first rows were stacked
}

func newEngine(cfg engineConfig, state any) *engine {
	if cfg.clock == nil {
		cfg.clock = realClock{}
	}
	if cfg.runner == nil {
		cfg.runner = goRunner{}
	}
	if len(cfg.keys) == 0 {
		cfg.keys = []string{batch.DefaultKey}
	}
	e := &engine{
		engineConfig: cfg,
		module:       cfg.serving.module,
		moduleName:   cfg.serving.moduleName(),
		m:            newMachine(cfg.batchSize, len(cfg.partitions), len(cfg.keys), cfg.clock.Now),
		disarm:       make([]func() bool, len(cfg.keys)),
		state:        state,
		tasks:        map[*task]struct{}{},
		idle:         make(chan struct{}),
	}
	e.m.noSplit = cfg.hooks != nil
	if len(cfg.keys) > 1 {
		e.keyIndex = make(map[string]int, len(cfg.keys))
		for i, k := range cfg.keys {
			e.keyIndex[k] = i
		}
	}
	return e
}

// keyOf returns the index of b's batch key, or ErrBatchKey.
func (e *engine) keyOf(b *batch.Batch) (int, error) {
	k := b.Key()
	if e.keyIndex == nil {
		if k == e.keys[0] {
			return 0, nil
		}
	} else if i, ok := e.keyIndex[k]; ok {
		return i, nil
	}
	return 0, unknownKey(k, e.keys)
}

// unknownKey is Nx's "unknown batch key: ... (expected one of ...)".
func unknownKey(key string, keys []string) error {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	return fmt.Errorf("%w: %q (expected one of %q); set the batch's key with SetKey, or start the serving "+
		"with that key in Options.BatchKeys", ErrBatchKey, key, sorted)
}

// checkSize turns away a batch a serving with hooks could not run whole.
func (e *engine) checkSize(b *batch.Batch) error {
	if e.hooks != nil && b.Size() > e.batchSize {
		return fmt.Errorf("%w: batch size (%d) cannot exceed serving %q's batch size of %d when streaming hooks",
			ErrBatchTooLarge, b.Size(), e.name, e.batchSize)
	}
	return nil
}

// submit stacks b for a caller and returns its request. Callers wait on
// the request's done channel.
//
// With inline, a batch that b completes runs in the calling goroutine
// before submit returns, instead of on a new task goroutine: the caller
// would only wait for it anyway, and the hop costs more than a batch of
// small rows (two goroutine switches per call at batch size 1). Only
// callers that cannot give up may ask for it (BatchedRun does when
// ctx.Done() is nil): one that runs the batch cannot return early.
//
// When the rows would take the waiting rows past maxQueue, submit returns
// an *OverloadedError at once, or, with waitRoom, waits until they fit or
// ctx ends (admission.go).
func (e *engine) submit(ctx context.Context, b *batch.Batch, inline, waitRoom bool) (*request, error) {
	return e.submitRequest(ctx, acquireRequest(b.Size()), b, inline, waitRoom)
}

// submitRequest is submit for a request the caller made (a streaming one).
func (e *engine) submitRequest(ctx context.Context, r *request, b *batch.Batch, inline, waitRoom bool) (*request, error) {
	key, err := e.keyOf(b)
	if err != nil {
		return nil, err
	}
	if err := e.checkSize(b); err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		r.fail(e.noProc())
		return nil, e.noProc()
	}
	if !e.roomLocked(b.Size(), false) {
		if !waitRoom {
			err := e.overloadedLocked(b.Size())
			e.mu.Unlock()
			return nil, err
		}
		return e.waitForRoom(ctx, r, key, b)
	}
	e.pushLocked(r, key, b)
	e.unlockAndStart(inline)
	return r, nil
}

// call runs input through the serving: client preprocessing, the batch
// (or each batch of an input stream), client postprocessing, all in the
// caller's goroutine. With o.waitRoom a full queue makes it wait for room
// (see WaitWhenFull).
func (e *engine) call(ctx context.Context, input any, o callOptions) (any, error) {
	b, src, info, err := preprocessInput(e.serving, input)
	if err != nil {
		return nil, err
	}
	if src != nil {
		return e.collectStream(ctx, src, info, o)
	}
	// A caller that cannot give up may run the batch its rows complete.
	r, err := e.submit(ctx, b, ctx.Done() == nil, o.waitRoom)
	if err != nil {
		return nil, err
	}
	out, meta, err := e.wait(ctx, r)
	if err != nil {
		return nil, err
	}
	r.release()
	return postprocess(e.serving, out, meta, info)
}

// pushLocked admits r: it counts it and stacks its rows under key. e.mu
// must be held.
func (e *engine) pushLocked(r *request, key int, b *batch.Batch) {
	e.nextID++
	r.id = e.nextID
	e.counters.Requests++
	if r.stream != nil {
		e.counters.Streamed++
	}
	r.answered = &e.answered
	e.m.push(r, key, b)
}

// noProc is the error of a request the stopping serving will not run.
func (e *engine) noProc() error {
	return fmt.Errorf("%w: serving %q is stopping or stopped", ErrNoProc, e.name)
}

// wait blocks until r is answered or ctx ends. A caller that gives up
// takes its rows out of the stack and queue; rows already running are
// dropped when they arrive.
func (e *engine) wait(ctx context.Context, r *request) (out, metadata any, err error) {
	if done := ctx.Done(); done == nil {
		<-r.done // a context that never ends: no select (measured: 11 % of a call)
	} else {
		select {
		case <-r.done:
		case <-done:
			e.cancel(r, ctx.Err())
			<-r.done
		}
	}
	return r.result()
}

// cancel takes r out of the serving with err as its answer.
func (e *engine) cancel(r *request, err error) {
	e.mu.Lock()
	if !r.fail(err) {
		e.mu.Unlock()
		return
	}
	e.counters.Cancelled++
	e.m.remove(r)
	e.unlockAndStart(false)
}

// unlockAndStart carries out the machine's actions and releases mu: timer
// changes under mu, then, after mu is released, the batches the machine
// chose to run. With inline, the last of them runs in the calling
// goroutine. e.mu must be held.
func (e *engine) unlockAndStart(inline bool) {
	start := e.unlockTakingStarts()
	for i, t := range start {
		e.startTask(t, inline && i == len(start)-1)
	}
}

// unlockTakingStarts carries out the machine's timer actions, registers
// the batches it chose to run and releases mu, returning those batches
// for the caller to start. e.mu must be held.
func (e *engine) unlockTakingStarts() []*task {
	var start []*task
	e.admitWaitersLocked()
	for _, a := range e.m.takeActions() {
		switch a.kind {
		case actArm:
			key, gen := int(a.key), a.gen
			e.disarm[key] = e.clock.AfterFunc(e.batchTimeout, func() { e.onTimeout(key, gen) })
		case actDisarm:
			if d := e.disarm[a.key]; d != nil {
				d()
				e.disarm[a.key] = nil
			}
		case actExecute:
			// Registered before mu is released, so that a shutdown that
			// comes in between waits for it.
			t := &task{partition: a.partition, parts: a.batch.parts, size: a.batch.count, since: a.batch.since}
			e.tasks[t] = struct{}{}
			e.computing++
			start = append(start, t)
		}
	}
	e.mu.Unlock()
	return start
}

// onTimeout is the callback of key's timer.
func (e *engine) onTimeout(key int, gen uint64) {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return
	}
	e.m.timeout(key, gen)
	// A real timer's callback has a goroutine of its own with nothing else
	// to do: the batch runs there. (An injected clock may call back from
	// anywhere, a test's goroutine included.)
	_, own := e.clock.(realClock)
	e.unlockAndStart(own)
}

// startTask runs t on its partition: merge, HandleBatch (serialised by
// handleMu), then the returned function on the task supervisor. If
// HandleBatch fails or no task can start, the batch's callers get the
// error and the partition is free again.
func (e *engine) startTask(t *task, inline bool) {
	exec, stats, ok := e.prepareTask(t)
	if !ok {
		return
	}
	if inline {
		e.runTask(t, exec, stats, false)
		return
	}
	if err := e.runner.Go(func() { e.runTasks(t, exec, stats) }); err != nil {
		e.failUnstarted(t, fmt.Errorf("%w: serving %q cannot start tasks: %v", ErrNoProc, e.name, err))
	}
}

// runTasks runs t on a task goroutine, then the batches its partition
// takes next, for as long as one is waiting when the previous finishes
// (runTask hands the previous one's replies to a goroutine of their own).
func (e *engine) runTasks(t *task, exec ExecFunc, stats BatchStats) {
	for t != nil {
		t, exec, stats = e.runTask(t, exec, stats, true)
	}
}

// prepareTask merges t's parts and calls HandleBatch (serialised by
// handleMu). If either fails, t's callers get the error, the partition
// is free again, and ok is false.
func (e *engine) prepareTask(t *task) (exec ExecFunc, stats BatchStats, ok bool) {
	batches := make([]*batch.Batch, len(t.parts))
	for i, q := range t.parts {
		batches[i] = q.b
	}
	merged, err := batch.Merge(batches...)
	if err != nil {
		// push keeps one template per batch; a failure here is a bug.
		err = fmt.Errorf("serving: internal error: merging a batch: %w", err)
	}
	if err == nil {
		e.handleMu.Lock()
		exec, e.state, err = callHandleBatch(e.module, merged, t.partition, e.state)
		e.handleMu.Unlock()
	}
	if err != nil {
		e.failUnstarted(t, err)
		return nil, BatchStats{}, false
	}
	return exec, BatchStats{
		Serving:   e.name,
		Node:      e.node,
		Key:       merged.Key(),
		Partition: t.partition,
		Size:      t.size,
		Padding:   merged.Padding(),
		Requests:  len(t.parts),
		QueueWait: e.clock.Now().Sub(t.since),
	}, true
}

// failUnstarted answers the callers of t, a batch that never ran, with
// err and frees its partition.
func (e *engine) failUnstarted(t *task, err error) {
	e.mu.Lock()
	e.counters.Batches++
	e.counters.FailedBatches++
	e.failPartsLocked(t.parts, &DownError{Serving: e.name, Reason: err})
	e.finishLocked(t)
	e.unlockAndStart(false)
}

// finishLocked frees t's partition and forgets t. e.mu must be held.
func (e *engine) finishLocked(t *task) {
	e.computing--
	if !e.stopped {
		e.m.taskDone(t.partition)
	}
	delete(e.tasks, t)
	e.m.recycleParts(t.parts)
	e.checkIdleLocked()
}

// runTask runs on a partition worker: execute, free the partition,
// reply to every caller of the batch.
//
// On a task goroutine (onTask), when this batch computed for
// keepPartitionAbove or longer, a batch that the freed partition starts
// at once is returned to run next on this goroutine, and the replies go
// to a goroutine of their own: started on a new goroutine, the next batch
// would queue behind the callers the replies wake (Go runs a woken
// goroutine first), and the partition would idle while they run. A
// caller's goroutine (a batch run inline) starts the next batch
// elsewhere and replies itself: its own caller is waiting for it.
func (e *engine) runTask(t *task, exec ExecFunc, stats BatchStats, onTask bool) (*task, ExecFunc, BatchStats) {
	sp := startSpan(Event{Name: ExecuteStart, Module: e.moduleName, Batch: &stats}, ExecuteStop, ExecuteException)
	start := e.clock.Now()
	if e.hooks != nil {
		e.hooks.enter(t)
	}
	value, meta, err := callExec(e.moduleName, exec)
	if e.hooks != nil {
		if herr := e.hooks.leave(t); herr != nil && err == nil {
			err = callbackErr(e.moduleName, "execute", herr)
		}
	}
	var out *output
	if err == nil {
		out, err = e.checkOutput(value, meta, t.size)
	}
	stats.Execution = e.clock.Now().Sub(start)
	sp.end(Event{Module: e.moduleName, Metadata: meta, Err: err, Batch: &stats})

	// The partition is free as soon as the computation is: the next batch
	// starts (on a goroutine of its own, or on this one, see above) while
	// this batch's callers are woken.
	e.mu.Lock()
	e.computing--
	if !e.stopped {
		e.m.taskDone(t.partition)
	}
	if err != nil {
		e.failPartsLocked(t.parts, &DownError{Serving: e.name, Reason: err})
	}
	// Counted before any caller is answered, so that a caller who has its
	// answer finds its batch in the statistics.
	e.observeExecLocked(stats.Execution)
	e.counters.Batches++
	e.counters.Rows += uint64(t.size)
	if err != nil {
		e.counters.FailedBatches++
	}
	starts := e.unlockTakingStarts()
	var next *task
	if onTask && len(starts) > 0 && stats.Execution >= keepPartitionAbove {
		next, starts = starts[len(starts)-1], starts[:len(starts)-1]
	}
	for _, s := range starts {
		e.startTask(s, false)
	}
	if next == nil {
		e.reply(t, out, err)
		return nil, nil, BatchStats{}
	}
	// The next batch is handed to its module (HandleBatch) before the
	// replies go: as when it starts on a goroutine of its own, it has
	// been dispatched by the time this task counts as done.
	nextExec, nextStats, ok := e.prepareTask(next)
	go e.reply(t, out, err)
	if !ok {
		return nil, nil, BatchStats{}
	}
	return next, nextExec, nextStats
}

// keepPartitionAbove is how long a batch's computation must have taken
// for its task goroutine to run the partition's next batch itself (see
// runTask). Below it the partition's idle time while the replies wake
// their callers is small against a goroutine of its own for the replies,
// which then waits for a core behind the batches (measured at 256 and
// 1,024 callers: x*2 on a row, ~5 µs a batch, loses; the digits MLP,
// ~60 µs, gains a third).
const keepPartitionAbove = 20 * time.Microsecond

// reply hands every caller of t, a batch that ran (and was counted), its
// rows, then forgets t. With err, the callers were answered already.
func (e *engine) reply(t *task, out *output, err error) {
	if err == nil {
		// Every caller's rows are cut here, in one allocation for all
		// (batch.Slicer.EachRows), rather than one each in the callers'
		// goroutines.
		start := 0
		out.slicer.EachRows(len(t.parts), func(i int) int { return t.parts[i].b.Size() }, func(i int, rows any, err error) {
			p := t.parts[i]
			n := p.b.Size()
			pc := piece{out: out, start: start, size: n, offset: p.offset}
			if err == nil {
				pc.rows = rows
			}
			p.req.deliver(p.gen, pc)
			start += n
		})
	}

	// Only now is the task over: shutdown waits for its replies too.
	e.mu.Lock()
	delete(e.tasks, t)
	e.m.recycleParts(t.parts)
	e.checkIdleLocked()
	hook := e.testHookTaskDone
	e.mu.Unlock()
	if hook != nil {
		hook(t.partition)
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
		if p.req.failPart(p.gen, err) {
			e.m.remove(p.req)
		}
	}
}

// checkIdleLocked closes idle once a stopped engine has no task left.
func (e *engine) checkIdleLocked() {
	if e.stopped && len(e.tasks) == 0 {
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
		unregister(e.node, e.name, e)
		if e.onStop != nil {
			// Leaving the group waits for the scope's process: not under mu.
			e.mu.Unlock()
			e.onStop()
			e.mu.Lock()
		}
		reqs := e.m.drain()
		for _, r := range reqs {
			r.fail(e.noProc())
		}
		e.failWaitersLocked(e.noProc())
		e.checkIdleLocked()
		e.unlockAndStart(false) // disarms the timer
	} else {
		e.mu.Unlock()
	}

	// Whatever runs after this no caller waits for: the computations'
	// context ends.
	if e.cancelExecs != nil {
		defer e.cancelExecs()
	}
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
		for t := range e.tasks {
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
		QueuedBatches:  e.m.queuedBatchCount(),
		QueuedRows:     e.m.queuedRows(),
		Keys:           e.keyStatsLocked(),
		Streaming:      e.serving.streaming,
		Hooks:          e.serving.Hooks(),
		BusyPartitions: e.computing,
		Waiting:        int(e.counters.Requests - e.answered.Load()),
		WaitingForRoom: len(e.waiters),
		MaxQueue:       e.maxQueue,
		Stopped:        e.stopped,
		Counters:       e.counters,
	}
}

// keyStatsLocked describes every batch key. e.mu must be held.
func (e *engine) keyStatsLocked() []KeyStats {
	ks := make([]KeyStats, len(e.keys))
	for i, k := range e.keys {
		ks[i].Key = k
		ks[i].StackedRows, ks[i].QueuedBatches, ks[i].QueuedRows = e.m.keyStats(i)
	}
	return ks
}

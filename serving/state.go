package serving

import (
	"time"

	"github.com/ergonx/ergonx/batch"
)

// The batching state machine of a serving process: Nx's server_* steps
// (seed v0.5.0 plus the fixes later releases made), with no ergo, no
// goroutines and no clock of its own. The engine feeds it events (push,
// timeout, taskDone, cancel, drain) under its lock; the machine changes
// its state and appends actions (execute a batch on a partition, arm or
// disarm the timer) that the engine then performs. Keeping decisions and
// effects apart is what makes the machine testable event by event.

// part is a request's rows in one batch: all of a request, or one piece
// of a request split across executions.
type part struct {
	req    *request
	b      *batch.Batch
	offset int // first row of this part within the request
}

// pending is a batch being stacked or waiting in the queue: its parts in
// arrival order. Parts are merged into one batch only when a partition
// takes it, so that a cancelled caller's rows can still be taken out.
type pending struct {
	parts []part
	count int             // rows
	tmpl  *batch.Template // template of every part
	since time.Time       // when its first rows were stacked
}

// timerState is Nx's timer field: :none, a timer reference, or :done.
type timerState uint8

const (
	timerNone  timerState = iota // no timer: the stack is empty or runs at once
	timerArmed                   // a timer for the stack is running
	timerDone                    // the timer fired while no partition was free
)

type actionKind uint8

const (
	actExecute actionKind = iota // run batch on partition
	actArm                       // start the batch timer (generation gen)
	actDisarm                    // stop the batch timer
)

type action struct {
	kind      actionKind
	partition int
	batch     pending
	gen       uint64
}

// machine is the state of one serving. It is not safe for concurrent use:
// the engine calls it with its lock held.
type machine struct {
	limit int              // batch size
	now   func() time.Time // stamps new stacks (for queue-wait figures)

	stack pending
	timer timerState
	// gen identifies the armed timer. Timer events carry the generation
	// they were armed with; any other is stale and ignored (Nx issue
	// #1347: a stale timeout crashed the serving on an empty stack).
	gen uint64

	queue []pending // batches waiting for a partition, oldest first
	// queued is the rows in queue, kept as it changes: admission reads
	// it on every request.
	queued int
	// free partitions, a stack: the partition freed last runs next, its
	// caches warm (and the slice never grows past the partition count).
	free []int

	out []action // actions for the engine, in order
}

func newMachine(limit, partitions int, now func() time.Time) *machine {
	m := &machine{limit: limit, now: now, free: make([]int, partitions)}
	for i := range m.free {
		m.free[i] = partitions - 1 - i // partition 0 on top
	}
	return m
}

// takeActions returns and clears the actions produced so far.
func (m *machine) takeActions() []action {
	out := m.out
	m.out = nil
	return out
}

// push stacks a request's batch (Nx's batched_run handler with later Nx's
// automatic split of oversized requests): it fills the stack up to the
// batch size, runs it when full, and carries what is left over into the
// next stack, as many times as needed. A batch whose template differs from
// the stack's runs the stack first, so that one caller's wrongly shaped
// input never fails the other callers' rows.
func (m *machine) push(r *request, b *batch.Batch) {
	if m.stack.count > 0 && !m.stack.tmpl.Equal(b.Template()) {
		m.execute()
	}
	offset := 0
	// A request of exactly one batch runs at once, with the stack
	// before it, and starts no timer.
	if b.Size() == m.limit {
		m.execute()
		m.stackPart(part{req: r, b: b})
		m.execute()
		return
	}
	for b != nil {
		size := b.Size()
		switch {
		case m.stack.count+size < m.limit:
			m.stackPart(part{req: r, b: b, offset: offset})
			m.startTimer()
			return
		case m.stack.count+size == m.limit:
			m.stackPart(part{req: r, b: b, offset: offset})
			m.execute()
			return
		default: // over the limit: fill the stack, run it, go on with the rest
			head, rest, err := b.Split(m.limit - m.stack.count)
			if err != nil {
				panic("serving: internal error: split within the limit: " + err.Error())
			}
			m.stackPart(part{req: r, b: head, offset: offset})
			m.execute()
			offset += head.Size()
			b = rest
		}
	}
}

// stackPart is Nx's server_stack.
func (m *machine) stackPart(p part) {
	if m.stack.count == 0 {
		m.stack.tmpl = p.b.Template()
		m.stack.since = m.now()
		// A stack holds at most limit parts (each has a row at least):
		// sizing it once saves the appends' reallocations per batch.
		m.stack.parts = make([]part, 0, min(m.limit, 256))
	}
	m.stack.parts = append(m.stack.parts, p)
	m.stack.count += p.b.Size()
}

// startTimer is Nx's server_timer: arm the timer unless one is running or
// has fired already.
func (m *machine) startTimer() {
	if m.timer != timerNone {
		return
	}
	m.gen++
	m.timer = timerArmed
	m.out = append(m.out, action{kind: actArm, gen: m.gen})
}

// stopTimer forgets the timer; a timer event already on its way is stale.
func (m *machine) stopTimer() {
	if m.timer == timerArmed {
		m.out = append(m.out, action{kind: actDisarm, gen: m.gen})
	}
	m.gen++
	m.timer = timerNone
}

// execute is Nx's server_execute: the stack becomes a batch that runs on a
// free partition or waits in the queue.
func (m *machine) execute() {
	if m.stack.count == 0 {
		return
	}
	m.stopTimer()
	b := m.stack
	m.stack = pending{}
	m.taskOrEnqueue(b)
}

// taskOrEnqueue is Nx's server_task_or_enqueue.
func (m *machine) taskOrEnqueue(b pending) {
	if len(m.free) == 0 {
		m.queue = append(m.queue, b)
		m.queued += b.count
		return
	}
	p := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	m.out = append(m.out, action{kind: actExecute, partition: p, batch: b})
}

// timeout is Nx's server_timeout for the timer of generation gen.
func (m *machine) timeout(gen uint64) {
	if gen != m.gen || m.timer != timerArmed {
		return // stale: the stack it was armed for already ran
	}
	if len(m.queue) == 0 && len(m.free) > 0 {
		m.execute()
		return
	}
	// No partition is free: keep stacking; the stack runs when it is full
	// or when a partition frees up with nothing queued.
	m.timer = timerDone
}

// taskDone is Nx's server_task_done: partition p is free again.
func (m *machine) taskDone(p int) {
	m.free = append(m.free, p)
	switch {
	case len(m.queue) > 0:
		next := m.queue[0]
		m.queue[0] = pending{}
		m.queue = m.queue[1:]
		m.queued -= next.count
		m.taskOrEnqueue(next)
	case m.timer == timerDone:
		// The timer expired while every partition was busy.
		m.execute()
	}
}

// remove takes every part of r out of the stack and the queue (r was
// cancelled, or failed in another part) and reports how many rows it took.
func (m *machine) remove(r *request) int {
	removed := m.stack.drop(r)
	if removed > 0 && m.stack.count == 0 {
		m.stopTimer()
		m.stack = pending{}
	}
	q := m.queue[:0]
	for _, b := range m.queue {
		n := b.drop(r)
		removed += n
		m.queued -= n
		if len(b.parts) > 0 {
			q = append(q, b)
		}
	}
	for i := len(q); i < len(m.queue); i++ {
		m.queue[i] = pending{}
	}
	m.queue = q
	return removed
}

// drop removes r's parts from p and returns the rows removed.
func (p *pending) drop(r *request) int {
	removed := 0
	kept := p.parts[:0]
	for _, q := range p.parts {
		if q.req == r {
			removed += q.b.Size()
			continue
		}
		kept = append(kept, q)
	}
	for i := len(kept); i < len(p.parts); i++ {
		p.parts[i] = part{}
	}
	p.parts = kept
	p.count -= removed
	return removed
}

// drain empties the stack and the queue (the serving is stopping) and
// returns the requests that had rows there, each once, queue first, as
// Nx's terminate does.
func (m *machine) drain() []*request {
	var reqs []*request
	seen := map[*request]bool{}
	add := func(p pending) {
		for _, q := range p.parts {
			if !seen[q.req] {
				seen[q.req] = true
				reqs = append(reqs, q.req)
			}
		}
	}
	for _, b := range m.queue {
		add(b)
	}
	add(m.stack)
	m.queue = nil
	m.queued = 0
	m.stack = pending{}
	m.stopTimer()
	return reqs
}

// waitingRows is the rows stacked and queued: what admission bounds.
func (m *machine) waitingRows() int { return m.stack.count + m.queuedRows() }

// stackedRows, queuedBatches, queuedRows and busy describe the state for
// Stats.
func (m *machine) stackedRows() int { return m.stack.count }

func (m *machine) queuedBatches() int { return len(m.queue) }

func (m *machine) queuedRows() int { return m.queued }

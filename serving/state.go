package serving

import (
	"fmt"
	"time"

	"github.com/ergonx/ergonx/batch"
)

// The batching state machine of a serving process: Nx's server_* steps
// (seed v0.5.0 plus the fixes later releases made, batch keys included),
// with no ergo, no goroutines and no clock of its own. The engine feeds it
// events (push, timeout, taskDone, cancel, drain) under its lock; the
// machine changes its state and appends actions (execute a batch on a
// partition, arm or disarm a key's timer) that the engine then performs.
// Keeping decisions and effects apart is what makes the machine testable
// event by event.
//
// Batch keys (Nx v0.6): each key has its own stack and timer and its own
// queue of ready batches; one FIFO of keys (Nx's in_queue) says in which
// order ready batches take free partitions — one entry per ready batch,
// and one per timed-out stack still growing — so that batches run in the
// order they became ready whatever their keys, and no key starves
// another. A batch never mixes keys.

// part is a request's rows in one batch: all of a request, or one piece
// of a request split across executions.
type part struct {
	req    *request
	gen    uint64 // req's generation when stacked (requests are pooled)
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
	actArm                       // start key's batch timer (generation gen)
	actDisarm                    // stop key's batch timer
)

type action struct {
	kind      actionKind
	key       int32 // index of the batch key (next to kind: no room taken)
	partition int
	batch     pending
	gen       uint64
}

// keyState is one batch key's share of the machine: its stack, timer and
// ready batches (Nx's per-key stack and pending_batches[key]).
type keyState struct {
	stack pending
	timer timerState
	// gen identifies the key's armed timer (0: none). Timer events carry
	// the generation they were armed with; any other is stale and ignored
	// (Nx issue #1347: a stale timeout crashed the serving on an empty
	// stack).
	gen uint64
	// ready are full or timed-out batches of the key waiting for a
	// partition, oldest first.
	ready []pending
}

// machine is the state of one serving. It is not safe for concurrent use:
// the engine calls it with its lock held.
type machine struct {
	limit int              // batch size
	now   func() time.Time // stamps new stacks (for queue-wait figures)
	// noSplit is set for servings with streaming hooks: a request is never
	// split across batches (the engine turns away requests larger than
	// the limit).
	noSplit bool

	keys []keyState // by key index
	gen  uint64     // the last timer generation handed out

	// inQueue is Nx's in_queue: the keys whose next batch is ready, in
	// the order they became ready. A key has one entry per batch in its
	// ready list plus one while its stack's timer is done, always (remove
	// keeps it so): a free partition takes the first key's oldest ready
	// batch, or its timed-out stack when it has none.
	inQueue []int

	// stacked and queued are the rows in stacks and in ready batches,
	// queuedBatches the ready batches, kept as they change: admission
	// reads them on every request.
	stacked, queued, queuedBatches int
	// free partitions, a stack: the partition freed last runs next, its
	// caches warm (and the slice never grows past the partition count).
	// While a partition is free, inQueue is empty: whatever becomes ready
	// takes it at once.
	free []int

	out []action // actions for the engine, in order

	// spareParts are cleared parts slices of finished batches, for new
	// stacks (newParts, recycleParts).
	spareParts [][]part
}

func newMachine(limit, partitions, keys int, now func() time.Time) *machine {
	m := &machine{limit: limit, now: now, free: make([]int, partitions), keys: make([]keyState, max(keys, 1))}
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

// push stacks a request's batch under key (Nx's batched_run handler with
// later Nx's automatic split of oversized requests): it fills the key's
// stack up to the batch size, runs it when full, and carries what is left
// over into the next stack, as many times as needed. A batch whose
// template differs from the stack's runs the stack first, so that one
// caller's wrongly shaped input never fails the other callers' rows. With
// noSplit (streaming hooks), a batch that does not fit in what is left of
// the stack runs the stack first and starts the next one.
func (m *machine) push(r *request, key int, b *batch.Batch) {
	k := &m.keys[key]
	if k.stack.count > 0 && !k.stack.tmpl.Equal(b.Template()) {
		m.execute(key)
	}
	offset := 0
	// A request of exactly one batch runs at once, with the stack
	// before it, and starts no timer.
	if b.Size() == m.limit {
		m.execute(key)
		m.stackPart(key, part{req: r, gen: r.gen, b: b})
		m.execute(key)
		return
	}
	if m.noSplit && k.stack.count+b.Size() > m.limit {
		m.execute(key)
		m.stackPart(key, part{req: r, gen: r.gen, b: b})
		m.startTimer(key)
		return
	}
	for b != nil {
		size := b.Size()
		switch {
		case k.stack.count+size < m.limit:
			m.stackPart(key, part{req: r, gen: r.gen, b: b, offset: offset})
			m.startTimer(key)
			return
		case k.stack.count+size == m.limit:
			m.stackPart(key, part{req: r, gen: r.gen, b: b, offset: offset})
			m.execute(key)
			return
		default: // over the limit: fill the stack, run it, go on with the rest
			head, rest, err := b.Split(m.limit - k.stack.count)
			if err != nil {
				panic("serving: internal error: split within the limit: " + err.Error())
			}
			m.stackPart(key, part{req: r, gen: r.gen, b: head, offset: offset})
			m.execute(key)
			offset += head.Size()
			b = rest
		}
	}
}

// newParts returns an empty parts slice for a new stack: one that a
// finished task gave back (recycleParts), or a new one. A stack holds at
// most limit parts (each has a row at least): sizing it once saves the
// appends' reallocations per batch.
func (m *machine) newParts() []part {
	if n := len(m.spareParts); n > 0 {
		p := m.spareParts[n-1]
		m.spareParts = m.spareParts[:n-1]
		return p
	}
	return make([]part, 0, min(m.limit, 256))
}

// recycleParts takes back the parts slice of a batch whose task is over
// (nothing refers to its parts any more), cleared, for a later stack. A
// few are kept: one per partition and key is what a busy serving cycles
// through.
func (m *machine) recycleParts(p []part) {
	if cap(p) != min(m.limit, 256) || len(m.spareParts) >= 8 {
		return
	}
	clear(p)
	m.spareParts = append(m.spareParts, p[:0])
}

// stackPart is Nx's server_stack.
func (m *machine) stackPart(key int, p part) {
	k := &m.keys[key]
	if k.stack.count == 0 {
		k.stack.tmpl = p.b.Template()
		k.stack.since = m.now()
		k.stack.parts = m.newParts()
	}
	k.stack.parts = append(k.stack.parts, p)
	n := p.b.Size()
	k.stack.count += n
	m.stacked += n
}

// startTimer is Nx's server_timer: arm key's timer unless one is running
// or has fired already.
func (m *machine) startTimer(key int) {
	k := &m.keys[key]
	if k.timer != timerNone {
		return
	}
	m.gen++
	k.gen = m.gen
	k.timer = timerArmed
	m.out = append(m.out, action{kind: actArm, key: int32(key), gen: m.gen})
}

// stopTimer forgets key's timer; a timer event already on its way is
// stale.
func (m *machine) stopTimer(key int) {
	k := &m.keys[key]
	if k.timer == timerArmed {
		m.out = append(m.out, action{kind: actDisarm, key: int32(key), gen: k.gen})
	}
	k.gen = 0
	k.timer = timerNone
}

// execute is Nx's server_execute: key's stack becomes a batch that runs
// on a free partition or waits for one.
func (m *machine) execute(key int) {
	k := &m.keys[key]
	if k.stack.count == 0 {
		return
	}
	// A timed-out stack has its entry in inQueue already.
	done := k.timer == timerDone
	m.stopTimer(key)
	b := k.stack
	k.stack = pending{}
	m.stacked -= b.count
	if len(m.free) > 0 && len(m.inQueue) == 0 {
		// Nothing waits and a partition is free: the common case runs at
		// once, without a trip through the queues.
		m.run(key, b)
		return
	}
	k.ready = append(k.ready, b)
	m.queued += b.count
	m.queuedBatches++
	if !done {
		m.inQueue = append(m.inQueue, key)
	}
	m.maybeTask()
}

// maybeTask is Nx's server_maybe_task: while a partition is free and a
// batch is ready, the first key in line runs its oldest ready batch, or
// its timed-out stack as it is.
func (m *machine) maybeTask() {
	for len(m.free) > 0 && len(m.inQueue) > 0 {
		key := m.inQueue[0]
		m.inQueue = m.inQueue[1:]
		k := &m.keys[key]
		var b pending
		if len(k.ready) > 0 {
			b = k.ready[0]
			k.ready[0] = pending{}
			k.ready = k.ready[1:]
			m.queued -= b.count
			m.queuedBatches--
		} else {
			// The entry of a timed-out stack (remove keeps inQueue exact,
			// so the stack is there).
			b = k.stack
			k.stack = pending{}
			m.stacked -= b.count
			m.stopTimer(key)
		}
		m.run(key, b)
	}
}

// run takes a free partition for b.
func (m *machine) run(key int, b pending) {
	p := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	m.out = append(m.out, action{kind: actExecute, key: int32(key), partition: p, batch: b})
}

// timeout is Nx's server_timeout for key's timer of generation gen.
func (m *machine) timeout(key int, gen uint64) {
	k := &m.keys[key]
	if gen != k.gen || k.timer != timerArmed {
		return // stale: the stack it was armed for already ran
	}
	if len(m.free) > 0 {
		m.execute(key) // (a free partition means nothing is in line)
		return
	}
	// No partition is free: the stack gets in line and keeps stacking; it
	// runs when it is full, or as it is when its turn comes.
	k.timer = timerDone
	m.inQueue = append(m.inQueue, key)
}

// taskDone is Nx's server_task_done: partition p is free again.
func (m *machine) taskDone(p int) {
	m.free = append(m.free, p)
	m.maybeTask()
}

// remove takes every part of r out of the stacks and the ready batches (r
// was cancelled, or failed in another part) and reports how many rows it
// took. A batch or a timed-out stack left empty gives up its place in
// line.
func (m *machine) remove(r *request) int {
	removed := 0
	for key := range m.keys {
		k := &m.keys[key]
		if n := k.stack.drop(r); n > 0 {
			removed += n
			m.stacked -= n
			if k.stack.count == 0 {
				if k.timer == timerDone {
					m.leaveLine(key)
				}
				m.stopTimer(key)
				k.stack = pending{}
			}
		}
		if len(k.ready) == 0 {
			continue
		}
		kept := k.ready[:0]
		for _, b := range k.ready {
			n := b.drop(r)
			removed += n
			m.queued -= n
			if len(b.parts) > 0 {
				kept = append(kept, b)
				continue
			}
			m.queuedBatches--
			m.leaveLine(key)
		}
		for i := len(kept); i < len(k.ready); i++ {
			k.ready[i] = pending{}
		}
		k.ready = kept
	}
	return removed
}

// leaveLine takes key's last entry out of inQueue: entries of one key are
// interchangeable, and the ones left keep the earliest places.
func (m *machine) leaveLine(key int) {
	for i := len(m.inQueue) - 1; i >= 0; i-- {
		if m.inQueue[i] == key {
			m.inQueue = append(m.inQueue[:i], m.inQueue[i+1:]...)
			return
		}
	}
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

// drain empties the stacks and the queues (the serving is stopping) and
// returns the requests that had rows there, each once, ready batches
// first, as Nx's terminate does.
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
	for key := range m.keys {
		for _, b := range m.keys[key].ready {
			add(b)
		}
	}
	for key := range m.keys {
		add(m.keys[key].stack)
		m.stopTimer(key)
		m.keys[key].stack = pending{}
		m.keys[key].ready = nil
	}
	m.inQueue = nil
	m.stacked, m.queued, m.queuedBatches = 0, 0, 0
	return reqs
}

// waitingRows is the rows stacked and queued, of every key: what
// admission bounds.
func (m *machine) waitingRows() int { return m.stacked + m.queued }

// stackedRows, queuedBatches, queuedRows describe the state for Stats.
func (m *machine) stackedRows() int { return m.stacked }

func (m *machine) queuedBatchCount() int { return m.queuedBatches }

func (m *machine) queuedRows() int { return m.queued }

// keyStats describes key for Stats.
func (m *machine) keyStats(key int) (stacked, queuedBatches, queuedRows int) {
	k := &m.keys[key]
	for _, b := range k.ready {
		queuedRows += b.count
	}
	return k.stack.count, len(k.ready), queuedRows
}

// check verifies the machine's bookkeeping (tests call it after every
// step): the counters match the stacks and ready batches, inQueue holds
// one entry per ready batch and per timed-out stack, nothing waits in line
// while a partition is free, and no batch is larger than the limit.
func (m *machine) check() error {
	stacked, queued, batches := 0, 0, 0
	entries := make([]int, len(m.keys))
	for _, key := range m.inQueue {
		entries[key]++
	}
	for key := range m.keys {
		k := &m.keys[key]
		if got := k.stack.rows(); got != k.stack.count {
			return fmt.Errorf("key %d: stack counts %d rows, holds %d", key, k.stack.count, got)
		}
		if k.stack.count > m.limit {
			return fmt.Errorf("key %d: stack of %d rows with limit %d", key, k.stack.count, m.limit)
		}
		if (k.stack.count == 0) != (k.timer == timerNone) {
			return fmt.Errorf("key %d: stack of %d rows with timer state %d", key, k.stack.count, k.timer)
		}
		stacked += k.stack.count
		want := len(k.ready)
		if k.timer == timerDone {
			want++
		}
		if entries[key] != want {
			return fmt.Errorf("key %d: %d entries in line for %d ready batches (timer %d)", key, entries[key], len(k.ready), k.timer)
		}
		for _, b := range k.ready {
			if got := b.rows(); got != b.count || got == 0 || got > m.limit {
				return fmt.Errorf("key %d: ready batch counts %d rows, holds %d (limit %d)", key, b.count, got, m.limit)
			}
			queued += b.count
			batches++
		}
	}
	switch {
	case stacked != m.stacked || queued != m.queued || batches != m.queuedBatches:
		return fmt.Errorf("counters %d stacked, %d queued in %d batches; state has %d, %d in %d",
			m.stacked, m.queued, m.queuedBatches, stacked, queued, batches)
	case len(m.free) > 0 && len(m.inQueue) > 0:
		return fmt.Errorf("%d partitions free while %d batches are in line", len(m.free), len(m.inQueue))
	}
	return nil
}

// rows counts the rows of p's parts.
func (p *pending) rows() int {
	n := 0
	for _, q := range p.parts {
		n += q.b.Size()
	}
	return n
}

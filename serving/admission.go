package serving

import (
	"context"
	"time"

	"github.com/ergonx/ergonx/batch"
)

// Admission: a serving takes at most maxQueue rows waiting (stacked or
// queued, not yet running, of every batch key). Beyond it a caller gets an *OverloadedError at
// once, or, when it asked to wait (WaitWhenFull), waits in a first-come
// first-served line until its rows fit or its context ends. Without a
// bound an open loop above capacity grows the queue, and the memory and
// the latency of everyone, without end (375,000 waiting callers and 2 GB
// were measured before this existed); with it, overload is an error the
// caller can see and act on.
//
// A request larger than maxQueue is admitted when nothing waits, so that
// every request can run eventually.

// admission is a caller waiting for room.
type admission struct {
	r        *request
	key      int
	b        *batch.Batch
	admitted chan struct{} // closed once its rows were stacked for it
	done     bool          // admitted or given up; guarded by the engine's mu
}

// roomLocked reports whether n more rows may wait. Unless front (the
// oldest waiter asks), nobody may overtake callers already waiting.
// e.mu must be held.
func (e *engine) roomLocked(n int, front bool) bool {
	if !front && len(e.waiters) > 0 {
		return false
	}
	w := e.m.waitingRows()
	return e.maxQueue <= 0 || w == 0 || w+n <= e.maxQueue
}

// overloadedLocked counts a rejection and describes it. e.mu must be held.
func (e *engine) overloadedLocked(n int) error {
	e.counters.Rejected++
	w := e.m.waitingRows()
	return &OverloadedError{Serving: e.name, Waiting: w, Rows: n, MaxQueue: e.maxQueue, RetryAfter: e.drainTimeLocked(w)}
}

// drainTimeLocked estimates how long rows waiting rows take to run: full
// batches over every partition, each taking the average execution time
// seen so far (the batch timeout before any has run). It is clamped to
// [1 ms, 30 s]. e.mu must be held.
func (e *engine) drainTimeLocked(rows int) time.Duration {
	per := e.execEWMA
	if per == 0 {
		per = max(e.batchTimeout, time.Millisecond)
	}
	perRound := max(1, e.batchSize*len(e.partitions))
	rounds := (rows + perRound - 1) / perRound
	d := time.Duration(rounds) * per
	return min(max(d, time.Millisecond), 30*time.Second)
}

// observeExecLocked feeds one batch's execution time to the average. e.mu
// must be held.
func (e *engine) observeExecLocked(d time.Duration) {
	if e.execEWMA == 0 {
		e.execEWMA = d
		return
	}
	e.execEWMA += (d - e.execEWMA) / 8
}

// waitForRoom puts r in the line and waits until the engine admits it
// (admitWaitersLocked stacks its rows) or ctx ends. e.mu must be held; it
// is released.
func (e *engine) waitForRoom(ctx context.Context, r *request, key int, b *batch.Batch) (*request, error) {
	a := &admission{r: r, key: key, b: b, admitted: make(chan struct{})}
	e.waiters = append(e.waiters, a)
	e.mu.Unlock()
	select {
	case <-a.admitted:
		return r, nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	if a.done {
		// Admitted (or failed) just as ctx ended: the caller's wait takes
		// its rows out again.
		e.mu.Unlock()
		<-a.admitted
		return r, nil
	}
	a.done = true
	for i, w := range e.waiters {
		if w == a {
			e.waiters = append(e.waiters[:i], e.waiters[i+1:]...)
			break
		}
	}
	// Whoever waited behind it may fit now.
	e.unlockAndStart(false)
	return nil, ctx.Err()
}

// admitWaitersLocked stacks the rows of waiting callers, oldest first,
// while they fit. e.mu must be held.
func (e *engine) admitWaitersLocked() {
	for len(e.waiters) > 0 && !e.stopped {
		a := e.waiters[0]
		if !e.roomLocked(a.b.Size(), true) {
			return
		}
		e.waiters[0] = nil
		e.waiters = e.waiters[1:]
		a.done = true
		e.pushLocked(a.r, a.key, a.b)
		close(a.admitted)
	}
}

// failWaitersLocked answers every waiting caller with err (the serving is
// stopping). e.mu must be held.
func (e *engine) failWaitersLocked(err error) {
	for _, a := range e.waiters {
		a.done = true
		a.r.fail(err)
		close(a.admitted)
	}
	e.waiters = nil
}

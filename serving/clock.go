package serving

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Clock is the time source of a serving process: Now stamps arrivals and
// executions, AfterFunc runs the batch timer. Tests inject a clock whose
// timers fire when the test says so; the zero Options use the real one.
// Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless stop is
	// called first; stop reports whether it prevented the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realClock is the wall clock, with batch timers precise to a few
// microseconds.
//
// Go's own timers are not: when the process is idle the runtime waits in
// epoll with a millisecond timeout, and on the 2-core VMs this project is
// measured on a 5 ms time.AfterFunc fires after 5.25-5.35 ms (a 4.3 ms one
// too: the granularity is ~1.1 ms). A lone caller of a serving with a 5 ms
// batch timeout would wait that long. So the timer is armed coarseLead
// early with time.AfterFunc (cheap to arm and stop, which is what happens
// to most timers: batches usually fill first) and, if it is still wanted
// when it fires, waits out the rest yielding the processor in a loop,
// until the deadline or until it is stopped.
//
// Rejected: sleeping the rest with nanosleep. It is precise, but a
// goroutine in a syscall keeps its P until sysmon takes it back, and with
// short timeouts every batch's timer did that: at batch timeout 1 ms both
// Ps of a 2-core machine sat in nanosleep and throughput fell 15-fold.
type realClock struct{}

// coarseLead is how much earlier than asked the Go timer is armed; it
// must exceed the Go timer's lateness (~1.1 ms measured).
const coarseLead = 1500 * time.Microsecond

func (realClock) Now() time.Time { return time.Now() }

// Timer states.
const (
	timerPending int32 = iota
	timerStopped
	timerFiring
)

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	deadline := time.Now().Add(d)
	var state atomic.Int32
	t := time.AfterFunc(max(d-coarseLead, 0), func() {
		// Yield until the deadline; the loop ends early if stopped.
		for state.Load() == timerPending && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if state.CompareAndSwap(timerPending, timerFiring) {
			f()
		}
	})
	return func() bool {
		if t.Stop() {
			state.Store(timerStopped)
			return true
		}
		return state.CompareAndSwap(timerPending, timerStopped)
	}
}

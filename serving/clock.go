package serving

import (
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

// realClock is the wall clock, with batch timers precise to tens of
// microseconds where the platform allows (preciseAfterFunc).
//
// Go's own timers are not: when the process is idle the runtime waits in
// epoll with a millisecond timeout, and on the 2-core VMs this project is
// measured on a 5 ms time.AfterFunc fires after 5.25-5.35 ms (a 4.3 ms one
// too: the granularity is ~1.1 ms). A lone caller of a serving with a 5 ms
// batch timeout would wait that long.
//
// Rejected, after measuring: finishing the last 1.5 ms by yielding in a
// loop (precise, but it burned ~6 % of a core at 50 requests a second and
// 18 % for a lone caller); sleeping the rest with nanosleep (a goroutine
// in a syscall keeps its P until sysmon takes it back: at batch timeout
// 1 ms both Ps of a 2-core machine sat in nanosleep and throughput fell
// 15-fold).
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return preciseAfterFunc(d, f)
}

//go:build linux

package serving

import (
	"container/heap"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux the batch timers of every serving of the process share one
// timerfd, read through Go's network poller: the goroutine that waits for
// it is parked (it holds no P, burns no CPU), and epoll returns as soon as
// the kernel's high-resolution timer expires, tens of microseconds after
// the deadline instead of Go's millisecond. The goroutine runs while
// timers are pending and idleLinger after the last, so an idle process
// has none.
//
// Arming and stopping cost a lock and a heap operation, and a
// timerfd_settime only when the earliest deadline changes (a stack that
// fills before its timer stops it: most timers end that way).
//
// What remains late is the wake-up: the poller's thread, the loop, then
// f (tens to hundreds of microseconds on an idle 2-core VM). The service
// measures it and arms timers that much early (a moving average, capped
// at maxSlack). Where timers come one at a time (a lone caller, a
// trickle) it measures when f has returned — the batch has run and its
// callers are answered — so that what a lone caller waits is, on
// average, the timeout (measured: p50 4.98-5.02 ms for 5 ms, against
// 5.07-5.20 ms when measured at the wake-up); where several are due at
// once it measures the wake-up alone.

// timerService is the process's shared timer.
type timerService struct {
	fd   int
	file *os.File // the timerfd, non-blocking: reads park in the poller

	// base ties Go's monotonic clock to CLOCK_MONOTONIC, the clock the
	// timerfd counts in (Go reads the same clock): a deadline is
	// baseMono + time.Since(base) + d, without a system call per timer.
	base     time.Time
	baseMono int64

	mu      sync.Mutex // guards the fields below
	pending timerHeap
	armed   int64 // the deadline the timerfd is set to; 0: none
	running bool  // the goroutine that reads the timerfd runs
	slack   int64 // moving average of the wake-up delay, in ns

	loops atomic.Int32 // loop goroutines alive (for tests)
}

// maxSlack caps how early a timer is armed.
const maxSlack = int64(time.Millisecond)

// maxLinger is how long the loop may wait for a stopped timer's deadline
// with nothing else pending before a stop wakes it to end.
const maxLinger = 20 * time.Millisecond

// idleLinger is how long the loop stays after the last timer fired, for
// the next one (at 50 batches a second, each waiting 5 ms for its timer,
// the next comes 15 ms later). An idle process is without it after that
// (goroutine-leak checks wait for it).
const idleLinger = 50 * time.Millisecond

// preciseTimer is one pending AfterFunc.
type preciseTimer struct {
	deadline int64 // CLOCK_MONOTONIC nanoseconds
	f        func()
	index    int // in the heap; -1 once fired or stopped
}

var timers struct {
	once sync.Once
	svc  *timerService // nil if no timerfd could be made
}

// preciseAfterFunc calls f in its own goroutine after d, unless the
// returned stop is called first (it reports whether it prevented the
// call).
func preciseAfterFunc(d time.Duration, f func()) func() bool {
	timers.once.Do(func() { timers.svc = newTimerService() })
	s := timers.svc
	if s == nil {
		return time.AfterFunc(d, f).Stop
	}
	return s.after(d, f)
}

func newTimerService() *timerService {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil
	}
	var ts unix.Timespec
	base := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		_ = unix.Close(fd)
		return nil
	}
	return &timerService{fd: fd, file: os.NewFile(uintptr(fd), "serving-timerfd"), base: base, baseMono: ts.Nano()}
}

func (s *timerService) after(d time.Duration, f func()) func() bool {
	now := s.baseMono + int64(time.Since(s.base))
	t := &preciseTimer{deadline: now + int64(max(d, 0)), f: f}
	s.mu.Lock()
	// Armed early by the measured wake-up delay, never in the past.
	t.deadline = max(t.deadline-s.slack, now)
	heap.Push(&s.pending, t)
	s.rearmLocked()
	if !s.running {
		s.running = true
		go s.loop()
	}
	s.mu.Unlock()
	return func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if t.index < 0 {
			return false // fired, or stopped already
		}
		heap.Remove(&s.pending, t.index)
		// The timerfd may still be set for it: the loop then wakes, finds
		// nothing due, and sets it for the next timer (or ends). That
		// costs a wake-up per stopped deadline instead of a system call
		// per stop: under load, every batch's timer is stopped when the
		// batch fills, thousands a second. Only a deadline far off, with
		// nothing else pending, is cut short, so that an idle process's
		// loop does not linger (and goroutine-leak checks see it end).
		if len(s.pending) == 0 && s.armed > 1 && s.armed-s.nowLocked() > int64(maxLinger) {
			s.wakeLocked()
		}
		return true
	}
}

// rearmLocked sets the timerfd for the earliest pending deadline when it
// is not set for it already. s.mu must be held.
func (s *timerService) rearmLocked() {
	if len(s.pending) == 0 {
		return
	}
	next := s.pending[0].deadline
	if s.armed != 0 && s.armed <= next {
		return // it fires no later than needed; the loop re-arms
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(next)}
	if err := unix.TimerfdSettime(s.fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err == nil {
		s.armed = next
	}
}

// nowLocked is CLOCK_MONOTONIC now, in nanoseconds.
func (s *timerService) nowLocked() int64 { return s.baseMono + int64(time.Since(s.base)) }

// wakeLocked makes the timerfd expire at once. s.mu must be held.
func (s *timerService) wakeLocked() {
	spec := unix.ItimerSpec{Value: unix.Timespec{Nsec: 1}} // long past
	if err := unix.TimerfdSettime(s.fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err == nil {
		s.armed = 1
	}
}

// loop waits for the timerfd and fires what is due. With no timer
// pending it lingers for idleLinger (the timerfd set for the end of it),
// so that a trickle of batches, one timer at a time, arms the timerfd
// without starting a goroutine each time, then ends.
func (s *timerService) loop() {
	s.loops.Add(1)
	defer s.loops.Add(-1)
	buf := make([]byte, 8)
	var idleSince int64 // when the last timer fired; 0: timers pending
	for {
		s.mu.Lock()
		now := s.nowLocked()
		var due []func()
		var first int64 // the first due timer's deadline
		for len(s.pending) > 0 && s.pending[0].deadline <= now {
			t := heap.Pop(&s.pending).(*preciseTimer)
			due = append(due, t.f)
			if len(due) == 1 {
				first = t.deadline
			}
		}
		lone := len(due) == 1 && len(s.pending) == 0
		if len(due) > 0 && !lone {
			// The first due timer measures the wake-up delay (the others
			// were due earlier still, behind it).
			s.observeLatenessLocked(now - first)
		}
		if len(s.pending) > 0 {
			idleSince = 0
			s.armed = 0 // expired or due again: set for the next one
			s.rearmLocked()
			s.mu.Unlock()
			for _, f := range due {
				go f()
			}
		} else {
			if len(due) > 0 || idleSince == 0 {
				idleSince = now
			}
			if len(due) == 0 && now-idleSince >= int64(idleLinger) {
				s.running = false // idle long enough: a new timer starts a loop
				s.mu.Unlock()
				return
			}
			// Nothing else pending: the last due timer's f runs on this
			// goroutine, one goroutine start and one wake-up fewer per
			// lone batch. Meanwhile the timerfd is another loop's: a
			// timer armed while f runs starts one.
			s.running = false
			s.mu.Unlock()
			for i, f := range due {
				if i == len(due)-1 {
					f()
				} else {
					go f()
				}
			}
			s.mu.Lock()
			if lone {
				// A lone batch's lateness is measured once it has run and
				// its callers are answered: what its callers see, less
				// their own wake-up, is then on time on average.
				s.observeLatenessLocked(s.nowLocked() - first)
			}
			if s.running {
				s.mu.Unlock()
				return // another loop took over
			}
			s.running = true
			s.armIdleEndLocked(idleSince + int64(idleLinger))
			s.mu.Unlock()
		}
		// Parks in the poller until the timerfd expires (or returns at
		// once if it already has).
		if _, err := s.file.Read(buf); err != nil && !isAgain(err) {
			// The timerfd broke (it cannot, short of fd exhaustion at
			// start): fall back to sleeping until the next deadline.
			time.Sleep(time.Millisecond)
		}
	}
}

// observeLatenessLocked adds how late a timer fired (or its lone batch
// ended) to the moving average that timers are armed early by. s.mu
// must be held.
func (s *timerService) observeLatenessLocked(late int64) {
	s.slack = min(s.slack+(late-s.slack)/8, maxSlack)
}

// armIdleEndLocked sets the timerfd for deadline, the end of the loop's
// lingering, when no timer is pending. s.mu must be held.
func (s *timerService) armIdleEndLocked(deadline int64) {
	if len(s.pending) > 0 {
		return // cannot be: a new timer would have found the loop stopped
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(deadline)}
	if err := unix.TimerfdSettime(s.fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err == nil {
		s.armed = deadline
	}
}

func isAgain(err error) bool {
	pe, ok := err.(*os.PathError)
	return ok && pe.Err == unix.EAGAIN
}

// timerHeap orders pending timers by deadline.
type timerHeap []*preciseTimer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*preciseTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.index = -1
	*h = old[:n-1]
	return t
}

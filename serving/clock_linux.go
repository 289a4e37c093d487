//go:build linux

package serving

import (
	"container/heap"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux the batch timers of every serving of the process share one
// timerfd, read through Go's network poller: the goroutine that waits for
// it is parked (it holds no P, burns no CPU), and epoll returns as soon as
// the kernel's high-resolution timer expires, tens of microseconds after
// the deadline instead of Go's millisecond. The goroutine runs only while
// timers are pending, so an idle process has none.
//
// Arming and stopping cost a lock and a heap operation, and a
// timerfd_settime only when the earliest deadline changes (a stack that
// fills before its timer stops it: most timers end that way).
//
// What remains late is the wake-up: the poller's thread, the loop, then
// f's goroutine (tens to hundreds of microseconds on an idle 2-core VM).
// The service measures it — how long after its deadline each timer
// actually fires — and arms timers that much early (a moving average,
// capped at maxSlack), so that on average f runs when it was asked to.

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
}

// maxSlack caps how early a timer is armed.
const maxSlack = int64(time.Millisecond)

// maxLinger is how long the loop may wait for a stopped timer's deadline
// with nothing else pending before a stop wakes it to end.
const maxLinger = 20 * time.Millisecond

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

// loop waits for the timerfd and fires what is due, until no timer is
// pending.
func (s *timerService) loop() {
	buf := make([]byte, 8)
	for {
		s.mu.Lock()
		now := s.baseMono + int64(time.Since(s.base))
		var due []func()
		for len(s.pending) > 0 && s.pending[0].deadline <= now {
			t := heap.Pop(&s.pending).(*preciseTimer)
			due = append(due, t.f)
			if len(due) == 1 {
				// The first due timer measures the wake-up delay (the
				// others were due earlier still, behind it).
				s.slack = min(s.slack+(now-t.deadline-s.slack)/8, maxSlack)
			}
		}
		if len(s.pending) == 0 {
			s.running = false
			s.mu.Unlock()
			// This goroutine ends here, so the last due timer's f runs on
			// it: one goroutine start and one wake-up fewer per lone
			// batch, the common case at a trickle (a timer armed
			// meanwhile starts a loop of its own).
			for i, f := range due {
				if i == len(due)-1 {
					f()
				} else {
					go f()
				}
			}
			return
		}
		s.armed = 0 // expired or due again: set for the next one
		s.rearmLocked()
		s.mu.Unlock()
		for _, f := range due {
			go f()
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

package serving

import (
	"sync"
	"time"
)

// fakeClock is a Clock whose timers fire only when the test calls fire.
// It makes timer tests exact: no sleeping, no races with the wall clock.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	f       func()
	d       time.Duration
	stopped bool
	fired   bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{f: f, d: d}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.fired || t.stopped {
			return false
		}
		t.stopped = true
		return true
	}
}

// pending returns how many timers are armed and not stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.fired && !t.stopped {
			n++
		}
	}
	return n
}

// fire runs every armed timer, as if their time had come, in the calling
// goroutine, and reports how many fired.
func (c *fakeClock) fire() int {
	c.mu.Lock()
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.fired && !t.stopped {
			t.fired = true
			due = append(due, t)
			if t.d > 0 {
				c.now = c.now.Add(t.d)
			}
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
	return len(due)
}

// fireStale runs every timer, including stopped ones, as a timer whose
// stop lost the race with its firing would.
func (c *fakeClock) fireStale() {
	c.mu.Lock()
	all := append([]*fakeTimer(nil), c.timers...)
	c.mu.Unlock()
	for _, t := range all {
		t.f()
	}
}

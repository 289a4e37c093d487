//go:build linux

package serving

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A lone timer's f runs on the timer loop's goroutine; a timer armed
// while it runs must not wait for it: it gets a loop of its own.
func TestTimerArmedWhileALoneTimerRunsFires(t *testing.T) {
	second := make(chan struct{})
	firstDone := make(chan struct{})
	preciseAfterFunc(time.Millisecond, func() {
		defer close(firstDone)
		preciseAfterFunc(time.Millisecond, func() { close(second) })
		select {
		case <-second: // fired while this one still runs
		case <-time.After(5 * time.Second):
			t.Error("a timer armed while a lone timer's f ran did not fire within 5 s")
		}
	})
	select {
	case <-firstDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the first timer did not fire within 10 s")
	}
}

// After its last timer the loop lingers for the next one, then ends: an
// idle process keeps no goroutine for its timers.
func TestTimerLoopEndsWhenIdle(t *testing.T) {
	for range 3 { // a trickle: each timer armed while the loop lingers
		fired := make(chan struct{})
		preciseAfterFunc(time.Millisecond, func() { close(fired) })
		<-fired
	}
	s := timers.svc
	require.NotNil(t, s, "this Linux has a timerfd")
	require.Eventually(t, func() bool { return s.loops.Load() == 0 },
		5*time.Second, time.Millisecond, "the loop ends within idleLinger (%v) of its last timer", idleLinger)
	s.mu.Lock()
	defer s.mu.Unlock()
	require.False(t, s.running, "no loop runs, and none is marked running")
}

package erldist

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Closing the gate waits for the routings under way, and admits no new
// one.
func TestRouteGateWaitsForRoutingsUnderWayThenAdmitsNone(t *testing.T) {
	var g routeGate
	require.True(t, g.enter())
	require.True(t, g.enter())

	closed := make(chan struct{})
	go func() {
		g.close(time.Minute)
		close(closed)
	}()
	g.leave()
	select {
	case <-closed:
		t.Fatal("close returned while a routing was still under way")
	default:
	}
	// close has shut the gate before it waits: a routing that comes now
	// is turned away, however the goroutines are scheduled.
	waitShut(t, &g)
	assert.False(t, g.enter(), "the shut gate admits a routing")
	g.leave()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return within 10 s of the last routing's end")
	}
}

// A gate with nothing under way closes at once; one whose routing never
// ends closes after the limit.
func TestRouteGateCloseIsBounded(t *testing.T) {
	var idle routeGate
	idle.close(time.Hour) // returns at once, or the test times out
	assert.False(t, idle.enter())

	var stuck routeGate
	require.True(t, stuck.enter())
	start := time.Now()
	stuck.close(20 * time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
}

// waitShut returns once g is shut.
func waitShut(t *testing.T, g *routeGate) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		shut := g.shut
		g.mu.Unlock()
		if shut {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the gate was not shut within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

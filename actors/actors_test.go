package actors

import (
	"context"
	"testing"
	"time"

	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ergonx/ergonx/internal/erldist"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNodeOptionsSetsSafetyAndKeepsTheRest(t *testing.T) {
	reg := NewStaticRegistrar()
	reg.Add("peer@localhost", "127.0.0.1", 4242)
	o := NodeOptions(node.Options{Registrar: reg, Creation: 7})
	assert.True(t, o.System.DisableAnonMetrics)
	assert.IsType(t, &erldist.Handshake{}, o.Handshake, "ergonx's own distribution")
	assert.IsType(t, &erldist.Proto{}, o.Proto)
	route, err := o.Registrar.Resolve("peer@localhost")
	require.NoError(t, err, "the registrar is wrapped, not replaced")
	assert.Equal(t, uint16(4242), route.Port)
	assert.Equal(t, uint32(7), o.Creation)

	// A node's own handshake or proto is kept.
	own := erldist.NewProto(erldist.Options{})
	assert.Same(t, own, NodeOptions(node.Options{Proto: own}).Proto)
}

func TestStaticRegistrar(t *testing.T) {
	r := NewStaticRegistrar()
	require.NoError(t, r.Register(context.Background(), "a@localhost", node.RegisterOptions{Port: 4242}))
	route, err := r.Resolve("a@localhost")
	require.NoError(t, err)
	assert.Equal(t, node.Route{Node: "a@localhost", Host: "127.0.0.1", Port: 4242}, route)

	r.Add("b@otherhost", "10.0.0.2", 5000)
	route, err = r.Resolve("b@otherhost")
	require.NoError(t, err)
	assert.Equal(t, uint16(5000), route.Port)

	r.Remove("b@otherhost")
	_, err = r.Resolve("b@otherhost")
	require.ErrorIs(t, err, lib.ErrNoRoute)
	_, err = r.ResolveProxy("a@localhost")
	require.ErrorIs(t, err, lib.ErrProxyNoRoute)
}

func TestTaskSupervisorRunsAndWaits(t *testing.T) {
	ts := NewTaskSupervisor(time.Minute)
	release := make(chan struct{})
	started := make(chan struct{})
	require.NoError(t, ts.Go(func() { close(started); <-release }))
	<-started
	assert.Equal(t, 1, ts.Running())

	stopped := make(chan struct{})
	go func() { ts.stopAndWait(); close(stopped) }()
	// Stopping refuses new tasks at once...
	require.Eventually(t, func() bool { return ts.Go(func() {}) == ErrTaskSupervisorStopped }, 5*time.Second, time.Millisecond)
	// ...and waits for the running one.
	select {
	case <-stopped:
		t.Fatal("stopped while a task was running")
	default:
	}
	close(release)
	<-stopped
	assert.Equal(t, 0, ts.Running())
}

func TestTaskSupervisorSurvivesPanics(t *testing.T) {
	ts := NewTaskSupervisor(time.Minute)
	done := make(chan struct{})
	require.NoError(t, ts.Go(func() { defer close(done); panic("task bug") }))
	<-done
	require.Eventually(t, func() bool { return ts.Running() == 0 }, 5*time.Second, time.Millisecond)
	ts.stopAndWait()
}

// A task that never ends is abandoned after the shutdown bound, so the
// process (and its registered name) is not kept forever.
func TestTaskSupervisorAbandonsStuckTasks(t *testing.T) {
	ts := NewTaskSupervisor(20 * time.Millisecond)
	release := make(chan struct{})
	require.NoError(t, ts.Go(func() { <-release }))
	ts.stopAndWait() // returns after 20 ms
	assert.Equal(t, 1, ts.Running())
	close(release)
	require.Eventually(t, func() bool { return ts.Running() == 0 }, 5*time.Second, time.Millisecond)
}

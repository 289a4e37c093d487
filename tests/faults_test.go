package tests

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/pg"
	ergonxcluster "github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// nodeLossBound is how long a caller of a node that died may wait for its
// error: never a hang.
const nodeLossBound = 10 * time.Second

// A node stopped while its serving holds requests in an execution: every
// waiting caller on another node gets
// ErrNodeDown within nodeLossBound, and another node's serving of the same
// name keeps serving.
func TestNodeStoppedMidRequestFailsItsCallers(t *testing.T) {
	if raceEnabled {
		// Not ours to fix: ergo v1.999.224 routes a message arriving from
		// another node to a process it is cleaning up without the lock the
		// cleanup writes under (node/core.go:764 reads the mailbox that
		// :501 clears), so stopping a node while its peers talk to it is a
		// data race inside ergo that -race reports now and then. The test
		// runs in the plain pass of ./test.sh; TestKilledNodeProcessUnderLoad
		// covers node loss under -race (its node dies in another process).
		t.Skip("stopping a node under traffic races inside ergo (see comment); runs without -race")
	}
	nodes := cluster(t, 3)
	caller, doomed, survivor := nodes[0], nodes[1], nodes[2]
	name := servingName(t)
	// One batch holds every caller: no request is stacked or queued, so
	// none is answered noproc (and retried elsewhere) as the serving
	// stops with its node.
	const callers = 6
	dd := newDoubler(doomed).held(t)
	dd.start(t, doomed, serving.Options{Name: name, BatchSize: callers, BatchTimeout: time.Hour})
	waitMembers(t, name, 1, caller)

	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			_, _, err := callTagged(context.Background(), caller, serving.Distributed(name), float32(i))
			errs <- err
		}()
	}
	assert.Equal(t, callers, within(t, waitLimit, dd.entered, "the batch of every call"))
	ds := newDoubler(survivor)
	ds.start(t, survivor, serving.Options{Name: name})
	// The doomed node's scope has seen the join too: no process-group
	// message to it is in flight when it stops.
	waitMembers(t, name, 2, caller, doomed)

	stoppedAt := time.Now()
	stopped := make(chan struct{})
	go func() {
		testnode.Stop(doomed)
		close(stopped)
	}()
	for range callers {
		err := within(t, nodeLossBound, errs, "the callers of the stopped node")
		assert.ErrorIs(t, err, serving.ErrNodeDown)
	}
	t.Logf("the %d callers got their errors within %v", callers, time.Since(stoppedAt))
	dd.release() // the node's stop waits for the held execution
	within(t, waitLimit, stopped, "the node to stop")

	waitMembers(t, name, 1, caller)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for i := range 20 {
		rows, ranOn, err := callTagged(ctx, caller, serving.Distributed(name), float32(i))
		require.NoError(t, err)
		assert.Equal(t, doubled(float32(i)), rows)
		assert.Equal(t, survivor.Name(), ranOn)
	}
}

// The main fault: a node in a separate OS process serving a
// share of the load is killed with SIGKILL while callers on two other
// nodes keep calling the serving's name (served also by a serving in this
// process). Every call the killed node held fails with ErrNodeDown within
// nodeLossBound, no call hangs or gets another caller's rows, the
// surviving serving keeps serving, and (TestMain) nothing leaks.
func TestKilledNodeProcessUnderLoad(t *testing.T) {
	nodes := cluster(t, 3)
	callerNodes, survivor := nodes[:2], nodes[2]
	name := servingName(t)
	ds := newDoubler(survivor)
	ds.start(t, survivor, serving.Options{Name: name, BatchSize: 4})

	var peers []string
	for _, nd := range nodes {
		route, err := testnode.Registrar.Resolve(nd.Name())
		require.NoError(t, err)
		peers = append(peers, fmt.Sprintf("%s=%d", nd.Name(), route.Port))
	}
	const servedBeforeHang = 30
	child := startHelper(t, "TestHelperNodeProcess", "node",
		helperPeersEnv+"="+strings.Join(peers, ","),
		helperServingEnv+"="+name,
		helperServeEnv+"="+strconv.Itoa(servedBeforeHang))
	f := child.expect(waitLimit, "NODE")
	childName := f[1]
	port, err := strconv.ParseUint(f[2], 10, 16)
	require.NoError(t, err)
	testnode.Registrar.Add(childName, "127.0.0.1", uint16(port))
	t.Cleanup(func() { testnode.Registrar.Remove(childName) })
	for _, nd := range callerNodes {
		require.NoError(t, nd.Connect(childName))
	}
	waitMembers(t, name, 2, callerNodes...)

	// Load: 8 goroutines on each caller node, each calling in a loop
	// until stop, with no deadline.
	var (
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		mu        sync.Mutex
		calls     []timedResult
		afterKill atomic.Int64 // successes that started after the kill
		killedAt  atomic.Pointer[time.Time]
		next      atomic.Int64
	)
	for _, nd := range callerNodes {
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					v := float32(next.Add(1))
					c := timedCall(nd, name, v)
					if k := killedAt.Load(); c.err == nil && k != nil && c.start.After(*k) {
						afterKill.Add(1)
					}
					mu.Lock()
					calls = append(calls, c)
					mu.Unlock()
				}
			})
		}
	}
	// Stop the load however the test ends (the child dies first: calls it
	// holds never end otherwise).
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		waitGroup(t, waitLimit, &wg, "the load to stop")
	})
	t.Cleanup(func() {
		child.kill()
		stopLoad()
	})

	child.expect(waitLimit, "HUNG")
	now := time.Now()
	killedAt.Store(&now)
	child.kill()
	testnode.Registrar.Remove(childName) // as EPMD forgets a dead node

	waitMembers(t, name, 1, callerNodes...)
	waitFor(t, "200 calls after the kill", func() bool { return afterKill.Load() >= 200 })
	stopLoad()

	killed := *killedAt.Load()
	var fromChild, fromSurvivor, failed int
	var firstWrong error
	var slowest time.Duration
	for _, c := range calls {
		switch {
		case c.err == nil && c.node == childName:
			fromChild++
		case c.err == nil && c.node == survivor.Name():
			fromSurvivor++
		case errors.Is(c.err, serving.ErrNodeDown):
			failed++
			if c.end.Before(killed) {
				firstWrong = firstOf(firstWrong, fmt.Errorf("a call failed before the kill: %w", c.err))
			}
			from := killed
			if c.start.After(killed) {
				from = c.start
			}
			slowest = max(slowest, c.end.Sub(from))
		default:
			firstWrong = firstOf(firstWrong, fmt.Errorf("call from %s: %v", c.node, c.err))
		}
	}
	t.Logf("%d calls: %d served by the child, %d by the survivor, %d failed with ErrNodeDown (slowest %v after the kill)",
		len(calls), fromChild, fromSurvivor, failed, slowest)
	assert.NoError(t, firstWrong)
	assert.Positive(t, fromChild, "the child served part of the load before it hung")
	assert.Positive(t, failed, "the calls the child held failed")
	assert.Less(t, slowest, nodeLossBound, "callers of the killed node got their errors in time")
}

func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// A node with another cookie cannot join the cluster: connecting fails in
// both directions, it sees no serving, and the cluster goes on serving.
func TestWrongCookieIsRefused(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	stranger := takeNode(t, wrongCookieNode)
	require.NoError(t, ergonxcluster.Start(stranger, pg.Options{DiscoveryInterval: discovery}))
	name := servingName(t)
	newDoubler(remote).start(t, remote, serving.Options{Name: name})
	waitMembers(t, name, 1, caller)

	assert.Error(t, stranger.Connect(caller.Name()), "a connection with the wrong cookie")
	assert.Error(t, caller.Connect(stranger.Name()), "a connection to a node with another cookie")
	assert.NotContains(t, caller.Nodes(), stranger.Name())
	assert.Empty(t, stranger.Nodes())

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := serving.BatchedRun(ctx, stranger, serving.Distributed(name), floats(1))
	assert.ErrorIs(t, err, serving.ErrNoProc, "the stranger sees no serving")

	assert.Equal(t, []string{remote.Name()}, caller.Nodes())
	rows, ranOn, err := callTagged(ctx, caller, serving.Distributed(name), 1)
	require.NoError(t, err)
	assert.Equal(t, doubled(1), rows)
	assert.Equal(t, remote.Name(), ranOn)
}

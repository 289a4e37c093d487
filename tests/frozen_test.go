package tests

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// processState is the state letter of process pid in /proc (R, S, T for
// stopped...), or 0 if it cannot be read.
func processState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ...: comm may hold spaces, so look after its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// frozenBound is how long after a member freezes its callers may wait:
// the liveness check's quiet time and probe timeout, plus its tick and
// slack for a loaded 2-core machine.
const frozenBound = serving.LivenessQuiet + serving.LivenessTimeout + 1500*time.Millisecond

// Issue 11: a member on a node frozen with SIGSTOP (its connection stays
// open, no DOWN ever comes) while another member is healthy. Callers with
// no deadline that were waiting on it fail with ErrNodeDown within
// frozenBound; new calls go to the healthy member (the frozen one is
// ejected) and all succeed; nobody waits past the bound. When the node
// resumes (SIGCONT) it answers a probe and gets calls again.
func TestFrozenMemberIsEjectedAndComesBack(t *testing.T) {
	nodes := cluster(t, 2)
	caller, survivor := nodes[0], nodes[1]
	name := servingName(t)
	newDoubler(survivor).start(t, survivor, serving.Options{Name: name, BatchSize: 4})

	var peers []string
	for _, nd := range nodes {
		route, err := testnode.Registrar.Resolve(nd.Name())
		require.NoError(t, err)
		peers = append(peers, fmt.Sprintf("%s=%d", nd.Name(), route.Port))
	}
	child := startHelper(t, "TestHelperNodeProcess", "node",
		helperPeersEnv+"="+strings.Join(peers, ","),
		helperServingEnv+"="+name,
		helperServeEnv+"="+strconv.Itoa(1<<30)) // never hangs
	f := child.expect(waitLimit, "NODE")
	childName := f[1]
	port, err := strconv.ParseUint(f[2], 10, 16)
	require.NoError(t, err)
	testnode.Registrar.Add(childName, "127.0.0.1", uint16(port))
	t.Cleanup(func() { testnode.Registrar.Remove(childName) })
	require.NoError(t, caller.Connect(childName))
	waitMembers(t, name, 2, caller)

	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		calls    []timedResult
		next     atomic.Int64
		byChild  atomic.Int64
		frozenAt atomic.Pointer[time.Time]
		resumed  atomic.Pointer[time.Time]
		after    atomic.Int64 // successes that started after the freeze
		back     atomic.Int64 // calls served by the child after it resumed
	)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := float32(next.Add(1))
				c := timedCall(caller, name, v)
				if c.err == nil && c.node == childName {
					byChild.Add(1)
					if r := resumed.Load(); r != nil && c.start.After(*r) {
						back.Add(1)
					}
				}
				if fz := frozenAt.Load(); c.err == nil && fz != nil && c.start.After(*fz) {
					after.Add(1)
				}
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
			}
		})
	}
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		waitGroup(t, waitLimit, &wg, "the load to stop")
	})
	t.Cleanup(func() {
		_ = child.cmd.Process.Signal(syscall.SIGCONT)
		stopLoad()
	})

	waitFor(t, "the child to serve 50 calls", func() bool { return byChild.Load() >= 50 })
	require.NoError(t, child.cmd.Process.Signal(syscall.SIGSTOP))
	// The signal stops every thread a little later: the freeze counts
	// from when the kernel says the process is stopped.
	waitFor(t, "the child to be stopped", func() bool { return processState(child.cmd.Process.Pid) == 'T' })
	now := time.Now()
	frozenAt.Store(&now)
	waitFor(t, "300 calls after the freeze", func() bool { return after.Load() >= 300 })
	// Past the bound, the load still runs, on the survivor only.
	time.Sleep(frozenBound) // the bound itself is what is measured here
	require.NoError(t, child.cmd.Process.Signal(syscall.SIGCONT))
	thawed := time.Now()
	resumed.Store(&thawed)
	waitFor(t, "the resumed child to serve again", func() bool { return back.Load() >= 20 })
	stopLoad()

	frozen := *frozenAt.Load()
	var failed, wrong int
	var slowest time.Duration
	var firstWrong error
	for _, c := range calls {
		// Every call's wait is measured from when it started, or from the
		// freeze for calls already running then.
		from := c.start
		if from.Before(frozen) {
			from = frozen
		}
		if c.end.After(frozen) && (c.end.Before(thawed) || c.start.Before(thawed)) {
			slowest = max(slowest, c.end.Sub(from))
		}
		switch {
		case c.err == nil:
			if c.node == childName && c.start.After(frozen) && c.end.Before(thawed) {
				wrong++
				firstWrong = firstOf(firstWrong, fmt.Errorf("the frozen child served a call"))
			}
		case errors.Is(c.err, serving.ErrNodeDown) && c.start.Before(frozen.Add(frozenBound)):
			failed++
		default:
			wrong++
			firstWrong = firstOf(firstWrong, c.err)
		}
	}
	t.Logf("%d calls; %d failed with ErrNodeDown after the freeze; slowest wait %v (bound %v); %d served by the child after it resumed",
		len(calls), failed, slowest, frozenBound, back.Load())
	assert.Zero(t, wrong, "first: %v", firstWrong)
	assert.Positive(t, failed, "the calls waiting on the frozen node failed")
	assert.Less(t, slowest, frozenBound, "nobody waits past the bound")
}

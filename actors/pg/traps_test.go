package pg

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests for the ergo v1.999.224 traps the scope is designed around. Each
// fails if the corresponding design decision is undone.

// ergo's default mailbox holds 100 messages and drops the rest, DOWN
// included. Thousands of members dying while the scope is busy must all
// be dropped from the groups, here and on the peer.
func TestTrapDownBurstIsNotDropped(t *testing.T) {
	nodes, scopes := cluster(t, 2)
	s := scopes[0]
	assert.Equal(t, MailboxSize, cap(s.proc.ProcessChannels().Mailbox))

	const n = 3000
	members := make([]gen.Process, n)
	for i := range members {
		members[i] = spawn(t, nodes[0])
	}
	require.NoError(t, s.Join("burst", pidsOf(members...)...))
	waitFor(t, "the peer to see every member", func() bool { return scopes[1].Count("burst") == n })

	// Hold the scope in a callback so that every DOWN has to queue. The
	// cleanup lets it go if the test fails first, so that Stop returns.
	held, hold := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	require.NoError(t, s.proc.Send(s.pid, hook(func() { close(held); <-hold })))
	within(t, held, "the scope to be held")
	for _, p := range members {
		p.Kill()
	}
	mailbox := s.proc.ProcessChannels().Mailbox
	waitFor(t, "every DOWN to be queued (a smaller mailbox drops them)", func() bool { return len(mailbox) >= n })
	release()

	waitMembers(t, "burst", nil, scopes...)
	assert.Nil(t, s.Groups())
}

// Direct requests go through a queue of 10 and fail with "process is
// busy" beyond it; Join and Leave use the mailbox, so a thousand
// concurrent callers all succeed.
func TestTrapConcurrentJoinsFromGoroutines(t *testing.T) {
	nodes, scopes := cluster(t, 2)
	const n = 1000
	pids := make([]etf.Pid, n)
	for i := range pids {
		pids[i] = spawn(t, nodes[0]).Self()
	}

	start := make(chan struct{})
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for _, p := range pids {
		wg.Go(func() {
			<-start
			errs <- scopes[0].Join("crowd", p, p)
			errs <- scopes[0].Leave("crowd", p)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.True(t, sameMembers(scopes[0].Members("crowd"), pids))
	waitMembers(t, "crowd", pids, scopes[1])
}

// Remote messages between two processes arrive in order: ergo's own
// distribution reorders them with several connection handlers; ergonx's
// (internal/erldist, through actors.NodeOptions) keeps them in order. If
// a leave overtook its join, the peer would keep a member that left.
func TestTrapRemoteOrderIsKept(t *testing.T) {
	nodes, scopes := cluster(t, 2)
	p := spawn(t, nodes[0]).Self()
	require.NoError(t, scopes[0].Join("ready", p))
	waitMembers(t, "ready", []etf.Pid{p}, scopes[1]) // the scopes know each other

	for range 500 {
		require.NoError(t, scopes[0].Join("churn", p, p))
		require.NoError(t, scopes[0].Leave("churn", p))
		require.NoError(t, scopes[0].Leave("churn", p))
	}
	require.NoError(t, scopes[0].Join("done", p))
	waitMembers(t, "done", []etf.Pid{p}, scopes[1])
	assert.Nil(t, scopes[1].Members("churn"))
}

// Process.Exit from another goroutine can crash on a nil function when the
// process terminates at once; Stop goes through the mailbox instead. And
// Stop returns only once the name is free. Starting and stopping scopes
// many times, several at once to shake the scheduling, must never crash
// nor find the name taken. (With Exit in Stop, this crashed in most runs.)
func TestTrapStopDoesNotRaceExit(t *testing.T) {
	nd := newNode(t)
	const workers, cycles = 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			name := fmt.Sprintf("stop.race.%d", w)
			for range cycles {
				s, err := Start(nd, Options{Name: name})
				if err != nil {
					errs <- err
					return
				}
				s.Stop()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// The scope never waits for a Monitor reader: a subscriber that does not
// read does not hold up joins.
func TestTrapSlowSubscriberDoesNotBlockScope(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)
	_, events, cancel := s.Monitor("g")
	p := spawn(t, nd).Self()
	for range 2000 {
		require.NoError(t, s.Join("g", p))
	}
	ev, ok := within(t, events, "the first event")
	require.True(t, ok)
	assert.Equal(t, Event{Kind: Joined, Group: "g", Pids: []etf.Pid{p}}, ev)
	cancel()
	_, ok = <-events
	assert.False(t, ok, "cancel closes the channel, dropping what was queued")
}

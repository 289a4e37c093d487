package pg

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/safelog"
	"github.com/ergonx/ergonx/internal/testnode"
)

// Tests of what a peer may do to a scope: on real nodes, a process of the
// peer's node sends what a hostile or broken pg scope there could send.

// logLines gives the running scope a rate limiter of lines per hour that
// writes to a buffer, and returns a function that reads the lines logged
// so far.
func logLines(t *testing.T, s *Scope, lines int) func() []string {
	t.Helper()
	var mu sync.Mutex
	var buf bytes.Buffer
	l := safelog.NewLimiter(lines, time.Hour)
	l.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	onScope(t, s, func() { serverOf(s).logs = l })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	}
}

// waitStats waits until s's Stats satisfy cond, and then until the scope
// has finished handling the message that changed them (the counters move
// before the table does).
func waitStats(t *testing.T, s *Scope, what string, cond func(Stats) bool) {
	t.Helper()
	waitFor(t, what, func() bool { return cond(s.Stats()) })
	onScope(t, s, func() {})
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// A peer may add only pids of its own node and incarnation. Joins and
// syncs that list another node's pids (a node that does not exist
// included), this node's, or those of the peer's earlier incarnation add
// none of them (0 accepted), and each message's refusal is logged once.
func TestForgedEntriesFromAPeerAreRefused(t *testing.T) {
	nodes, scopes := cluster(t, 3)
	a, b, c := scopes[0], scopes[1], scopes[2]
	real := spawn(t, nodes[1]).Self()
	require.NoError(t, b.Join("g", real))
	waitMembers(t, "g", []etf.Pid{real}, a, c)
	// The discovery exchange may still have a sync in flight, which would
	// replace what the test makes the peer announce.
	settle(t, a)
	lines := logLines(t, a, 100)

	forged := []etf.Pid{
		spawn(t, nodes[0]).Self(),                                   // the receiver's own
		spawn(t, nodes[2]).Self(),                                   // a third node's, alive
		{Node: "nowhere@localhost", ID: 1, Creation: 1},             // no such node
		{Node: real.Node, ID: real.ID, Creation: real.Creation + 1}, // the peer's other incarnation
	}
	forger := spawn(t, nodes[1])
	require.NoError(t, forger.Send(a.Pid(), joinMsg(b.Pid(), "g", forged)))
	require.NoError(t, forger.Send(a.Pid(), joinMsg(b.Pid(), "h", forged[:1])))
	// A sync that keeps the real member and adds the forged ones.
	require.NoError(t, forger.Send(a.Pid(), etf.Tuple{etf.Atom("$gen_cast"),
		syncMsg(b.Pid(), []groupPids{{"g", append([]etf.Pid{real}, forged...)}, {"k", forged}})}))

	const refused = 4 + 1 + 4 + 4
	// The count includes the sync, the last message sent.
	waitStats(t, a, "the forged entries to be refused", func(st Stats) bool { return st.Forged == refused })
	assert.Equal(t, Stats{Forged: refused}, a.Stats())
	assert.Equal(t, []etf.Pid{real}, a.Members("g"))
	assert.Nil(t, a.Members("h"))
	assert.Nil(t, a.Members("k"))
	accepted := 0
	for _, g := range a.Groups() { // g, and the settle markers' group
		for _, p := range a.Members(g) {
			if slices.Contains(forged, p) {
				accepted++
			}
		}
	}
	assert.Zero(t, accepted, "forged entries accepted")
	assert.NotContains(t, a.Nodes(), "nowhere@localhost")
	assert.Zero(t, c.Stats(), "the third node heard nothing forged")

	got := lines()
	assert.Len(t, got, 4, "one line per refusing message and group:\n%s", strings.Join(got, "\n"))
	for _, l := range got {
		assert.Contains(t, l, "why=forged")
	}
}

// A ghost (a pid of the peer's node that does not exist) announced by the
// peer is picked until a caller suspects it: then it is hidden at once,
// the probe finds it dead, and the peer cannot announce it again.
func TestGhostMemberSuspectedHiddenAndDropped(t *testing.T) {
	nodes, scopes := cluster(t, 2)
	a, b := scopes[0], scopes[1]
	live := spawn(t, nodes[1]).Self()
	require.NoError(t, b.Join("g", live))
	waitMembers(t, "g", []etf.Pid{live}, a)
	// The discovery exchange may still have a sync in flight, which would
	// replace what the test makes the peer announce.
	settle(t, a)

	// ergo sends pid numbers of 15 bits between its nodes: a ghost's must
	// fit, beyond any process the node has started.
	ghost := etf.Pid{Node: live.Node, ID: live.ID + 20_000, Creation: live.Creation}
	require.Less(t, ghost.ID, uint64(1<<15))
	forger := spawn(t, nodes[1])
	require.NoError(t, forger.Send(a.Pid(), joinMsg(b.Pid(), "g", []etf.Pid{ghost, ghost})))
	waitMembers(t, "g", []etf.Pid{live, ghost, ghost}, a)

	require.NoError(t, a.Suspect(ghost))
	assert.Equal(t, []etf.Pid{live}, a.Members("g"), "hidden as soon as Suspect returns")
	for range 1000 {
		pid, ok := a.RandomMember("g")
		require.True(t, ok)
		require.Equal(t, live, pid)
	}
	waitStats(t, a, "the probe to find the ghost dead", func(st Stats) bool { return st.Dead == 1 })

	// Announced again: refused.
	require.NoError(t, forger.Send(a.Pid(), joinMsg(b.Pid(), "g", []etf.Pid{ghost})))
	waitStats(t, a, "the ghost to be refused", func(st Stats) bool { return st.DeadRefused == 1 })
	assert.Equal(t, Stats{Suspected: 1, Dead: 1, DeadRefused: 1}, a.Stats())
	assert.Equal(t, []etf.Pid{live}, a.Members("g"))
	assert.Equal(t, []etf.Pid{live}, b.Members("g"), "the peer's own view never had it")

	// The live member, suspected, is shown again by the probe's answer
	// (TestSuspectedMemberComesBackWhenItsPeerAnswers shows it hidden
	// meanwhile). The answer to the first probe, which the ghost's DOWN
	// overtook, must not be in flight.
	settle(t, a)
	require.NoError(t, a.Suspect(live))
	waitStats(t, a, "the probe's answer", func(st Stats) bool { return st.Restored == 1 })
	assert.Equal(t, []etf.Pid{live}, a.Members("g"))
	assert.Equal(t, Stats{Suspected: 2, Restored: 1, Dead: 1, DeadRefused: 1}, a.Stats())
}

// A live member that a caller suspects stays hidden while its peer does
// not answer (its scope is held busy, as a frozen node would be), and is
// shown again as soon as the peer answers the probe.
func TestSuspectedMemberComesBackWhenItsPeerAnswers(t *testing.T) {
	nodes, scopes := cluster(t, 2)
	a, b := scopes[0], scopes[1]
	live := spawn(t, nodes[1]).Self()
	other := spawn(t, nodes[1]).Self()
	require.NoError(t, b.Join("g", live, live, other))
	waitMembers(t, "g", []etf.Pid{live, live, other}, a)
	// The discovery exchange may still have a sync in flight, which would
	// replace what the test makes the peer announce.
	settle(t, a)

	held, hold := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	require.NoError(t, b.proc.Send(b.pid, hook(func() { close(held); <-hold })))
	within(t, held, "the peer's scope to be held")

	require.NoError(t, a.Suspect(live))
	assert.Equal(t, []etf.Pid{other}, a.Members("g"))
	// Nothing brings it back while the peer is silent; a's own handling
	// of everything queued before shows that.
	onScope(t, a, func() {})
	assert.Equal(t, []etf.Pid{other}, a.Members("g"))

	release()
	waitMembers(t, "g", []etf.Pid{live, live, other}, a)
	assert.Equal(t, Stats{Suspected: 1, Restored: 1}, a.Stats())
}

// A peer that announces far more members than MaxPeerMembers, in a flood
// of joins or in one message listing a million pids, holds exactly
// MaxPeerMembers entries; the rest are counted and logged a bounded
// number of times.
func TestJoinFloodIsBounded(t *testing.T) {
	const limit, flood = 100, 10_000
	an, bn := newNode(t), newNode(t)
	testnode.Mesh(t, an, bn)
	opts := Options{Name: "flood.scope", MaxPeerMembers: limit}
	a, b := startScopeWith(t, an, opts), startScopeWith(t, bn, opts)
	real := spawn(t, bn).Self()
	require.NoError(t, b.Join("g", real))
	waitMembers(t, "g", []etf.Pid{real}, a)
	// The discovery exchange may still have a sync in flight, which would
	// replace what the test makes the peer announce.
	settle(t, a)
	lines := logLines(t, a, 10)

	bpid := func(i int) etf.Pid {
		return etf.Pid{Node: real.Node, ID: real.ID + 10_000 + uint64(i), Creation: real.Creation}
	}
	// What b holds already: real, and settle's markers.
	held := 0
	for _, g := range a.Groups() {
		for _, p := range a.Members(g) {
			if p.Node == real.Node {
				held++
			}
		}
	}
	forger := spawn(t, bn)
	for i := range flood {
		require.NoError(t, forger.Send(a.Pid(), joinMsg(b.Pid(), "g", []etf.Pid{bpid(i)})))
	}
	waitStats(t, a, "the flood to be handled", func(st Stats) bool { return st.OverLimit == uint64(flood-(limit-held)) })
	assert.Equal(t, limit, held-1+a.Count("g"), "the peer holds limit entries")

	// One join listing a million pids, delivered on the scope's own node
	// (no encoding) as if it came from the peer.
	million := make(etf.List, 1_000_000)
	for i := range million {
		million[i] = bpid(i)
	}
	local := spawn(t, an)
	require.NoError(t, local.Send(a.Pid(), etf.Tuple{atomJoin, b.Pid(), etf.Atom("h"), million}))
	// And a sync of the same: it replaces the peer's view, within the
	// limit again.
	require.NoError(t, local.Send(a.Pid(), etf.Tuple{etf.Atom("$gen_cast"),
		etf.Tuple{atomSync, b.Pid(), etf.List{etf.Tuple{etf.Atom("k"), million}}}}))
	want := uint64(flood - (limit - held) + len(million) + len(million) - limit)
	waitStats(t, a, "the million-pid messages to be handled", func(st Stats) bool { return st.OverLimit == want })
	assert.Equal(t, Stats{OverLimit: want}, a.Stats())
	assert.Nil(t, a.Members("g"), "the sync replaced the view")
	assert.Nil(t, a.Members("h"))
	assert.Equal(t, limit, a.Count("k"))
	assert.Len(t, lines(), 10, "10 lines an hour, whatever the flood")

	// The scope still serves its own node, and the peer's real scope
	// resyncs its true view when asked.
	p := spawn(t, an).Self()
	require.NoError(t, a.Join("mine", p))
	require.NoError(t, a.Suspect(bpid(0)))
	waitMembers(t, "g", []etf.Pid{real}, a)
	waitFor(t, "k to go", func() bool { return a.Count("k") == 0 })
}

// Terms that crashed a node when formatted for a log line (a list nested
// a million deep) or wrote a 400 MB line (a 100 MB binary) are logged in
// a few hundred bytes, and the scope goes on.
func TestPathologicalTermsToTheScope(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)
	lines := logLines(t, s, 100)

	var deep etf.Term = etf.List{}
	for range 1_000_000 {
		deep = etf.List{deep}
	}
	huge := make([]byte, 100<<20)
	sender := spawn(t, nd)
	for _, m := range []etf.Term{
		deep,
		etf.Tuple{atomJoin, huge, huge, huge},
		etf.Tuple{etf.Atom("$gen_cast"), deep},
		etf.Tuple{atomDiscover, deep},
		etf.Tuple{},
	} {
		require.NoError(t, sender.Send(s.Pid(), m))
	}
	p := spawn(t, nd).Self()
	require.NoError(t, s.Join("g", p), "the scope is alive and answers")
	onScope(t, s, func() {})

	got := lines()
	require.Len(t, got, 5)
	for _, l := range got {
		assert.Less(t, len(l), 2*safelog.DefaultMaxBytes, l)
		assert.Contains(t, l, "ignored a")
	}
	assert.Contains(t, got[1], "(+104857536 bytes)")
}

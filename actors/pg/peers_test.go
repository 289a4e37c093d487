package pg

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Pids a peer on b@host may not announce.
var (
	onC        = etf.Pid{Node: "c@host", ID: 3002, Creation: 1}    // another node's, connected
	onNowhere  = etf.Pid{Node: "nowhere@host", ID: 1, Creation: 1} // a node that does not exist
	onSelf     = etf.Pid{Node: "a@host", ID: 1009, Creation: 7}    // ours
	oldB       = etf.Pid{Node: "b@host", ID: 2002, Creation: 0}    // an earlier incarnation of b
	ghost      = etf.Pid{Node: "b@host", ID: 999_999, Creation: 1} // b's, but no such process
	anotherB   = etf.Pid{Node: "b@host", ID: 2500, Creation: 1}    // a second scope pid of b
	forgedPids = []etf.Pid{onC, onNowhere, onSelf, oldB}
)

func knownPeer(t *testing.T) (*state, *recorder) {
	t.Helper()
	s, r := newTestState()
	s.discover(peerB)
	r.take()
	r.takeMonitored()
	return s, r
}

// A peer adds only pids of its own node and incarnation: a join or a sync
// listing others' is taken without them, and each refusal is counted and
// reported.
func TestStateRefusesForgedEntries(t *testing.T) {
	s, r := knownPeer(t)

	s.remoteJoin(peerB, "g", append([]etf.Pid{b1}, forgedPids...), 0)
	assert.Equal(t, []etf.Pid{b1}, s.table.members("g"))
	assert.Equal(t, []refusal{{refuseForged, peerB, 4, oldB}}, r.refusals)

	s.sync(peerB, map[string][]etf.Pid{"g": {b1, onC}, "h": {onNowhere, onNowhere}}, 0)
	assert.Equal(t, []etf.Pid{b1}, s.table.members("g"))
	assert.Nil(t, s.table.members("h"), "a group of forged entries only does not exist")
	assert.Equal(t, Stats{Forged: 7}, s.stats.snapshot())
	assert.Equal(t, []string{"b@host"}, s.table.nodeNames())

	// A join of forged entries only changes nothing.
	r.refusals = nil
	s.remoteJoin(peerB, "g", []etf.Pid{onC}, 0)
	assert.Equal(t, []etf.Pid{b1}, s.table.members("g"))
	assert.Equal(t, []refusal{{refuseForged, peerB, 1, onC}}, r.refusals)
}

// A peer holds at most maxPeer entries, whether they come in one message
// or many, and the entries it leaves free room again.
func TestStateBoundsPeerEntries(t *testing.T) {
	r := &recorder{up: map[string]bool{"b@host": true, "c@host": true}}
	s := newState(self, newTable(), r, 3)
	s.discover(peerB)

	s.remoteJoin(peerB, "g", []etf.Pid{b1, b1}, 0)
	s.remoteJoin(peerB, "h", []etf.Pid{b2, b2, b2}, 0)
	assert.Equal(t, 2, s.table.count("g"))
	assert.Equal(t, 1, s.table.count("h"))
	assert.Equal(t, uint64(2), s.stats.overLimit.Load())

	// A flood of joins: none passes.
	for range 1000 {
		s.remoteJoin(peerB, "g", []etf.Pid{b1}, 0)
	}
	assert.Equal(t, 3, s.peers[peerB].entries)
	assert.Equal(t, uint64(1002), s.stats.overLimit.Load())

	// Leaving makes room.
	s.remoteLeave(peerB, []etf.Pid{b1}, []string{"g"})
	s.remoteJoin(peerB, "k", []etf.Pid{b2, b2}, 0)
	assert.Equal(t, 1, s.table.count("k"))
	assert.Equal(t, uint64(1003), s.stats.overLimit.Load())

	// A sync starts from zero and takes the first entries in group order;
	// what the parser did not keep counts too.
	s.sync(peerB, map[string][]etf.Pid{"z": {b2, b2}, "a": {b1, b1}}, 5)
	assert.Equal(t, 2, s.table.count("a"))
	assert.Equal(t, 1, s.table.count("z"))
	assert.Nil(t, s.table.members("g"))
	assert.Equal(t, 3, s.peers[peerB].entries)
	assert.Equal(t, uint64(1003+1+5), s.stats.overLimit.Load())
}

// The parser copies at most the limit of pids, whatever the message
// lists, and counts the rest.
func TestParseKeepsAtMostTheLimit(t *testing.T) {
	const n = 100_000
	list := make(etf.List, n)
	for i := range list {
		list[i] = b1
	}
	in, err := parseInfo(etf.Tuple{atomJoin, peerB, etf.Atom("g"), list}, 10)
	require.NoError(t, err)
	join := in.(joinIn)
	assert.Len(t, join.pids, 10)
	assert.Equal(t, 10, cap(join.pids))
	assert.Equal(t, n-10, join.over)

	sync, err := parseSync(etf.Tuple{atomSync, peerB, etf.List{
		etf.Tuple{etf.Atom("g"), list[:6]},
		etf.Tuple{etf.Atom("h"), list},
	}}, 10)
	require.NoError(t, err)
	assert.Len(t, sync.groups["g"], 6)
	assert.Len(t, sync.groups["h"], 4)
	assert.Equal(t, n-4, sync.over)

	// A non-pid past the limit still makes the message malformed.
	_, err = parseInfo(etf.Tuple{atomJoin, peerB, etf.Atom("g"), append(list[:20:20], 1)}, 10)
	assert.ErrorIs(t, err, errNotPG)
}

// A node runs one scope of a name: a second scope pid of the same node
// replaces the first, so that a node cannot multiply its share.
func TestStateOnePeerPerNode(t *testing.T) {
	s, r := knownPeer(t)
	s.remoteJoin(peerB, "g", []etf.Pid{b1}, 0)
	s.sync(anotherB, map[string][]etf.Pid{"g": {b2}}, 0)
	assert.Equal(t, []etf.Pid{b2}, s.table.members("g"))
	assert.Len(t, s.peers, 1)
	assert.Equal(t, []etf.Pid{anotherB}, r.takeMonitored())
	// The replaced scope's messages are ignored from now on.
	s.remoteJoin(peerB, "g", []etf.Pid{b1}, 0)
	assert.Equal(t, []etf.Pid{b2}, s.table.members("g"))
}

// Suspect hides a peer's member, watches it and asks the peer once; the
// peer's sync listing it shows it again with all its entries.
func TestStateSuspectThenPeerAnnouncesAgain(t *testing.T) {
	s, r := knownPeer(t)
	s.remoteJoin(peerB, "g", []etf.Pid{b1, b1, b2}, 0)
	s.remoteJoin(peerB, "h", []etf.Pid{b1}, 0)

	assert.True(t, s.suspect(b1))
	assert.Equal(t, []etf.Pid{b2}, s.table.members("g"))
	assert.Nil(t, s.table.members("h"))
	assert.Equal(t, []etf.Pid{b1}, r.takeMonitored())
	assert.Equal(t, []sentMsg{{"send", peerB, etf.Tuple{atomDiscover, self}}}, r.take())

	// Suspecting it again, or another member, asks nothing more until
	// the peer answers.
	assert.True(t, s.suspect(b1))
	assert.True(t, s.suspect(b2))
	assert.Equal(t, []etf.Pid{b2}, r.takeMonitored())
	assert.Empty(t, r.take())
	assert.Nil(t, s.table.members("g"))
	assert.Equal(t, Stats{Suspected: 2}, s.stats.snapshot())

	// The answer lists b1 (alive, the peer stands by it) but not b2.
	s.sync(peerB, map[string][]etf.Pid{"g": {b1, b1}, "h": {b1}}, 0)
	assert.Equal(t, []etf.Pid{b1, b1}, s.table.members("g"))
	assert.Equal(t, []etf.Pid{b1}, s.table.members("h"))
	assert.Equal(t, Stats{Suspected: 2, Restored: 1}, s.stats.snapshot())
	assert.Empty(t, s.peers[peerB].suspect)
	assert.Contains(t, s.probed, b2, "b2 stays watched until its DOWN")
	// The answer places a second monitor on each suspected pid, in case
	// ergo dropped the first one's DOWN.
	assert.ElementsMatch(t, []etf.Pid{b1, b2}, r.takeMonitored())

	// A later suspicion asks again, and watches a third time; never more.
	assert.True(t, s.suspect(b1))
	assert.Equal(t, []sentMsg{{"send", peerB, etf.Tuple{atomDiscover, self}}}, r.take())
	assert.Equal(t, []etf.Pid{b1}, r.takeMonitored())
	// A join listing it shows it again too, with its old entries.
	s.remoteJoin(peerB, "k", []etf.Pid{b1}, 0)
	assert.Equal(t, []etf.Pid{b1, b1}, s.table.members("g"))
	assert.Equal(t, []etf.Pid{b1}, s.table.members("k"))
	assert.Equal(t, uint64(2), s.stats.restored.Load())
	assert.True(t, s.suspect(b1))
	s.sync(peerB, map[string][]etf.Pid{"g": {b1}}, 0)
	assert.Empty(t, r.takeMonitored(), "b1 has its three monitors")
}

// A probe's DOWN proves the pid dead: its entries go, and the peer may
// not announce it again.
func TestStateSuspectThenDown(t *testing.T) {
	s, r := knownPeer(t)
	s.remoteJoin(peerB, "g", []etf.Pid{b1, ghost, ghost}, 0)
	require.True(t, s.suspect(ghost))
	assert.Equal(t, []etf.Pid{b1}, s.table.members("g"))

	s.down(ghost) // noproc
	assert.Equal(t, []etf.Pid{b1}, s.table.members("g"))
	assert.Equal(t, 1, s.peers[peerB].entries)
	assert.Equal(t, Stats{Suspected: 1, Dead: 1}, s.stats.snapshot())

	// The peer's answer (or a hostile peer's join) lists it again: refused.
	r.refusals = nil
	s.sync(peerB, map[string][]etf.Pid{"g": {b1, ghost}}, 0)
	s.remoteJoin(peerB, "g", []etf.Pid{ghost}, 0)
	assert.Equal(t, []etf.Pid{b1}, s.table.members("g"))
	assert.Equal(t, []refusal{{refuseDead, peerB, 1, ghost}, {refuseDead, peerB, 1, ghost}}, r.refusals)
	assert.Equal(t, Stats{Suspected: 1, Dead: 1, DeadRefused: 2}, s.stats.snapshot())

	// A DOWN that comes after the pid was shown again removes it too.
	require.True(t, s.suspect(b1))
	s.remoteJoin(peerB, "g", []etf.Pid{b1}, 0)
	assert.Equal(t, []etf.Pid{b1, b1}, s.table.members("g"))
	s.down(b1)
	assert.Nil(t, s.table.members("g"))
	assert.Zero(t, s.peers[peerB].entries)
}

// Suspect concerns members announced by peers only.
func TestStateSuspectOnlyPeersMembers(t *testing.T) {
	s, r := knownPeer(t)
	s.join("g", []etf.Pid{p1})
	r.takeMonitored()
	r.take()
	assert.False(t, s.suspect(p1), "local members are watched already")
	assert.False(t, s.suspect(b1), "not a member")
	assert.False(t, s.suspect(onNowhere), "no peer on that node")
	assert.Equal(t, []etf.Pid{p1}, s.table.members("g"))
	assert.Empty(t, r.takeMonitored())
	assert.Empty(t, r.take())
	assert.Zero(t, s.stats.snapshot())
}

// A suspected member's leave, and its peer's DOWN, forget it.
func TestStateSuspectedMemberLeaves(t *testing.T) {
	s, _ := knownPeer(t)
	s.remoteJoin(peerB, "g", []etf.Pid{b1, b2}, 0)
	require.True(t, s.suspect(b1))
	s.remoteLeave(peerB, []etf.Pid{b1}, []string{"g"})
	assert.Equal(t, []etf.Pid{b2}, s.table.members("g"))
	assert.Empty(t, s.peers[peerB].suspect)
	// Its DOWN, after it left, still marks it dead.
	s.down(b1)
	s.remoteJoin(peerB, "g", []etf.Pid{b1}, 0)
	assert.Equal(t, []etf.Pid{b2}, s.table.members("g"))
	assert.Equal(t, Stats{Suspected: 1, Dead: 1, DeadRefused: 1}, s.stats.snapshot())

	require.True(t, s.suspect(b2))
	s.down(peerB)
	assert.Nil(t, s.table.groups(false))
	assert.Empty(t, s.probed)
	s.down(b2) // the probe's late DOWN is ignored
	assert.Equal(t, uint64(1), s.stats.dead.Load())
}

// A leave listing many pids costs one pass over the group (and gives the
// same result as one removal per pid).
func TestStateLeaveManyPids(t *testing.T) {
	s, _ := knownPeer(t)
	const n = 5000
	pids := make([]etf.Pid, n)
	for i := range pids {
		pids[i] = etf.Pid{Node: "b@host", ID: uint64(10_000 + i), Creation: 1}
	}
	s.remoteJoin(peerB, "g", append(pids[:n:n], pids...), 0)
	assert.Equal(t, 2*n, s.table.count("g"))
	s.remoteLeave(peerB, pids, []string{"g"})
	assert.True(t, sameMembers(s.table.members("g"), pids))
	s.remoteLeave(peerB, append(pids[:n:n], pids...), []string{"g"})
	assert.Nil(t, s.table.members("g"))
	assert.Zero(t, s.peers[peerB].entries)
	assert.Nil(t, s.table.nodeNames())
}

func TestDeadSetForgetsOldest(t *testing.T) {
	var d deadSet
	for i := range maxDeadPerPeer + 10 {
		d.add(etf.Pid{Node: "b@host", ID: uint64(i)})
	}
	assert.Len(t, d.set, maxDeadPerPeer)
	assert.False(t, d.has(etf.Pid{Node: "b@host", ID: 9}))
	assert.True(t, d.has(etf.Pid{Node: "b@host", ID: 10}))
	assert.True(t, d.has(etf.Pid{Node: "b@host", ID: maxDeadPerPeer + 9}))
}

// Probes are bounded by MaxPeerMembers per peer.
func TestSuspectProbesAreBounded(t *testing.T) {
	r := &recorder{up: map[string]bool{"b@host": true}}
	s := newState(self, newTable(), r, 2)
	s.discover(peerB)
	r.takeMonitored()
	pids := []etf.Pid{b1, b2, {Node: "b@host", ID: 2004, Creation: 1}}
	s.sync(peerB, map[string][]etf.Pid{"g": pids[:2]}, 0)
	for _, p := range pids[:2] {
		require.True(t, s.suspect(p))
	}
	s.sync(peerB, map[string][]etf.Pid{"g": pids[2:]}, 0)
	require.True(t, s.suspect(pids[2]))
	// Two monitors each for the first two (the second on the answer), none
	// for the third: hidden, but not watched.
	assert.ElementsMatch(t, append(pids[:2:2], pids[:2]...), r.takeMonitored())
	assert.Equal(t, uint64(3), s.stats.suspected.Load())
}

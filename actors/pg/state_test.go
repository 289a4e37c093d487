package pg

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is an outbox that records what the state asks for.
type recorder struct {
	up        map[string]bool // connected nodes
	sent      []sentMsg
	monitored []etf.Pid
	refusals  []refusal
}

type refusal struct {
	why     string
	peer    etf.Pid
	n       int
	example etf.Pid
}

type sentMsg struct {
	how string // "send", "cast" or "scope"
	to  any
	msg etf.Term
}

func (r *recorder) send(to etf.Pid, msg etf.Term) {
	if r.up[string(to.Node)] {
		r.sent = append(r.sent, sentMsg{"send", to, msg})
	}
}

func (r *recorder) cast(to etf.Pid, msg etf.Term) {
	if r.up[string(to.Node)] {
		r.sent = append(r.sent, sentMsg{"cast", to, msg})
	}
}

func (r *recorder) sendScope(node string, msg etf.Term) {
	if r.up[node] {
		r.sent = append(r.sent, sentMsg{"scope", node, msg})
	}
}

func (r *recorder) refused(why string, peer etf.Pid, n int, example etf.Pid) {
	r.refusals = append(r.refusals, refusal{why, peer, n, example})
}

func (r *recorder) monitor(pid etf.Pid)          { r.monitored = append(r.monitored, pid) }
func (r *recorder) connected(node string) bool   { return r.up[node] }
func (r *recorder) take() []sentMsg              { s := r.sent; r.sent = nil; return s }
func (r *recorder) takeMonitored() (m []etf.Pid) { m, r.monitored = r.monitored, nil; return m }

var (
	peerB = etf.Pid{Node: "b@host", ID: 2001, Creation: 1}
	peerC = etf.Pid{Node: "c@host", ID: 3001, Creation: 1}
	b1    = etf.Pid{Node: "b@host", ID: 2002, Creation: 1}
	b2    = etf.Pid{Node: "b@host", ID: 2003, Creation: 1}
)

func newTestState() (*state, *recorder) {
	r := &recorder{up: map[string]bool{"b@host": true, "c@host": true}}
	return newState(self, newTable(), r, DefaultMaxPeerMembers), r
}

func TestStateDiscoverHandshake(t *testing.T) {
	s, r := newTestState()
	s.join("g", []etf.Pid{p1, p1})
	r.take()
	r.takeMonitored()

	// An unknown peer looks for us: it gets our members, we watch it and
	// look for it in return.
	s.discover(peerB)
	assert.Equal(t, []sentMsg{
		{"cast", peerB, etf.Tuple{atomSync, self, etf.List{etf.Tuple{etf.Atom("g"), etf.List{p1, p1}}}}},
		{"send", peerB, etf.Tuple{atomDiscover, self}},
	}, r.take())
	assert.Equal(t, []etf.Pid{peerB}, r.takeMonitored())

	// A known peer only gets the sync.
	s.discover(peerB)
	assert.Equal(t, []sentMsg{
		{"cast", peerB, etf.Tuple{atomSync, self, etf.List{etf.Tuple{etf.Atom("g"), etf.List{p1, p1}}}}},
	}, r.take())
	assert.Empty(t, r.takeMonitored())

	// Not from a connected node (late), or from our own node: ignored.
	r.up["c@host"] = false
	s.discover(peerC)
	s.discover(etf.Pid{Node: self.Node, ID: 9})
	assert.Empty(t, r.take())
	assert.Empty(t, r.takeMonitored())
}

func TestStateSyncReplacesPeerView(t *testing.T) {
	s, r := newTestState()
	s.join("g", []etf.Pid{p1})
	r.takeMonitored()

	// A sync from an unknown peer makes it known (and watched).
	s.sync(peerB, map[string][]etf.Pid{"g": {b1, b1}, "h": {b2}}, 0)
	assert.Equal(t, []etf.Pid{peerB}, r.takeMonitored())
	assert.True(t, sameMembers(s.table.members("g"), []etf.Pid{p1, b1, b1}))
	assert.Equal(t, []etf.Pid{b2}, s.table.members("h"))

	// The next sync is the whole truth: h went away, g shrank, k appeared.
	s.sync(peerB, map[string][]etf.Pid{"g": {b1}, "k": {b2}}, 0)
	assert.True(t, sameMembers(s.table.members("g"), []etf.Pid{p1, b1}))
	assert.Nil(t, s.table.members("h"))
	assert.Equal(t, []etf.Pid{b2}, s.table.members("k"))
	assert.Equal(t, []etf.Pid{p1}, s.table.localMembers("g"), "local members untouched")
	assert.Empty(t, r.takeMonitored())

	// An empty sync drops everything of that peer.
	s.sync(peerB, map[string][]etf.Pid{}, 0)
	assert.Equal(t, []etf.Pid{p1}, s.table.members("g"))
	assert.Equal(t, []string{"g"}, s.table.groups(false))
}

func TestStateRemoteJoinLeave(t *testing.T) {
	s, _ := newTestState()

	// Unknown peers are ignored, as in pg.
	s.remoteJoin(peerB, "g", []etf.Pid{b1}, 0)
	s.remoteLeave(peerB, []etf.Pid{b1}, []string{"g"})
	assert.Nil(t, s.table.members("g"))

	s.discover(peerB)
	s.remoteJoin(peerB, "g", []etf.Pid{b1, b1, b2}, 0)
	s.remoteJoin(peerB, "h", []etf.Pid{b1}, 0)
	assert.True(t, sameMembers(s.table.members("g"), []etf.Pid{b1, b1, b2}))
	assert.Nil(t, s.table.localMembers("g"))

	// A dead member's leave lists a group once per membership.
	s.remoteLeave(peerB, []etf.Pid{b1}, []string{"g", "g", "h"})
	assert.Equal(t, []etf.Pid{b2}, s.table.members("g"))
	assert.Nil(t, s.table.members("h"))
	// Leaving what is not there changes nothing.
	s.remoteLeave(peerB, []etf.Pid{b1}, []string{"g", "nope"})
	assert.Equal(t, []etf.Pid{b2}, s.table.members("g"))

	// The peer's DOWN drops all it had.
	s.remoteJoin(peerB, "h", []etf.Pid{b2}, 0)
	s.down(peerB)
	assert.Nil(t, s.table.groups(false))
	s.remoteJoin(peerB, "g", []etf.Pid{b1}, 0)
	assert.Nil(t, s.table.members("g"), "a forgotten peer's join is ignored")
}

func TestStateLocalJoinLeaveDown(t *testing.T) {
	s, r := newTestState()
	s.discover(peerB)
	r.take()
	r.takeMonitored()

	s.join("g", []etf.Pid{p1})
	s.join("g", []etf.Pid{p1, p2})
	s.join("h", []etf.Pid{p1})
	assert.Equal(t, []etf.Pid{p1, p2}, r.takeMonitored(), "one monitor per pid")
	assert.Equal(t, []sentMsg{
		{"send", peerB, etf.Tuple{atomJoin, self, etf.Atom("g"), p1}},
		{"send", peerB, etf.Tuple{atomJoin, self, etf.Atom("g"), etf.List{p1, p2}}},
		{"send", peerB, etf.Tuple{atomJoin, self, etf.Atom("h"), p1}},
	}, r.take())

	require.ErrorIs(t, s.leave("k", []etf.Pid{p1}), ErrNotJoined)
	require.NoError(t, s.leave("g", []etf.Pid{p2, p2}), "the second p2 is skipped")
	assert.Equal(t, []sentMsg{
		{"send", peerB, etf.Tuple{atomLeave, self, p2, etf.List{etf.Atom("g")}}},
	}, r.take())

	// p1 dies: every membership goes, and peers hear one leave listing
	// each group once per join.
	s.down(p1)
	assert.Nil(t, s.table.groups(false))
	assert.Equal(t, []sentMsg{
		{"send", peerB, etf.Tuple{atomLeave, self, p1, etf.List{etf.Atom("g"), etf.Atom("g"), etf.Atom("h")}}},
	}, r.take())

	// p2 left everything but stays watched: its rejoin needs no new
	// monitor, and its DOWN is quiet.
	s.join("g", []etf.Pid{p2})
	assert.Empty(t, r.takeMonitored())
	require.NoError(t, s.leave("g", []etf.Pid{p2}))
	r.take()
	s.down(p2)
	assert.Empty(t, r.take())
	s.down(p2) // an unknown DOWN is ignored
}

func TestStateRescan(t *testing.T) {
	s, r := newTestState()
	s.rescan([]string{"b@host", "c@host"})
	assert.ElementsMatch(t, []sentMsg{
		{"scope", "b@host", etf.Tuple{atomDiscover, self}},
		{"scope", "c@host", etf.Tuple{atomDiscover, self}},
	}, r.take())
	s.rescan([]string{"b@host", "c@host"})
	assert.Empty(t, r.take(), "discovered nodes are not asked again")

	// c disconnects and comes back between two scans: rediscovered once
	// its scope's DOWN was seen.
	s.discover(peerC)
	r.take()
	s.down(peerC)
	s.rescan([]string{"b@host", "c@host"})
	assert.Equal(t, []sentMsg{{"scope", "c@host", etf.Tuple{atomDiscover, self}}}, r.take())

	// b goes away and comes back: rediscovered.
	s.rescan([]string{"c@host"})
	s.rescan([]string{"b@host", "c@host"})
	assert.Equal(t, []sentMsg{{"scope", "b@host", etf.Tuple{atomDiscover, self}}}, r.take())

	// Events do the same at once.
	s.nodeDown("b@host")
	s.nodeUp("b@host")
	s.nodeUp(string(self.Node))
	assert.Equal(t, []sentMsg{{"scope", "b@host", etf.Tuple{atomDiscover, self}}}, r.take())
}

func TestMultisetDiff(t *testing.T) {
	added, removed := multisetDiff([]etf.Pid{p1, p1, p2}, []etf.Pid{p1, b1, b1})
	assert.Equal(t, []etf.Pid{b1, b1}, added)
	assert.ElementsMatch(t, []etf.Pid{p1, p2}, removed)
	added, removed = multisetDiff(nil, nil)
	assert.Empty(t, added)
	assert.Empty(t, removed)
}

package pg

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMonitorSeesLocalAndRemoteChanges(t *testing.T) {
	nodes, scopes := cluster(t, 2)
	a := spawn(t, nodes[0])
	b := spawn(t, nodes[1]).Self()
	require.NoError(t, scopes[0].Join("g", a.Self()))

	members, events, cancel := scopes[0].Monitor("g")
	defer cancel()
	assert.Equal(t, []etf.Pid{a.Self()}, members, "the snapshot")

	next := func(what string) Event {
		t.Helper()
		ev, ok := within(t, events, what)
		require.True(t, ok, "events closed while waiting for %s", what)
		return ev
	}
	require.NoError(t, scopes[0].Join("g", a.Self(), a.Self()))
	assert.Equal(t, Event{Kind: Joined, Group: "g", Pids: []etf.Pid{a.Self(), a.Self()}}, next("a local join"))

	require.NoError(t, scopes[0].Join("other", a.Self()))
	require.NoError(t, scopes[1].Join("g", b))
	assert.Equal(t, Event{Kind: Joined, Group: "g", Pids: []etf.Pid{b}}, next("a remote join"),
		"other groups are not reported")

	require.NoError(t, scopes[0].Leave("g", a.Self()))
	assert.Equal(t, Event{Kind: Left, Group: "g", Pids: []etf.Pid{a.Self()}}, next("a local leave"))

	a.Kill()
	assert.Equal(t, Event{Kind: Left, Group: "g", Pids: []etf.Pid{a.Self(), a.Self()}}, next("a death"))

	settle(t, scopes[1])
	scopes[1].Stop()
	assert.Equal(t, Event{Kind: Left, Group: "g", Pids: []etf.Pid{b}}, next("a peer scope's end"))

	cancel()
	cancel() // twice is fine
	_, open := <-events
	assert.False(t, open)
}

func TestMonitorSeveralSubscribers(t *testing.T) {
	nd := newNode(t)
	s := startScope(t, nd)
	p := spawn(t, nd).Self()
	_, e1, cancel1 := s.Monitor("g")
	_, e2, cancel2 := s.Monitor("g")
	defer cancel2()

	require.NoError(t, s.Join("g", p))
	want := Event{Kind: Joined, Group: "g", Pids: []etf.Pid{p}}
	ev1, _ := within(t, e1, "subscriber 1")
	ev2, _ := within(t, e2, "subscriber 2")
	assert.Equal(t, want, ev1)
	assert.Equal(t, want, ev2)
	ev1.Pids[0] = etf.Pid{} // each subscriber owns its slice
	assert.Equal(t, p, ev2.Pids[0])

	cancel1()
	require.NoError(t, s.Leave("g", p))
	ev2, _ = within(t, e2, "subscriber 2's leave")
	assert.Equal(t, Left, ev2.Kind)
	_, open := <-e1
	assert.False(t, open)
}

func TestEventKindString(t *testing.T) {
	assert.Equal(t, "joined", Joined.String())
	assert.Equal(t, "left", Left.String())
	assert.Equal(t, "EventKind(?)", EventKind(0).String())
}

package pg

import (
	"slices"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/testnode"
)

func TestMembersVisibleOnEveryNode(t *testing.T) {
	nodes, scopes := cluster(t, 3)
	a := spawn(t, nodes[0]).Self()
	b := spawn(t, nodes[1]).Self()
	c := spawn(t, nodes[2]).Self()

	// Weights as a serving would join: partitions × weight.
	require.NoError(t, scopes[0].Join("serving", a, a))
	require.NoError(t, scopes[1].Join("serving", b))
	require.NoError(t, scopes[2].Join("serving", c, c, c))
	require.NoError(t, scopes[2].Join("other", c))

	want := []etf.Pid{a, a, b, c, c, c}
	waitMembers(t, "serving", want, scopes...)
	waitMembers(t, "other", []etf.Pid{c}, scopes...)
	for i, s := range scopes {
		assert.Equal(t, []string{"other", "serving"}, s.Groups(), "node %d", i)
	}
	assert.Equal(t, []etf.Pid{a, a}, scopes[0].LocalMembers("serving"))
	assert.Equal(t, []etf.Pid{b}, scopes[1].LocalMembers("serving"))
	assert.Nil(t, scopes[0].LocalMembers("other"), "remote members are not local")
	assert.Equal(t, []string{"serving"}, scopes[0].LocalGroups())

	// Leave travels too, one occurrence at a time.
	require.NoError(t, scopes[2].Leave("serving", c, c))
	waitMembers(t, "serving", []etf.Pid{a, a, b, c}, scopes...)
}

func TestScopesOfOtherNamesAreSeparate(t *testing.T) {
	a := newNode(t)
	b := newNode(t)
	testnode.Mesh(t, a, b)
	sa, sb := startScope(t, a), startScope(t, b)
	xa, xb := startScope(t, a, "x.scope"), startScope(t, b, "x.scope")
	p := spawn(t, a).Self()

	require.NoError(t, xa.Join("g", p))
	waitMembers(t, "g", []etf.Pid{p}, xb)
	// The default scopes are in sync (a join there arrives) but never saw g.
	require.NoError(t, sa.Join("marker", p))
	waitMembers(t, "marker", []etf.Pid{p}, sb)
	assert.Nil(t, sb.Members("g"))
}

func TestMemberExitRemovedEverywhere(t *testing.T) {
	nodes, scopes := cluster(t, 2)
	victim := spawn(t, nodes[0])
	stays := spawn(t, nodes[0]).Self()
	v := victim.Self()
	require.NoError(t, scopes[0].Join("g", v, v, stays))
	require.NoError(t, scopes[0].Join("h", v))
	waitMembers(t, "g", []etf.Pid{v, v, stays}, scopes...)
	waitMembers(t, "h", []etf.Pid{v}, scopes...)

	victim.Kill()
	waitMembers(t, "g", []etf.Pid{stays}, scopes...)
	waitMembers(t, "h", nil, scopes...)
	for _, s := range scopes {
		assert.Equal(t, []string{"g"}, s.Groups())
	}
}

// A node that connects later gets the existing members (discover → sync
// both ways), whether its scope starts before it connects (node-up event)
// or after (discover at start).
func TestLateNodeSyncs(t *testing.T) {
	for _, order := range []string{"scope then connect", "connect then scope"} {
		t.Run(order, func(t *testing.T) {
			nodes, scopes := cluster(t, 2)
			a := spawn(t, nodes[0]).Self()
			b := spawn(t, nodes[1]).Self()
			require.NoError(t, scopes[0].Join("g", a, a))
			require.NoError(t, scopes[1].Join("g", b))
			waitMembers(t, "g", []etf.Pid{a, a, b}, scopes...)

			late := newNode(t)
			c := spawn(t, late).Self()
			var sc *Scope
			if order == "scope then connect" {
				sc = startScope(t, late)
				require.NoError(t, sc.Join("g", c))
				require.NoError(t, sc.Join("only-late", c))
				testnode.Mesh(t, append(slices.Clone(nodes), late)...)
			} else {
				testnode.Mesh(t, append(slices.Clone(nodes), late)...)
				sc = startScope(t, late)
				require.NoError(t, sc.Join("g", c))
				require.NoError(t, sc.Join("only-late", c))
			}
			all := append(slices.Clone(scopes), sc)
			waitMembers(t, "g", []etf.Pid{a, a, b, c}, all...)
			waitMembers(t, "only-late", []etf.Pid{c}, all...)
		})
	}
}

func TestStoppedNodeForgotten(t *testing.T) {
	nodes, scopes := cluster(t, 3)
	a := spawn(t, nodes[0]).Self()
	c := spawn(t, nodes[2]).Self()
	require.NoError(t, scopes[0].Join("g", a))
	require.NoError(t, scopes[2].Join("g", c, c))
	waitMembers(t, "g", []etf.Pid{a, c, c}, scopes...)

	settle(t, scopes[2]) // nothing in flight to the scope that the node stop kills
	testnode.Stop(nodes[2])
	waitMembers(t, "g", []etf.Pid{a}, scopes[:2]...)
}

// Disconnecting forgets the peer's members on both sides of that
// connection only; the scope does not reconnect by sending to the peer.
func TestDisconnectedNodeForgotten(t *testing.T) {
	nodes, scopes := cluster(t, 3)
	a := spawn(t, nodes[0]).Self()
	c := spawn(t, nodes[2]).Self()
	require.NoError(t, scopes[0].Join("g", a))
	require.NoError(t, scopes[2].Join("g", c))
	waitMembers(t, "g", []etf.Pid{a, c}, scopes...)

	require.NoError(t, nodes[0].Disconnect(nodes[2].Name()))
	waitMembers(t, "g", []etf.Pid{a}, scopes[0])
	waitMembers(t, "g", []etf.Pid{c}, scopes[2])
	// A join on A now reaches B but must not reconnect A to C.
	a2 := spawn(t, nodes[0]).Self()
	require.NoError(t, scopes[0].Join("g", a2))
	waitMembers(t, "g", []etf.Pid{a, a2, c}, scopes[1])
	assert.NotContains(t, nodes[0].Nodes(), nodes[2].Name())
	assert.Equal(t, []etf.Pid{c}, scopes[2].Members("g"))

	// Reconnecting syncs again.
	require.NoError(t, nodes[0].Connect(nodes[2].Name()))
	waitMembers(t, "g", []etf.Pid{a, a2, c}, scopes...)
}

func TestStoppedScopeForgotten(t *testing.T) {
	nodes, scopes := cluster(t, 2)
	b := spawn(t, nodes[1]).Self()
	require.NoError(t, scopes[1].Join("g", b))
	waitMembers(t, "g", []etf.Pid{b}, scopes...)

	settle(t, scopes[1])
	scopes[1].Stop() // the node stays up; its scope's DOWN is "normal"
	waitMembers(t, "g", nil, scopes[0])

	// A new scope on that node announces itself at start.
	s := startScope(t, nodes[1])
	require.NoError(t, s.Join("g", b))
	waitMembers(t, "g", []etf.Pid{b}, scopes[0], s)
}

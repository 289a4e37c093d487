package mesh

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/testnode"
)

// reconnectBound is the bound this package promises for a node that
// listens again to be connected and its members seen: MaxBackoff plus a
// scan, plus the scopes' discovery and sync. The test allows a further
// two seconds for a noisy 2-core machine under -race.
const reconnectBound = DefaultMaxBackoff + DefaultScanInterval + 2*time.Second

// cluster starts a scope, a mesh and a worker on each node, connects the
// given pairs (all pairs when none are given), and settles the live
// members before anything is stopped at the end of the test.
func cluster(t *testing.T, nodes []node.Node, opts Options) []member {
	t.Helper()
	members := make([]member, len(nodes))
	for i, nd := range nodes {
		members[i] = join(t, nd, opts)
	}
	t.Cleanup(func() {
		var live []member
		for _, m := range members {
			if m.nd.IsAlive() {
				live = append(live, m)
			}
		}
		settle(t, live...)
	})
	return members
}

func workers(ms ...member) []etf.Pid {
	out := make([]etf.Pid, len(ms))
	for i, m := range ms {
		out[i] = m.worker
	}
	return out
}

// A connection dropped (both nodes alive) is made again by the mesh, and
// the members on either side are seen again, within the bound and with no
// Connect from the test.
func TestDroppedConnectionIsRemade(t *testing.T) {
	a, b := newNode(t), newNode(t)
	ms := cluster(t, []node.Node{a, b}, Options{})
	testnode.Mesh(t, a, b)
	all := workers(ms...)
	waitFor(t, waitLimit, "the members on both nodes", func() bool { return ms[0].sees(all...) && ms[1].sees(all...) })
	waitConnected(t, ms[0].mesh, b.Name())
	settle(t, ms...)

	require.NoError(t, a.Disconnect(b.Name()))
	waitFor(t, waitLimit, "b's member to be forgotten on a", func() bool { return ms[0].sees(ms[0].worker) })
	took := waitFor(t, reconnectBound, "b's member back on a", func() bool { return ms[0].sees(all...) && ms[1].sees(all...) })
	t.Logf("seen again %v after the disconnection was noticed", took)
	assert.Contains(t, a.Nodes(), b.Name())
}

// A node stopped hard and started again under the same name (a new
// incarnation, on another port) is reconnected by the nodes that had it,
// which see its members again within the bound: no one else restarts,
// and the test calls no Connect after the restart.
func TestRestartedNodeIsReconnected(t *testing.T) {
	tw := newTwin(t)
	a, b := newNode(t), newNode(t)
	ms := cluster(t, []node.Node{a, b, tw.first}, Options{})
	// The test connects the new node to a only: a's mesh tells it of b.
	testnode.Mesh(t, a, b)
	require.NoError(t, tw.first.Connect(a.Name()))
	all := workers(ms...)
	waitFor(t, waitLimit, "every member everywhere", func() bool {
		return ms[0].sees(all...) && ms[1].sees(all...) && ms[2].sees(all...)
	})
	assert.Contains(t, b.Nodes(), tw.name+"@localhost", "b connected to it through the mesh")
	waitConnected(t, ms[0].mesh, tw.name+"@localhost")
	waitConnected(t, ms[1].mesh, tw.name+"@localhost")
	settle(t, ms...)

	testnode.Stop(tw.first) // also drops its route, as EPMD forgets a dead node
	waitFor(t, waitLimit, "the stopped node's member to be forgotten", func() bool {
		return ms[0].sees(all[:2]...) && ms[1].sees(all[:2]...)
	})
	// Both meshes keep trying it.
	for _, m := range ms[:2] {
		waitFor(t, waitLimit, "a failed attempt", func() bool {
			p := peerOf(m.mesh, tw.name+"@localhost")
			return p != nil && !p.Connected && p.Attempts >= 2
		})
	}

	// The restart: the node listens again under its name, and runs its
	// runtime (a scope, a mesh, a worker in "g").
	restarted := join(t, tw.second, Options{})
	testnode.Registrar.Add(tw.name+"@localhost", "127.0.0.1", tw.port2)
	listening := time.Now()
	want := append(all[:2:2], restarted.worker)
	took := waitFor(t, reconnectBound, "the restarted node's member everywhere", func() bool {
		return ms[0].sees(want...) && ms[1].sees(want...) && restarted.sees(want...)
	})
	t.Logf("the restarted node's member was seen everywhere %v after it listened (bound %v)", took, reconnectBound)
	assert.Less(t, time.Since(listening), reconnectBound)
	assert.ElementsMatch(t, []string{a.Name(), b.Name()}, tw.second.Nodes())
	settle(t, ms[0], ms[1], restarted)
}

// waitConnected waits until m lists node as connected: a connection
// shorter than a scan may go unnoticed where ergo delivers no node
// events (most nodes of a test process, see actors/pg).
func waitConnected(t *testing.T, m *Mesh, node string) {
	t.Helper()
	waitFor(t, waitLimit, "the mesh to list "+node, func() bool {
		p := peerOf(m, node)
		return p != nil && p.Connected
	})
}

func peerOf(m *Mesh, name string) *Peer {
	for _, p := range m.Peers() {
		if p.Node == name {
			return &p
		}
	}
	return nil
}

// Nodes connected in a star (each to a hub only) end up fully meshed: the
// hub tells each node of the others.
func TestStarBecomesFullMesh(t *testing.T) {
	hub, x, y, z := newNode(t), newNode(t), newNode(t), newNode(t)
	ms := cluster(t, []node.Node{hub, x, y, z}, Options{})
	for _, nd := range []node.Node{x, y, z} {
		require.NoError(t, nd.Connect(hub.Name()))
	}
	all := []node.Node{hub, x, y, z}
	waitFor(t, waitLimit, "a full mesh", func() bool {
		for _, nd := range all {
			if len(nd.Nodes()) != len(all)-1 {
				return false
			}
		}
		return true
	})
	waitFor(t, waitLimit, "every member everywhere", func() bool {
		for _, m := range ms {
			if !m.sees(workers(ms...)...) {
				return false
			}
		}
		return true
	})
	for _, m := range ms {
		for _, other := range all {
			if other != m.nd {
				waitConnected(t, m.mesh, other.Name())
			}
		}
		assert.Len(t, m.mesh.Peers(), 3)
	}
}

// Forget stops the attempts to reach a node.
func TestForgetStopsAttempts(t *testing.T) {
	a, b := newNode(t), newNode(t)
	// Attempts two seconds apart at least, so that none starts between
	// the check that none is under way and Forget.
	ms := cluster(t, []node.Node{a, b}, Options{MinBackoff: 2 * time.Second})
	testnode.Mesh(t, a, b)
	waitFor(t, waitLimit, "the members", func() bool { return ms[0].sees(workers(ms...)...) })
	waitConnected(t, ms[0].mesh, b.Name())
	settle(t, ms...)
	// b's mesh goes, and b is cut off: a keeps trying it.
	route, err := testnode.Registrar.Resolve(b.Name())
	require.NoError(t, err)
	ms[1].mesh.Stop()
	testnode.Registrar.Remove(b.Name())
	require.NoError(t, a.Disconnect(b.Name()))
	waitFor(t, waitLimit, "a failed attempt", func() bool {
		p := peerOf(ms[0].mesh, b.Name())
		return p != nil && p.Attempts >= 1 && !p.Dialing
	})
	ms[0].mesh.Forget(b.Name())
	assert.Nil(t, peerOf(ms[0].mesh, b.Name()))
	assert.Empty(t, ms[0].mesh.Peers())

	// b back on its route: the mesh does not reconnect it, a Connect does
	// (and the cluster can settle before it stops).
	testnode.Registrar.Add(b.Name(), "127.0.0.1", route.Port)
	time.Sleep(3 * DefaultMaxBackoff)
	assert.NotContains(t, a.Nodes(), b.Name(), "forgotten: not reconnected")
	require.NoError(t, a.Connect(b.Name()))
	waitFor(t, waitLimit, "the members again", func() bool { return ms[0].sees(workers(ms...)...) })
}

// A peer's list is read up to MaxNodes, what is not a node name is
// refused, and messages of other shapes (a list nested a million deep, a
// 100 MB binary) are ignored: the mesh goes on.
func TestHostileListsAreBounded(t *testing.T) {
	nd := newNode(t)
	m, err := Start(nd, Options{Name: "mesh.hostile", MaxNodes: 8, MinBackoff: time.Hour})
	require.NoError(t, err)
	t.Cleanup(m.Stop)
	sender, err := nd.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	require.NoError(t, err)

	names := make(etf.List, 1_000_000)
	for i := range names {
		names[i] = etf.Atom(fmt.Sprintf("zz%d@nowhere", i))
	}
	var deep etf.Term = etf.List{}
	for range 1_000_000 {
		deep = etf.List{deep}
	}
	for _, msg := range []etf.Term{
		deep,
		etf.Tuple{atomNodes, deep},
		etf.Tuple{atomNodes, etf.List{etf.Atom("bad name"), 42, etf.Atom("zzok@nowhere")}},
		etf.Tuple{atomNodes, names},
		make([]byte, 100<<20),
		etf.Tuple{},
	} {
		require.NoError(t, sender.Send(gen.ProcessID{Name: "mesh.hostile", Node: nd.Name()}, msg))
	}
	waitFor(t, waitLimit, "the lists to be read", func() bool { return len(m.Peers()) == 8 })
	peers := m.Peers()
	assert.Equal(t, "zzok@nowhere", peers[len(peers)-1].Node, "sorted: zz0..zz6, then zzok")
	for i, p := range peers[:7] {
		assert.Equal(t, fmt.Sprintf("zz%d@nowhere", i), p.Node)
		assert.False(t, p.Connected)
		// Names that sort after this node's are tried at once.
		assert.Equal(t, 1, p.Attempts, "tried once (no route), then an hour of backoff")
	}
	// A gen_server call is answered, not left to time out.
	in := &inbox{got: make(chan etf.Term, 1)}
	caller, err := nd.Spawn("", gen.ProcessOptions{}, in)
	require.NoError(t, err)
	ref := caller.MakeRef()
	require.NoError(t, caller.Send(gen.ProcessID{Name: "mesh.hostile", Node: nd.Name()},
		etf.Tuple{etf.Atom("$gen_call"), etf.Tuple{caller.Self(), ref}, etf.Atom("which_nodes")}))
	select {
	case got := <-in.got:
		assert.Equal(t, etf.Tuple{ref, etf.Atom("badarg")}, got)
	case <-time.After(waitLimit):
		t.Fatal("no answer to a call")
	}

	// Still serving: a Forget goes through its loop.
	m.Forget("zzok@nowhere")
	assert.Len(t, m.Peers(), 7)
	assert.True(t, slices.IsSortedFunc(m.Peers(), func(x, y Peer) int { return strings.Compare(x.Node, y.Node) }))
}

// inbox is a process that hands its messages to the test.
type inbox struct {
	gen.Server
	got chan etf.Term
}

func (i *inbox) HandleInfo(_ *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	i.got <- m
	return gen.ServerStatusOK
}

func TestStartAndLookup(t *testing.T) {
	nd := newNode(t)
	m, err := Start(nd, Options{})
	require.NoError(t, err)
	assert.Same(t, m, Lookup(nd, ""))
	assert.Same(t, m, Lookup(nd, DefaultName))
	assert.Equal(t, DefaultName, m.Name())
	_, err = Start(nd, Options{})
	assert.ErrorIs(t, err, lib.ErrTaken)
	m.Stop()
	assert.Nil(t, Lookup(nd, ""))
	m2, err := Start(nd, Options{}) // the name is free once Stop returns
	require.NoError(t, err)
	m2.Stop()
	m2.Stop() // twice is fine
	select {
	case <-m2.Done():
	default:
		t.Fatal("Done is not closed after Stop")
	}
	_, err = ChildSpec(nd, Options{Name: strings.Repeat("x", 256)})
	assert.ErrorIs(t, err, ErrName)
}

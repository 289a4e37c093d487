package tests

import (
	"context"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// peer stands in for another ergonx node: a node with no runtime whose
// recorders are registered as the serving endpoint and the process-group
// scope, so that the test sees every message a real node sends them and
// answers as a real (or a misbehaving) node would.
type peer struct {
	t        *testing.T
	node     node.Node
	endpoint gen.Process
	scope    gen.Process
	epGot    <-chan etf.Term
	scopeGot <-chan etf.Term
	seen     []etf.Term // everything received, in order
}

func newPeer(t *testing.T) *peer {
	nd := takeNode(t, ergonxNode)
	p := &peer{t: t, node: nd}
	p.endpoint, p.epGot = spawnRecorder(t, nd, serving.EndpointName, 1024)
	p.scope, p.scopeGot = spawnRecorder(t, nd, pg.DefaultScope, 1024)
	return p
}

// next returns the next message to the endpoint (or the scope, if scope)
// for which match is true; the ones before it are only kept in seen.
func (p *peer) next(scope bool, what string, match func(etf.Tuple) bool) etf.Tuple {
	p.t.Helper()
	ch := p.epGot
	if scope {
		ch = p.scopeGot
	}
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		select {
		case m := <-ch:
			p.seen = append(p.seen, m)
			if tup, ok := m.(etf.Tuple); ok && match(tup) {
				return tup
			}
		case <-deadline.C:
			p.t.Fatalf("timed out waiting for %s; seen %#v", what, p.seen)
		}
	}
}

// epPidOf returns the pid of nd's serving endpoint.
func epPidOf(t testing.TB, nd node.Node) etf.Pid {
	t.Helper()
	p := nd.ProcessByName(serving.EndpointName)
	require.NotNil(t, p, "node %s runs no serving endpoint", nd.Name())
	return p.Self()
}

func tagged3(tag string) func(etf.Tuple) bool {
	return func(m etf.Tuple) bool { return len(m) == 3 && m[0] == etf.Atom(tag) }
}

// ergo's encoder loops forever (eating memory) on a top-level empty list,
// and ergo writes Go nil as one; the endpoint protocol and pg never send a
// top-level list at all. Every message a node's endpoint and scope send to
// a peer is a tuple, the endpoint's a 3-tuple {Tag, From, Items} with a
// non-empty list of items, whatever the exchange: discover and sync with
// no groups, join, run, cancel, replies with results and with errors
// (including the wire codec's refusal of a map with tuple keys, which
// ergo would have decoded by dropping the entry).
//
// (If this regresses, the test fails by timing out; the looping encoder
// grows memory meanwhile, for at most waitLimit.)
func TestEndpointAndScopeSendOnlyTuples(t *testing.T) {
	nd := cluster(t, 1)[0]
	p := newPeer(t)
	testnode.Mesh(t, nd, p.node)

	// pg: the node's scope discovers the peer's; the peer answers with its
	// own discover and gets the (empty) sync.
	disc := p.next(true, "discover", func(m etf.Tuple) bool { return len(m) == 2 && m[0] == etf.Atom("discover") })
	scopePid := disc[1].(etf.Pid)
	require.NoError(t, p.scope.Send(scopePid, etf.Tuple{etf.Atom("discover"), p.scope.Self()}))
	sync := p.next(true, "sync", func(m etf.Tuple) bool { return len(m) == 2 && m[0] == etf.Atom("$gen_cast") })
	// The node's only group: its endpoint's.
	epGroup := etf.Tuple{etf.Atom(serving.EndpointGroup), etf.List{epPidOf(t, nd)}}
	assert.Equal(t, etf.Tuple{etf.Atom("sync"), scopePid, etf.List{epGroup}}, sync[1], "groups travel in a list inside tuples")

	name := servingName(t)
	newDoubler(nd).start(t, nd, serving.Options{Name: name, BatchSize: 4})
	p.next(true, "join", func(m etf.Tuple) bool { return len(m) == 4 && m[0] == etf.Atom("join") })

	// The peer's endpoint joins a group of its own, so that the node
	// calls it, and announces itself as an ergonx endpoint.
	remoteOnly := name + ".remote"
	require.NoError(t, p.scope.Send(scopePid, etf.Tuple{etf.Atom("$gen_cast"), etf.Tuple{
		etf.Atom("sync"), p.scope.Self(), etf.List{
			etf.Tuple{etf.Atom(remoteOnly), etf.List{p.endpoint.Self()}},
			etf.Tuple{etf.Atom(serving.EndpointGroup), etf.List{p.endpoint.Self()}},
		},
	}}))
	waitMembers(t, remoteOnly, 1, nd)

	// run → reply ok.
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		res, err := serving.BatchedRun(ctx, nd, serving.Distributed(remoteOnly), floats(1, 2))
		done <- result{res, err}
	}()
	run := p.next(false, "a run request", tagged3("ergonx_run"))
	epPid := run[1].(etf.Pid)
	items := run[2].(etf.List)
	require.Len(t, items, 1)
	item := items[0].(etf.Tuple)
	assert.Equal(t, etf.Atom(remoteOnly), item[1])
	in, err := wire.Unmarshal(item[2].([]byte))
	require.NoError(t, err)
	answer, err := wire.Marshal(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{20, 40})))
	require.NoError(t, err)
	require.NoError(t, p.endpoint.Send(epPid, etf.Tuple{etf.Atom("ergonx_reply"), p.endpoint.Self(),
		etf.List{etf.Tuple{item[0], etf.Atom("ok"), answer}}}))
	r := within(t, waitLimit, done, "the answered call")
	require.NoError(t, r.err)
	assert.Equal(t, []float32{20, 40}, r.res.(*tensor.Dense).Data())
	b, ok := in.(*batch.Batch)
	require.True(t, ok, "the input crossed as %T, not the caller's batch", in)
	assert.Equal(t, 2, b.Size())

	// run → the caller gives up → cancel.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := serving.BatchedRun(ctx, nd, serving.Distributed(remoteOnly), floats(3))
		done <- result{nil, err}
	}()
	run = p.next(false, "a second run request", tagged3("ergonx_run"))
	id := run[2].(etf.List)[0].(etf.Tuple)[0]
	cancel()
	assert.ErrorIs(t, within(t, waitLimit, done, "the cancelled call").err, context.Canceled)
	cancelMsg := p.next(false, "a cancel", tagged3("ergonx_cancel"))
	assert.Equal(t, etf.List{id}, cancelMsg[2])

	// The peer runs requests on the node's serving: a good one, a map with
	// a tuple key (term_to_binary of #{{1,2} => 1}), an unknown serving.
	good, err := wire.Marshal(floats(5))
	require.NoError(t, err)
	tupleKey := []byte{131, 116, 0, 0, 0, 1, 104, 2, 97, 1, 97, 2, 97, 1}
	require.NoError(t, p.endpoint.Send(epPid, etf.Tuple{etf.Atom("ergonx_run"), p.endpoint.Self(), etf.List{
		etf.Tuple{int64(7), etf.Atom(name), good},
		etf.Tuple{int64(8), etf.Atom(name), tupleKey},
		etf.Tuple{int64(9), etf.Atom(name + ".missing"), good},
	}}))
	replies := map[int]etf.Tuple{}
	for len(replies) < 3 {
		m := p.next(false, "replies", tagged3("ergonx_reply"))
		for _, it := range m[2].(etf.List) {
			tup := it.(etf.Tuple)
			replies[asInt(tup[0])] = tup
		}
	}
	assert.Equal(t, etf.Atom("ok"), replies[7][1])
	out, err := wire.Unmarshal(replies[7][2].([]byte))
	require.NoError(t, err)
	rows, ranOn, err := tagged(out)
	require.NoError(t, err)
	assert.Equal(t, []float32{10}, rows)
	assert.Equal(t, nd.Name(), ranOn)
	assert.Equal(t, etf.Tuple{8, etf.Atom("error"), etf.Atom("wire")}, replies[8][:3])
	assert.Contains(t, string(replies[8][3].([]byte)), "map key")
	assert.Equal(t, etf.Tuple{9, etf.Atom("error"), etf.Atom("noproc")}, replies[9][:3])

	// Every message the node sent, whatever it was, was a tuple.
	for _, m := range p.seen {
		tup, ok := m.(etf.Tuple)
		require.True(t, ok, "%#v is not a tuple", m)
		if len(tup) == 3 && (tup[0] == etf.Atom("ergonx_run") || tup[0] == etf.Atom("ergonx_reply") || tup[0] == etf.Atom("ergonx_cancel")) {
			_, isPid := tup[1].(etf.Pid)
			assert.True(t, isPid, "endpoint message %#v: sender is not a pid", tup)
			l, isList := tup[2].(etf.List)
			assert.True(t, isList && len(l) > 0, "endpoint message %#v: items are not a non-empty list", tup)
		}
	}
}

// Hostile peers (issue 11): a reply is taken only from the node the
// request went to and only for the random id of a pending call. A third
// node that floods the caller's endpoint with replies for guessable ids
// (0..4095, as sequential ids were), and that replays the real id it
// cannot know but the test does, answers nobody; the real peer's answer
// then completes the call with its rows.
func TestForgedRepliesAreRejected(t *testing.T) {
	nd := cluster(t, 1)[0]
	p := newPeer(t)
	attacker := newPeer(t)
	testnode.Mesh(t, nd, p.node, attacker.node)
	scopePid := p.next(true, "discover", func(m etf.Tuple) bool { return len(m) == 2 && m[0] == etf.Atom("discover") })[1].(etf.Pid)
	name := servingName(t)
	require.NoError(t, p.scope.Send(scopePid, etf.Tuple{etf.Atom("$gen_cast"), etf.Tuple{
		etf.Atom("sync"), p.scope.Self(), etf.List{
			etf.Tuple{etf.Atom(name), etf.List{p.endpoint.Self()}},
			etf.Tuple{etf.Atom(serving.EndpointGroup), etf.List{p.endpoint.Self()}},
		},
	}}))
	waitMembers(t, name, 1, nd)

	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := serving.BatchedRun(testCtx(t), nd, serving.Distributed(name), floats(1, 2))
		done <- result{res, err}
	}()
	run := p.next(false, "the run request", tagged3("ergonx_run"))
	epPid := run[1].(etf.Pid)
	item := run[2].(etf.List)[0].(etf.Tuple)
	realID := item[0]

	forged, err := wire.Marshal(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{666, 666})))
	require.NoError(t, err)
	var guesses etf.List
	for id := range 4096 {
		guesses = append(guesses, etf.Tuple{int64(id), etf.Atom("ok"), forged})
	}
	require.NoError(t, attacker.endpoint.Send(epPid, etf.Tuple{etf.Atom("ergonx_reply"), attacker.endpoint.Self(), guesses}))
	require.NoError(t, attacker.endpoint.Send(epPid, etf.Tuple{etf.Atom("ergonx_reply"), attacker.endpoint.Self(),
		etf.List{etf.Tuple{realID, etf.Atom("ok"), forged}}}))
	// The caller's endpoint handles one peer's messages in order: once it
	// has answered a run the attacker sent after its forgeries (noproc: no
	// such serving), it has handled the forgeries too.
	require.NoError(t, attacker.endpoint.Send(epPid, etf.Tuple{etf.Atom("ergonx_run"), attacker.endpoint.Self(),
		etf.List{etf.Tuple{int64(1), etf.Atom(name + ".none"), forged}}}))
	attacker.next(false, "the caller's answer to the marker", tagged3("ergonx_reply"))
	select {
	case r := <-done:
		t.Fatalf("a forged reply completed the call: %v, %v", r.res, r.err)
	default:
	}

	answer, err := wire.Marshal(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{2, 4})))
	require.NoError(t, err)
	require.NoError(t, p.endpoint.Send(epPid, etf.Tuple{etf.Atom("ergonx_reply"), p.endpoint.Self(),
		etf.List{etf.Tuple{realID, etf.Atom("ok"), answer}}}))
	r := within(t, waitLimit, done, "the real answer")
	require.NoError(t, r.err)
	assert.Equal(t, []float32{2, 4}, r.res.(*tensor.Dense).Data())
	id, ok := realID.(int64)
	require.True(t, ok, "ids travel as integers, got %T", realID)
	assert.Greater(t, id, int64(1<<32), "ids are random 63-bit numbers (a 1 in 2^31 chance of a false failure)")
}

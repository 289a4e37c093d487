package tests

import (
	"context"
	"fmt"
	ergonode "github.com/ergo-services/ergo/node"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// The distributed behaviours of Nx.Serving's test suite (checklist §4.7),
// across nodes of this test binary on loopback.

// Nx item 55: {:distributed, name} with only a local serving still goes
// through the distributed path: distributed preprocessing in the caller
// with the batch, the serving's distributed postprocessing with the
// output, correct results, two executions of batch size 2.
func TestDistributedWithLocalServingGoesThroughTheDistributedPath(t *testing.T) {
	nd := cluster(t, 1)[0]
	name := servingName(t)
	execs := countExecutions(t, name)

	type call struct {
		what string
		v    any
	}
	calls := make(chan call, 16)
	d := newDoubler(nd)
	s := d.serving().DistributedPostprocessing(func(r any) (any, error) {
		calls <- call{"distributed postprocessing", r}
		return r, nil
	})
	_, err := serving.Start(nd, serving.Options{Name: name, Serving: s, BatchSize: 2, BatchTimeout: time.Hour})
	require.NoError(t, err)
	waitMembers(t, name, 1, nd)

	pre := serving.WithDistributedPreprocessing(func(in any) (any, error) {
		calls <- call{"distributed preprocessing", in}
		return in, nil
	})
	// Sequential calls of two rows each: each fills a batch (the hour-long
	// timeout never fires), so each is one execution of 2.
	for _, vs := range [][]float32{{1, 2}, {3, 4}} {
		res, err := serving.BatchedRun(testCtx(t), nd, serving.Distributed(name), floats(vs...), pre)
		require.NoError(t, err)
		out, ok := res.(*tensor.Dense)
		require.True(t, ok, "result %T", res)
		assert.Equal(t, doubled(vs...), out.Data())

		c := within(t, waitLimit, calls, "distributed preprocessing")
		assert.Equal(t, "distributed preprocessing", c.what)
		b, ok := c.v.(*batch.Batch)
		require.True(t, ok, "distributed preprocessing got %T, want the caller's batch", c.v)
		assert.Equal(t, 2, b.Size())
		c = within(t, waitLimit, calls, "distributed postprocessing")
		assert.Equal(t, "distributed postprocessing", c.what)
		_, ok = c.v.(*tensor.Dense)
		assert.True(t, ok, "distributed postprocessing got %T, want the output tensor", c.v)
	}
	assert.Equal(t, []int{2, 2}, execs.get(), "two executions of batch size 2")
	assert.Equal(t, int64(2), d.batches.Load())

	// A local call of the same serving skips both.
	res, err := serving.BatchedRun(testCtx(t), nd, serving.Local(name), floats(5, 6), pre)
	require.NoError(t, err)
	assert.Equal(t, doubled(5, 6), res.(*tensor.Dense).Data())
	assert.Empty(t, calls, "a local call runs neither distributed pre- nor postprocessing")
}

// Nx item 56: over the network. Local(name) on a node without the serving
// is ErrNoProc; Distributed(name) runs there, with distributed
// preprocessing on the caller's node and distributed postprocessing on the
// serving's; a plain name with no local serving falls back to the cluster.
func TestDistributedOverTheNetwork(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	newDoubler(remote).start(t, remote, serving.Options{Name: name, BatchSize: 2})
	waitMembers(t, name, 1, caller, remote)

	ctx := testCtx(t)
	_, err := serving.BatchedRun(ctx, caller, serving.Local(name), floats(1, 2))
	require.ErrorIs(t, err, serving.ErrNoProc)
	assert.Contains(t, err.Error(), caller.Name())

	// Each side records where it runs: the caller's distributed
	// preprocessing here, the doubler's distributed postprocessing tags
	// the result with its node.
	var preRanOn atomic.Value
	pre := serving.WithDistributedPreprocessing(func(in any) (any, error) {
		preRanOn.Store(caller.Name())
		return in, nil
	})
	res, err := serving.BatchedRun(ctx, caller, serving.Distributed(name), floats(1, 2), pre)
	require.NoError(t, err)
	rows, ranOn, err := tagged(res)
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4}, rows)
	assert.Equal(t, caller.Name(), preRanOn.Load(), "distributed preprocessing runs on the caller's node")
	assert.Equal(t, remote.Name(), ranOn, "distributed postprocessing runs on the serving's node")

	// A plain name: no serving here, so the cluster's.
	rows, ranOn, err = callTagged(ctx, caller, name, 3)
	require.NoError(t, err)
	assert.Equal(t, []float32{6}, rows)
	assert.Equal(t, remote.Name(), ranOn)
}

// Nx item 57: a serving joins its group once per partition times its
// DistributionWeight, every node sees all the entries, and callers pick
// servings in proportion to them. The calls go one at a time, so that no
// call waits anywhere when the next picks its member: the choice is then
// by weight alone, as Nx's random pick is. (Under load, dispatch also
// weighs each node's waiting calls per entry, and a serving whose batches
// wait for their timer gets less: TestDispatchAvoidsTheBusyMember.)
func TestDistributionWeightsSetMembershipAndShare(t *testing.T) {
	nodes := cluster(t, 3)
	caller, light, heavy := nodes[0], nodes[1], nodes[2]
	name := servingName(t)
	dl, dh := newDoubler(light), newDoubler(heavy)
	dl.start(t, light, serving.Options{Name: name, BatchSize: 1, DistributionWeight: 1})
	dh.start(t, heavy, serving.Options{Name: name, BatchSize: 1, DistributionWeight: 4})
	waitMembers(t, name, 5, nodes...)

	members := pg.Lookup(caller, "").Members(name)
	require.Len(t, members, 5)
	perNode := map[string]int{}
	for _, p := range members {
		perNode[string(p.Node)]++
	}
	assert.Equal(t, map[string]int{light.Name(): 1, heavy.Name(): 4}, perNode)
	assert.Len(t, slices.Compact(sortedPids(pg.Lookup(caller, "").Members(name))), 2,
		"the heavy serving's four entries are one process")

	// 2,000 calls, one at a time: the heavy serving gets about 4/5.
	ctx := testCtx(t)
	// Binomial(2000, 1/5) has a standard deviation of 18 rows; the bounds
	// are 8 of them away.
	const calls, callers = 2000, 1
	var next atomic.Int64
	got := map[string]*atomic.Int64{light.Name(): {}, heavy.Name(): {}}
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > calls {
					return
				}
				rows, ranOn, err := callTagged(ctx, caller, name, float32(i))
				if err == nil && !slices.Equal(rows, doubled(float32(i))) {
					err = fmt.Errorf("call %d got rows %v", i, rows)
				}
				if err != nil {
					errs <- err
					return
				}
				got[ranOn].Add(1)
			}
		})
	}
	waitGroup(t, 60*time.Second, &wg, "2,000 distributed calls")
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	l, h := got[light.Name()].Load(), got[heavy.Name()].Load()
	t.Logf("weight 1: %d calls, weight 4: %d calls", l, h)
	assert.Equal(t, int64(calls), l+h)
	assert.InDelta(t, calls/5, l, 150, "the weight-1 serving's share")
	assert.Equal(t, l, dl.rows.Load(), "rows the weight-1 serving ran")
	assert.Equal(t, h, dh.rows.Load(), "rows the weight-4 serving ran")
}

func sortedPids(ps []etf.Pid) []etf.Pid {
	slices.SortFunc(ps, func(a, b etf.Pid) int {
		if a.Node != b.Node {
			if a.Node < b.Node {
				return -1
			}
			return 1
		}
		return int(a.ID) - int(b.ID)
	})
	return ps
}

// Nx item 58: the process group is the serving's name (Nx v0.10 and
// later), and, so that callers of Nx v0.5 to v0.9 find it too, the group
// Nx.Serving those versions share: a Monitor on the caller's scope sees
// the remote serving join both, partitions × weight times each.
func TestProcessGroupIsTheServingName(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	scope := pg.Lookup(caller, "")
	members, events, cancel := scope.Monitor(name)
	defer cancel()
	sharedBefore, shared, cancelShared := scope.Monitor(serving.NxSharedGroup)
	defer cancelShared()
	require.Empty(t, members)
	require.Empty(t, sharedBefore)

	newDoubler(remote).start(t, remote, serving.Options{Name: name, DistributionWeight: 2})
	for _, ch := range []<-chan pg.Event{events, shared} {
		ev := within(t, waitLimit, ch, "the serving's join")
		assert.Equal(t, pg.Joined, ev.Kind)
		require.Len(t, ev.Pids, 2, "one entry per partition times the weight")
		assert.Equal(t, etf.Atom(remote.Name()), ev.Pids[0].Node)
	}
	assert.Equal(t, []string{serving.NxSharedGroup, serving.EndpointGroup, name}, scope.Groups(),
		"the serving's groups and the endpoints'")
	assert.True(t, scope.HasMemberOn(serving.EndpointGroup, remote.Name()), "the remote node announces its endpoint")
}

// Nx item 61 (issue #1251): unrelated messages that reach the caller's
// endpoint, before and while distributed calls wait, never answer or fail
// them: random terms, replies with unknown ids, malformed endpoint
// messages (from the caller's node and from the serving's), and fake
// DOWNs: Nx's own stray {DOWN, Ref, process, self(), normal}, one for a
// process of the serving's node, and one naming the endpoint the calls
// wait on, each with a reference that is not the endpoint's monitor's.
// Every call gets exactly its own rows.
func TestStrayMessagesDoNotConfuseWaitingCallers(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	d := newDoubler(remote).held(t)
	d.start(t, remote, serving.Options{Name: name, BatchSize: 4})
	// A serving on the caller's node only, to know when the caller's
	// endpoint has handled what was sent before (see flushed).
	marker := name + ".marker"
	newDoubler(caller).start(t, caller, serving.Options{Name: marker})
	waitMembers(t, name, 1, caller)
	waitMembers(t, marker, 1, caller, remote)

	ep := gen.ProcessID{Name: serving.EndpointName, Node: caller.Name()}
	local, fromRemote := spawnIdle(t, caller), spawnIdle(t, remote)
	servingPid := remote.ProcessByName(name).Self()
	bin, err := wire.Marshal(floats(666))
	require.NoError(t, err)
	// A gen.MessageDown cannot cross nodes (ergo has no such term): the
	// fake DOWNs come from the caller's node only.
	cases := []struct {
		name  string
		stray func(from gen.Process) []etf.Term
		local bool // from the caller's node only
	}{
		{name: "random terms", stray: func(gen.Process) []etf.Term {
			return []etf.Term{etf.Atom("junk"), 42, "text", []byte("bytes"), etf.Tuple{1, 2, 3}, etf.Tuple{etf.Atom("ergonx_run")}}
		}},
		{name: "replies with unknown ids", stray: func(p gen.Process) []etf.Term {
			return []etf.Term{etf.Tuple{etf.Atom("ergonx_reply"), p.Self(), etf.List{
				etf.Tuple{int64(1) << 40, etf.Atom("ok"), bin},
				etf.Tuple{int64(1) << 41, etf.Atom("error"), etf.Atom("noproc"), []byte("stray")},
			}}}
		}},
		{name: "malformed endpoint messages", stray: func(p gen.Process) []etf.Term {
			self := p.Self()
			return []etf.Term{
				etf.Tuple{etf.Atom("ergonx_reply"), self, etf.List{etf.Tuple{int64(1) << 42, etf.Atom("ok")}}},
				etf.Tuple{etf.Atom("ergonx_reply"), self, etf.List{etf.Atom("garbage")}},
				etf.Tuple{etf.Atom("ergonx_reply"), self, "not a list"},
				etf.Tuple{etf.Atom("ergonx_reply"), etf.Atom("not a pid"), etf.List{1}},
				etf.Tuple{etf.Atom("ergonx_run"), self, etf.List{etf.Tuple{1}}},
				etf.Tuple{etf.Atom("ergonx_run"), self, etf.List{etf.Tuple{-1, etf.Atom(name), bin}}},
				etf.Tuple{etf.Atom("ergonx_run"), self, etf.List{etf.Tuple{int64(5), "not an atom", bin}}},
				etf.Tuple{etf.Atom("ergonx_cancel"), self, etf.List{"x", int64(1) << 43}},
				etf.Tuple{etf.Atom("ergonx_other"), self, etf.List{1}},
			}
		}},
		{name: "Nx's stray DOWN for self()", local: true, stray: func(p gen.Process) []etf.Term {
			return []etf.Term{gen.MessageDown{Ref: p.MakeRef(), Pid: p.Self(), Reason: "normal"}}
		}},
		{name: "a DOWN for a process of the serving's node", local: true, stray: func(p gen.Process) []etf.Term {
			return []etf.Term{gen.MessageDown{Ref: p.MakeRef(), Pid: servingPid, Reason: "kill"}}
		}},
		{name: "a DOWN naming the awaited endpoint with another reference", local: true, stray: func(p gen.Process) []etf.Term {
			return []etf.Term{gen.MessageDown{Ref: p.MakeRef(),
				ProcessID: gen.ProcessID{Name: serving.EndpointName, Node: remote.Name()}, Reason: "noconnection"}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			send := func() {
				for _, m := range tc.stray(local) {
					require.NoError(t, local.Send(ep, m))
				}
				if !tc.local {
					for _, m := range tc.stray(fromRemote) {
						require.NoError(t, fromRemote.Send(ep, m))
					}
				}
			}
			// flushed returns once the caller's endpoint has handled what
			// was sent: a call from each node, sent after, is handled
			// after (a local mailbox is FIFO; remote messages keep their
			// order on the one connection, erldist's).
			flushed := func() {
				for _, from := range nodes {
					ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
					_, _, err := callTagged(ctx, from, serving.Distributed(marker), 1)
					cancel()
					assert.NoError(t, err, "the marker call from %s", from.Name())
				}
			}

			// Already in the way before the calls.
			send()
			flushed()

			// And while they wait: every call is on the remote node, the
			// first batch held in its execution.
			d.gate.hold()
			const callers = 8
			type answer struct {
				i    int
				rows []float32
				node string
				err  error
			}
			answers := make(chan answer, callers)
			for i := range callers {
				go func() {
					v := float32(i)
					rows, ranOn, err := callTagged(context.Background(), caller, serving.Distributed(name), v, v+0.5)
					answers <- answer{i, rows, ranOn, err}
				}()
			}
			within(t, waitLimit, d.entered, "the first batch")
			waitFor(t, "every call to reach the serving", func() bool {
				st, err := serving.GetStats(remote, name)
				return err == nil && st.Waiting == callers
			})
			send()
			flushed()
			d.release()
			var wrong []string
			for range callers {
				a := within(t, waitLimit, answers, "the calls' answers")
				switch {
				case a.err != nil:
					wrong = append(wrong, fmt.Sprintf("call %d: %v", a.i, a.err))
				case !slices.Equal(doubled(float32(a.i), float32(a.i)+0.5), a.rows) || a.node != remote.Name():
					wrong = append(wrong, fmt.Sprintf("call %d: rows %v from %s", a.i, a.rows, a.node))
				}
			}
			assert.Empty(t, wrong, "%d of %d waiting calls did not get their rows", len(wrong), callers)
			for len(d.entered) > 0 {
				<-d.entered
			}
		})
	}
}

// noServing stands in for the serving endpoint of a node that has no such
// serving: it answers every request with the noproc error a real endpoint
// sends, and counts the requests per input (the first value of its batch).
type noServing struct {
	gen.Server
	mu       sync.Mutex
	attempts map[float32]int // guarded by mu
}

func (n *noServing) HandleInfo(p *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	run, ok := m.(etf.Tuple)
	if !ok || len(run) != 3 || run[0] != etf.Atom("ergonx_run") {
		return gen.ServerStatusOK
	}
	from := run[1].(etf.Pid)
	var replies etf.List
	for _, it := range run[2].(etf.List) {
		item := it.(etf.Tuple)
		in, err := wire.Unmarshal(item[2].([]byte))
		if err == nil {
			var rows any
			if rows, err = in.(*batch.Batch).Materialize(); err == nil {
				n.mu.Lock()
				n.attempts[values(rows.(*tensor.Dense))[0]]++
				n.mu.Unlock()
			}
		}
		msg := fmt.Sprintf("serving: no serving process: no serving named %q on node %s", item[1], p.NodeName())
		replies = append(replies, etf.Tuple{item[0], etf.Atom("error"), etf.Atom("noproc"), []byte(msg)})
	}
	_ = p.Send(gen.ProcessID{Name: serving.EndpointName, Node: string(from.Node)},
		etf.Tuple{etf.Atom("ergonx_reply"), p.Self(), replies})
	return gen.ServerStatusOK
}

func (n *noServing) count(v float32) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attempts[v]
}

// Checklist item 66: a distributed call tries another member when the one
// it picked has no such serving (3 attempts in all, Nx's rule), and fails
// with ErrNoProc, saying so, when every attempt found none; a failed
// batch is not retried.
//
// A node with a process-group member but no serving (its endpoint is a
// stand-in that counts the requests it turns down) shares the group with
// a real serving, one entry each.
func TestDistributedRetriesOnMembersWithoutTheServing(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	empty := takeNode(t, ergonxNode)
	stand := &noServing{attempts: map[float32]int{}}
	standIn, err := empty.Spawn(serving.EndpointName, gen.ProcessOptions{MailboxSize: 65535}, stand)
	require.NoError(t, err)
	scope, err := pg.Start(empty, pg.Options{DiscoveryInterval: discovery})
	require.NoError(t, err)
	// It announces itself as an ergonx endpoint, as real ones do.
	require.NoError(t, scope.Join(serving.EndpointGroup, standIn.Self()))
	testnode.Mesh(t, caller, remote, empty)

	name := servingName(t)
	d := newDoubler(remote)
	d.start(t, remote, serving.Options{Name: name})
	member := spawnIdle(t, empty).Self()
	require.NoError(t, scope.Join(name, member))
	waitMembers(t, name, 2, caller)

	ctx := testCtx(t)
	retried := 0
	for i := range 64 {
		v := float32(i)
		rows, ranOn, err := callTagged(ctx, caller, serving.Distributed(name), v)
		switch n := stand.count(v); {
		case n < distributedAttempts:
			require.NoError(t, err, "call %d: %d attempts on the node without the serving", i, n)
			assert.Equal(t, doubled(v), rows)
			assert.Equal(t, remote.Name(), ranOn)
			if n > 0 {
				retried++
			}
		case n == distributedAttempts:
			require.ErrorIs(t, err, serving.ErrNoProc, "call %d: all 3 attempts on the node without the serving", i)
			assert.ErrorContains(t, err, "3 attempts")
		default:
			t.Fatalf("call %d: %d attempts, at most 3", i, n)
		}
	}
	assert.Positive(t, retried, "calls that found no serving first and then succeeded")
	t.Logf("%d of 64 calls succeeded after a retry", retried)

	t.Run("a failed batch is not retried", func(t *testing.T) {
		failing := name + ".failing"
		df := newDoubler(remote)
		df.start(t, remote, serving.Options{Name: failing})
		waitMembers(t, failing, 1, caller)
		_, err := serving.BatchedRun(ctx, caller, serving.Distributed(failing), floats(failValue))
		var down *serving.DownError
		require.ErrorAs(t, err, &down)
		assert.ErrorContains(t, err, errDoublerFailed.Error())
		assert.Equal(t, int64(1), df.batches.Load())
	})

	// Only the member without the serving is left: it answers noproc, the
	// caller reports it to its scope (pg.Scope.Suspect), which hides it at
	// once, so the next attempt finds no member: ErrNoProc, usually after
	// one attempt. The scope also asks the member's node, which stands by
	// it: when that answer comes back before the next attempt picks (seen
	// under -race), the member is shown again and tried again, up to the
	// 3 attempts. The error says how many were made.
	require.NoError(t, serving.Stop(ctx, remote, name))
	waitMembers(t, name, 1, caller)
	_, err = serving.BatchedRun(ctx, caller, serving.Distributed(name), floats(1000))
	require.ErrorIs(t, err, serving.ErrNoProc)
	assert.ErrorContains(t, err, name)
	switch n := stand.count(1000); {
	case n >= 1 && n < distributedAttempts:
		assert.ErrorContains(t, err, fmt.Sprintf("%d of 3 attempts", n))
	case n == distributedAttempts:
		assert.ErrorContains(t, err, "3 attempts")
	default:
		t.Fatalf("%d attempts on the member without the serving, want 1 to 3", n)
	}
	// Its node still stands by it (the probe's answer): it is shown again.
	waitMembers(t, name, 1, caller)

	// A real endpoint without the serving says so.
	require.NoError(t, scope.Leave(name, member))
	require.NoError(t, pg.Lookup(remote, "").Join(name, spawnIdle(t, remote).Self()))
	waitFor(t, "the member on the remote node alone", func() bool {
		ms := pg.Lookup(caller, "").Members(name)
		return len(ms) == 1 && string(ms[0].Node) == remote.Name()
	})
	_, err = serving.BatchedRun(ctx, caller, serving.Distributed(name), floats(1001))
	require.ErrorIs(t, err, serving.ErrNoProc)
	assert.ErrorContains(t, err, fmt.Sprintf("no serving named %q on node %s", name, remote.Name()))
	// The caller suspected that member; its node stands by it (its answer
	// to the scope's probe), so it is shown again.
	waitMembers(t, name, 1, caller)

	// No member at all: no attempt.
	require.NoError(t, pg.Lookup(remote, "").Leave(name, pg.Lookup(remote, "").LocalMembers(name)...))
	waitMembers(t, name, 0, caller)
	_, err = serving.BatchedRun(ctx, caller, serving.Distributed(name), floats(1002))
	require.ErrorIs(t, err, serving.ErrNoProc)
	assert.ErrorContains(t, err, fmt.Sprintf("could not find a serving named %q", name))
	assert.Zero(t, stand.count(1002))

	scope.Stop()
}

// distributedAttempts is Nx's number of attempts of a distributed call.
const distributedAttempts = 3

// Checklist item 66: a serving that stops while a distributed request is
// queued answers noproc, and the caller retries on another member.
func TestDistributedRetriesWhenTheServingStopsWithTheRequestQueued(t *testing.T) {
	nodes := cluster(t, 3)
	caller, stopping, other := nodes[0], nodes[1], nodes[2]
	name := servingName(t)
	ds := newDoubler(stopping).held(t)
	ds.start(t, stopping, serving.Options{Name: name, BatchSize: 1})
	waitMembers(t, name, 1, caller)

	type answer struct {
		rows []float32
		node string
		err  error
	}
	running, queued := make(chan answer, 1), make(chan answer, 1)
	call := func(v float32, to chan<- answer) {
		rows, ranOn, err := callTagged(context.Background(), caller, serving.Distributed(name), v)
		to <- answer{rows, ranOn, err}
	}
	go call(1, running)
	within(t, waitLimit, ds.entered, "the first request's batch")
	go call(2, queued)
	waitFor(t, "the second request to queue", func() bool {
		st, err := serving.GetStats(stopping, name)
		return err == nil && st.Waiting == 2
	})

	// Another serving of the name, much heavier, so that the retry finds
	// it even if the caller has not yet seen the stopped one leave.
	newDoubler(other).start(t, other, serving.Options{Name: name, DistributionWeight: 100})
	waitMembers(t, name, 101, caller)
	stopped := make(chan error, 1)
	go func() { stopped <- serving.Stop(context.Background(), stopping, name) }()

	a := within(t, waitLimit, queued, "the queued request's answer")
	require.NoError(t, a.err)
	assert.Equal(t, doubled(2), a.rows)
	assert.Equal(t, other.Name(), a.node, "retried on the other serving")
	assert.Empty(t, running, "the running batch is still held")

	ds.release()
	a = within(t, waitLimit, running, "the running request's answer")
	require.NoError(t, a.err)
	assert.Equal(t, stopping.Name(), a.node, "a running batch finishes when its serving stops")
	require.NoError(t, within(t, waitLimit, stopped, "the serving to stop"))
}

// A request larger than the batch size is split across batches on the
// serving's node; its rows come back whole and in order, while other
// callers' requests share the same batches.
func TestDistributedSplitRequestKeepsItsRowsInOrder(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	d := newDoubler(remote)
	d.start(t, remote, serving.Options{Name: name, BatchSize: 3})
	waitMembers(t, name, 1, caller)

	const callers, rows = 16, 10
	ctx := testCtx(t)
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			vs := make([]float32, rows)
			for j := range vs {
				vs[j] = float32(i*100 + j)
			}
			got, _, err := callTagged(ctx, caller, serving.Distributed(name), vs...)
			if err == nil && !slices.Equal(got, doubled(vs...)) {
				err = fmt.Errorf("caller %d got %v", i, got)
			}
			errs <- err
		})
	}
	waitGroup(t, waitLimit, &wg, "the split requests")
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.GreaterOrEqual(t, d.batches.Load(), int64(callers*rows/3), "batches of at most 3 rows")
}

// Load-aware dispatch (issue 11): with one member busy (a call waits on
// it) and another idle, every new call goes to the idle one — Nx would
// send each call to either at random, a share of them to wait behind the
// busy member. Two choices out of two members compare both every time.
func TestDispatchAvoidsTheBusyMember(t *testing.T) {
	nodes := cluster(t, 3)
	caller, busy, idle := nodes[0], nodes[1], nodes[2]
	name := servingName(t)
	slow := newDoubler(busy).held(t)
	slow.start(t, busy, serving.Options{Name: name})
	newDoubler(idle).start(t, idle, serving.Options{Name: name})
	waitMembers(t, name, 2, caller)

	ctx := testCtx(t)
	// Calls until one is stuck on the busy member (a tie sends a call to
	// either one at random).
	stuck := make(chan error, 64)
	for i := 0; len(slow.entered) == 0; i++ {
		require.Less(t, i, 64, "no call reached the busy member")
		v := float32(1000 + i)
		go func() {
			_, _, err := callTagged(ctx, caller, serving.Distributed(name), v)
			stuck <- err
		}()
		waitFor(t, "the call to finish or stick", func() bool {
			return len(slow.entered) > 0 || len(stuck) > 0
		})
		if len(stuck) > 0 {
			require.NoError(t, <-stuck)
		}
	}
	for i := range 100 {
		rows, ranOn, err := callTagged(ctx, caller, serving.Distributed(name), float32(i))
		require.NoError(t, err)
		assert.Equal(t, doubled(float32(i)), rows)
		require.Equal(t, idle.Name(), ranOn, "call %d went to the busy member", i)
	}
	assert.Equal(t, uint64(1), mustStats(t, busy, name).Requests, "the busy member got only the call stuck on it")
	slow.release()
	require.NoError(t, within(t, waitLimit, stuck, "the stuck call"))
}

func mustStats(t testing.TB, nd ergonode.Node, name string) serving.Stats {
	st, err := serving.GetStats(nd, name)
	require.NoError(t, err)
	return st
}

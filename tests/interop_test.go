package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/actors/wire"
	ergonxcluster "github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/erltest"
	"github.com/ergonx/ergonx/serving"
)

// Interop with real Erlang/OTP 25 nodes (issue 10). Real Nx cannot be
// installed here (no Hex), so the Erlang nodes load
// testdata/nx/Elixir.Nx.Serving.erl, which speaks Nx's distributed
// protocol exactly, in each of its generations (v05: Nx 0.5, shared group,
// __distributed_batched_run__/3; v06: Nx 0.6-0.9, shared group, /4; v10:
// Nx 0.10+, a group per serving name, /4). Go nodes run ergonx as users
// do: actors.StartNode (erldist) and the cluster application, registered
// with the test's own EPMD.

// interopCookie is the cluster's cookie in these tests.
const interopCookie = "ergonx-interop-cookie"

var interopNodes atomic.Int64

// interop is one test's cluster: an EPMD, Go nodes and Erlang nodes.
type interop struct {
	tb   testing.TB
	epmd *erltest.EPMD
	code string // compiled Elixir.Nx.Serving
}

func newInterop(t *testing.T) *interop {
	t.Helper()
	erltest.Require(t)
	ix := &interop{tb: t, epmd: erltest.StartEPMD(t), code: t.TempDir()}
	erltest.Compile(t, ix.code, "testdata/nx/Elixir.Nx.Serving.erl")
	return ix
}

// goNode starts an ergonx node with the cluster application, registered
// with the test's EPMD.
func (ix *interop) goNode() node.Node {
	ix.tb.Helper()
	name := fmt.Sprintf("go%d_%d@localhost", os.Getpid(), interopNodes.Add(1))
	nd, err := actors.StartNode(name, interopCookie, node.Options{
		Registrar: ix.epmd.Registrar(),
		Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
	})
	require.NoError(ix.tb, err)
	ix.tb.Cleanup(func() {
		nd.Stop()
		_ = nd.WaitWithTimeout(10 * time.Second)
	})
	require.NoError(ix.tb, ergonxcluster.Start(nd, pg.Options{DiscoveryInterval: discovery}))
	return nd
}

// erlNode starts an Erlang node of Nx generation gen (v05, v06, v10) with
// Nx's pg scope.
func (ix *interop) erlNode(gen string) *erltest.Node {
	ix.tb.Helper()
	erl := erltest.Start(ix.tb, erltest.Options{Cookie: interopCookie, EPMD: ix.epmd, CodePath: []string{ix.code}})
	erl.MustEval(ix.tb, fmt.Sprintf("{ok, _} = pg:start('Elixir.Nx.Serving.PG'), 'Elixir.Nx.Serving':set_generation(%s)", gen))
	return erl
}

// connect connects erl to nd (from the Erlang side) and waits until
// erl's scope sees want entries of group.
func (ix *interop) connect(erl *erltest.Node, nd node.Node) {
	ix.tb.Helper()
	require.Equal(ix.tb, true, erl.MustEval(ix.tb, fmt.Sprintf("net_kernel:connect_node(%s)", erltest.Atom(nd.Name()))))
}

// erlMembers waits until erl's Nx.Serving.PG lists want entries of group.
func erlMembers(t testing.TB, erl *erltest.Node, group string, want int) {
	t.Helper()
	expr := fmt.Sprintf("length(pg:get_members('Elixir.Nx.Serving.PG', %s))", erltest.Atom(group))
	waitFor(t, fmt.Sprintf("%d members of %s on %s", want, group, erl.Name), func() bool {
		n, err := erl.Eval(context.Background(), expr)
		return err == nil && n == want
	})
}

// erlTensor is the Erlang expression of an f32 tensor of shape rows×cols
// holding start, start+1, ...
func erlTensor(start, rows, cols int) string {
	vals := make([]string, rows*cols)
	for i := range vals {
		vals[i] = fmt.Sprintf("%d.0", start+i)
	}
	return fmt.Sprintf("'Elixir.Nx.Serving':tensor([%s], {%d,%d})", strings.Join(vals, ","), rows, cols)
}

// seq is start, start+1, ... n values, doubled when twice.
func seq(start, n int, twice bool) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(start + i)
		if twice {
			out[i] *= 2
		}
	}
	return out
}

// decodeTensor reads an %Nx.Tensor{} term.
func decodeTensor(t testing.TB, term etf.Term) *tensor.Dense {
	t.Helper()
	d, err := wire.DecodeTensor(term)
	require.NoError(t, err, "not a tensor: %.200v", term)
	return d
}

// doublerServing is a serving without client preprocessing that doubles
// its rows: what an Nx caller's tensor reaches as a batch of its rows.
func doublerServing() *serving.Serving {
	return serving.JIT(func(in any) (any, error) {
		return in.(*tensor.Dense).MulScalar(float32(2), true)
	})
}

// The handshake both ways (the Erlang node dials the Go node, the Go node
// dials another Erlang node), net_adm:ping gets pong, and rpc:call to a
// Go node fails at once with a clear badrpc (or runs the allow-list).
func TestInteropHandshakePingAndRPC(t *testing.T) {
	ix := newInterop(t)
	nd := ix.goNode()
	erl := ix.erlNode("v10")
	other := ix.erlNode("v10")

	assert.Equal(t, etf.Atom("pong"), erl.MustEval(t, fmt.Sprintf("net_adm:ping(%s)", erltest.Atom(nd.Name()))))
	require.NoError(t, nd.Connect(other.Name))
	assert.Contains(t, nd.Nodes(), erl.Name)
	assert.Contains(t, nd.Nodes(), other.Name)
	assert.Equal(t, etf.List{etf.Atom(nd.Name())}, other.MustEval(t, "nodes()"))

	assert.Equal(t, etf.Atom(nd.Name()), erl.MustEval(t, fmt.Sprintf("rpc:call(%s, erlang, node, [])", erltest.Atom(nd.Name()))))
	start := time.Now()
	got := erl.MustEval(t, fmt.Sprintf("rpc:call(%s, os, cmd, [\"ls\"], 5000)", erltest.Atom(nd.Name())))
	assert.Less(t, time.Since(start), 2*time.Second, "rpc:call fails fast")
	badrpc, ok := got.(etf.Tuple)
	require.True(t, ok, "rpc:call answered %v", got)
	assert.Equal(t, etf.Atom("badrpc"), badrpc[0])
	assert.Contains(t, fmt.Sprint(badrpc[1]), "undef")
}

// Each serving joins both groups in Nx.Serving.PG, partitions × weight
// entries each, and Erlang callers of every Nx generation get exactly
// their rows from it: /3 from v05, /4 from v06 and v10. A large result
// (10,000 rows: a 640 KB exit reason) arrives intact.
func TestInteropErlangCallsGoServing(t *testing.T) {
	ix := newInterop(t)
	nd := ix.goNode()
	name := "dbl"
	_, err := serving.Start(nd, serving.Options{Name: name, Serving: doublerServing(), BatchSize: 64,
		BatchTimeout: time.Millisecond, DistributionWeight: 2})
	require.NoError(t, err)
	for _, gen := range []string{"v05", "v06", "v10"} {
		t.Run(gen, func(t *testing.T) {
			erl := ix.erlNode(gen)
			ix.connect(erl, nd)
			erlMembers(t, erl, serving.NxSharedGroup, 2)
			erlMembers(t, erl, name, 2)

			res := erl.MustEval(t, fmt.Sprintf("'Elixir.Nx.Serving':batched_run({distributed, dbl}, %s)", erlTensor(1, 3, 2)))
			d := decodeTensor(t, res)
			assert.Equal(t, tensor.Shape{3, 2}, d.Shape())
			assert.Equal(t, seq(1, 6, true), d.Data())

			big := erl.MustEval(t, "T = 'Elixir.Nx.Serving':tensor([float(X) || X <- lists:seq(1, 160000)], {10000, 16}), "+
				"'Elixir.Nx.Serving':batched_run({distributed, dbl}, T)")
			d = decodeTensor(t, big)
			assert.Equal(t, tensor.Shape{10000, 16}, d.Shape())
			assert.Equal(t, seq(1, 160000, true), d.Data())
		})
	}
}

// A v06 caller picks from the shared group, where a Go node serving
// another name is a member too: that node's handler exits noproc and
// the caller retries another random member (Nx's 3 attempts). With dbl
// holding 4 of the 5 entries, calls succeed after retries with exactly
// their rows; a call whose 3 picks all miss exits noproc, as Nx's does.
// A name served nowhere exits noproc.
func TestInteropErlangCallerRetriesOnNoproc(t *testing.T) {
	ix := newInterop(t)
	other, server := ix.goNode(), ix.goNode()
	_, err := serving.Start(other, serving.Options{Name: "not_dbl", Serving: doublerServing()})
	require.NoError(t, err)
	_, err = serving.Start(server, serving.Options{Name: "dbl", Serving: doublerServing(), BatchTimeout: time.Millisecond,
		DistributionWeight: 4})
	require.NoError(t, err)
	erl := ix.erlNode("v06")
	ix.connect(erl, other)
	ix.connect(erl, server)
	erlMembers(t, erl, serving.NxSharedGroup, 5)

	ok, exhausted := 0, 0
	for i := range 40 {
		res, err := erl.Eval(context.Background(), fmt.Sprintf("'Elixir.Nx.Serving':batched_run({distributed, dbl}, %s)", erlTensor(i, 1, 2)))
		var ev *erltest.EvalError
		switch {
		case err == nil:
			ok++
			assert.Equal(t, seq(i, 2, true), decodeTensor(t, res).Data(), "call %d", i)
		case errors.As(err, &ev) && ev.Reason.(etf.Tuple)[0] == etf.Atom("noproc"):
			exhausted++ // 3 picks of not_dbl's node: 1 in 125
		default:
			t.Fatalf("call %d: %v", i, err)
		}
	}
	retries := toInt(erl.MustEval(t, "'Elixir.Nx.Serving':retries()"))
	t.Logf("40 calls: %d served, %d out of attempts; %d noproc retries", ok, exhausted, retries)
	assert.Positive(t, retries, "some calls picked the node without dbl first and retried")
	assert.Greater(t, ok, 30)

	_, err = erl.Eval(context.Background(), fmt.Sprintf("'Elixir.Nx.Serving':batched_run({distributed, nowhere}, %s)", erlTensor(0, 1, 2)))
	var ev *erltest.EvalError
	require.ErrorAs(t, err, &ev)
	assert.Equal(t, etf.Atom("exit"), ev.Class)
	reason, isTuple := ev.Reason.(etf.Tuple)
	require.True(t, isTuple, "exit %v", ev.Reason)
	assert.Equal(t, etf.Atom("noproc"), reason[0])
}

// What a Go serving cannot take, or fails on, reaches the Nx caller as an
// exit with an Elixir exception it re-raises, never a crash or a hang: a
// real %Nx.Batch{} (its rows are closures) is an ArgumentError that says
// what to send instead; a failing batch a RuntimeError with the cause.
func TestInteropClosuresAndFailuresExitCleanly(t *testing.T) {
	ix := newInterop(t)
	nd := ix.goNode()
	d := newDoubler(nd)
	d.start(t, nd, serving.Options{Name: "dbl", BatchSize: 2})
	erl := ix.erlNode("v05")
	ix.connect(erl, nd)
	erlMembers(t, erl, serving.NxSharedGroup, 1)

	exception := func(expr string) (module, message string) {
		t.Helper()
		_, err := erl.Eval(context.Background(), expr)
		var ev *erltest.EvalError
		require.ErrorAs(t, err, &ev)
		require.Equal(t, etf.Atom("exit"), ev.Class, "%v", ev.Reason)
		outer := ev.Reason.(etf.Tuple)
		assert.Equal(t, etf.Atom("distributed_batched_run"), outer[1].(etf.Tuple)[1])
		inner := outer[0].(etf.Tuple) // {Exception, Stacktrace}
		ex := inner[0].(etf.Map)
		return string(ex[etf.Atom("__struct__")].(etf.Atom)), string(ex[etf.Atom("message")].([]byte))
	}
	mod, msg := exception(fmt.Sprintf("'Elixir.Nx.Serving':batched_run({distributed, dbl}, 'Elixir.Nx.Serving':batch_concatenate([%s]))", erlTensor(1, 2, 1)))
	assert.Equal(t, "Elixir.ArgumentError", mod)
	assert.Contains(t, msg, "closures")
	assert.Contains(t, msg, "batched_run with a tensor")

	mod, msg = exception("'Elixir.Nx.Serving':batched_run({distributed, dbl}, 'Elixir.Nx.Serving':tensor([1.0, -0.25], {2}))")
	assert.Equal(t, "Elixir.RuntimeError", mod)
	assert.Contains(t, msg, errDoublerFailed.Error())
	assert.Equal(t, int64(1), d.batches.Load(), "the closure never reached the serving")
}

// Go calls Nx: serving.BatchedRun reaches a serving on an Erlang node of
// every generation (Nx's own protocol: spawn_monitor of
// __distributed_batched_run__, the result read from the DOWN; /3 for v05
// after /4 answers undef) with exact rows; the input is sent as a plain
// tensor, which the Nx serving's client preprocessing takes.
func TestInteropGoCallsErlangServing(t *testing.T) {
	ix := newInterop(t)
	nd := ix.goNode()
	shared := 0 // entries of Nx's shared group so far
	for _, gen := range []string{"v05", "v06", "v10"} {
		t.Run(gen, func(t *testing.T) {
			erl := ix.erlNode(gen)
			name := "edbl_" + gen
			erl.MustEval(t, fmt.Sprintf("{ok, _} = 'Elixir.Nx.Serving':start_serving(%s, #{batch_size => 8, batch_timeout => 2, "+
				"partitions => 2, client_preprocessing => 'Elixir.Nx.Serving':plain_tensor_preprocessing()})", name))
			require.NoError(t, nd.Connect(erl.Name))
			group, entries := name, 2
			if gen != "v10" {
				// The shared group also holds the servings of the
				// generations before this one (2 entries each).
				group, shared = serving.NxSharedGroup, shared+2
				entries = shared
			}
			waitMembers(t, group, entries, nd)

			ctx := testCtx(t)
			for i := range 5 {
				in := tensor.New(tensor.WithShape(3, 2), tensor.WithBacking(seq(10*i, 6, false)))
				b, err := batch.Concatenate(in)
				require.NoError(t, err)
				out, err := serving.BatchedRun(ctx, nd, serving.Distributed(name), b)
				require.NoError(t, err, "call %d", i)
				d, ok := out.(*tensor.Dense)
				require.True(t, ok, "result %T", out)
				assert.Equal(t, tensor.Shape{3, 2}, d.Shape())
				assert.Equal(t, seq(10*i, 6, true), d.Data())
			}
			// A name no member serves: the Nx members answer noproc, 3 attempts.
			_, err := serving.BatchedRun(ctx, nd, serving.Distributed(name+"_missing"), floats(1))
			require.ErrorIs(t, err, serving.ErrNoProc)
		})
	}
}

// 2,000 Erlang callers at once (Nx v0.10), each a process of its own:
// every one gets exactly its rows, none is lost.
func TestInteropTwoThousandErlangCallers(t *testing.T) {
	ix := newInterop(t)
	nd := ix.goNode()
	_, err := serving.Start(nd, serving.Options{Name: "dbl", Serving: doublerServing(), BatchSize: 64,
		BatchTimeout: time.Millisecond, Partitions: serving.CompilerPartitions})
	require.NoError(t, err)
	erl := ix.erlNode("v10")
	ix.connect(erl, nd)
	erlMembers(t, erl, "dbl", 1)

	const callers = 2000
	got, err := erl.Eval(testCtx(t), fmt.Sprintf("Inputs = [%s || I <- lists:seq(0, %d)], "+
		"'Elixir.Nx.Serving':run_many({distributed, dbl}, Inputs, self())",
		"'Elixir.Nx.Serving':tensor([float(2*I), float(2*I+1)], {1, 2})", callers-1))
	require.NoError(t, err)
	results, ok := got.(etf.List)
	require.True(t, ok)
	require.Len(t, results, callers)
	for _, r := range results {
		pair := r.(etf.Tuple)
		i := toInt(pair[0]) - 1
		outcome := pair[1].(etf.Tuple)
		require.Equal(t, etf.Atom("ok"), outcome[0], "caller %d: %.300v", i, outcome)
		assert.Equal(t, seq(2*i, 2, true), decodeTensor(t, outcome[1]).Data(), "caller %d", i)
	}
}

// toInt reads a small integer term.
func toInt(t etf.Term) int {
	switch v := t.(type) {
	case int:
		return v
	case int64:
		return int(v)
	}
	panic(fmt.Sprintf("not an integer: %T", t))
}

// kill -9 of the Erlang node while a Go caller waits on its serving: the
// caller gets ErrNodeDown promptly, not a hang.
func TestInteropKilledErlangNodeFailsGoCallers(t *testing.T) {
	ix := newInterop(t)
	nd := ix.goNode()
	erl := ix.erlNode("v10")
	// A batch that never fills and a timer of a minute: the call waits.
	erl.MustEval(t, "{ok, _} = 'Elixir.Nx.Serving':start_serving(slow, #{batch_size => 100, batch_timeout => 60000, "+
		"client_preprocessing => 'Elixir.Nx.Serving':plain_tensor_preprocessing()})")
	require.NoError(t, nd.Connect(erl.Name))
	waitMembers(t, "slow", 1, nd)

	errc := make(chan error, 1)
	go func() {
		_, err := serving.BatchedRun(context.Background(), nd, serving.Distributed("slow"), floats(1, 2))
		errc <- err
	}()
	waitFor(t, "the call to reach the Erlang serving", func() bool {
		n, err := erl.Eval(context.Background(), "maps:get(count, sys:get_state(slow))") // rows stacked
		return err == nil && n == 2
	})
	killed := time.Now()
	erl.Kill()
	err := within(t, nodeLossBound, errc, "the caller's answer after the kill")
	require.ErrorIs(t, err, serving.ErrNodeDown)
	t.Logf("the caller learned of the kill after %v", time.Since(killed))
}

// helperEPMDEnv names the port of the EPMD an interop helper node
// registers with.
const helperEPMDEnv = "ERGONX_TEST_EPMD"

// TestHelperInteropNodeProcess is the Go node of
// TestInteropKilledGoNodeFailsErlangCallers in a process of its own: an
// ergonx node registered with the parent's EPMD, with the runtime
// application and a serving named "hang" whose every execution hangs. It
// prints "NODE name" once the serving runs and "HUNG" when an execution
// hangs, and serves until killed.
func TestHelperInteropNodeProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "interop" {
		t.Skip("runs only as a helper process of TestInteropKilledGoNodeFailsErlangCallers")
	}
	port, err := strconv.ParseUint(os.Getenv(helperEPMDEnv), 10, 16)
	require.NoError(t, err)
	name := fmt.Sprintf("gohelper%d@localhost", os.Getpid())
	nd, err := actors.StartNode(name, interopCookie, node.Options{
		Registrar: dist.CreateRegistrarWithRemoteEPMD("", uint16(port)),
		Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
	})
	require.NoError(t, err)
	require.NoError(t, ergonxcluster.Start(nd, pg.Options{DiscoveryInterval: discovery}))
	var hung sync.Once
	_, err = serving.Start(nd, serving.Options{Name: "hang", Serving: serving.JIT(func(in any) (any, error) {
		hung.Do(func() { fmt.Println("HUNG") })
		select {} // until SIGKILL
	})})
	require.NoError(t, err)
	fmt.Println("NODE", name)
	helperLife()
}

// kill -9 of the Go node while an Erlang caller waits on its serving: the
// caller exits with noconnection promptly (Nx's caller re-raises it), not
// a hang.
func TestInteropKilledGoNodeFailsErlangCallers(t *testing.T) {
	ix := newInterop(t)
	child := startHelper(t, "TestHelperInteropNodeProcess", "interop", fmt.Sprintf("%s=%d", helperEPMDEnv, ix.epmd.Port))
	goName := child.expect(waitLimit, "NODE")[1]
	erl := ix.erlNode("v10")
	require.Equal(t, true, erl.MustEval(t, fmt.Sprintf("net_kernel:connect_node(%s)", erltest.Atom(goName))))
	erlMembers(t, erl, "hang", 1)

	type evalResult struct {
		res etf.Term
		err error
	}
	done := make(chan evalResult, 1)
	go func() {
		res, err := erl.Eval(context.Background(), fmt.Sprintf("'Elixir.Nx.Serving':batched_run({distributed, hang}, %s)", erlTensor(1, 1, 1)))
		done <- evalResult{res, err}
	}()
	child.expect(waitLimit, "HUNG")
	killed := time.Now()
	child.kill()
	r := within(t, nodeLossBound, done, "the Erlang caller's exit after the kill")
	var ev *erltest.EvalError
	require.ErrorAs(t, r.err, &ev, "result %v", r.res)
	assert.Equal(t, etf.Atom("exit"), ev.Class)
	reason := ev.Reason.(etf.Tuple)
	assert.Equal(t, etf.Atom("noconnection"), reason[0])
	t.Logf("the Erlang caller learned of the kill after %v", time.Since(killed))
}

// A streaming serving answers an Nx v0.6+ caller as Nx does:
// {Ref, streaming}, then one message per batch (a request split over two
// executions gives two), then the exit {Ref, streaming}; the stand-in
// returns {stream, Events}.
func TestInteropStreamingServingToNxCaller(t *testing.T) {
	ix := newInterop(t)
	nd := ix.goNode()
	_, err := serving.Start(nd, serving.Options{Name: "sdbl", Serving: doublerServing().Streaming(), BatchSize: 2,
		BatchTimeout: time.Millisecond})
	require.NoError(t, err)
	erl := ix.erlNode("v10")
	ix.connect(erl, nd)
	erlMembers(t, erl, "sdbl", 1)

	res := erl.MustEval(t, fmt.Sprintf("'Elixir.Nx.Serving':batched_run({distributed, sdbl}, %s)", erlTensor(1, 3, 1)))
	stream, ok := res.(etf.Tuple)
	require.True(t, ok, "result %.300v", res)
	require.Equal(t, etf.Atom("stream"), stream[0])
	events := stream[1].(etf.List)
	require.Len(t, events, 2, "one event per execution")
	var rows []float32
	for _, e := range events {
		ev := e.(etf.Tuple)
		require.Equal(t, etf.Atom("batch"), ev[0], "event %.200v", ev)
		rows = append(rows, decodeTensor(t, ev[1]).Data().([]float32)...)
	}
	assert.Equal(t, []float32{2, 4, 6}, rows)
}

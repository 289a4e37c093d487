package tests

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// Later Nx's streaming, batch keys and input streams across nodes of
// this test binary on loopback.

// addFiveRoundAbout is Nx's add_five_round_about (x*2, hook double; +10,
// hook plus_ten; /2), whose distributed postprocessing tags each batch
// event with the node it ran on, as Nx's DistributedServings does.
func addFiveRoundAbout(nd node.Node) *serving.Serving {
	return serving.New(func(o compiler.Options) (compiler.Func, error) {
		return compiler.JIT(func(in any) (any, error) {
			x := in.(*tensor.Dense)
			d, err := x.MulScalar(float32(2), true)
			if err != nil {
				return nil, err
			}
			o.Hook("double")(d)
			p, err := d.AddScalar(float32(10), true)
			if err != nil {
				return nil, err
			}
			o.Hook("plus_ten")(p)
			return p.DivScalar(float32(2), true)
		}, o)
	}).Streaming("double", "plus_ten").DistributedPostprocessing(func(r any) (any, error) {
		return batch.Tuple{r, []byte(nd.Name())}, nil
	})
}

// event is a StreamEvent in a comparable form.
type event struct {
	hook string
	rows []float32
	meta any
	node string // batch events of a tagging serving
}

func streamed(t testing.TB, seq func(func(serving.StreamEvent, error) bool)) ([]event, error) {
	t.Helper()
	var out []event
	for e, err := range seq {
		if err != nil {
			return out, err
		}
		ev := event{hook: e.Hook, meta: e.Metadata}
		switch v := e.Value.(type) {
		case *tensor.Dense:
			ev.rows = append([]float32(nil), values(v)...)
		case batch.Tuple:
			rows, nodeName, err := tagged(v)
			require.NoError(t, err)
			ev.rows, ev.node = append([]float32(nil), rows...), nodeName
		default:
			t.Fatalf("event value %T", e.Value)
		}
		out = append(out, ev)
	}
	return out, nil
}

// Checklist §4.7 item 59: Nx's "spawns distributed tasks over the network
// with streaming": hook and batch events come back from the serving's
// node, in order, batch events through its distributed postprocessing.
func TestDistributedStreamingOverTheNetwork(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	_, err := serving.Start(remote, serving.Options{Name: name, Serving: addFiveRoundAbout(remote), BatchSize: 2,
		BatchTimeout: time.Millisecond, Shutdown: time.Second})
	require.NoError(t, err)
	waitMembers(t, name, 1, caller, remote)
	ctx := testCtx(t)
	pres := make(chan any, 4)
	pre := serving.WithDistributedPreprocessing(func(in any) (any, error) {
		pres <- in
		return in, nil
	})

	_, err = streamed(t, serving.Stream(ctx, caller, serving.Local(name), floats(1, 2)))
	require.ErrorIs(t, err, serving.ErrNoProc)

	got, err := streamed(t, serving.Stream(ctx, caller, serving.Distributed(name), floats(1, 2), pre))
	require.NoError(t, err)
	assert.Equal(t, []event{
		{hook: "double", rows: []float32{2, 4}},
		{hook: "plus_ten", rows: []float32{12, 14}},
		{rows: []float32{6, 7}, meta: serving.DefaultMetadata, node: remote.Name()},
	}, got)
	assert.Equal(t, 2, within(t, waitLimit, pres, "distributed preprocessing").(*batch.Batch).Size())

	// A plain name with no local serving: the cluster's.
	got, err = streamed(t, serving.Stream(ctx, caller, name, floats(3), pre))
	require.NoError(t, err)
	assert.Equal(t, []event{
		{hook: "double", rows: []float32{6}},
		{hook: "plus_ten", rows: []float32{16}},
		{rows: []float32{8}, meta: serving.DefaultMetadata, node: remote.Name()},
	}, got)
	assert.Equal(t, 1, within(t, waitLimit, pres, "distributed preprocessing").(*batch.Batch).Size())

	// A request that breaks the hooks' rules is refused on the serving's
	// node, and says why.
	_, err = streamed(t, serving.Stream(ctx, caller, serving.Distributed(name), floats(1, 2, 3)))
	require.ErrorIs(t, err, serving.ErrBatchTooLarge)
	assert.Contains(t, err.Error(), "cannot exceed serving")
}

// A request split across executions on the serving's node streams one
// batch event per execution, in row order.
func TestDistributedStreamSplitRequestKeepsItsRowsInOrder(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	newDoubler(remote).start(t, remote, serving.Options{Name: name, BatchSize: 2, Partitions: serving.CompilerPartitions})
	waitMembers(t, name, 1, caller)
	got, err := streamed(t, serving.Stream(testCtx(t), caller, serving.Distributed(name), floats(1, 2, 3, 4, 5)))
	require.NoError(t, err)
	meta := "doubled on " + remote.Name()
	assert.Equal(t, []event{
		{rows: []float32{2, 4}, meta: meta, node: remote.Name()},
		{rows: []float32{6, 8}, meta: meta, node: remote.Name()},
		{rows: []float32{10}, meta: meta, node: remote.Name()},
	}, got)
}

// A caller that stops reading, or whose context ends, takes its rows out
// of the serving on the other node.
func TestDistributedStreamCancelTakesRowsOut(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	d := newDoubler(remote)
	d.start(t, remote, serving.Options{Name: name, BatchSize: 4, BatchTimeout: time.Hour})
	waitMembers(t, name, 1, caller)

	// Break after the first event: 2 of 6 rows are left stacked there.
	n := 0
	for _, err := range serving.Stream(testCtx(t), caller, serving.Distributed(name), floats(1, 2, 3, 4, 5, 6)) {
		require.NoError(t, err)
		n++
		break
	}
	assert.Equal(t, 1, n)
	waitFor(t, "the remote serving to take the rows out", func() bool {
		st := mustStats(t, remote, name)
		return st.StackedRows == 0 && st.Cancelled == 1
	})

	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := streamed(nopT{t}, serving.Stream(ctx, caller, serving.Distributed(name), floats(7)))
		done <- err
	}()
	waitFor(t, "the row to be stacked there", func() bool { return mustStats(t, remote, name).StackedRows == 1 })
	cancel()
	require.ErrorIs(t, within(t, waitLimit, done, "the cancelled stream"), context.Canceled)
	waitFor(t, "the remote serving to take the row out", func() bool {
		st := mustStats(t, remote, name)
		return st.StackedRows == 0 && st.Cancelled == 2
	})
	assert.Equal(t, int64(1), d.batches.Load(), "only the first batch ran")
}

// nopT lets streamed run outside the test's goroutine.
type nopT struct{ testing.TB }

func (nopT) Helper() {}

// An input stream crosses nodes batch by batch: each batch is a request
// of its own to one member, in order, with the caller's window.
func TestDistributedInputStreaming(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	_, err := serving.Start(remote, serving.Options{Name: name, BatchSize: 2, Serving: serving.JIT(func(in any) (any, error) {
		return in.(*tensor.Dense).MulScalar(float32(2), true)
	})})
	require.NoError(t, err)
	waitMembers(t, name, 1, caller)
	var pulled atomic.Int64
	input := func() serving.BatchStream {
		return func(yield func(*batch.Batch, error) bool) {
			for _, vs := range [][]float32{{1, 2}, {3}, {4, 5}} {
				pulled.Add(1)
				if !yield(floats(vs...), nil) {
					return
				}
			}
		}
	}
	ctx := testCtx(t)
	out, err := serving.BatchedRun(ctx, caller, serving.Distributed(name), input())
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6, 8, 10}, values(out.(*tensor.Dense)))

	got, err := streamed(t, serving.Stream(ctx, caller, name, input(), serving.InputWindow(1)))
	require.NoError(t, err)
	assert.Equal(t, []event{
		{rows: []float32{2, 4}, meta: serving.DefaultMetadata},
		{rows: []float32{6}, meta: serving.DefaultMetadata},
		{rows: []float32{8, 10}, meta: serving.DefaultMetadata},
	}, got)
	assert.Equal(t, int64(6), pulled.Load())
	assert.Equal(t, uint64(6), mustStats(t, remote, name).Requests, "one request per batch of the stream")
}

// Batch keys cross nodes with the batch: the serving's node stacks each
// key apart and refuses a key it does not have.
func TestDistributedBatchKeys(t *testing.T) {
	nodes := cluster(t, 2)
	caller, remote := nodes[0], nodes[1]
	name := servingName(t)
	s := serving.NewKeyed(func(key string, o compiler.Options) (compiler.Func, error) {
		factor := map[string]float32{"double": 2, "triple": 3}[key]
		return compiler.JIT(func(in any) (any, error) { return in.(*tensor.Dense).MulScalar(factor, true) }, o)
	})
	_, err := serving.Start(remote, serving.Options{Name: name, Serving: s, BatchSize: 2, BatchKeys: []string{"double", "triple"}})
	require.NoError(t, err)
	waitMembers(t, name, 1, caller)
	ctx := testCtx(t)
	for key, want := range map[string][]float32{"double": {2, 4}, "triple": {3, 6}} {
		b := floats(1, 2)
		b.SetKey(key)
		out, err := serving.BatchedRun(ctx, caller, serving.Distributed(name), b)
		require.NoError(t, err)
		assert.Equal(t, want, values(out.(*tensor.Dense)))
	}
	_, err = serving.BatchedRun(ctx, caller, serving.Distributed(name), floats(1))
	require.ErrorIs(t, err, serving.ErrBatchKey)
	st := mustStats(t, remote, name)
	assert.Equal(t, []serving.KeyStats{{Key: "double"}, {Key: "triple"}}, st.Keys)
}

// A node that stops while a stream waits on it ends the stream with
// ErrNodeDown.
func TestDistributedStreamNodeStopped(t *testing.T) {
	if raceEnabled {
		t.Skip("stopping a node under traffic races inside ergo (see TestNodeStoppedMidRequestFailsItsCallers); runs without -race")
	}
	nodes := cluster(t, 2)
	caller, doomed := nodes[0], nodes[1]
	name := servingName(t)
	dd := newDoubler(doomed).held(t)
	dd.start(t, doomed, serving.Options{Name: name, BatchSize: 1})
	waitMembers(t, name, 1, caller)
	done := make(chan error, 1)
	go func() {
		_, err := streamed(nopT{t}, serving.Stream(context.Background(), caller, serving.Distributed(name), floats(1, 2)))
		done <- err
	}()
	within(t, waitLimit, dd.entered, "the first batch")
	stopped := make(chan struct{})
	go func() {
		testnode.Stop(doomed)
		close(stopped)
	}()
	require.ErrorIs(t, within(t, nodeLossBound, done, "the stream of the stopped node"), serving.ErrNodeDown)
	dd.release()
	within(t, waitLimit, stopped, "the node to stop")
}

package serving

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/compiler"
)

// startLocalServing starts a serving without a node, named after the test, and
// stops it at the end.
func startLocalServing(t testing.TB, opts Options) *Handle {
	t.Helper()
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	h, err := Start(nil, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = h.Stop(ctx)
	})
	return h
}

// A serving without a node batches, answers by name and through its
// handle, reports its stats and stops like one on a node.
func TestStartWithoutANode(t *testing.T) {
	ctx := context.Background()
	h := startLocalServing(t, Options{Serving: doubling(), BatchSize: 4, BatchTimeout: time.Hour})
	assert.Equal(t, t.Name(), h.Name())
	assert.Nil(t, h.Node())
	assert.Nil(t, h.Process())

	// Two callers of two rows fill the batch of four: one execution.
	a, b := async(nil, t.Name(), rows(t, 1, 2)), async(nil, t.Name(), rows(t, 10, 2))
	ra, rb := await(t, a), await(t, b)
	require.NoError(t, ra.err)
	require.NoError(t, rb.err)
	assert.Equal(t, []float32{2, 4}, floats(t, ra.out))
	assert.Equal(t, []float32{20, 22}, floats(t, rb.out))

	st, err := GetStats(nil, t.Name())
	require.NoError(t, err)
	assert.Equal(t, uint64(2), st.Requests)
	assert.Equal(t, uint64(1), st.Batches)
	assert.Equal(t, uint64(4), st.Rows)
	hst, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, st.Counters, hst.Counters)

	// The handle calls the serving without a lookup; a serving on no node
	// is not found through a node-less caller's Local either.
	bt := rows(t, 3, 4)
	out, err := h.BatchedRun(ctx, bt)
	require.NoError(t, err)
	assert.Equal(t, []float32{6, 8, 10, 12}, floats(t, out))
	out, err = BatchedRun(ctx, nil, Local(t.Name()), rows(t, 5, 4))
	require.NoError(t, err)
	assert.Equal(t, []float32{10, 12, 14, 16}, floats(t, out))

	require.NoError(t, h.Stop(ctx))
	select {
	case <-h.Done():
	default:
		t.Fatal("Done is not closed after Stop returned")
	}
	require.NoError(t, h.Stop(ctx), "stopping again is not an error")
	_, err = BatchedRun(ctx, nil, t.Name(), rows(t, 1, 1))
	require.ErrorIs(t, err, ErrNoProc)
	_, err = h.BatchedRun(ctx, rows(t, 1, 1))
	require.ErrorIs(t, err, ErrNoProc)
	_, err = h.Stats()
	require.ErrorIs(t, err, ErrNoProc)
	_, err = GetStats(nil, t.Name())
	require.ErrorIs(t, err, ErrNoProc)
	require.ErrorIs(t, Stop(ctx, nil, t.Name()), ErrNoProc)

	// The name is free again.
	h2, err := Start(nil, Options{Name: t.Name(), Serving: doubling()})
	require.NoError(t, err)
	out, err = BatchedRun(ctx, nil, t.Name(), rows(t, 7, 1))
	require.NoError(t, err)
	assert.Equal(t, []float32{14}, floats(t, out))
	require.NoError(t, Stop(ctx, nil, t.Name()))
	<-h2.Done()
}

// Names are unique among the servings without a node; a serving on a node
// and one without may share a name.
func TestStartWithoutANodeNameTaken(t *testing.T) {
	startLocalServing(t, Options{Serving: doubling()})
	_, err := Start(nil, Options{Name: t.Name(), Serving: doubling()})
	require.ErrorIs(t, err, ErrAlreadyStarted)

	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchTimeout: time.Millisecond})
	out, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 1))
	require.NoError(t, err)
	assert.Equal(t, []float32{2}, floats(t, out))
}

// Stopping a serving without a node answers its stacked callers with
// ErrNoProc at once and lets its running batch finish and answer.
func TestStopWithoutANodeLetsRunningBatchesFinish(t *testing.T) {
	m := newExecuteSync()
	h := startLocalServing(t, Options{Serving: NewModule(m, nil), BatchSize: 1, BatchTimeout: time.Hour})
	running := async(nil, t.Name(), rows(t, 1, 1))
	x := m.next(t)
	stacked := async(nil, t.Name(), rows(t, 2, 1))
	waitStatsLocal(t, h, func(st Stats) bool { return st.QueuedRows == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- h.Stop(context.Background()) }()
	r := await(t, stacked)
	require.ErrorIs(t, r.err, ErrNoProc)
	pendingCall(t, running)
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while a batch runs", err)
	default:
	}

	x.release <- true
	r = await(t, running)
	require.NoError(t, r.err)
	assert.Equal(t, []float32{2}, floats(t, r.out))
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10 s of the last batch")
	}
	m.none(t)
}

// waitStatsLocal polls a handle's stats until cond holds (10 s at most).
func waitStatsLocal(t testing.TB, h *Handle, cond func(Stats) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := h.Stats()
		return err == nil && cond(st)
	}, 10*time.Second, 200*time.Microsecond)
}

// What needs a node says so.
func TestWithoutANodeWhatNeedsANode(t *testing.T) {
	startLocalServing(t, Options{Serving: doubling()})
	_, err := BatchedRun(context.Background(), nil, Distributed(t.Name()), rows(t, 1, 1))
	require.ErrorIs(t, err, ErrNoEndpoint)
	_, err = ChildSpec(nil, Options{Name: "x", Serving: doubling()})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = BatchedRun(context.Background(), nil, "nobody", rows(t, 1, 1))
	require.ErrorIs(t, err, ErrNoProc)
	require.ErrorContains(t, err, `could not find a serving without a node named "nobody"`)
}

// Options.Partitions: 0 is one partition, N is N copies of the serving's
// compiler options, CompilerPartitions is the compiler's list.
func TestPartitionsCount(t *testing.T) {
	for _, tc := range []struct {
		name       string
		partitions int
		opts       []compiler.Option
		want       int
	}{
		{"zero is one", 0, nil, 1},
		{"three", 3, nil, 3},
		{"the compiler's", CompilerPartitions, []compiler.Option{compiler.WithMaxConcurrency(4)}, 4},
		{"the compiler's default", CompilerPartitions, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newSimple()
			h := startLocalServing(t, Options{Serving: NewModule(m, nil, tc.opts...), Partitions: tc.partitions})
			init := <-m.events
			require.Equal(t, "init", init.what)
			assert.Len(t, init.partitions, tc.want)
			st, err := h.Stats()
			require.NoError(t, err)
			assert.Equal(t, tc.want, st.Partitions)
		})
	}
	_, err := Start(nil, Options{Name: "x", Serving: doubling(), Partitions: -2})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Start(nil, Options{Name: "x", Serving: doubling().ProcessOptions(ProcessOptions{Partitions: 2})})
	require.NoError(t, err)
	st, err := GetStats(nil, "x")
	require.NoError(t, err)
	assert.Equal(t, 2, st.Partitions, "the Serving's process options count too")
	require.NoError(t, Stop(context.Background(), nil, "x"))
}

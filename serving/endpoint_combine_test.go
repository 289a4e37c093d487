package serving

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/testnode"
)

// testCtx is a context that ends with the test (30 s at most).
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// queuedFor is the number of calls to serving name waiting in ep's
// combiners.
func (ep *endpoint) queuedFor(name string) int {
	n := 0
	for k, cb := range ep.combiners.All() {
		if k.name == name {
			n += cb.queued()
		}
	}
	return n
}

// startRowwise starts a serving named name with opts on the server of a
// new cluster pair and waits until the caller sees it ask for combined
// rows.
func startRowwise(t *testing.T, name string, opts Options) (caller node.Node, h *Handle) {
	t.Helper()
	caller, server := clusterPair(t)
	opts.Name = name
	if opts.Serving == nil {
		opts.Serving = doubling()
	}
	h, err := Start(server, opts)
	require.NoError(t, err)
	waitForGroup(t, caller, rowsGroup(name), server.Name())
	return caller, h
}

// clusterPair starts two nodes with a process-group scope and a serving
// endpoint each (what the cluster application runs, which this package
// cannot import), connected.
func clusterPair(t *testing.T) (caller, server node.Node) {
	t.Helper()
	start := func() node.Node {
		nd := testnode.Start(t, testnode.Options{})
		spec, err := pg.ChildSpec(nd, pg.Options{DiscoveryInterval: 20 * time.Millisecond})
		require.NoError(t, err)
		_, err = nd.Spawn(spec.Name, spec.Options, spec.Child)
		require.NoError(t, err)
		_, err = StartEndpoint(nd)
		require.NoError(t, err)
		return nd
	}
	caller, server = start(), start()
	testnode.Mesh(t, caller, server)
	return caller, server
}

// waitForGroup waits until nd's scope sees a member of group on node.
func waitForGroup(t *testing.T, nd node.Node, group, on string) {
	t.Helper()
	require.Eventually(t, func() bool {
		s := pg.Lookup(nd, "")
		return s != nil && s.HasMemberOn(group, on)
	}, 10*time.Second, 5*time.Millisecond, "%s never saw group %q on %s", nd.Name(), group, on)
}

// holdCombining makes the first flush round of the test's combiners
// wait until n calls are queued (at most 10 s), so that a test knows
// which calls leave together; later rounds yield as usual.
func holdCombining(nd node.Node, n int) {
	holdFirstRound(nd, func(cb *combiner) { waitQueued(cb, n) })
}

// holdFirstRound makes the first flush round of nd's combiners run hold
// before it takes the queue. Call it before the calls start.
func holdFirstRound(nd node.Node, hold func(*combiner)) {
	var once sync.Once
	endpointOf(nd.Name()).holdRound = func(cb *combiner) {
		held := false
		once.Do(func() { hold(cb); held = true })
		if !held {
			runtime.Gosched()
		}
	}
}

// waitQueued waits until cb holds n calls (at most 10 s).
func waitQueued(cb *combiner, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for cb.queued() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling a count, bounded
	}
}

// callConcurrently makes one distributed call per input, all at once, and
// returns their results and errors in input order.
func callConcurrently(ctx context.Context, nd node.Node, name string, inputs []*batch.Batch) ([]any, []error) {
	res := make([]any, len(inputs))
	errs := make([]error, len(inputs))
	var wg sync.WaitGroup
	for i, in := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = BatchedRun(ctx, nd, Distributed(name), in)
		}()
	}
	wg.Wait()
	return res, errs
}

func TestConcurrentDistributedCallsShareOneRequestAndGetTheirOwnRows(t *testing.T) {
	caller, h := startRowwise(t, "combined", Options{BatchSize: 8, BatchTimeout: time.Millisecond})

	// 12 callers with 1, 2 or 3 rows each, every value different.
	const callers = 12
	inputs := make([]*batch.Batch, callers)
	want := make([][]float32, callers)
	total := 0
	for i := range inputs {
		n := 1 + i%3
		var rows []any
		for r := range n {
			x := float32(100*i + 10*r)
			rows = append(rows, row(x, x+1))
			want[i] = append(want[i], 2*x, 2*x+2)
		}
		b, err := batch.Stack(rows...)
		require.NoError(t, err)
		inputs[i] = b
		total += n
	}
	holdCombining(caller, callers)
	res, errs := callConcurrently(testCtx(t), caller, "combined", inputs)
	for i := range inputs {
		require.NoError(t, errs[i], "caller %d", i)
		assert.Equal(t, want[i], floats(t, res[i]), "caller %d", i)
		assert.Equal(t, []int{1 + i%3, 2}, shapeOf(res[i]), "caller %d", i)
	}
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Requests, "one request carried every caller's rows")
	assert.Equal(t, uint64(total), st.Rows)
}

func TestServingWithCallbacksGetsARequestPerCall(t *testing.T) {
	caller, server := clusterPair(t)
	s := doubling().ClientPostprocessing(func(out, _, _ any) (any, error) { return out, nil })
	h, err := Start(server, Options{Name: "callbacks", Serving: s, BatchSize: 8, BatchTimeout: time.Millisecond})
	require.NoError(t, err)
	waitForGroup(t, caller, "callbacks", server.Name())
	assert.False(t, pg.Lookup(caller, "").HasMemberOn(rowsGroup("callbacks"), server.Name()),
		"a serving with client postprocessing must not ask for combined rows")

	inputs := make([]*batch.Batch, 6)
	for i := range inputs {
		b, err := batch.Stack(row(float32(i)))
		require.NoError(t, err)
		inputs[i] = b
	}
	res, errs := callConcurrently(testCtx(t), caller, "callbacks", inputs)
	for i := range inputs {
		require.NoError(t, errs[i])
		assert.Equal(t, []float32{float32(2 * i)}, floats(t, res[i]))
	}
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(len(inputs)), st.Requests)
}

func TestCombinedCallsWithDifferentShapesOrKeysTravelApart(t *testing.T) {
	caller, h := startRowwise(t, "shapes", Options{BatchSize: 8, BatchTimeout: time.Millisecond,
		BatchKeys: []string{"a", "b"}})

	stack := func(key string, xs ...float32) *batch.Batch {
		b, err := batch.Stack(row(xs...))
		require.NoError(t, err)
		b.SetKey(key)
		return b
	}
	// Queued in this order: a/[2], a/[2], a/[3], b/[2]: three requests
	// (a run of equal keys and shapes is one).
	inputs := []*batch.Batch{stack("a", 1, 2), stack("a", 3, 4), stack("a", 5, 6, 7), stack("b", 8, 9)}
	holdCombining(caller, len(inputs))
	res, errs := callConcurrentlyInOrder(t, caller, "shapes", inputs)
	want := [][]float32{{2, 4}, {6, 8}, {10, 12, 14}, {16, 18}}
	for i := range inputs {
		require.NoError(t, errs[i])
		assert.Equal(t, want[i], floats(t, res[i]))
	}
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(3), st.Requests)
	assert.Equal(t, uint64(4), st.Rows)
}

// callConcurrentlyInOrder is callConcurrently with the calls queued in
// input order: each starts once the one before it is queued (the test
// holds the first round until all are).
func callConcurrentlyInOrder(t *testing.T, nd node.Node, name string, inputs []*batch.Batch) ([]any, []error) {
	t.Helper()
	res := make([]any, len(inputs))
	errs := make([]error, len(inputs))
	var wg sync.WaitGroup
	ep := endpointOf(nd.Name())
	for i, in := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = BatchedRun(testCtx(t), nd, Distributed(name), in)
		}()
		if i < len(inputs)-1 { // the last one lets the held round go
			require.Eventually(t, func() bool { return ep.queuedFor(name) == i+1 }, 10*time.Second, time.Millisecond,
				"call %d never queued", i)
		}
	}
	wg.Wait()
	return res, errs
}

func TestCombinedRequestErrorReachesEveryCaller(t *testing.T) {
	boom := JIT(func(any) (any, error) { return nil, errors.New("boom") })
	caller, h := startRowwise(t, "failing", Options{Serving: boom, BatchSize: 8, BatchTimeout: time.Millisecond})

	inputs := make([]*batch.Batch, 5)
	for i := range inputs {
		b, err := batch.Stack(row(float32(i)))
		require.NoError(t, err)
		inputs[i] = b
	}
	holdCombining(caller, len(inputs))
	_, errs := callConcurrently(testCtx(t), caller, "failing", inputs)
	for i, err := range errs {
		require.Error(t, err, "caller %d", i)
		assert.Contains(t, err.Error(), "boom", "caller %d", i)
	}
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Requests)
	assert.Equal(t, uint64(1), st.FailedBatches)
}

func TestCombinedCallerThatGivesUpLeavesTheOthersTheirRows(t *testing.T) {
	caller, h := startRowwise(t, "giveup", Options{BatchSize: 8, BatchTimeout: time.Millisecond})

	// The first caller's context ends while the round waits for the
	// others: it returns its context's error, its rows never leave; the
	// others get theirs.
	quitter, quit := context.WithCancel(testCtx(t))
	first, err := batch.Stack(row(1))
	require.NoError(t, err)
	ep := endpointOf(caller.Name())
	holdFirstRound(caller, func(cb *combiner) {
		waitQueued(cb, 1)
		quit()
		waitQueued(cb, 3)
	})
	gaveUp := make(chan error, 1)
	go func() {
		_, err := BatchedRun(quitter, caller, Distributed("giveup"), first)
		gaveUp <- err
	}()
	require.Eventually(t, func() bool { return ep.queuedFor("giveup") == 1 }, 10*time.Second, time.Millisecond)
	require.ErrorIs(t, <-gaveUp, context.Canceled)
	others := make([]*batch.Batch, 2)
	for i := range others {
		b, err := batch.Stack(row(float32(10 + i)))
		require.NoError(t, err)
		others[i] = b
	}
	res, errs := callConcurrently(testCtx(t), caller, "giveup", others)
	for i := range others {
		require.NoError(t, errs[i])
		assert.Equal(t, []float32{float32(2 * (10 + i))}, floats(t, res[i]))
	}
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Requests)
	assert.Equal(t, uint64(2), st.Rows, "the rows of the caller that gave up never left")
}

// A request whose every caller gave up is cancelled on the serving node,
// as an uncombined call is: its rows are taken out before they run.
func TestCombinedRequestWhoseCallersAllGaveUpIsCancelledRemotely(t *testing.T) {
	caller, h := startRowwise(t, "abandoned", Options{BatchSize: 8, BatchTimeout: time.Hour})

	ctx, cancel := context.WithCancel(testCtx(t))
	holdCombining(caller, 2)
	inputs := make([]*batch.Batch, 2)
	for i := range inputs {
		b, err := batch.Stack(row(float32(i)))
		require.NoError(t, err)
		inputs[i] = b
	}
	done := make(chan []error, 1)
	go func() {
		_, errs := callConcurrently(ctx, caller, "abandoned", inputs)
		done <- errs
	}()
	// Both rows wait on the serving node for a batch that will not fill.
	require.Eventually(t, func() bool {
		st, err := h.Stats()
		return err == nil && st.StackedRows == 2
	}, 10*time.Second, time.Millisecond)
	cancel()
	for _, err := range <-done {
		require.ErrorIs(t, err, context.Canceled)
	}
	require.Eventually(t, func() bool {
		st, err := h.Stats()
		return err == nil && st.StackedRows == 0 && st.Cancelled == 1
	}, 10*time.Second, time.Millisecond, "the serving node never took the abandoned rows out")
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Requests)
	assert.Equal(t, uint64(0), st.Batches)
}

// Many callers, a fifth of whom give up at a random moment: every caller
// that does not give up gets exactly its own rows, one that gives up gets
// its rows or its context's error, and nothing is left waiting.
func TestCombinedCallsUnderChurnEachGetTheirOwnRows(t *testing.T) {
	caller, h := startRowwise(t, "churn", Options{BatchSize: 8, BatchTimeout: time.Millisecond})

	const goroutines, calls = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*calls)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range calls {
				n := 1 + (g+c)%3
				base := float32(1000*g + 10*c)
				var rows []any
				var want []float32
				for r := range n {
					x := base + float32(r)
					rows = append(rows, row(x))
					want = append(want, 2*x)
				}
				in, err := batch.Stack(rows...)
				if err != nil {
					errs <- err
					return
				}
				ctx, cancel := context.WithCancel(testCtx(t))
				quits := (g*calls+c)%5 == 0
				if quits {
					go cancel() // races with the call: any moment
				}
				out, err := BatchedRun(ctx, caller, Distributed("churn"), in)
				cancel()
				switch {
				case quits && errors.Is(err, context.Canceled):
				case err != nil:
					errs <- fmt.Errorf("goroutine %d call %d: %w", g, c, err)
				default:
					d, ok := out.(*tensor.Dense)
					if !ok || !slices.Equal(d.Data().([]float32), want) || d.Shape()[0] != n {
						errs <- fmt.Errorf("goroutine %d call %d: got %v, want %v", g, c, out, want)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Rows whose callers gave up leave the queue with the flush round
	// under way, and abandoned requests the serving node once their
	// cancel arrives: both end.
	ep := endpointOf(caller.Name())
	require.Eventually(t, func() bool {
		st, err := h.Stats()
		return ep.queuedFor("churn") == 0 && err == nil && st.Waiting == 0 && st.StackedRows == 0
	}, 10*time.Second, time.Millisecond, "calls or rows left behind")
}

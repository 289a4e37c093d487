package serving

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// leakCheck fails the test if it leaves a goroutine behind (checked after
// every cleanup the test registers later, its node's included).
func leakCheck(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// ev is a StreamEvent in a comparable form: float32 rows, shape and
// metadata.
type ev struct {
	hook  string
	shape []int
	rows  []float32
	meta  any
}

// events ranges over a stream and returns its events and final error.
func events(t testing.TB, seq iter.Seq2[StreamEvent, error]) ([]ev, error) {
	t.Helper()
	var out []ev
	for e, err := range seq {
		if err != nil {
			return out, err
		}
		d, ok := e.Value.(*tensor.Dense)
		require.True(t, ok, "event value is %T", e.Value)
		out = append(out, ev{hook: e.Hook, shape: shapeOf(d), rows: floats(t, d), meta: e.Metadata})
	}
	return out, nil
}

func batchEv(shape []int, meta any, rows ...float32) ev {
	return ev{shape: shape, rows: rows, meta: meta}
}

func hookEv(hook string, shape []int, rows ...float32) ev {
	return ev{hook: hook, shape: shape, rows: rows}
}

// addFiveRoundAbout is Nx's add_five_round_about: x*2 (hook double), +10
// (hook plus_ten), /2 (hook to_be_ignored, which no serving declares).
func addFiveRoundAbout() *Serving {
	return New(func(o compiler.Options) (compiler.Func, error) {
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
			r, err := p.DivScalar(float32(2), true)
			if err != nil {
				return nil, err
			}
			o.Hook("to_be_ignored")(r)
			return r, nil
		}, o)
	})
}

// batchesOf is an input stream of concatenated float32 rows, one batch
// per slice.
func batchesOf(t testing.TB, batches ...[]float32) BatchStream {
	return func(yield func(*batch.Batch, error) bool) {
		for _, xs := range batches {
			b, err := batch.Concatenate(row(xs...))
			if !yield(b, err) {
				return
			}
		}
	}
}

// stacked is batch.Stack of float32 rows.
func stacked(t testing.TB, rowsOf ...[]float32) *batch.Batch {
	t.Helper()
	entries := make([]any, len(rowsOf))
	for i, r := range rowsOf {
		entries[i] = row(r...)
	}
	b, err := batch.Stack(entries...)
	require.NoError(t, err)
	return b
}

// padTo is a serving whose function pads each batch to n rows before
// computing x*2, recording the batches' sizes.
func padTo(n int, sizes chan<- int) *Serving {
	return New(func(o compiler.Options) (compiler.Func, error) {
		f, err := compiler.JIT(times2, o)
		if err != nil {
			return nil, err
		}
		return func(in any) (any, error) {
			b := in.(*batch.Batch)
			if sizes != nil {
				sizes <- b.Size()
			}
			if err := b.Pad(max(n-b.Size(), 0)); err != nil {
				return nil, err
			}
			return f(b)
		}, nil
	})
}

// --- Nx's "run + streaming" (checklist §4.2 item 24) ---

func TestRunStreamWithFunction(t *testing.T) { // "with function"
	leakCheck(t)
	got, err := events(t, RunStream(context.Background(), doubling().Streaming(), stacked(t, []float32{1, 2, 3})))
	require.NoError(t, err)
	assert.Equal(t, []ev{batchEv([]int{1, 3}, DefaultMetadata, 2, 4, 6)}, got)
}

func TestRunStreamWithPadding(t *testing.T) { // "with padding"
	leakCheck(t)
	got, err := events(t, RunStream(context.Background(), padTo(4, nil).Streaming(),
		stacked(t, []float32{1, 2, 3}, []float32{4, 5, 6})))
	require.NoError(t, err)
	assert.Equal(t, []ev{batchEv([]int{2, 3}, DefaultMetadata, 2, 4, 6, 8, 10, 12)}, got)
}

func TestRunStreamWithSplitting(t *testing.T) { // "with splitting"
	leakCheck(t)
	sizes := make(chan int, 8)
	s := padTo(2, sizes).BatchSize(2).Streaming()
	got, err := events(t, RunStream(context.Background(), s, rows(t, 1, 3)))
	require.NoError(t, err)
	assert.Equal(t, []ev{batchEv([]int{2}, DefaultMetadata, 2, 4), batchEv([]int{1}, DefaultMetadata, 6)}, got)
	assert.Equal(t, 2, <-sizes)
	assert.Equal(t, 1, <-sizes)
}

func TestRunStreamWithInputStreaming(t *testing.T) { // "with input streaming"
	leakCheck(t)
	got, err := events(t, RunStream(context.Background(), doubling().Streaming(), batchesOf(t, []float32{1, 2}, []float32{3})))
	require.NoError(t, err)
	assert.Equal(t, []ev{batchEv([]int{2}, DefaultMetadata, 2, 4), batchEv([]int{1}, DefaultMetadata, 6)}, got)
}

func TestRunStreamWithInputStreamingAndNonBatch(t *testing.T) { // "with input streaming and non-batch"
	leakCheck(t)
	bad := BatchStream(func(yield func(*batch.Batch, error) bool) {
		if yield(rows(nopTB{t}, 1, 2), nil) {
			yield(nil, nil)
		}
	})
	got, err := events(t, RunStream(context.Background(), doubling().Streaming(), bad))
	require.ErrorIs(t, err, ErrInputStream)
	assert.Equal(t, []ev{batchEv([]int{2}, DefaultMetadata, 2, 4)}, got, "the batch before the bad one ran")
}

func TestRunStreamWithInputStreamingAndIOCalls(t *testing.T) { // "with input streaming and io_calls"
	leakCheck(t)
	s := doubling().Streaming("foo", "bar")
	_, err := events(t, RunStream(context.Background(), s, batchesOf(t, []float32{1, 2}, []float32{3})))
	require.ErrorIs(t, err, ErrStreamingHooks)
	_, err = Run(context.Background(), s, batchesOf(t, []float32{1}))
	require.ErrorIs(t, err, ErrStreamingHooks)
}

func TestRunStreamWithModuleCallbacks(t *testing.T) { // "with module callbacks"
	leakCheck(t)
	m := newSimple()
	s := NewModule(m, nil, compiler.With("garbage_collect", 1)).Streaming()
	got, err := events(t, RunStream(context.Background(), s, stacked(t, []float32{1, 2, 3})))
	require.NoError(t, err)
	assert.Equal(t, []ev{batchEv([]int{1, 3}, "metadata", 2, 4, 6)}, got)
	init := <-m.events
	assert.Equal(t, Inline, init.kind)
	assert.Equal(t, []string{batch.DefaultKey}, init.partitions[0].BatchKeys)
	gc, _ := init.partitions[0].Get("garbage_collect")
	assert.Equal(t, 1, gc)
	hb := <-m.events
	assert.Equal(t, 1, hb.batch.Size())
	assert.Equal(t, 0, hb.batch.Padding())
	assert.Equal(t, "execute", (<-m.events).what)
}

// Client postprocessing runs on each batch event's rows.
func TestRunStreamWithClientPrePost(t *testing.T) { // "with client pre/post"
	leakCheck(t)
	m := newSimple()
	s := prePost(NewModule(m, nil)).Streaming()
	var got []StreamEvent
	for e, err := range RunStream(context.Background(), s, []any{row(1, 2), row(3, 4)}) {
		require.NoError(t, err)
		got = append(got, e)
	}
	require.Len(t, got, 1)
	res := got[0].Value.([]any)
	assert.Equal(t, []float32{2, 4, 6, 8}, floats(t, res[0]))
	assert.Equal(t, "metadata", res[1])
	assert.Equal(t, "pre", res[2])
	assert.Equal(t, "metadata", got[0].Metadata)
}

func TestRunStreamWithIOCalls(t *testing.T) { // "with io_calls"
	leakCheck(t)
	s := addFiveRoundAbout().Streaming("double", "plus_ten")
	got, err := events(t, RunStream(context.Background(), s, stacked(t, []float32{1, 2, 3}, []float32{4, 5, 6})))
	require.NoError(t, err)
	shape := []int{2, 3}
	assert.Equal(t, []ev{
		hookEv("double", shape, 2, 4, 6, 8, 10, 12),
		hookEv("plus_ten", shape, 12, 14, 16, 18, 20, 22),
		batchEv(shape, DefaultMetadata, 6, 7, 8, 9, 10, 11),
	}, got)

	// Run (not streamed) of the same serving ignores the hooks.
	out, err := Run(context.Background(), s, stacked(t, []float32{1, 2, 3}))
	require.NoError(t, err)
	assert.Equal(t, []float32{6, 7, 8}, floats(t, out))
}

// Hook events come while the execution runs, not after it.
func TestRunStreamHookEventsComeAsEmitted(t *testing.T) {
	leakCheck(t)
	release := make(chan struct{})
	s := New(func(o compiler.Options) (compiler.Func, error) {
		return compiler.JIT(func(in any) (any, error) {
			o.Hook("step")(in)
			<-release
			return times2(in)
		}, o)
	}).Streaming("step")
	next, stop := iter.Pull2(RunStream(context.Background(), s, rows(t, 1, 2)))
	defer stop()
	e, err, ok := next()
	require.True(t, ok)
	require.NoError(t, err)
	assert.Equal(t, "step", e.Hook, "the hook event before the execution ends")
	assert.Equal(t, []float32{1, 2}, floats(t, e.Value))
	close(release)
	e, err, ok = next()
	require.True(t, ok)
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4}, floats(t, e.Value))
	_, _, ok = next()
	assert.False(t, ok)
}

func TestRunStreamBreakStopsBeforeTheNextExecution(t *testing.T) {
	leakCheck(t)
	sizes := make(chan int, 8)
	s := padTo(0, sizes).BatchSize(1)
	n := 0
	for _, err := range RunStream(context.Background(), s, rows(t, 1, 5)) {
		require.NoError(t, err)
		if n++; n == 2 {
			break
		}
	}
	assert.Len(t, sizes, 2, "two executions, then the loop broke")
}

func TestRunWithSplitting(t *testing.T) { // Nx run/2 "with splitting"
	sizes := make(chan int, 8)
	out, err := Run(context.Background(), padTo(2, sizes).BatchSize(2), rows(t, 1, 3))
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))
	assert.Equal(t, []int{3}, shapeOf(out))
	assert.Equal(t, 2, <-sizes)
	assert.Equal(t, 1, <-sizes)
}

func TestRunWithBatchSizeAndPadding(t *testing.T) { // Nx run/2 "with padding" (batch_size 4)
	sizes := make(chan int, 8)
	out, err := Run(context.Background(), padTo(4, sizes).BatchSize(4), stacked(t, []float32{1, 2, 3}, []float32{4, 5, 6}))
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6, 8, 10, 12}, floats(t, out))
	assert.Equal(t, 2, <-sizes, "a smaller input runs once, not padded by the serving")
	assert.Empty(t, sizes)
}

// Checklist §4.2 item 20: batch_size(4) with 2 rows: one execution of 2.
func TestRunBatchSizeLargerThanTheInput(t *testing.T) {
	sizes := make(chan int, 8)
	_, err := Run(context.Background(), padTo(0, sizes).BatchSize(4), rows(t, 1, 2))
	require.NoError(t, err)
	assert.Equal(t, 2, <-sizes)
	assert.Empty(t, sizes)
}

func TestServingBuilderMisuse(t *testing.T) {
	twice := doubling().Streaming().Streaming("x")
	_, err := Run(context.Background(), twice, rows(t, 1, 1))
	require.ErrorIs(t, err, ErrInvalidOptions)
	assert.Contains(t, err.Error(), "already marked as streaming")
	_, err = events(t, RunStream(context.Background(), twice, rows(t, 1, 1)))
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Start(testNode(t), Options{Name: "x", Serving: twice})
	require.ErrorIs(t, err, ErrInvalidOptions)

	_, err = Run(context.Background(), doubling().BatchSize(0), rows(t, 1, 1))
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Run(context.Background(), doubling().Streaming("a", "a"), rows(t, 1, 1))
	require.ErrorIs(t, err, ErrInvalidOptions)
}

// Checklist §4.3 item 38 (newest): Serving.BatchSize conflicting with
// the serving process's.
func TestConflictOnBatchSize(t *testing.T) { // "conflict on batch size"
	nd := testNode(t)
	_, err := Start(nd, Options{Name: "unused", Serving: NewModule(newSimple(), nil).BatchSize(30), BatchSize: 15})
	require.ErrorIs(t, err, ErrConflictingBatchSize)
	assert.Contains(t, err.Error(), "the batch size set with Serving.BatchSize (30) does not match the batch size given to serving \"unused\" (15)")

	// Serving.BatchSize alone sets the process's batch size.
	start(t, nd, Options{Serving: doubling().BatchSize(3), BatchTimeout: time.Hour})
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 3, st.BatchSize)
}

// --- Nx's "batched_run + streaming" (checklist §4.5) ---

// asyncStream streams in a goroutine; its events arrive on the channel.
type streamResult struct {
	evs []ev
	err error
}

func asyncStream(t testing.TB, ctx context.Context, nd node.Node, name any, input any, opts ...CallOption) <-chan streamResult {
	ch := make(chan streamResult, 1)
	go func() {
		var seq iter.Seq2[StreamEvent, error]
		switch n := name.(type) {
		case string:
			seq = Stream(ctx, nd, n, input, opts...)
		case DistributedTarget:
			seq = Stream(ctx, nd, n, input, opts...)
		}
		evs, err := events(nopTB{t}, seq)
		ch <- streamResult{evs, err}
	}()
	return ch
}

func awaitStream(t testing.TB, ch <-chan streamResult) streamResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end within 10 s")
		return streamResult{}
	}
}

func TestStreamTwoPlusTwoEqualsFourWithPreAndPost(t *testing.T) { // "2+2=4 with pre and post"
	leakCheck(t)
	nd := testNode(t)
	m := newSimple()
	s := NewModule(m, nil).ProcessOptions(ProcessOptions{BatchSize: 4}).ClientPostprocessing(
		func(out, meta, info any) (any, error) { return out, nil }).Streaming()
	start(t, nd, Options{Serving: s, BatchTimeout: 10 * time.Second})
	<-m.events // init
	a := asyncStream(t, context.Background(), nd, t.Name(), stacked(t, []float32{11, 12}, []float32{13, 14}))
	waitStats(t, nd, t.Name(), func(st Stats) bool { return st.StackedRows == 2 })
	b := asyncStream(t, context.Background(), nd, t.Name(), stacked(t, []float32{21, 22}, []float32{23, 24}))
	ra, rb := awaitStream(t, a), awaitStream(t, b)
	require.NoError(t, ra.err)
	require.NoError(t, rb.err)
	assert.Equal(t, []ev{batchEv([]int{2, 2}, "metadata", 22, 24, 26, 28)}, ra.evs)
	assert.Equal(t, []ev{batchEv([]int{2, 2}, "metadata", 42, 44, 46, 48)}, rb.evs)
	hb := <-m.events
	assert.Equal(t, 4, hb.batch.Size())
}

func TestStreamFiveEqualsThreePlusThreeOversized(t *testing.T) { // "5=3+3 (oversized)"
	leakCheck(t)
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil).ProcessOptions(ProcessOptions{BatchSize: 3}).Streaming(),
		BatchTimeout: 100 * time.Millisecond})
	got, err := events(t, Stream(context.Background(), nd, t.Name(), stacked(t,
		[]float32{1, 2}, []float32{3, 4}, []float32{5, 6}, []float32{7, 8}, []float32{9, 10}, []float32{11, 12})))
	require.NoError(t, err)
	assert.Equal(t, []ev{
		batchEv([]int{3, 2}, "metadata", 2, 4, 6, 8, 10, 12),
		batchEv([]int{3, 2}, "metadata", 14, 16, 18, 20, 22, 24),
	}, got)
	init := <-m.events
	assert.Equal(t, []string{batch.DefaultKey}, init.partitions[0].BatchKeys)
	assert.Equal(t, 3, (<-m.events).batch.Size())
	<-m.events // execute
	assert.Equal(t, 3, (<-m.events).batch.Size())
}

// A serving made without Streaming streams too (batch events only).
func TestStreamFiveEqualsThreePlusTwoOversized(t *testing.T) { // "5=3+2(+pad) (oversized)"
	leakCheck(t)
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 3, BatchTimeout: time.Millisecond})
	got, err := events(t, Stream(context.Background(), nd, t.Name(), rows(t, 1, 5)))
	require.NoError(t, err)
	assert.Equal(t, []ev{batchEv([]int{3}, "metadata", 2, 4, 6), batchEv([]int{2}, "metadata", 8, 10)}, got)
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Streamed)
	assert.False(t, st.Streaming)
}

func TestStreamThreePlusThreeEqualsFourPlusTwo(t *testing.T) { // "3+3=4+2(+pad) with pre and post"
	leakCheck(t)
	nd := testNode(t)
	m := newSimple()
	clock := newFakeClock()
	s := prePost(NewModule(m, nil)).Streaming()
	start(t, nd, Options{Serving: s, BatchSize: 4, Clock: clock})
	<-m.events
	stream := func(input any) <-chan []StreamEvent {
		ch := make(chan []StreamEvent, 1)
		go func() {
			var evs []StreamEvent
			for e, err := range Stream(context.Background(), nd, t.Name(), input) {
				if err != nil {
					break
				}
				evs = append(evs, e)
			}
			ch <- evs
		}()
		return ch
	}
	wait := func(ch <-chan []StreamEvent) []StreamEvent {
		select {
		case evs := <-ch:
			return evs
		case <-time.After(10 * time.Second):
			t.Fatal("stream did not end")
			return nil
		}
	}
	first := stream([]any{row(11, 12), row(13, 14), row(15, 16)})
	waitStats(t, nd, t.Name(), func(st Stats) bool { return st.StackedRows == 3 })
	second := stream([]any{row(21, 22), row(23, 24), row(25, 26)})
	one := wait(first)
	waitStats(t, nd, t.Name(), func(st Stats) bool { return st.StackedRows == 2 })
	require.Equal(t, 1, clock.fire())
	two := wait(second)

	post := func(e StreamEvent) []float32 { return floats(t, e.Value.([]any)[0]) }
	require.Len(t, one, 1)
	assert.Equal(t, []float32{22, 24, 26, 28, 30, 32}, post(one[0]))
	require.Len(t, two, 2, "the second caller's rows were split across two executions")
	assert.Equal(t, []float32{42, 44}, post(two[0]))
	assert.Equal(t, []float32{46, 48, 50, 52}, post(two[1]))
	assert.Equal(t, "pre", two[1].Value.([]any)[2])
	assert.Equal(t, 4, (<-m.events).batch.Size())
	<-m.events
	assert.Equal(t, 2, (<-m.events).batch.Size())
}

func TestStreamOneThenCrash(t *testing.T) { // "1=>crash"
	leakCheck(t)
	nd := testNode(t)
	m := newExecuteSync()
	start(t, nd, Options{Serving: NewModule(m, nil).Streaming(), Shutdown: time.Second})
	ch := asyncStream(t, context.Background(), nd, t.Name(), stacked(t, []float32{1, 2, 3}))
	m.next(t).crash()
	r := awaitStream(t, ch)
	var down *DownError
	require.ErrorAs(t, r.err, &down)
	require.ErrorIs(t, r.err, errOops)
	assert.Empty(t, r.evs)
}

func TestStreamTwoPlusTwoWithIOCallsNeverSplit(t *testing.T) { // "2+2=2(+pad)+2(+pad) and io_calls"
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: addFiveRoundAbout().Streaming("double", "plus_ten"), BatchTimeout: 100 * time.Millisecond, BatchSize: 3})
	a := asyncStream(t, context.Background(), nd, t.Name(), stacked(t, []float32{11, 12}, []float32{13, 14}))
	b := asyncStream(t, context.Background(), nd, t.Name(), stacked(t, []float32{21, 22}, []float32{23, 24}))
	ra, rb := awaitStream(t, a), awaitStream(t, b)
	require.NoError(t, ra.err)
	require.NoError(t, rb.err)
	shape := []int{2, 2}
	assert.Equal(t, []ev{
		hookEv("double", shape, 22, 24, 26, 28),
		hookEv("plus_ten", shape, 32, 34, 36, 38),
		batchEv(shape, DefaultMetadata, 16, 17, 18, 19),
	}, ra.evs)
	assert.Equal(t, []ev{
		hookEv("double", shape, 42, 44, 46, 48),
		hookEv("plus_ten", shape, 52, 54, 56, 58),
		batchEv(shape, DefaultMetadata, 26, 27, 28, 29),
	}, rb.evs)
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, uint64(2), st.Batches, "two executions: a request is never split with hooks")
	assert.True(t, st.Streaming)
	assert.Equal(t, []string{"double", "plus_ten"}, st.Hooks)
}

func TestStreamTwoPlusTwoEqualsFourWithIOCalls(t *testing.T) { // "2+2=4(+pad) and io_calls"
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: addFiveRoundAbout().Streaming("double", "plus_ten"), BatchTimeout: 10 * time.Second, BatchSize: 4})
	a := asyncStream(t, context.Background(), nd, t.Name(), stacked(t, []float32{11, 12}, []float32{13, 14}))
	waitStats(t, nd, t.Name(), func(st Stats) bool { return st.StackedRows == 2 })
	b := asyncStream(t, context.Background(), nd, t.Name(), stacked(t, []float32{21, 22}, []float32{23, 24}))
	ra, rb := awaitStream(t, a), awaitStream(t, b)
	require.NoError(t, ra.err)
	require.NoError(t, rb.err)
	assert.Equal(t, hookEv("double", []int{2, 2}, 22, 24, 26, 28), ra.evs[0])
	assert.Equal(t, hookEv("double", []int{2, 2}, 42, 44, 46, 48), rb.evs[0])
	assert.Equal(t, batchEv([]int{2, 2}, DefaultMetadata, 26, 27, 28, 29), rb.evs[2])
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Batches, "one shared execution; each caller sees only its rows")
}

func TestStreamWithOutputStreaming(t *testing.T) { // "with output streaming"
	leakCheck(t)
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil).Streaming(), BatchSize: 2})
	got, err := events(t, Stream(context.Background(), nd, t.Name(), batchesOf(t, []float32{1, 2}, []float32{3})))
	require.NoError(t, err)
	assert.Equal(t, []ev{batchEv([]int{2}, "metadata", 2, 4), batchEv([]int{1}, "metadata", 6)}, got)
	<-m.events
	assert.Equal(t, 2, (<-m.events).batch.Size())
	<-m.events
	assert.Equal(t, 1, (<-m.events).batch.Size())
}

func TestStreamWithOutputStreamingAndIOCalls(t *testing.T) { // "with output streaming and io_calls"
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: NewModule(newSimple(), nil).Streaming("foo", "bar"), BatchSize: 2})
	_, err := events(t, Stream(context.Background(), nd, t.Name(), batchesOf(t, []float32{1, 2}, []float32{3})))
	require.ErrorIs(t, err, ErrStreamingHooks)
	_, err = BatchedRun(context.Background(), nd, t.Name(), batchesOf(t, []float32{1, 2}))
	require.ErrorIs(t, err, ErrStreamingHooks)
}

func TestStreamErrorsOnBatchSize(t *testing.T) { // "errors on batch size"
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: addFiveRoundAbout().Streaming("double", "plus_ten"), BatchSize: 2})
	_, err := events(t, Stream(context.Background(), nd, t.Name(), rows(t, 1, 3)))
	require.ErrorIs(t, err, ErrBatchTooLarge)
	assert.Equal(t, `serving: batch larger than the serving's batch size: batch size (3) cannot exceed serving "`+t.Name()+
		`"'s batch size of 2 when streaming hooks`, err.Error())
	_, err = BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 3))
	require.ErrorIs(t, err, ErrBatchTooLarge)
	_, err = Run(context.Background(), addFiveRoundAbout().Streaming("double").BatchSize(2), rows(t, 1, 3))
	require.ErrorIs(t, err, ErrBatchTooLarge)
}

// BatchedRun on a streaming serving returns the whole result: hooks are
// for streaming callers.
func TestBatchedRunOnAStreamingServing(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: addFiveRoundAbout().Streaming("double"), BatchSize: 2})
	out, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 2))
	require.NoError(t, err)
	assert.Equal(t, []float32{6, 7}, floats(t, out))
}

// --- ours ---

// A request split across executions that finish out of order streams its
// rows in order.
func TestStreamSplitAcrossPartitionsComesInRowOrder(t *testing.T) {
	leakCheck(t)
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 2, 2, newFakeClock())
	finished := make(chan int, 2)
	e.testHookTaskDone = func(p int) { finished <- p }
	got := make(chan StreamEvent, 4)
	done := make(chan error, 1)
	go func() {
		done <- e.stream(context.Background(), rows(t, 1, 4), callOptions{}, func(ev StreamEvent) bool {
			got <- ev
			return true
		})
	}()
	x1, x2 := m.next(t), m.next(t)
	if x1.input[0] != 1 {
		x1, x2 = x2, x1
	}
	x2.proceed() // rows 3-4 finish first (and are delivered) ...
	<-finished
	x1.proceed() // ... then rows 1-2
	require.NoError(t, <-done)
	assert.Equal(t, []float32{2, 4}, floats(t, (<-got).Value))
	assert.Equal(t, []float32{6, 8}, floats(t, (<-got).Value))
}

// Breaking out of the loop takes the request's rows that have not run out
// of the serving.
func TestStreamBreakTakesRemainingRowsOut(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	m := newExecuteSync()
	clock := newFakeClock()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 4, Clock: clock})
	done := make(chan int, 1)
	go func() {
		n := 0
		for _, err := range Stream(context.Background(), nd, t.Name(), rows(t, 1, 6)) {
			if err != nil {
				break
			}
			n++
			break
		}
		done <- n
	}()
	m.next(t).proceed()
	select {
	case n := <-done:
		assert.Equal(t, 1, n)
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not stop")
	}
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 0, st.StackedRows, "the 2 rows left were taken out")
	assert.Equal(t, uint64(1), st.Cancelled)
	assert.Equal(t, 0, clock.fire(), "no timer left for them")
	m.none(t)
}

// A context that ends takes the rows out and ends the stream with its
// error.
func TestStreamContextCancelTakesRowsOut(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 4, BatchTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	ch := asyncStream(t, ctx, nd, t.Name(), rows(t, 1, 2))
	waitStats(t, nd, t.Name(), func(st Stats) bool { return st.StackedRows == 2 })
	cancel()
	r := awaitStream(t, ch)
	require.ErrorIs(t, r.err, context.Canceled)
	assert.Empty(t, r.evs)
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 0, st.StackedRows)
}

// A hook called with a value the callers cannot take their rows from
// fails the batch.
func TestStreamHookWithABadValueFailsTheBatch(t *testing.T) {
	leakCheck(t)
	s := New(func(o compiler.Options) (compiler.Func, error) {
		return compiler.JIT(func(in any) (any, error) {
			o.Hook("h")(tensor.New(tensor.FromScalar(float32(1))))
			return times2(in)
		}, o)
	}).Streaming("h")
	_, err := events(t, RunStream(context.Background(), s, rows(t, 1, 2)))
	require.ErrorIs(t, err, ErrBadCallback)
	var ce *CallbackError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "execute", ce.Callback)

	nd := testNode(t)
	start(t, nd, Options{Serving: s, BatchSize: 2})
	_, err = events(t, Stream(context.Background(), nd, t.Name(), rows(t, 1, 2)))
	var down *DownError
	require.ErrorAs(t, err, &down)
	require.ErrorIs(t, err, ErrBadCallback)
}

// Each range over a stream runs the request anew.
func TestStreamRunsAnewOnEachRange(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 1})
	seq := Stream(context.Background(), nd, t.Name(), rows(t, 1, 1))
	for i := 0; i < 2; i++ {
		got, err := events(t, seq)
		require.NoError(t, err)
		assert.Equal(t, []ev{batchEv([]int{1}, DefaultMetadata, 2)}, got)
	}
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, uint64(2), st.Requests)
}

func TestStreamUnknownServing(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	_, err := events(t, Stream(context.Background(), nd, "nope", rows(t, 1, 1)))
	require.ErrorIs(t, err, ErrNoProc)
}

package serving

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
	"github.com/ergonx/ergonx/supervisor"
)

// Checklist §4.3 item 25.
func TestSupervisionTree(t *testing.T) {
	nd := testNode(t)
	h := start(t, nd, Options{Serving: doubling()})
	sup := h.Process()
	assert.Equal(t, supervisorName(t.Name()), sup.Name())
	assert.Equal(t, t.Name(), h.Name())
	assert.Same(t, nd, h.Node())

	children := supervisor.Which(sup)
	require.Len(t, children, 2)
	assert.Equal(t, taskSupervisorName(t.Name()), children[0].Name)
	assert.Equal(t, t.Name(), children[1].Name)
	assert.True(t, children[0].Alive && children[1].Alive)

	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 1, st.BatchSize)
	assert.Equal(t, DefaultBatchTimeout, st.BatchTimeout)
	assert.Equal(t, 1, st.Partitions)
}

// Checklist §4.3 item 26.
func TestOneEqualsOne(t *testing.T) { // "1=1"
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil, compiler.With("garbage_collect", true))})

	b, _ := batch.Stack(row(1, 2, 3))
	out, err := BatchedRun(context.Background(), nd, t.Name(), b)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3}, shapeOf(out))
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))

	init := <-m.events
	assert.Equal(t, Process, init.kind)
	require.Len(t, init.partitions, 1)
	gc, _ := init.partitions[0].Get("garbage_collect")
	assert.Equal(t, true, gc)
	hb := <-m.events
	assert.Equal(t, 1, hb.batch.Size())
	assert.Equal(t, 0, hb.batch.Padding())
	assert.Equal(t, "execute", (<-m.events).what)
	assert.Empty(t, m.events)
}

// Checklist §4.3 item 27.
func TestTwoPlusTwoEqualsFour(t *testing.T) { // "2+2=4"
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 4, BatchTimeout: 10 * time.Second})
	<-m.events // init

	a, _ := batch.Concatenate(f32([]int{2, 2}, 11, 12, 13, 14))
	b, _ := batch.Concatenate(f32([]int{2, 2}, 21, 22, 23, 24))
	ra, rb := async(nd, t.Name(), a), async(nd, t.Name(), b)
	outA, outB := await(t, ra), await(t, rb)
	require.NoError(t, outA.err)
	require.NoError(t, outB.err)
	assert.Equal(t, []float32{22, 24, 26, 28}, floats(t, outA.out))
	assert.Equal(t, []int{2, 2}, shapeOf(outA.out))
	assert.Equal(t, []float32{42, 44, 46, 48}, floats(t, outB.out))

	hb := <-m.events
	assert.Equal(t, 4, hb.batch.Size(), "one execution of both callers, well before the 10 s timeout")
	assert.Equal(t, 0, hb.batch.Padding())
	assert.Equal(t, "execute", (<-m.events).what)
	assert.Empty(t, m.events)
}

// Checklist §4.3 item 28.
func TestTwoPlusTwoEqualsFourWithPreAndPost(t *testing.T) { // "2+2=4 with pre and post"
	nd := testNode(t)
	m := newSimple()
	s := NewModule(m, nil).
		ProcessOptions(ProcessOptions{BatchSize: 4}).
		ClientPreprocessing(func(in any) (*batch.Batch, any, error) {
			b, err := batch.Concatenate(in)
			return b, "preprocessing!", err
		}).
		ClientPostprocessing(func(out, meta, info any) (any, error) { return []any{out, meta, info}, nil })
	start(t, nd, Options{Serving: s, BatchTimeout: 10 * time.Second})

	ra := async(nd, t.Name(), f32([]int{2, 2}, 11, 12, 13, 14))
	rb := async(nd, t.Name(), f32([]int{2, 2}, 21, 22, 23, 24))
	for _, c := range []struct {
		ch   <-chan result
		want []float32
	}{{ra, []float32{22, 24, 26, 28}}, {rb, []float32{42, 44, 46, 48}}} {
		r := await(t, c.ch)
		require.NoError(t, r.err)
		res := r.out.([]any)
		assert.Equal(t, c.want, floats(t, res[0]))
		assert.Equal(t, "metadata", res[1])
		assert.Equal(t, "preprocessing!", res[2])
	}
	<-m.events // init
	assert.Equal(t, 4, (<-m.events).batch.Size())
}

// container returns a concatenated batch of n rows of {a, b} tuples.
func container(first float32, n int) *batch.Batch {
	a := make([]float32, n)
	b := make([]float32, n)
	for i := range a {
		a[i] = first + float32(i)
		b[i] = 10 * (first + float32(i))
	}
	bt, _ := batch.Concatenate(batch.Tuple{row(a...), row(b...)})
	return bt
}

// Checklist §4.3 item 29.
func TestThreePlusFourPlusFiveEqualsSixPlusSixContainer(t *testing.T) { // "3+4+5=6+6 (container)"
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 6, BatchTimeout: 100 * time.Millisecond})

	calls := map[int]<-chan result{}
	for _, n := range []int{3, 4, 5} {
		calls[n] = async(nd, t.Name(), container(float32(n*100), n))
	}
	for _, n := range []int{3, 4, 5} {
		r := await(t, calls[n])
		require.NoError(t, r.err, "caller of %d rows", n)
		tu := r.out.(batch.Tuple)
		var wantA, wantB []float32
		for i := 0; i < n; i++ {
			v := float32(n*100 + i)
			wantA = append(wantA, 2*v)
			wantB = append(wantB, 10*v/2)
		}
		assert.Equal(t, wantA, floats(t, tu[0]), "caller of %d rows", n)
		assert.Equal(t, wantB, floats(t, tu[1]), "caller of %d rows", n)
	}
}

// Checklist §4.3 item 30 (later Nx).
func TestFiveEqualsThreePlusThreeOversized(t *testing.T) { // "5=3+3 (oversized)"
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 3})
	<-m.events

	out, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 6))
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6, 8, 10, 12}, floats(t, out))
	for i := 0; i < 2; i++ {
		hb := <-m.events
		assert.Equal(t, 3, hb.batch.Size())
		assert.Equal(t, 0, hb.batch.Padding())
		assert.Equal(t, "execute", (<-m.events).what)
	}
	assert.Empty(t, m.events)
}

// Checklist §4.3 item 31 (later Nx): the rest runs after the timeout.
func TestFiveEqualsThreePlusTwo(t *testing.T) { // "5=3+2"
	nd := testNode(t)
	m := newSimple()
	clock := newFakeClock()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 3, Clock: clock})
	<-m.events

	call := async(nd, t.Name(), rows(t, 1, 5))
	hb := <-m.events
	assert.Equal(t, 3, hb.batch.Size())
	assert.Equal(t, "execute", (<-m.events).what)
	waitStats(t, nd, t.Name(), func(s Stats) bool { return s.StackedRows == 2 })
	pendingCall(t, call)
	require.Equal(t, 1, clock.fire())
	hb = <-m.events
	assert.Equal(t, 2, hb.batch.Size())
	assert.Equal(t, 0, hb.batch.Padding())
	r := await(t, call)
	require.NoError(t, r.err)
	assert.Equal(t, []float32{2, 4, 6, 8, 10}, floats(t, r.out))
}

// Checklist §4.3 item 32.
func TestTwoThenTwoThenOnePlusTimeout(t *testing.T) { // "2=>2=>1+timeout"
	nd := testNode(t)
	m := newExecuteSync()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 2, BatchTimeout: 100 * time.Millisecond})

	c1 := async(nd, t.Name(), rows(t, 1, 2))
	c2 := async(nd, t.Name(), rows(t, 3, 2))
	c3 := async(nd, t.Name(), rows(t, 5, 1))
	for i := 0; i < 3; i++ {
		m.next(t).proceed()
	}
	for _, c := range []struct {
		ch   <-chan result
		want []float32
	}{{c1, []float32{2, 4}}, {c2, []float32{6, 8}}, {c3, []float32{10}}} {
		r := await(t, c.ch)
		require.NoError(t, r.err)
		assert.Equal(t, c.want, floats(t, r.out))
	}
	m.none(t)
}

// Checklist §4.3 item 33.
func TestWithPadding(t *testing.T) {
	nd := testNode(t)
	s := New(func(compiler.Options) (compiler.Func, error) {
		return func(in any) (any, error) {
			b := in.(*batch.Batch)
			if err := b.Pad(4); err != nil {
				return nil, err
			}
			m, err := b.Materialize()
			if err != nil {
				return nil, err
			}
			return times2(m)
		}, nil
	})
	start(t, nd, Options{Serving: s, BatchSize: 4, BatchTimeout: 100 * time.Millisecond})

	c1 := async(nd, t.Name(), rows(t, 1, 1))
	c2 := async(nd, t.Name(), rows(t, 2, 1))
	r1, r2 := await(t, c1), await(t, c2)
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	assert.Equal(t, []float32{2}, floats(t, r1.out))
	assert.Equal(t, []float32{4}, floats(t, r2.out))

	out, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 4))
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6, 8}, floats(t, out))
}

// Checklist §4.3 item 37.
func TestInstrumentsWithTelemetry(t *testing.T) {
	events := recordTelemetry(t, ExecuteStop)
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 2})
	_, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 2))
	require.NoError(t, err)
	ev := <-events
	assert.Equal(t, "metadata", ev.Metadata)
	assert.Equal(t, "serving.simple", ev.Module)
	// Past Nx: the batch itself is measured.
	require.NotNil(t, ev.Batch)
	assert.Equal(t, t.Name(), ev.Batch.Serving)
	assert.Equal(t, 2, ev.Batch.Size)
	assert.Equal(t, 0, ev.Batch.Padding)
	assert.Equal(t, 1, ev.Batch.Requests)
	assert.GreaterOrEqual(t, ev.Batch.QueueWait, time.Duration(0))
	assert.Positive(t, ev.Batch.Execution)
}

// Checklist §4.3 item 38 (seed semantics).
func TestConflictingBatchSizes(t *testing.T) {
	nd := testNode(t)
	s := doubling().ProcessOptions(ProcessOptions{BatchSize: 30})
	_, err := Start(nd, Options{Name: t.Name(), Serving: s, BatchSize: 15})
	require.ErrorIs(t, err, ErrConflictingBatchSize)
	assert.Contains(t, err.Error(), "BatchSize has been set when starting serving \"TestConflictingBatchSizes\" (15) "+
		"but a conflicting value was already set on the Serving (30)")
	assert.Nil(t, nd.ProcessByName(t.Name()))
}

// Checklist §4.3 item 39.
func TestBatchedRunEmptyBatch(t *testing.T) {
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling()})
	_, err := BatchedRun(context.Background(), nd, t.Name(), batch.New())
	require.ErrorIs(t, err, ErrEmptyBatch)
	assert.Equal(t, "serving: cannot run with an empty batch", err.Error())
}

// Checklist §4.3 item 40: the seed refused inputs over the batch size;
// later Nx (and ergonx) split them.
func TestBatchedRunLargerThanBatchSizeIsSplit(t *testing.T) {
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 2})
	out, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 3))
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))
}

// Checklist §4.4 item 41.
func TestOneThenCrash(t *testing.T) { // "1=>crash"
	nd := testNode(t)
	m := newExecuteSync()
	start(t, nd, Options{Serving: NewModule(m, nil)})
	call := async(nd, t.Name(), rows(t, 1, 1))
	m.next(t).crash()
	r := await(t, call)
	var down *DownError
	require.ErrorAs(t, r.err, &down)
	assert.Equal(t, t.Name(), down.Serving)
	require.ErrorIs(t, r.err, errOops)
	var pe *PanicError
	require.ErrorAs(t, r.err, &pe)

	// The serving goes on serving.
	call = async(nd, t.Name(), rows(t, 2, 1))
	m.next(t).proceed()
	r = await(t, call)
	require.NoError(t, r.err)
	assert.Equal(t, []float32{4}, floats(t, r.out))
}

// Checklist §4.4 item 42.
func TestTwoPlusThreeThenCrash(t *testing.T) { // "2+3=>crash"
	nd := testNode(t)
	m := newExecuteSync()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 4, BatchTimeout: 100 * time.Millisecond})

	a := async(nd, t.Name(), rows(t, 1, 2))
	waitStats(t, nd, t.Name(), func(s Stats) bool { return s.StackedRows == 2 })
	b := async(nd, t.Name(), rows(t, 10, 3))
	x := m.next(t)
	assert.Equal(t, []float32{1, 2, 10, 11}, x.input)
	x.proceed()
	x = m.next(t)
	assert.Equal(t, []float32{12}, x.input)
	x.crash()

	ra, rb := await(t, a), await(t, b)
	require.NoError(t, ra.err)
	assert.Equal(t, []float32{2, 4}, floats(t, ra.out))
	require.ErrorIs(t, rb.err, errOops, "B's second part crashed")
	m.none(t)
}

// stopAsync stops the serving in a goroutine; the returned channel closes
// when Stop returns.
func stopAsync(stop func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- stop() }()
	return ch
}

// Checklist §4.4 item 43: queued callers get ErrNoProc at once, the
// running one its result.
func TestTwoThenShutdownThenTwoQueued(t *testing.T) { // "2=>shutdown=>2 (queued)"
	nd := testNode(t)
	m := newExecuteSync()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 2, BatchTimeout: 100 * time.Millisecond})

	running := async(nd, t.Name(), rows(t, 1, 2))
	x := m.next(t)
	queued := async(nd, t.Name(), rows(t, 3, 2))
	waitStats(t, nd, t.Name(), func(s Stats) bool { return s.QueuedBatches == 1 })

	stopped := stopAsync(func() error { return Stop(context.Background(), nd, t.Name()) })
	rq := await(t, queued)
	require.ErrorIs(t, rq.err, ErrNoProc)
	pendingCall(t, running)

	x.proceed()
	rr := await(t, running)
	require.NoError(t, rr.err)
	assert.Equal(t, []float32{2, 4}, floats(t, rr.out))
	require.NoError(t, <-stopped)
	m.none(t)
	assert.Nil(t, nd.ProcessByName(t.Name()))
}

// Checklist §4.4 item 44.
func TestTwoThenShutdownThenOneStacked(t *testing.T) { // "2=>shutdown=>1 (stacked)"
	nd := testNode(t)
	m := newExecuteSync()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 2, BatchTimeout: time.Hour})

	running := async(nd, t.Name(), rows(t, 1, 2))
	x := m.next(t)
	stacked := async(nd, t.Name(), rows(t, 3, 1))
	waitStats(t, nd, t.Name(), func(s Stats) bool { return s.StackedRows == 1 })

	stopped := stopAsync(func() error { return Stop(context.Background(), nd, t.Name()) })
	rs := await(t, stacked)
	require.ErrorIs(t, rs.err, ErrNoProc)
	pendingCall(t, running)
	x.proceed()
	rr := await(t, running)
	require.NoError(t, rr.err)
	assert.Equal(t, []float32{2, 4}, floats(t, rr.out))
	require.NoError(t, <-stopped)
	m.none(t)
}

// Checklist §4.6 item 53.
func TestPartitionsRunConcurrently(t *testing.T) {
	nd := testNode(t)
	m := newExecuteSync()
	start(t, nd, Options{
		Serving:   NewModule(m, nil, compiler.WithMaxConcurrency(2)),
		BatchSize: 2, Partitions: CompilerPartitions,
	})
	a := async(nd, t.Name(), rows(t, 1, 2))
	b := async(nd, t.Name(), rows(t, 3, 2))
	x1, x2 := m.next(t), m.next(t) // both started before either continues
	assert.ElementsMatch(t, []int{0, 1}, []int{x1.partition, x2.partition})
	x1.proceed()
	x2.proceed()
	ra, rb := await(t, a), await(t, b)
	require.NoError(t, ra.err)
	require.NoError(t, rb.err)
	assert.Equal(t, []float32{2, 4}, floats(t, ra.out))
	assert.Equal(t, []float32{6, 8}, floats(t, rb.out))
}

func TestBatchedRunUnknownName(t *testing.T) {
	nd := testNode(t)
	_, err := BatchedRun(context.Background(), nd, "nobody", rows(t, 1, 1))
	require.ErrorIs(t, err, ErrNoProc)
	assert.Contains(t, err.Error(), `could not find a serving named "nobody"`)
	_, err = BatchedRun(context.Background(), nd, Local("nobody"), rows(t, 1, 1))
	require.ErrorIs(t, err, ErrNoProc)
}

func TestStartNameTaken(t *testing.T) {
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling()})
	_, err := Start(nd, Options{Name: t.Name(), Serving: doubling()})
	require.ErrorIs(t, err, ErrAlreadyStarted)
	assert.Contains(t, err.Error(), "stop the running serving first or choose another name")
	// The running one still serves.
	out, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 1))
	require.NoError(t, err)
	assert.Equal(t, []float32{2}, floats(t, out))
}

// A failing Init makes Start fail with the cause, leaving nothing behind.
func TestStartInitFailure(t *testing.T) {
	nd := testNode(t)
	cause := errors.New("weights missing")
	s := NewModule(ModuleFuncs{InitFunc: func(Kind, any, []compiler.Options) (any, error) { return nil, cause }}, nil)
	_, err := Start(nd, Options{Name: t.Name(), Serving: s})
	require.ErrorIs(t, err, cause)
	var se *supervisor.StartError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, t.Name(), se.Child)
	for _, n := range []string{t.Name(), supervisorName(t.Name()), taskSupervisorName(t.Name())} {
		assert.Nil(t, nd.ProcessByName(n), n)
	}
	// The name is free again.
	start(t, nd, Options{Serving: doubling()})
}

func TestStartInvalidOptions(t *testing.T) {
	nd := testNode(t)
	_, err := Start(nd, Options{Serving: doubling()})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Start(nd, Options{Name: "x"})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Start(nd, Options{Name: "x", Serving: doubling(), BatchSize: -1})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Start(nd, Options{Name: "x", Serving: doubling(), DistributionWeight: -2})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Start(nd, Options{Name: "x", Serving: doubling(compiler.WithCompiler("nope")), Partitions: CompilerPartitions})
	require.ErrorIs(t, err, compiler.ErrUnknownCompiler)
}

// If the serving actor dies, its sibling and the supervisor stop too, and
// callers get ErrNoProc.
func TestServingDeathStopsTheSupervisor(t *testing.T) {
	nd := testNode(t)
	h := start(t, nd, Options{Serving: doubling()})
	p := nd.ProcessByName(t.Name())
	require.NotNil(t, p)
	p.Kill()
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not stop within 10 s of its serving's death")
	}
	require.Eventually(t, func() bool {
		return !h.Process().IsAlive() && nd.ProcessByName(taskSupervisorName(t.Name())) == nil
	}, 10*time.Second, time.Millisecond)
	_, err := h.Stats()
	require.ErrorIs(t, err, ErrNoProc)
	_, err = BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 1))
	require.ErrorIs(t, err, ErrNoProc)
}

// A caller that gives up (ctx) gets ctx.Err() and its rows leave the stack.
func TestBatchedRunContextCancel(t *testing.T) {
	nd := testNode(t)
	m := newExecuteSync()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 4, BatchTimeout: time.Hour})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := BatchedRun(ctx, nd, t.Name(), rows(t, 1, 1))
		done <- err
	}()
	waitStats(t, nd, t.Name(), func(s Stats) bool { return s.StackedRows == 1 })
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 0, st.StackedRows)
	assert.Equal(t, 0, st.Waiting)
	m.none(t)

	dctx, dcancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer dcancel()
	_, err = BatchedRun(dctx, nd, t.Name(), rows(t, 1, 1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// caller is an ergo actor that calls BatchedRun from its callback.
type caller struct {
	gen.Server
	nd   node.Node
	name string
	out  chan result
}

func (c *caller) HandleInfo(_ *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	out, err := BatchedRun(context.Background(), c.nd, c.name, msg.(*batch.Batch))
	c.out <- result{out, err}
	return gen.ServerStatusOK
}

func TestBatchedRunFromAnActor(t *testing.T) {
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 2})
	c := &caller{nd: nd, name: t.Name(), out: make(chan result, 2)}
	p1, err := nd.Spawn("", gen.ProcessOptions{}, c)
	require.NoError(t, err)
	p2, err := nd.Spawn("", gen.ProcessOptions{}, c)
	require.NoError(t, err)
	require.NoError(t, p1.Send(p1.Self(), rows(t, 1, 1)))
	require.NoError(t, p2.Send(p2.Self(), rows(t, 2, 1)))
	got := map[float32]bool{}
	for i := 0; i < 2; i++ {
		r := await(t, c.out)
		require.NoError(t, r.err)
		got[floats(t, r.out)[0]] = true
	}
	assert.Equal(t, map[float32]bool{2: true, 4: true}, got)
}

// Thousands of concurrent callers: nobody is lost, everybody gets their
// own rows.
func TestThousandsOfConcurrentCallers(t *testing.T) {
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 64, BatchTimeout: time.Millisecond,
		Partitions: CompilerPartitions})
	const callers = 5000
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		go func(i int) {
			n := 1 + i%3
			out, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, float32(i*10), n))
			if err == nil {
				got := floats(nopTB{}, out)
				for j := 0; j < n; j++ {
					if got[j] != 2*float32(i*10+j) {
						err = fmt.Errorf("caller %d row %d: %v", i, j, got)
						break
					}
				}
			}
			errs <- err
		}(i)
	}
	for i := 0; i < callers; i++ {
		select {
		case err := <-errs:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d callers answered", i, callers)
		}
	}
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, uint64(callers), st.Requests)
	assert.Equal(t, 0, st.Waiting)
}

// ChildSpec places a serving under ergo's own supervisor.
func TestChildSpecUnderErgoSupervisor(t *testing.T) {
	nd := testNode(t)
	spec, err := ChildSpec(nd, Options{Name: t.Name(), Serving: doubling()})
	require.NoError(t, err)
	sup, err := nd.Spawn("", gen.ProcessOptions{}, &ergoSup{child: spec})
	require.NoError(t, err)
	out, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 1, 1))
	require.NoError(t, err)
	assert.Equal(t, []float32{2}, floats(t, out))
	require.NoError(t, Stop(context.Background(), nd, t.Name()))
	// Its only child (temporary) gone, ergo's supervisor exits by itself.
	// (Killing an ergo process that is ending races inside ergo.)
	require.NoError(t, sup.WaitWithTimeout(10*time.Second))
}

type ergoSup struct {
	gen.Supervisor
	child gen.SupervisorChildSpec
}

func (s *ergoSup) Init(...etf.Term) (gen.SupervisorSpec, error) {
	return gen.SupervisorSpec{
		Children: []gen.SupervisorChildSpec{s.child},
		Strategy: gen.SupervisorStrategy{Type: gen.SupervisorStrategyOneForOne, Intensity: 1, Period: 5,
			Restart: gen.SupervisorStrategyRestartTemporary},
	}, nil
}

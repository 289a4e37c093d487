package serving

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// testEngine starts an engine without a node, the way the serving process
// does, with a fake clock.
func testEngine(t testing.TB, s *Serving, batchSize, partitions int, clock Clock) *engine {
	t.Helper()
	parts := make([]compiler.Options, partitions)
	for i := range parts {
		parts[i] = s.defn
	}
	state, err := callInit(s.module, Process, s.arg, parts)
	require.NoError(t, err)
	e := newEngine(engineConfig{
		name: t.Name(), serving: s, batchSize: batchSize, batchTimeout: 100 * time.Millisecond,
		shutdownTimeout: 10 * time.Second, partitions: parts, clock: clock,
	}, state)
	t.Cleanup(e.shutdown)
	return e
}

// submit submits b and fails the test on error.
func submit(t testing.TB, e *engine, b *batch.Batch) *request {
	t.Helper()
	r, err := e.submit(context.Background(), b, false, false)
	require.NoError(t, err)
	return r
}

// answer waits for r and returns its rows.
func answer(t testing.TB, e *engine, r *request) ([]float32, error) {
	t.Helper()
	awaitDone(t, r)
	out, _, err := e.wait(context.Background(), r)
	if err != nil {
		return nil, err
	}
	return floats(t, out), nil
}

func TestEngineFullBatchRunsWithoutTimer(t *testing.T) {
	clock := newFakeClock()
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 4, 1, clock)

	a := submit(t, e, rows(t, 1, 2))
	assert.Equal(t, 1, clock.pending(), "the first rows arm the timer")
	b := submit(t, e, rows(t, 10, 2))
	x := m.next(t)
	assert.Equal(t, 4, x.size)
	assert.Equal(t, []float32{1, 2, 10, 11}, x.input)
	assert.Equal(t, 0, clock.pending(), "a full batch disarms the timer")
	x.proceed()

	got, err := answer(t, e, a)
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4}, got)
	got, err = answer(t, e, b)
	require.NoError(t, err)
	assert.Equal(t, []float32{20, 22}, got)
	m.none(t)
}

func TestEngineTimeoutRunsTheStack(t *testing.T) {
	clock := newFakeClock()
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 4, 1, clock)

	a := submit(t, e, rows(t, 1, 1))
	m.none(t)
	require.Equal(t, 1, clock.fire())
	x := m.next(t)
	assert.Equal(t, 1, x.size)
	x.proceed()
	got, err := answer(t, e, a)
	require.NoError(t, err)
	assert.Equal(t, []float32{2}, got)
}

// Nx issue #1347: a timer that fires after its stack already ran must not
// run anything (Nx crashed on the empty stack).
func TestEngineStaleTimerIsIgnored(t *testing.T) {
	clock := newFakeClock()
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 2, 1, clock)

	a := submit(t, e, rows(t, 1, 1))
	b := submit(t, e, rows(t, 2, 1)) // fills the batch: runs, timer disarmed
	x := m.next(t)
	x.proceed()
	_, err := answer(t, e, a)
	require.NoError(t, err)
	_, err = answer(t, e, b)
	require.NoError(t, err)

	c := submit(t, e, rows(t, 3, 1)) // a new stack with a new timer
	clock.fireStale()                // the first timer's late message, then the new one
	x = m.next(t)
	assert.Equal(t, 1, x.size)
	x.proceed()
	got, err := answer(t, e, c)
	require.NoError(t, err)
	assert.Equal(t, []float32{6}, got)
	m.none(t)
}

// The timer fires while the only partition is busy: the stack keeps
// growing and runs when the partition frees up.
func TestEngineTimeoutWhileBusyRunsWhenPartitionFrees(t *testing.T) {
	clock := newFakeClock()
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 4, 1, clock)

	a := submit(t, e, rows(t, 1, 4))
	busy := m.next(t)
	b := submit(t, e, rows(t, 10, 1))
	require.Equal(t, 1, clock.fire())
	m.none(t)
	c := submit(t, e, rows(t, 20, 1)) // still stacking after the timeout
	assert.Equal(t, 2, e.stats().StackedRows)

	busy.proceed()
	x := m.next(t)
	assert.Equal(t, []float32{10, 20}, x.input)
	x.proceed()
	for _, r := range []*request{a, b, c} {
		_, err := answer(t, e, r)
		require.NoError(t, err)
	}
}

// Later Nx: a request larger than the batch is split across executions, in
// order; the caller gets all its rows concatenated.
func TestEngineSplitsOversizedRequests(t *testing.T) {
	clock := newFakeClock()
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 3, 1, clock)

	r := submit(t, e, rows(t, 1, 7))
	x := m.next(t)
	assert.Equal(t, []float32{1, 2, 3}, x.input)
	x.proceed()
	x = m.next(t)
	assert.Equal(t, []float32{4, 5, 6}, x.input)
	x.proceed()
	m.none(t)
	require.Equal(t, 1, clock.fire())
	x = m.next(t)
	assert.Equal(t, []float32{7}, x.input)
	x.proceed()
	got, err := answer(t, e, r)
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6, 8, 10, 12, 14}, got)
}

func TestEngineCancelTakesStackedRowsOut(t *testing.T) {
	clock := newFakeClock()
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 4, 1, clock)

	a := submit(t, e, rows(t, 1, 1))
	e.cancel(a, context.Canceled)
	_, err := answer(t, e, a)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, e.stats().StackedRows)
	assert.Equal(t, 0, clock.pending(), "an empty stack needs no timer")

	b := submit(t, e, rows(t, 5, 1))
	clock.fire()
	x := m.next(t)
	assert.Equal(t, []float32{5}, x.input)
	x.proceed()
	_, err = answer(t, e, b)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), e.stats().Cancelled)
}

func TestEngineCancelTakesQueuedRowsOut(t *testing.T) {
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 2, 1, newFakeClock())

	busy := submit(t, e, rows(t, 1, 2))
	x := m.next(t)
	a := submit(t, e, rows(t, 10, 1))
	b := submit(t, e, rows(t, 20, 1)) // {a, b} is queued
	assert.Equal(t, 1, e.stats().QueuedBatches)
	e.cancel(a, context.DeadlineExceeded)
	assert.Equal(t, 1, e.stats().QueuedRows)

	x.proceed()
	x = m.next(t)
	assert.Equal(t, []float32{20}, x.input)
	x.proceed()
	_, err := answer(t, e, busy)
	require.NoError(t, err)
	_, err = answer(t, e, a)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	got, err := answer(t, e, b)
	require.NoError(t, err)
	assert.Equal(t, []float32{40}, got)
}

// Rows already running when their caller gives up are dropped when they
// arrive; the other callers of the batch get theirs.
func TestEngineCancelRunningRowsAreDropped(t *testing.T) {
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 2, 1, newFakeClock())

	a := submit(t, e, rows(t, 1, 1))
	b := submit(t, e, rows(t, 2, 1))
	x := m.next(t)
	e.cancel(a, context.Canceled)
	x.proceed()
	_, err := answer(t, e, a)
	require.ErrorIs(t, err, context.Canceled)
	got, err := answer(t, e, b)
	require.NoError(t, err)
	assert.Equal(t, []float32{4}, got)
}

// A caller whose input has another shape does not fail the others: the
// stack runs before the odd batch is stacked.
func TestEngineDifferentTemplatesRunApart(t *testing.T) {
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 4, 1, newFakeClock())

	a := submit(t, e, rows(t, 1, 1))
	odd, err := batch.Stack(row(7, 8))
	require.NoError(t, err)
	b := submit(t, e, odd)
	x := m.next(t)
	assert.Equal(t, 1, x.size)
	x.proceed()
	got, err := answer(t, e, a)
	require.NoError(t, err)
	assert.Equal(t, []float32{2}, got)
	assert.Equal(t, 1, e.stats().StackedRows, "the odd request starts its own stack")
	e.cancel(b, context.Canceled)
}

func TestEngineShutdown(t *testing.T) {
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 2, 1, newFakeClock())

	running := submit(t, e, rows(t, 1, 2))
	x := m.next(t)
	queued := submit(t, e, rows(t, 3, 2))
	stacked := submit(t, e, rows(t, 5, 1))

	done := make(chan struct{})
	go func() { e.shutdown(); close(done) }()

	_, err := answer(t, e, queued)
	require.ErrorIs(t, err, ErrNoProc)
	_, err = answer(t, e, stacked)
	require.ErrorIs(t, err, ErrNoProc)
	select {
	case <-done:
		t.Fatal("shutdown returned while a task was running")
	default:
	}
	_, err = e.submit(context.Background(), rows(t, 9, 1), false, false)
	require.ErrorIs(t, err, ErrNoProc)

	x.proceed()
	got, err := answer(t, e, running)
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4}, got)
	<-done
	m.none(t)
}

func TestEngineShutdownTimeout(t *testing.T) {
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 1, 1, newFakeClock())
	e.shutdownTimeout = 20 * time.Millisecond

	r := submit(t, e, rows(t, 1, 1))
	x := m.next(t)
	e.shutdown() // returns after 20 ms with the task still running
	_, err := answer(t, e, r)
	require.ErrorIs(t, err, ErrShutdownTimeout)
	x.proceed() // its result is dropped
}

// A batch whose execution panics fails exactly its callers, with the
// cause; the serving goes on.
func TestEngineFailedBatchFailsOnlyItsCallers(t *testing.T) {
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 2, 1, newFakeClock())
	// The counters are updated after the callers are answered: wait for
	// both tasks to be over before reading them.
	tasksDone := make(chan int, 2)
	e.testHookTaskDone = func(p int) { tasksDone <- p }

	a := submit(t, e, rows(t, 1, 2))
	b := submit(t, e, rows(t, 3, 2))
	m.next(t).crash()
	m.next(t).proceed()

	_, err := answer(t, e, a)
	var down *DownError
	require.ErrorAs(t, err, &down)
	require.ErrorIs(t, err, errOops)
	var pe *PanicError
	require.ErrorAs(t, err, &pe)
	got, err := answer(t, e, b)
	require.NoError(t, err)
	assert.Equal(t, []float32{6, 8}, got)
	for range 2 {
		select {
		case <-tasksDone:
		case <-time.After(10 * time.Second):
			t.Fatal("the tasks did not end")
		}
	}
	st := e.stats()
	assert.Equal(t, uint64(1), st.FailedBatches)
	assert.Equal(t, uint64(2), st.Batches)
	assert.Equal(t, 0, st.Waiting)
}

// HandleBatch failing is the batch's failure too, and frees the partition.
func TestEngineHandleBatchErrorFailsTheBatch(t *testing.T) {
	cause := errors.New("no partition state")
	calls := 0
	s := NewModule(ModuleFuncs{HandleBatchFunc: func(b *batch.Batch, p int, st any) (ExecFunc, any, error) {
		calls++
		if calls == 1 {
			return nil, st, cause
		}
		return func() (any, any, error) {
			in, err := b.Materialize()
			if err != nil {
				return nil, nil, err
			}
			out, err := times2(in)
			return out, nil, err
		}, st, nil
	}}, nil)
	e := testEngine(t, s, 1, 1, newFakeClock())
	_, err := answer(t, e, submit(t, e, rows(t, 1, 1)))
	require.ErrorIs(t, err, cause)
	got, err := answer(t, e, submit(t, e, rows(t, 2, 1)))
	require.NoError(t, err)
	assert.Equal(t, []float32{4}, got)
}

func TestEngineBatchKeyIsRejected(t *testing.T) {
	e := testEngine(t, doubling(), 1, 1, newFakeClock())
	b := rows(t, 1, 1)
	b.SetKey("double")
	_, err := e.submit(context.Background(), b, false, false)
	require.ErrorIs(t, err, ErrBatchKey)
}

func TestEngineStats(t *testing.T) {
	m := newExecuteSync()
	e := testEngine(t, NewModule(m, nil), 2, 1, newFakeClock())
	a := submit(t, e, rows(t, 1, 2))
	x := m.next(t)
	b := submit(t, e, rows(t, 3, 2))
	c := submit(t, e, rows(t, 5, 1))
	st := e.stats()
	assert.Equal(t, 1, st.BusyPartitions)
	assert.Equal(t, 1, st.QueuedBatches)
	assert.Equal(t, 2, st.QueuedRows)
	assert.Equal(t, 1, st.StackedRows)
	assert.Equal(t, 3, st.Waiting)
	assert.Equal(t, uint64(3), st.Requests)
	x.proceed()
	m.next(t).proceed()
	for _, r := range []*request{a, b} {
		_, err := answer(t, e, r)
		require.NoError(t, err)
	}
	e.cancel(c, context.Canceled)
	assert.Equal(t, 0, e.stats().Waiting)
}

// A caller who has its answer finds its batch in the statistics: batches
// and rows are counted before the callers are answered (a scrape right
// after a response used to miss the last batch now and then). The
// second caller's token channel is filled beforehand, so the batch's
// replies stop there until the test has looked at the statistics with
// the first caller's answer in hand: counted after the replies, the batch
// would not be in them yet.
func TestEngineCountsABatchBeforeItsCallersHaveTheirAnswer(t *testing.T) {
	const perBatch = 4
	e := testEngine(t, doubling(), perBatch, 1, newFakeClock())
	for i := range 20 {
		reqs := make([]*request, perBatch)
		for k := range reqs {
			if k == perBatch-1 {
				reqs[1].done <- struct{}{} // its delivery blocks until taken
			}
			reqs[k] = submit(t, e, rows(t, float32(i), 1))
		}
		awaitDone(t, reqs[0])
		st := e.stats()
		require.Equal(t, uint64(i+1), st.Batches, "batches counted once a caller of batch %d has its answer", i)
		require.Equal(t, uint64((i+1)*perBatch), st.Rows, "rows counted once a caller of batch %d has its answer", i)
		<-reqs[1].done // the token put there: the replies go on
		for _, r := range reqs {
			_, err := answer(t, e, r)
			require.NoError(t, err)
		}
	}
}

package serving

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// boundedEngine is testEngine with a queue bound.
func boundedEngine(t testing.TB, m Module, batchSize, partitions, maxQueue int) *engine {
	t.Helper()
	e := testEngine(t, NewModule(m, nil), batchSize, partitions, newFakeClock())
	e.maxQueue = maxQueue
	return e
}

// With its one partition busy and MaxQueue rows waiting, a serving turns
// the next request away at once with an *OverloadedError that says how
// full it is; once the partition frees up, there is room again.
func TestMaxQueueRejectsAtOnceWhenFull(t *testing.T) {
	m := newExecuteSync()
	e := boundedEngine(t, m, 2, 1, 4)

	running := submit(t, e, rows(t, 0, 2)) // fills a batch: runs, partition busy
	x := m.next(t)
	queued := submit(t, e, rows(t, 10, 2))  // a full batch: queued
	stacked := submit(t, e, rows(t, 20, 1)) // stacked: 3 rows wait
	last := submit(t, e, rows(t, 30, 1))    // fills the stack: queued, 4 wait
	assert.Equal(t, 4, e.stats().QueuedRows+e.stats().StackedRows)

	_, err := e.submit(context.Background(), rows(t, 40, 1), false, false)
	require.ErrorIs(t, err, ErrOverloaded)
	var over *OverloadedError
	require.ErrorAs(t, err, &over)
	assert.Equal(t, 4, over.Waiting)
	assert.Equal(t, 1, over.Rows)
	assert.Equal(t, 4, over.MaxQueue)
	assert.Equal(t, t.Name(), over.Serving)
	// No execution has been timed yet: two rounds of the batch timeout.
	assert.Equal(t, 200*time.Millisecond, over.RetryAfter)
	assert.Equal(t, uint64(1), e.stats().Rejected)
	assert.Equal(t, uint64(4), e.stats().Requests, "a rejected request is not accepted")

	x.proceed()
	m.next(t).proceed() // the queued batch
	m.next(t).proceed() // the stacked rows and the last, one batch
	for _, r := range []*request{running, queued, stacked, last} {
		_, err := answer(t, e, r)
		require.NoError(t, err)
	}
	r := submit(t, e, rows(t, 50, 1))
	require.NotNil(t, r, "room again once the queue drained")
}

// A request larger than MaxQueue still runs when nothing waits.
func TestMaxQueueAdmitsAnOversizedRequestWhenEmpty(t *testing.T) {
	m := newExecuteSync()
	e := boundedEngine(t, m, 2, 1, 3)
	r := submit(t, e, rows(t, 0, 6))
	for range 3 {
		m.next(t).proceed()
	}
	got, err := answer(t, e, r)
	require.NoError(t, err)
	assert.Equal(t, []float32{0, 2, 4, 6, 8, 10}, got)
}

// WaitWhenFull callers wait in line, first come first served, and are
// admitted as rows leave the queue; one whose context ends leaves the
// line with ctx.Err() and the next takes its place.
func TestWaitWhenFullAdmitsInOrder(t *testing.T) {
	m := newExecuteSync()
	e := boundedEngine(t, m, 1, 1, 1)
	submit(t, e, rows(t, 0, 1)) // runs
	x0 := m.next(t)
	submit(t, e, rows(t, 1, 1)) // queued: the queue is full

	type admitted struct {
		r   *request
		err error
	}
	wait := func(ctx context.Context, first float32) <-chan admitted {
		ch := make(chan admitted, 1)
		go func() {
			r, err := e.submit(ctx, rows(t, first, 1), false, true)
			ch <- admitted{r, err}
		}()
		return ch
	}
	a := wait(context.Background(), 10)
	waitFor(t, "a in line", func() bool { return e.stats().WaitingForRoom == 1 })
	ctxB, cancelB := context.WithCancel(context.Background())
	b := wait(ctxB, 20)
	waitFor(t, "b in line", func() bool { return e.stats().WaitingForRoom == 2 })
	c := wait(context.Background(), 30)
	waitFor(t, "c in line", func() bool { return e.stats().WaitingForRoom == 3 })

	// A caller that does not wait cannot overtake the line.
	_, err := e.submit(context.Background(), rows(t, 40, 1), false, false)
	require.ErrorIs(t, err, ErrOverloaded)

	cancelB()
	gotB := <-b
	require.ErrorIs(t, gotB.err, context.Canceled)
	assert.Nil(t, gotB.r)
	assert.Equal(t, 2, e.stats().WaitingForRoom)

	x0.proceed() // the queued row runs: room for a, not for c yet
	gotA := <-a
	require.NoError(t, gotA.err)
	x1 := m.next(t)
	assert.Equal(t, []float32{1}, x1.input)
	select {
	case <-c:
		t.Fatal("c was admitted while a's row waits")
	default:
	}
	x1.proceed()
	m.next(t).proceed() // a's row
	gotC := <-c
	require.NoError(t, gotC.err)
	m.next(t).proceed() // c's row
	for _, r := range []*request{gotA.r, gotC.r} {
		_, err := answer(t, e, r)
		require.NoError(t, err)
	}
	assert.Equal(t, 0, e.stats().WaitingForRoom)
}

// Callers waiting for room when the serving stops get ErrNoProc.
func TestWaitWhenFullCallersGetNoProcAtShutdown(t *testing.T) {
	m := newExecuteSync()
	e := boundedEngine(t, m, 1, 1, 1)
	submit(t, e, rows(t, 0, 1))
	x := m.next(t)
	submit(t, e, rows(t, 1, 1))
	errc := make(chan error, 1)
	go func() {
		r, err := e.submit(context.Background(), rows(t, 2, 1), false, true)
		if err == nil {
			_, _, err = e.wait(context.Background(), r)
		}
		errc <- err
	}()
	waitFor(t, "a caller in line", func() bool { return e.stats().WaitingForRoom == 1 })
	done := make(chan struct{})
	go func() { e.shutdown(); close(done) }()
	require.ErrorIs(t, <-errc, ErrNoProc)
	x.proceed()
	<-done
}

// waitFor polls cond, bounded.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

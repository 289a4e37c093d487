package serving

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/batch"
)

// Checklist §4.2 item 22: Nx's run "with input streaming".
func TestRunWithInputStreaming(t *testing.T) { // "with input streaming"
	leakCheck(t)
	out, err := Run(context.Background(), JIT(times2), batchesOf(t, []float32{1, 2}, []float32{3}))
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))
}

// Checklist §4.2 item 23.
func TestRunWithInputStreamingAboveBatchSize(t *testing.T) { // "with input streaming above batch size"
	leakCheck(t)
	_, err := Run(context.Background(), JIT(times2).BatchSize(1), batchesOf(t, []float32{1, 2}, []float32{3}))
	require.ErrorIs(t, err, ErrInputStream)
	require.ErrorIs(t, err, ErrBatchTooLarge)
	assert.Contains(t, err.Error(), "client preprocessing must return a stream of batches of at most 1 rows, got 2")
}

// Checklist §4.3 item 35.
func TestBatchedRunWithInputStreaming(t *testing.T) { // "with input streaming"
	leakCheck(t)
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil), BatchSize: 2})
	out, err := BatchedRun(context.Background(), nd, t.Name(), batchesOf(t, []float32{1, 2}, []float32{3}))
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))
	init := <-m.events
	assert.Equal(t, []string{batch.DefaultKey}, init.partitions[0].BatchKeys)
	b1 := (<-m.events).batch
	<-m.events
	b2 := (<-m.events).batch
	assert.Equal(t, [2]int{2, 0}, [2]int{b1.Size(), b1.Padding()})
	assert.Equal(t, [2]int{1, 0}, [2]int{b2.Size(), b2.Padding()})
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 0, st.Waiting)
	assert.Equal(t, uint64(2), st.Requests, "each batch of the stream is a request")
}

// Checklist §4.3 item 36.
func TestBatchedRunWithInputStreamingAndNonBatch(t *testing.T) { // "with input streaming and non-batch"
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 2, BatchTimeout: time.Hour})
	nilBatch := BatchStream(func(yield func(*batch.Batch, error) bool) {
		if yield(rows(nopTB{t}, 1, 1), nil) {
			yield(nil, nil)
		}
	})
	_, err := BatchedRun(context.Background(), nd, t.Name(), nilBatch)
	require.ErrorIs(t, err, ErrInputStream)
	empty := BatchStream(func(yield func(*batch.Batch, error) bool) { yield(batch.New(), nil) })
	_, err = BatchedRun(context.Background(), nd, t.Name(), empty)
	require.ErrorIs(t, err, ErrInputStream)
	require.ErrorIs(t, err, ErrEmptyBatch)
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 0, st.StackedRows, "the good batch before the bad one was taken out")
}

// Checklist §4.5 item 50, Nx issue #1511: callers whose input streams
// outnumber the concurrency all finish (Nx hung: its flow control waited
// for acknowledgements that never came).
func TestBatchedRunWithLimitedConcurrentPushing(t *testing.T) { // "with limited concurrent pushing"
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: NewModule(newSimple(), nil), BatchSize: 4, BatchTimeout: 10 * time.Millisecond})
	sem := make(chan struct{}, 2) // max_concurrency: 2
	results := make(chan result, 4)
	for i := 0; i < 4; i++ {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			data := BatchStream(func(yield func(*batch.Batch, error) bool) {
				yield(stacked(nopTB{t}, []float32{1, 2, 3}), nil)
			})
			out, err := BatchedRun(context.Background(), nd, t.Name(), data)
			results <- result{out, err}
		}()
	}
	for i := 0; i < 4; i++ {
		r := await(t, results)
		require.NoError(t, r.err)
		assert.Equal(t, []int{1, 3}, shapeOf(r.out))
		assert.Equal(t, []float32{2, 4, 6}, floats(t, r.out))
	}
}

// A producer that blocks forever cannot hang its caller: the caller's
// context ends the call, and the rows it had sent are taken out.
func TestInputStreamBlockedProducerDoesNotHangTheCaller(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 4, BatchTimeout: time.Hour})
	never := make(chan struct{})
	t.Cleanup(func() { close(never) }) // (runs before the leak check)
	blocked := make(chan struct{})
	stream := BatchStream(func(yield func(*batch.Batch, error) bool) {
		if !yield(rows(nopTB{t}, 1, 1), nil) {
			return
		}
		close(blocked)
		<-never // a producer stuck on a source that never comes
	})
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan result, 1)
	go func() {
		out, err := BatchedRun(ctx, nd, t.Name(), stream)
		ch <- result{out, err}
	}()
	<-blocked
	waitStats(t, nd, t.Name(), func(st Stats) bool { return st.StackedRows == 1 })
	cancel()
	r := await(t, ch)
	require.ErrorIs(t, r.err, context.Canceled)
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 0, st.StackedRows)
	assert.Equal(t, 0, st.Waiting)
}

// A stream that yields an error ends the request with it, and takes the
// rows already sent out.
func TestInputStreamErrorEndsTheRequest(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 4, BatchTimeout: time.Hour})
	cause := errors.New("microphone unplugged")
	stream := BatchStream(func(yield func(*batch.Batch, error) bool) {
		if yield(rows(nopTB{t}, 1, 2), nil) {
			yield(nil, cause)
		}
	})
	_, err := BatchedRun(context.Background(), nd, t.Name(), stream)
	require.ErrorIs(t, err, ErrInputStream)
	require.ErrorIs(t, err, cause)
	got, err := events(t, Stream(context.Background(), nd, t.Name(), stream))
	require.ErrorIs(t, err, cause)
	assert.Empty(t, got)
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, 0, st.StackedRows)
	assert.Equal(t, uint64(2), st.Cancelled)
}

// A stream that panics ends the request with a *PanicError.
func TestInputStreamPanicEndsTheRequest(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 1})
	stream := BatchStream(func(yield func(*batch.Batch, error) bool) {
		if yield(rows(nopTB{t}, 1, 1), nil) {
			panic("bad sensor")
		}
	})
	_, err := BatchedRun(context.Background(), nd, t.Name(), stream)
	require.ErrorIs(t, err, ErrInputStream)
	var pe *PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "bad sensor", pe.Value)
	_, err = Run(context.Background(), doubling(), stream)
	require.ErrorAs(t, err, &pe)
}

// A stream without batches: BatchedRun and Run have nothing to return,
// Stream streams nothing.
func TestInputStreamWithoutBatches(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling()})
	none := batchesOf(t)
	_, err := BatchedRun(context.Background(), nd, t.Name(), none)
	require.ErrorIs(t, err, ErrEmptyBatch)
	_, err = Run(context.Background(), doubling(), none)
	require.ErrorIs(t, err, ErrEmptyBatch)
	got, err := events(t, Stream(context.Background(), nd, t.Name(), none))
	require.NoError(t, err)
	assert.Empty(t, got)
}

// The caller pulls a batch only while fewer than the window of its
// batches are in the serving or unread: a consumer that reads slowly
// slows the producer. Executions wait for the test, so the window fills
// before anything completes.
func TestInputStreamWindowBoundsTheBatchesInFlight(t *testing.T) {
	leakCheck(t)
	for _, window := range []int{1, 2, 3} {
		nd := testNode(t)
		name := t.Name() + "/" + string(rune('0'+window))
		m := newExecuteSync()
		start(t, nd, Options{Name: name, Serving: NewModule(m, nil), BatchSize: 1})
		var pulled, consumed, most atomic.Int64
		stream := BatchStream(func(yield func(*batch.Batch, error) bool) {
			for i := 0; i < 8; i++ {
				n := pulled.Add(1)
				if ahead := n - consumed.Load(); ahead > most.Load() {
					most.Store(ahead)
				}
				if !yield(rows(nopTB{t}, float32(i), 1), nil) {
					return
				}
			}
		})
		opts := []CallOption{}
		if window != DefaultInputWindow {
			opts = append(opts, InputWindow(window))
		}
		done := make(chan []float32, 1)
		go func() {
			var got []float32
			for e, err := range Stream(context.Background(), nd, name, stream, opts...) {
				if err != nil {
					break
				}
				got = append(got, floats(nopTB{t}, e.Value)...)
				consumed.Add(1)
			}
			done <- got
		}()
		for i := 0; i < 8; i++ {
			x := m.next(t)
			if i == 0 {
				waitStats(t, nd, name, func(st Stats) bool { return st.Requests == uint64(window) })
				assert.Equal(t, int64(window), pulled.Load(), "window %d: the window fills, no more", window)
			}
			x.proceed()
		}
		select {
		case got := <-done:
			assert.Equal(t, []float32{0, 2, 4, 6, 8, 10, 12, 14}, got)
		case <-time.After(10 * time.Second):
			t.Fatal("stream did not end")
		}
		assert.Equal(t, int64(window), most.Load(), "window %d", window)
	}
}

// A channel of batches is an input stream too; a caller whose context
// ends while the channel is silent returns at once.
func TestInputStreamFromAChannel(t *testing.T) {
	leakCheck(t)
	nd := testNode(t)
	start(t, nd, Options{Serving: doubling(), BatchSize: 2})
	ch := make(chan *batch.Batch)
	go func() {
		ch <- rows(nopTB{t}, 1, 2)
		ch <- rows(nopTB{t}, 3, 1)
		close(ch)
	}()
	out, err := BatchedRun(context.Background(), nd, t.Name(), (<-chan *batch.Batch)(ch))
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))

	silent := make(chan *batch.Batch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = BatchedRun(ctx, nd, t.Name(), silent)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// ClientStreamPreprocessing turns one input into a stream of batches:
// here a long input cut into chunks of two rows, as an audio serving cuts
// a recording.
func TestClientStreamPreprocessing(t *testing.T) {
	leakCheck(t)
	var mu sync.Mutex
	var infos []any
	s := doubling().ClientStreamPreprocessing(func(input any) (BatchStream, any, error) {
		whole := input.([]float32)
		return func(yield func(*batch.Batch, error) bool) {
			for i := 0; i < len(whole); i += 2 {
				b, err := batch.Concatenate(row(whole[i:min(i+2, len(whole))]...))
				if !yield(b, err) {
					return
				}
			}
		}, len(whole), nil
	}).ClientPostprocessing(func(out, meta, info any) (any, error) {
		mu.Lock()
		infos = append(infos, info)
		mu.Unlock()
		return out, nil
	})
	nd := testNode(t)
	start(t, nd, Options{Serving: s, BatchSize: 2})
	out, err := BatchedRun(context.Background(), nd, t.Name(), []float32{1, 2, 3, 4, 5})
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6, 8, 10}, floats(t, out))
	assert.Equal(t, []any{5}, infos, "postprocessing runs once, on the whole")

	got, err := events(t, Stream(context.Background(), nd, t.Name(), []float32{1, 2, 3}))
	require.NoError(t, err)
	assert.Equal(t, []ev{batchEv([]int{2}, DefaultMetadata, 2, 4), batchEv([]int{1}, DefaultMetadata, 6)}, got)

	out, err = Run(context.Background(), s, []float32{1, 2, 3})
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))

	_, err = Run(context.Background(), doubling().ClientStreamPreprocessing(func(any) (BatchStream, any, error) {
		return nil, nil, nil
	}), 1)
	require.ErrorIs(t, err, ErrBadCallback)
}

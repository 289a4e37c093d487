package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClosedLoopMakesExactlyRequests(t *testing.T) {
	var calls atomic.Int64
	seen := make([]atomic.Bool, 1000)
	rep, err := Run(context.Background(), Options{Callers: 8, Requests: 1000}, func(_ context.Context, i int) error {
		calls.Add(1)
		if seen[i].Swap(true) {
			t.Errorf("call %d made twice", i)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, int64(1000), calls.Load())
	assert.Equal(t, 1000, rep.Requests)
	assert.Equal(t, 0, rep.Errors)
	assert.Equal(t, int64(1000), rep.Latency.TotalCount())
	assert.Positive(t, rep.Throughput())
}

func TestClosedLoopCountsErrors(t *testing.T) {
	boom := errors.New("boom")
	rep, err := Run(context.Background(), Options{Callers: 2, Requests: 10}, func(_ context.Context, i int) error {
		if i%2 == 0 {
			return boom
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Errors)
	assert.ErrorIs(t, rep.FirstError, boom)
}

func TestDurationStopsTheLoop(t *testing.T) {
	rep, err := Run(context.Background(), Options{Callers: 2, Duration: 30 * time.Millisecond}, func(ctx context.Context, _ int) error {
		<-ctx.Done() // every call waits for the end: none completes
		return ctx.Err()
	})
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Requests)
	assert.GreaterOrEqual(t, rep.Elapsed, 30*time.Millisecond)
	assert.False(t, rep.Interrupted, "the Duration ends a run; it does not interrupt it")
}

func TestOpenLoopKeepsItsRate(t *testing.T) {
	rep, err := Run(context.Background(), Options{Rate: 1000, Duration: 200 * time.Millisecond}, func(context.Context, int) error { return nil })
	require.NoError(t, err)
	// 200 calls are due; the machine is noisy, so allow a wide margin.
	assert.InDelta(t, 200, rep.Requests, 40)
	assert.Equal(t, 0, rep.Dropped)
}

func TestOpenLoopDropsWhenSaturated(t *testing.T) {
	release := make(chan struct{})
	rep, err := Run(context.Background(), Options{Rate: 2000, Callers: 1, Duration: 50 * time.Millisecond, Timeout: time.Second},
		func(ctx context.Context, _ int) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
	close(release)
	require.NoError(t, err)
	assert.Positive(t, rep.Dropped, "one slot, calls that never return: the rest are dropped")
}

func TestTimeoutBoundsEachCall(t *testing.T) {
	rep, err := Run(context.Background(), Options{Requests: 3, Timeout: 5 * time.Millisecond}, func(ctx context.Context, _ int) error {
		<-ctx.Done()
		return ctx.Err()
	})
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Errors)
	assert.ErrorIs(t, rep.FirstError, context.DeadlineExceeded)
}

func TestProgressReportsTheEnd(t *testing.T) {
	var last atomic.Int64
	_, err := Run(context.Background(), Options{Requests: 100, Progress: func(n int) { last.Store(int64(n)) }},
		func(context.Context, int) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, int64(100), last.Load())
}

func TestInvalidOptions(t *testing.T) {
	_, err := Run(context.Background(), Options{}, nil)
	require.ErrorIs(t, err, ErrOptions)
	_, err = Run(context.Background(), Options{Rate: 10}, nil)
	require.ErrorIs(t, err, ErrOptions)
}

// Failed calls are counted apart: never in Throughput nor in Latency.
func TestFailuresStayOutOfThroughputAndLatency(t *testing.T) {
	boom := errors.New("boom")
	rep, err := Run(context.Background(), Options{Callers: 2, Requests: 10}, func(_ context.Context, i int) error {
		if i < 4 {
			return boom
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 10, rep.Requests)
	assert.Equal(t, 4, rep.Errors)
	assert.Equal(t, 6, rep.Succeeded())
	assert.Equal(t, int64(6), rep.Latency.TotalCount())
	assert.Equal(t, int64(4), rep.ErrorLatency.TotalCount())
	assert.Equal(t, map[string]int{"boom": 4}, rep.ErrorCounts)
	assert.InDelta(t, 6/rep.Elapsed.Seconds(), rep.Throughput(), 1e-9)
	assert.False(t, rep.Interrupted)
}

// A run whose every call fails reports no throughput and no latency.
func TestAllFailedReportsNothingAsServed(t *testing.T) {
	rep, err := Run(context.Background(), Options{Callers: 1, Requests: 5}, func(context.Context, int) error {
		return errors.New("refused")
	})
	require.NoError(t, err)
	assert.Zero(t, rep.Throughput())
	assert.Zero(t, rep.Percentile(99))
	assert.Equal(t, int64(5), rep.ErrorLatency.TotalCount())
}

// Distinct error messages are counted up to MaxErrorKinds; the rest go
// under OtherErrors.
func TestErrorCountsAreBounded(t *testing.T) {
	rep, err := Run(context.Background(), Options{Callers: 1, Requests: MaxErrorKinds + 3}, func(_ context.Context, i int) error {
		return fmt.Errorf("error %d", i)
	})
	require.NoError(t, err)
	assert.Len(t, rep.ErrorCounts, MaxErrorKinds+1)
	assert.Equal(t, 3, rep.ErrorCounts[OtherErrors])
	assert.Equal(t, 1, rep.ErrorCounts["error 0"])
}

// A run whose context ends (Ctrl-C) returns the calls completed so far,
// marked Interrupted; calls cut by the end are not counted.
func TestInterruptedRunReportsWhatCompleted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	rep, err := Run(ctx, Options{Callers: 1, Requests: 1000}, func(ctx context.Context, _ int) error {
		if n.Add(1) == 7 {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	require.NoError(t, err)
	assert.True(t, rep.Interrupted)
	assert.Equal(t, 6, rep.Requests)
	assert.Equal(t, 0, rep.Errors)
}

// More callers than histograms share them: every call is recorded once,
// successes and failures apart, and the run holds at most maxHistograms.
func TestManyCallersShareBoundedHistograms(t *testing.T) {
	const callers, requests = 3 * maxHistograms, 6000
	r := &run{opts: Options{Callers: callers, Requests: requests}, errorCounts: map[string]int{},
		call: func(_ context.Context, i int) error {
			if i%3 == 0 {
				return errors.New("every third fails")
			}
			return nil
		}}
	r.closed(context.Background())
	require.Len(t, r.hists, maxHistograms)
	var ok, failed int64
	for _, h := range r.hists {
		ok += h.ok.TotalCount()
		if h.failed != nil {
			failed += h.failed.TotalCount()
		}
	}
	assert.Equal(t, int64(requests*2/3), ok)
	assert.Equal(t, int64(requests/3), failed)
	assert.Equal(t, int64(requests/3), r.errors.Load())
}

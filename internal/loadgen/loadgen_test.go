package loadgen

import (
	"context"
	"errors"
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

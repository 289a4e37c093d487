package serving

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// slowDoubling doubles its input after sleeping per batch: a serving whose
// capacity is known (batch size / delay).
func slowDoubling(delay time.Duration) *Serving {
	return New(func(o compiler.Options) (compiler.Func, error) {
		return compiler.JIT(func(in any) (any, error) {
			time.Sleep(delay)
			return times2(in)
		}, o)
	})
}

// An open loop offering twice what a serving can run: the queue never
// holds more than MaxQueue rows, every call is answered exactly once
// (its rows, or ErrOverloaded at once), some are turned away, and the
// heap stays flat instead of growing with the backlog.
func TestOverloadOpenLoopTwiceCapacityStaysBounded(t *testing.T) {
	nd := testNode(t)
	const (
		batchSize = 16
		delay     = 2 * time.Millisecond // capacity: 8,000 rows/s
		maxQueue  = 256
		perTick   = 16 // every millisecond: 16,000 calls/s offered
	)
	start(t, nd, Options{Serving: slowDoubling(delay), BatchSize: batchSize, BatchTimeout: time.Millisecond, MaxQueue: maxQueue})

	var offered, ok, overloaded, other atomic.Int64
	var latMu sync.Mutex
	var served, refused []time.Duration
	var maxWaiting atomic.Int64
	var wg sync.WaitGroup
	var heap []uint64
	stop := time.After(2 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sample := time.NewTicker(500 * time.Millisecond)
	defer sample.Stop()
	ctx := context.Background()
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-sample.C:
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap = append(heap, ms.HeapInuse)
		case <-tick.C:
			st, err := GetStats(nd, t.Name())
			require.NoError(t, err)
			if w := int64(st.StackedRows + st.QueuedRows); w > maxWaiting.Load() {
				maxWaiting.Store(w)
			}
			for i := range perTick {
				offered.Add(1)
				wg.Go(func() {
					v := float32(i)
					b, _ := batch.Stack(row(v))
					began := time.Now()
					out, err := BatchedRun(ctx, nd, t.Name(), b)
					took := time.Since(began)
					latMu.Lock()
					if err == nil {
						served = append(served, took)
					} else {
						refused = append(refused, took)
					}
					latMu.Unlock()
					switch {
					case err == nil:
						if got := floats(nopTB{}, out); len(got) == 1 && got[0] == 2*v {
							ok.Add(1)
						} else if other.Add(1) == 1 {
							t.Logf("first other answer: rows %v for %v", got, v)
						}
					case errors.Is(err, ErrOverloaded):
						overloaded.Add(1)
					default:
						if other.Add(1) == 1 {
							t.Logf("first other answer: %v", err)
						}
					}
				})
			}
		}
	}
	wg.Wait()
	slices.Sort(served)
	slices.Sort(refused)
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[int(float64(len(d)-1)*p)]
	}
	t.Logf("offered %d: %d served (p50 %v, p99 %v), %d overloaded (answered in p50 %v, p99 %v); most rows waiting %d; heap in use %v",
		offered.Load(), ok.Load(), pct(served, 0.5), pct(served, 0.99), overloaded.Load(), pct(refused, 0.5), pct(refused, 0.99),
		maxWaiting.Load(), heap)
	assert.Equal(t, offered.Load(), ok.Load()+overloaded.Load(), "every call answered with its rows or ErrOverloaded")
	assert.Zero(t, other.Load(), "no other answer")
	assert.Positive(t, overloaded.Load(), "twice the capacity turns calls away")
	assert.Positive(t, ok.Load())
	assert.LessOrEqual(t, maxWaiting.Load(), int64(maxQueue))
	require.NotEmpty(t, heap)
	for _, h := range heap[1:] {
		assert.Less(t, h, heap[0]+32<<20, "the heap grows with the offered load: %v", heap)
	}
	st, err := GetStats(nd, t.Name())
	require.NoError(t, err)
	assert.Equal(t, uint64(overloaded.Load()), st.Rejected)
}

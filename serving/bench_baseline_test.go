package serving

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/internal/chanbatch"
)

// BenchmarkChannelBatcher is the baseline of issue 14: the same workload
// as BenchmarkBatchedRun (x*2 on one 16-float row per call, batch size 64,
// batch timeout 5 ms) on the batcher a Go developer writes by hand
// (internal/chanbatch: one goroutine draining a channel by size or timer,
// a reply channel per call). Run both side by side:
//
//	go test -run '^$' -bench 'BatchedRun/callers=(256|1024|4096)|ChannelBatcher' -benchmem ./serving
func BenchmarkChannelBatcher(b *testing.B) {
	for _, callers := range []int{256, 1024, 4096} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			bt := chanbatch.New(func(in *tensor.Dense) (*tensor.Dense, error) {
				return in.MulScalar(float32(2), true)
			}, 16, 64, 5*time.Millisecond)
			defer bt.Close()
			row := benchRow().Data().([]float32)
			ctx := context.Background()
			hists := make([]*hdrhistogram.Histogram, callers)
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			begin := time.Now()
			for c := range callers {
				n := b.N / callers
				if c < b.N%callers {
					n++
				}
				h := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
				hists[c] = h
				wg.Go(func() {
					for range n {
						t0 := time.Now()
						if _, err := bt.Call(ctx, row); err != nil {
							b.Error(err)
							return
						}
						_ = h.RecordValue(time.Since(t0).Microseconds())
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(begin)
			b.StopTimer()
			all := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
			for _, h := range hists {
				all.Merge(h)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(all.ValueAtQuantile(50)), "p50-µs")
			b.ReportMetric(float64(all.ValueAtQuantile(99)), "p99-µs")
		})
	}
}

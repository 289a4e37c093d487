package serving

import (
	"context"
	"fmt"
	"testing"
	"time"

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
			driveCallers(b, callers, func() error {
				_, err := bt.Call(ctx, row)
				return err
			})
		})
	}
}

package serving

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
	"github.com/ergonx/ergonx/internal/testnode"
)

// The figures of issue 3, measured against Nx.Serving v0.5 on BEAM on the
// same kind of 2-core machine: x*2 on one 16-float row per request, batch
// size 64, batch timeout 5 ms. Run:
//
//	go test -run '^$' -bench 'BatchedRun|RoundTrip|RawBatchedLoop' -benchmem ./serving
//
// Each reports req/s (or rows/s), p50/p99 latency in µs and the mean batch
// size next to ns/op and allocs/op (per request).

// benchRow returns a 16-float row tensor.
func benchRow() *tensor.Dense {
	xs := make([]float32, 16)
	for i := range xs {
		xs[i] = float32(i)
	}
	return tensor.New(tensor.WithShape(16), tensor.WithBacking(xs))
}

// runCallers runs b.N BatchedRun calls spread over callers goroutines and
// reports throughput, latency percentiles and the mean batch size.
func runCallers(b *testing.B, opts Options, callers int) {
	nd := testnode.Start(b, testnode.Options{})
	opts.Name = "bench"
	if _, err := Start(nd, opts); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = Stop(context.Background(), nd, "bench") })
	ctx := context.Background()
	in := benchRow()

	// Warm up: let the serving allocate its steady state.
	for i := 0; i < 10; i++ {
		bt, _ := batch.Stack(in)
		if _, err := BatchedRun(ctx, nd, "bench", bt); err != nil {
			b.Fatal(err)
		}
	}
	before, _ := GetStats(nd, "bench")
	driveCallers(b, callers, func() error {
		bt, err := batch.Stack(in)
		if err == nil {
			_, err = BatchedRun(ctx, nd, "bench", bt)
		}
		return err
	})
	after, _ := GetStats(nd, "bench")
	if batches := after.Batches - before.Batches; batches > 0 {
		b.ReportMetric(float64(after.Rows-before.Rows)/float64(batches), "rows/batch")
	}
}

// driveCallers runs b.N calls spread over callers goroutines, timing
// each, and reports req/s and the p50 and p99 latencies. The latencies
// go to slices sized before the timer starts, so that the harness
// allocates nothing while it measures (a histogram per caller cost 1 GB
// at 4,096 callers).
func driveCallers(b *testing.B, callers int, call func() error) {
	lat := make([][]int32, callers)
	for c := range lat {
		n := b.N / callers
		if c < b.N%callers {
			n++
		}
		lat[c] = make([]int32, 0, n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for c := range callers {
		wg.Go(func() {
			mine := lat[c]
			for range cap(mine) {
				t0 := time.Now()
				if err := call(); err != nil {
					errs <- err
					return
				}
				mine = append(mine, int32(time.Since(t0).Microseconds()))
			}
			lat[c] = mine
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2]), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100]), "p99-µs")
	}
}

// BenchmarkBatchedRun: many goroutines, one row each per call.
func BenchmarkBatchedRun(b *testing.B) {
	for _, callers := range []int{1, 16, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			runCallers(b, Options{Serving: doubling(), BatchSize: 64, BatchTimeout: 5 * time.Millisecond}, callers)
		})
	}
}

// BenchmarkRoundTripBatchSize1: one caller, batch size 1: the whole cost
// of a call with no waiting for other callers.
func BenchmarkRoundTripBatchSize1(b *testing.B) {
	runCallers(b, Options{Serving: doubling(), BatchSize: 1, BatchTimeout: 5 * time.Millisecond}, 1)
}

// BenchmarkRawBatchedLoop: the same compiled function on ready batches of
// 64 one-row entries (stacked beforehand), called in a loop: the ceiling a
// serving's throughput can approach. One op is one batch.
func BenchmarkRawBatchedLoop(b *testing.B) {
	f, err := compiler.JIT(times2, compiler.Resolve())
	if err != nil {
		b.Fatal(err)
	}
	in := benchRow()
	entries := make([]any, 64)
	for i := range entries {
		entries[i] = in
	}
	ready, err := batch.Stack(entries...)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	begin := time.Now()
	for b.Loop() {
		if _, err := f(ready); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(64*b.N)/time.Since(begin).Seconds(), "rows/s")
}

// BenchmarkBatchedRunPartitions: as BenchmarkBatchedRun with two
// partitions (one per core of the machines this is measured on).
func BenchmarkBatchedRunPartitions(b *testing.B) {
	for _, callers := range []int{256, 1024, 4096} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			runCallers(b, Options{Serving: doubling(), BatchSize: 64, BatchTimeout: 5 * time.Millisecond, Partitions: 2}, callers)
		})
	}
}

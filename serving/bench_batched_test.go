package serving

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
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

	hists := make([]*hdrhistogram.Histogram, callers)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for c := 0; c < callers; c++ {
		n := b.N / callers
		if c < b.N%callers {
			n++
		}
		h := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
		hists[c] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				t0 := time.Now()
				bt, err := batch.Stack(in)
				if err == nil {
					_, err = BatchedRun(ctx, nd, "bench", bt)
				}
				if err != nil {
					errs <- err
					return
				}
				_ = h.RecordValue(time.Since(t0).Microseconds())
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	all := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond), 3)
	for _, h := range hists {
		all.Merge(h)
	}
	after, _ := GetStats(nd, "bench")
	batches := after.Batches - before.Batches
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all.ValueAtQuantile(50)), "p50-µs")
	b.ReportMetric(float64(all.ValueAtQuantile(99)), "p99-µs")
	if batches > 0 {
		b.ReportMetric(float64(after.Rows-before.Rows)/float64(batches), "rows/batch")
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

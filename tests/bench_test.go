package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/pg"
	ergonxcluster "github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/loadgen"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// BenchmarkDistributedBatchedRun: two nodes on loopback in this process,
// the serving on one, the callers on the other; x*2 on one 16-float row
// per request, batch size 64, batch timeout 5 ms. Nx.Serving v0.5 measured
// 37-53k req/s at 256 callers on the same kind of machine. local/ is the
// same load on one node whose serving its callers call locally, for the
// ratio of the two in one run:
//
//	go test -run '^$' -bench DistributedBatchedRun -benchtime 400000x -benchmem ./tests
func BenchmarkDistributedBatchedRun(b *testing.B) {
	for _, callers := range []int{16, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			caller := testnode.Start(b, testnode.Options{})
			server := testnode.Start(b, testnode.Options{})
			if err := ergonxcluster.Start(caller, pg.Options{DiscoveryInterval: 20 * time.Millisecond}); err != nil {
				b.Fatal(err)
			}
			if err := ergonxcluster.Start(server, pg.Options{DiscoveryInterval: 20 * time.Millisecond}); err != nil {
				b.Fatal(err)
			}
			testnode.Mesh(b, caller, server)
			startDoubleForBench(b, server)
			deadline := time.Now().Add(10 * time.Second)
			for pg.Lookup(caller, "").Count("double") == 0 {
				if time.Now().After(deadline) {
					b.Fatal("the serving never appeared in the caller's process group")
				}
				time.Sleep(5 * time.Millisecond) // polling a condition, bounded
			}
			runBenchLoad(b, caller, server, callers, serving.Distributed("double"))
		})
	}
	b.Run("local/callers=256", func(b *testing.B) {
		nd := testnode.Start(b, testnode.Options{})
		startDoubleForBench(b, nd)
		runBenchLoad(b, nd, nd, 256, serving.Local("double"))
	})
}

// startDoubleForBench starts the benchmarks' serving "double" on nd.
func startDoubleForBench(b *testing.B, nd node.Node) {
	b.Helper()
	s := serving.JIT(func(in any) (any, error) { return in.(*tensor.Dense).MulScalar(float32(2), true) })
	if _, err := serving.Start(nd, serving.Options{Name: "double", Serving: s, BatchSize: 64, BatchTimeout: 5 * time.Millisecond}); err != nil {
		b.Fatal(err)
	}
}

// runBenchLoad makes b.N calls of name from caller, spread over callers
// goroutines, each with a fresh one-row batch, and reports throughput,
// latencies and the serving's mean batch size.
func runBenchLoad[T serving.Target](b *testing.B, caller, server node.Node, callers int, name T) {
	b.Helper()
	xs := make([]float32, 16)
	for i := range xs {
		xs[i] = float32(i)
	}
	row := tensor.New(tensor.WithShape(16), tensor.WithBacking(xs))
	b.ReportAllocs()
	b.ResetTimer()
	rep, err := loadgen.Run(context.Background(), loadgen.Options{Callers: callers, Requests: b.N},
		func(ctx context.Context, _ int) error {
			in, err := batch.Stack(row)
			if err != nil {
				return err
			}
			_, err = serving.BatchedRun(ctx, caller, name, in)
			return err
		})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if rep.Errors > 0 {
		b.Fatalf("%d errors, first: %v", rep.Errors, rep.FirstError)
	}
	if st, err := serving.GetStats(server, "double"); err == nil && st.Batches > 0 {
		b.ReportMetric(float64(st.Rows)/float64(st.Batches), "rows/batch")
	}
	b.ReportMetric(rep.Throughput(), "req/s")
	b.ReportMetric(float64(rep.Percentile(50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(rep.Percentile(99).Microseconds()), "p99-µs")
}

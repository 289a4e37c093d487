package tests

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/erltest"
	"github.com/ergonx/ergonx/serving"
)

// Interop throughput, the design's workload (x*2 on a row of 16 floats,
// batch size 64, batch timeout 5 ms, 256 callers), measured for a fixed
// time rather than b.N: run with
//
//	go test ./tests -run '^$' -bench Interop -benchtime 1x
//
// Each reports req/s and the p50 latency in µs. NxToNx is the baseline: an
// Erlang caller node and an Erlang serving node, both running the Nx
// stand-in (testdata/nx), whose serving is simpler than real Nx's (no
// defn, no telemetry), so real Nx would be slower still.

const (
	interopBenchCallers  = 256
	interopBenchDuration = 3 * time.Second
)

// erlBench runs the stand-in's bench on erl against target and reports it.
func erlBench(b *testing.B, erl *erltest.Node, target string) {
	b.Helper()
	res := erl.MustEval(b, fmt.Sprintf("{C, F, L} = 'Elixir.Nx.Serving':bench({distributed, %s}, "+
		"'Elixir.Nx.Serving':tensor([float(X) || X <- lists:seq(1, 16)], {1, 16}), %d, %d), "+
		"{C, F, case L of [] -> 0; _ -> lists:nth(length(L) div 2 + 1, L) end}",
		target, interopBenchCallers, interopBenchDuration.Milliseconds()))
	t := res.(etf.Tuple)
	calls, fails, p50 := toInt(t[0]), toInt(t[1]), toInt(t[2])
	require.Zero(b, fails, "failed calls")
	b.ReportMetric(float64(calls)/interopBenchDuration.Seconds(), "req/s")
	b.ReportMetric(float64(p50), "p50-µs")
}

// newInteropB is newInterop for a benchmark.
func newInteropB(b *testing.B) *interop {
	b.Helper()
	erltest.Require(b)
	ix := &interop{tb: b, epmd: erltest.StartEPMD(b), code: b.TempDir()}
	erltest.Compile(b, ix.code, "testdata/nx/Elixir.Nx.Serving.erl")
	return ix
}

// BenchmarkInteropErlangToGo: 256 Erlang callers (Nx v0.10's protocol) on
// a Go serving.
func BenchmarkInteropErlangToGo(b *testing.B) {
	ix := newInteropB(b)
	nd := ix.goNode()
	_, err := serving.Start(nd, serving.Options{Name: "dbl", Serving: doublerServing(), BatchSize: 64,
		BatchTimeout: 5 * time.Millisecond})
	require.NoError(b, err)
	erl := ix.erlNode("v10")
	ix.connect(erl, nd)
	erlMembers(b, erl, "dbl", 1)
	b.ResetTimer()
	erlBench(b, erl, "dbl")
}

// BenchmarkInteropNxToNx: the same load between two Erlang nodes running
// the Nx stand-in (the serving with 2 partitions, one per core).
func BenchmarkInteropNxToNx(b *testing.B) {
	ix := newInteropB(b)
	server, client := ix.erlNode("v10"), ix.erlNode("v10")
	server.MustEval(b, "{ok, _} = 'Elixir.Nx.Serving':start_serving(edbl, #{batch_size => 64, batch_timeout => 5, partitions => 2, "+
		"client_preprocessing => 'Elixir.Nx.Serving':plain_tensor_preprocessing()})")
	require.Equal(b, true, client.MustEval(b, fmt.Sprintf("net_kernel:connect_node(%s)", erltest.Atom(server.Name))))
	erlMembers(b, client, "edbl", 2)
	b.ResetTimer()
	erlBench(b, client, "edbl")
}

// BenchmarkInteropGoToErlang: 256 Go callers (serving.BatchedRun through
// Nx's protocol) on a serving of an Erlang node running the stand-in.
func BenchmarkInteropGoToErlang(b *testing.B) {
	ix := newInteropB(b)
	nd := ix.goNode()
	erl := ix.erlNode("v10")
	erl.MustEval(b, "{ok, _} = 'Elixir.Nx.Serving':start_serving(edbl, #{batch_size => 64, batch_timeout => 5, partitions => 2, "+
		"client_preprocessing => 'Elixir.Nx.Serving':plain_tensor_preprocessing()})")
	require.NoError(b, nd.Connect(erl.Name))
	waitMembers(b, "edbl", 2, nd)

	in := tensor.New(tensor.WithShape(1, 16), tensor.WithBacking(seq(1, 16, false)))
	var calls, fails atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), interopBenchDuration)
	defer cancel()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range interopBenchCallers {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil {
				bt, _ := batch.Concatenate(in)
				start := time.Now()
				_, err := serving.BatchedRun(context.Background(), nd, serving.Distributed("edbl"), bt)
				if err != nil {
					fails.Add(1)
					continue
				}
				calls.Add(1)
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Zero(b, fails.Load(), "failed calls")
	slices.Sort(lat)
	b.ReportMetric(float64(calls.Load())/interopBenchDuration.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}

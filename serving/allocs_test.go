package serving

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// The batched path costs at most 3 allocations and 400 bytes per request
// (issue 14): BatchedRun on a serving of batch size 64 by 64 callers at
// once, one row each (x*2 on 16 floats), measured over whole batches,
// minus what the computation itself allocates per row when run in a loop
// on ready batches (its input and output tensors: the raw batched loop,
// BenchmarkRawBatchedLoop). The callers' own batch.Stack is made
// beforehand. What is left is the serving's cost: lookup, submit, the
// batch's bookkeeping, the wait and each caller's rows (a *tensor.Dense:
// 288 of the bytes). It fails if a change makes calls allocate more.
func TestBatchedPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	h, err := Start(nil, Options{Name: t.Name(), Serving: doubling(), BatchSize: 64, BatchTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Stop(context.Background()) }()

	const callers, rounds = 64, 200 // many rounds: stray allocations of the runtime weigh little
	in := make([][]*batch.Batch, callers)
	for c := range in {
		for range rounds + 2 {
			b, err := batch.Stack(benchRow())
			if err != nil {
				t.Fatal(err)
			}
			in[c] = append(in[c], b)
		}
	}
	// Persistent callers, driven round by round: starting goroutines
	// would count too.
	start := make([]chan int, callers)
	var done sync.WaitGroup
	var failed error
	var mu sync.Mutex
	for c := range callers {
		start[c] = make(chan int)
		go func() {
			for round := range start[c] {
				if _, err := BatchedRun(context.Background(), nil, t.Name(), in[c][round]); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
				done.Done()
			}
		}()
	}
	defer func() {
		for c := range start {
			close(start[c])
		}
	}()
	round := 0
	batchOf64 := func() {
		done.Add(callers)
		for c := range start {
			start[c] <- round
		}
		done.Wait()
		round++
	}
	batchOf64() // warm up: prototypes, pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs := testing.AllocsPerRun(rounds, batchOf64) / callers
	runtime.ReadMemStats(&after)
	if failed != nil {
		t.Fatal(failed)
	}
	bytes := float64(after.TotalAlloc-before.TotalAlloc) / float64((rounds+1)*callers)
	rawAllocs, rawBytes := rawLoopCostPerRow(t)
	t.Logf("%.2f allocations and %.0f bytes per request, of which the computation's own %.2f and %.0f",
		allocs, bytes, rawAllocs, rawBytes)
	allocs -= rawAllocs
	bytes -= rawBytes
	if allocs > 3 || bytes > 400 {
		t.Errorf("%.2f allocations and %.0f bytes per request on the batched path; at most 3 and 400", allocs, bytes)
	}
}

// rawLoopCostPerRow is what the serving's computation allocates per row
// when run on ready batches of 64 rows, as BenchmarkRawBatchedLoop runs it.
func rawLoopCostPerRow(t *testing.T) (allocs, bytes float64) {
	f, err := compiler.JIT(times2, compiler.Resolve())
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 50
	ready := make([]*batch.Batch, rounds+1)
	for i := range ready {
		entries := make([]any, 64)
		for j := range entries {
			entries[j] = benchRow()
		}
		if ready[i], err = batch.Stack(entries...); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	run := func() {
		if _, err := f(ready[i]); err != nil {
			t.Fatal(err)
		}
		i++
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs = testing.AllocsPerRun(rounds, run) / 64
	runtime.ReadMemStats(&after)
	return allocs, float64(after.TotalAlloc-before.TotalAlloc) / float64((rounds+1)*64)
}

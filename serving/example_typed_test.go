package serving_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
	"github.com/ergonx/ergonx/serving"
)

// A typed serving without a node: a dense layer over []float32 rows.
// Callers send one row and get one row; the serving batches them.
func ExampleNewBatchFunc() {
	w := [][]float32{{1, 0}, {0, 1}, {1, 1}} // 3 inputs → 2 outputs
	dense := serving.NewBatchFunc(func(_ context.Context, rows [][]float32) ([][]float32, error) {
		out := make([][]float32, len(rows))
		for i, x := range rows {
			y := make([]float32, 2)
			for k, xk := range x {
				y[0] += xk * w[k][0]
				y[1] += xk * w[k][1]
			}
			out[i] = y
		}
		return out, nil
	})

	h, err := serving.Start(nil, serving.Options{ // nil: no node, no network
		Name: "dense", Serving: dense.Serving(), BatchSize: 64, BatchTimeout: 5 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	defer h.Stop(context.Background())

	client := dense.Client(h) // or serving.NewClient[[]float32, []float32](nil, "dense")
	var wg sync.WaitGroup
	results := make([][]float32, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			y, err := client.Call(context.Background(), []float32{float32(i), 1, 2})
			if err != nil {
				panic(err)
			}
			results[i] = y
		}()
	}
	wg.Wait()
	fmt.Println(results)
	// Output:
	// [[2 3] [3 3] [4 3]]
}

// Start without a node; the handle stops the serving, and callers of a
// stopped serving get ErrNoProc.
func ExampleHandle_Stop() {
	h, err := serving.Start(nil, serving.Options{Name: "stopped", Serving: serving.JIT(double)})
	if err != nil {
		panic(err)
	}
	fmt.Println(h.Name(), h.Node() == nil)
	if err := h.Stop(context.Background()); err != nil {
		panic(err)
	}
	<-h.Done()
	rows, _ := batch.Stack(row(1))
	_, err = serving.BatchedRun(context.Background(), nil, "stopped", rows)
	fmt.Println(errors.Is(err, serving.ErrNoProc))
	// Output:
	// stopped true
	// true
}

// Stats reports a serving's configuration, what waits in it and what it
// did.
func ExampleHandle_Stats() {
	h, err := serving.Start(nil, serving.Options{
		Name: "stats", Serving: serving.JIT(double), BatchSize: 4, Partitions: 2,
	})
	if err != nil {
		panic(err)
	}
	defer h.Stop(context.Background())
	rows, _ := batch.Concatenate(tensor.New(tensor.WithShape(4, 1), tensor.WithBacking([]float32{1, 2, 3, 4})))
	if _, err := h.BatchedRun(context.Background(), rows); err != nil {
		panic(err)
	}
	st, err := h.Stats()
	if err != nil {
		panic(err)
	}
	fmt.Println("batch size", st.BatchSize, "timeout", st.BatchTimeout, "partitions", st.Partitions)
	fmt.Println("requests", st.Requests, "waiting rows", st.StackedRows+st.QueuedRows)
	// Output:
	// batch size 4 timeout 100ms partitions 2
	// requests 1 waiting rows 0
}

// countingModule is a Module of its own: Init prepares a state per
// partition, HandleBatch returns the function that runs the batch.
type countingModule struct{}

func (countingModule) Init(kind serving.Kind, arg any, partitions []compiler.Options) (any, error) {
	return fmt.Sprintf("%s serving, %d partition(s), scale %v", kind, len(partitions), arg), nil
}

func (countingModule) HandleBatch(b *batch.Batch, partition int, state any) (serving.ExecFunc, any, error) {
	return func() (any, any, error) {
		in, err := b.Materialize()
		if err != nil {
			return nil, nil, err
		}
		out, err := in.(*tensor.Dense).MulScalar(float32(10), true)
		return out, state, err // the state as the execution's metadata
	}, state, nil
}

// NewModule serves a Module of your own (Nx's module-based serving).
func ExampleNewModule() {
	s := serving.NewModule(countingModule{}, 10).
		ClientPostprocessing(func(out, metadata, _ any) (any, error) {
			return fmt.Sprint(out.(*tensor.Dense).Data(), " from ", metadata), nil
		})
	rows, _ := batch.Stack(row(1, 2))
	res, err := serving.Run(context.Background(), s, rows)
	if err != nil {
		panic(err)
	}
	fmt.Println(res)
	// Output:
	// [10 20] from inline serving, 1 partition(s), scale 10
}

// Telemetry handlers see Nx's events, and, for serving processes, the
// measurements of each batch.
func ExampleAttachTelemetry() {
	batches := make(chan serving.BatchStats, 1)
	err := serving.AttachTelemetry("example", func(ev serving.Event) {
		if ev.Batch != nil && ev.Batch.Serving == "observed" {
			batches <- *ev.Batch
		}
	}, serving.ExecuteStop)
	if err != nil {
		panic(err)
	}
	defer serving.DetachTelemetry("example")

	h, err := serving.Start(nil, serving.Options{Name: "observed", Serving: serving.JIT(double), BatchSize: 2})
	if err != nil {
		panic(err)
	}
	defer h.Stop(context.Background())
	rows, _ := batch.Stack(row(1), row(2))
	if _, err := h.BatchedRun(context.Background(), rows); err != nil {
		panic(err)
	}
	b := <-batches
	fmt.Println(b.Serving, "ran", b.Size, "rows on partition", b.Partition, "with key", b.Key)
	// Output:
	// observed ran 2 rows on partition 0 with key default
}

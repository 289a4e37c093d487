package serving_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/node"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/serving"
)

// double is x*2 on float32 tensors.
func double(in any) (any, error) {
	return in.(*tensor.Dense).MulScalar(float32(2), true)
}

func row(xs ...float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(xs)), tensor.WithBacking(xs))
}

// Run executes a serving inline, in the calling goroutine.
func ExampleRun() {
	rows, _ := batch.Stack(row(1, 2, 3))
	out, err := serving.Run(context.Background(), serving.JIT(double), rows)
	if err != nil {
		panic(err)
	}
	fmt.Println(out.(*tensor.Dense).Shape(), out.(*tensor.Dense).Data())
	// Output:
	// (1, 3) [2 4 6]
}

// Client pre- and postprocessing turn inputs into batches and rows into
// results.
func ExampleServing_ClientPreprocessing() {
	s := serving.JIT(double).
		ClientPreprocessing(func(in any) (*batch.Batch, any, error) {
			b, err := batch.Stack(row(in.([]float32)...))
			return b, "client info", err
		}).
		ClientPostprocessing(func(out, metadata, info any) (any, error) {
			return fmt.Sprintf("%v (%v, %v)", out.(*tensor.Dense).Data(), metadata, info), nil
		})
	res, err := serving.Run(context.Background(), s, []float32{5, 6})
	if err != nil {
		panic(err)
	}
	fmt.Println(res)
	// Output:
	// [10 12] (server_info, client info)
}

// A serving process batches the rows of concurrent callers.
func ExampleBatchedRun() {
	nd, err := actors.StartNode("example@localhost", "cookie", node.Options{
		Registrar: actors.NewStaticRegistrar(), // no EPMD needed on one node
		Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
	})
	if err != nil {
		panic(err)
	}
	defer func() { nd.Stop(); nd.Wait() }()

	_, err = serving.Start(nd, serving.Options{
		Name:         "double",
		Serving:      serving.JIT(double),
		BatchSize:    4,
		BatchTimeout: 10 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	defer serving.Stop(context.Background(), nd, "double")

	results := make(chan string, 2)
	for _, x := range []float32{1, 10} {
		go func() {
			b, _ := batch.Stack(row(x, x+1))
			out, err := serving.BatchedRun(context.Background(), nd, "double", b)
			if err != nil {
				results <- err.Error()
				return
			}
			results <- fmt.Sprint(out.(*tensor.Dense).Data())
		}()
	}
	a, b := <-results, <-results
	if a > b {
		a, b = b, a
	}
	fmt.Println(a, b)

	_, err = serving.BatchedRun(context.Background(), nd, "nobody", batch.New())
	fmt.Println(errors.Is(err, serving.ErrNoProc))
	// Output:
	// [2 4] [20 22]
	// true
}

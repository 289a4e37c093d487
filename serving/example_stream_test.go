package serving_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/node"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
	"github.com/ergonx/ergonx/serving"
)

// exampleNode starts a node on loopback (no EPMD); stop it with the
// returned function.
func exampleNode(name string) (node.Node, func()) {
	nd, err := actors.StartNode(name+"@localhost", "cookie", node.Options{
		Registrar: actors.NewStaticRegistrar(),
		Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
	})
	if err != nil {
		panic(err)
	}
	return nd, func() { nd.Stop(); nd.Wait() }
}

// Batch keys keep batches of different shapes apart, each key with a
// function compiled for it: here one per sequence length.
func ExampleNewKeyed() {
	nd, stop := exampleNode("keys")
	defer stop()

	s := serving.NewKeyed(func(key string, o compiler.Options) (compiler.Func, error) {
		// A real model would compile for the key's shape ahead of time.
		scale := map[string]float32{"len2": 10, "len3": 100}[key]
		return compiler.JIT(func(in any) (any, error) { return in.(*tensor.Dense).MulScalar(scale, true) }, o)
	})
	_, err := serving.Start(nd, serving.Options{
		Name:         "scale",
		Serving:      s,
		BatchSize:    8,
		BatchTimeout: time.Millisecond,
		BatchKeys:    []string{"len2", "len3"},
	})
	if err != nil {
		panic(err)
	}
	defer serving.Stop(context.Background(), nd, "scale")

	for _, seq := range [][]float32{{1, 2}, {1, 2, 3}} {
		b, _ := batch.Stack(row(seq...))
		b.SetKey(fmt.Sprintf("len%d", len(seq)))
		out, err := serving.BatchedRun(context.Background(), nd, "scale", b)
		if err != nil {
			panic(err)
		}
		fmt.Println(b.Key(), out.(*tensor.Dense).Data())
	}
	// Output:
	// len2 [10 20]
	// len3 [100 200 300]
}

// Streaming with hooks: the computation emits intermediate values, and
// each caller receives its own rows of them, in order, before its rows of
// the result (Nx's streaming(hooks: [...])).
func ExampleStream() {
	nd, stop := exampleNode("hooks")
	defer stop()

	s := serving.New(func(o compiler.Options) (compiler.Func, error) {
		return compiler.JIT(func(in any) (any, error) {
			x := in.(*tensor.Dense)
			for step := 1; step <= 2; step++ {
				var err error
				if x, err = x.AddScalar(float32(1), true); err != nil {
					return nil, err
				}
				o.Hook("step")(x) // e.g. a token of a text generation
			}
			return x.MulScalar(float32(10), true)
		}, o)
	}).Streaming("step")
	_, err := serving.Start(nd, serving.Options{Name: "gen", Serving: s, BatchSize: 4})
	if err != nil {
		panic(err)
	}
	defer serving.Stop(context.Background(), nd, "gen")

	b, _ := batch.Stack(row(0, 1))
	for ev, err := range serving.Stream(context.Background(), nd, "gen", b) {
		if err != nil {
			panic(err)
		}
		if ev.Hook != "" {
			fmt.Println(ev.Hook, ev.Value.(*tensor.Dense).Data())
			continue
		}
		fmt.Println("batch", ev.Value.(*tensor.Dense).Data(), ev.Metadata)
	}
	// Output:
	// step [1 2]
	// step [2 3]
	// batch [20 30] server_info
}

// An input stream (Go's iterator, or a channel of batches) is batched
// chunk by chunk as it is produced, with no more than a window of its
// batches in the serving at once; BatchedRun concatenates the results.
func ExampleBatchStream() {
	nd, stop := exampleNode("input")
	defer stop()

	_, err := serving.Start(nd, serving.Options{Name: "double", Serving: serving.JIT(double), BatchSize: 2})
	if err != nil {
		panic(err)
	}
	defer serving.Stop(context.Background(), nd, "double")

	chunks := serving.BatchStream(func(yield func(*batch.Batch, error) bool) {
		for _, chunk := range [][]float32{{1, 2}, {3, 4}, {5}} {
			b, err := batch.Concatenate(row(chunk...)) // e.g. audio as it is recorded
			if !yield(b, err) {
				return
			}
		}
	})
	out, err := serving.BatchedRun(context.Background(), nd, "double", chunks, serving.InputWindow(2))
	if err != nil {
		panic(err)
	}
	fmt.Println(out.(*tensor.Dense).Data())
	// Output:
	// [2 4 6 8 10]
}

// RunStream and a batch size: Run splits an input larger than the batch
// size into executions (Nx's batch_size/2); RunStream yields each one's
// rows as it finishes.
func ExampleRunStream() {
	s := serving.JIT(double).BatchSize(2)
	b, _ := batch.Concatenate(row(1, 2, 3, 4, 5))
	for ev, err := range serving.RunStream(context.Background(), s, b) {
		if err != nil {
			panic(err)
		}
		fmt.Println(ev.Value.(*tensor.Dense).Data())
	}
	out, _ := serving.Run(context.Background(), s, b)
	fmt.Println(out.(*tensor.Dense).Data())
	// Output:
	// [2 4]
	// [6 8]
	// [10]
	// [2 4 6 8 10]
}

package cluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/serving"
)

// Two nodes of a cluster: a typed serving on one, called from the other
// by name. Each node is one call; in production, leave Registrar unset
// (EPMD on loopback, ERL_EPMD_PORT honoured) and Scope at its defaults.
func ExampleStartNode() {
	registrar := actors.NewStaticRegistrar() // nodes of this process find each other without EPMD
	options := cluster.Options{
		Cookie: "secret",
		Node: node.Options{
			Registrar: registrar,
			Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
		},
		// Nodes of one process see each other's groups sooner with a
		// short scan (processes on several machines are told at once).
		Scope: pg.Options{DiscoveryInterval: 20 * time.Millisecond},
	}
	a, err := cluster.StartNode("example_a@localhost", options)
	if err != nil {
		panic(err)
	}
	defer func() { a.Stop(); a.Wait() }()
	b, err := cluster.StartNode("example_b@localhost", options)
	if err != nil {
		panic(err)
	}
	defer func() { b.Stop(); b.Wait() }()

	double := serving.NewBatchFunc(func(_ context.Context, rows [][]float32) ([][]float32, error) {
		out := make([][]float32, len(rows))
		for i, r := range rows {
			out[i] = []float32{2 * r[0], 2 * r[1]}
		}
		return out, nil
	})
	h, err := serving.Start(a, serving.Options{Name: "double", Serving: double.Serving(), BatchSize: 16, BatchTimeout: time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer h.Stop(context.Background())

	// Connect b to a, and wait until b's process groups list the serving.
	members, joined, cancel := pg.Lookup(b, "").Monitor("double")
	defer cancel()
	if err := b.Connect(a.Name()); err != nil {
		panic(err)
	}
	if len(members) == 0 {
		<-joined
	}

	client := serving.NewClient[[]float32, []float32](b, "double") // not on b: found on a
	out, err := client.Call(context.Background(), []float32{1, 2})
	if err != nil {
		panic(err)
	}
	fmt.Println(out)
	// Output:
	// [2 4]
}

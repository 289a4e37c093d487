package erldist_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/internal/erldist"
)

// A process stops with a term as its exit reason; whoever watches it, on
// this node or another, reads the same term back.
func ExampleTermReason() {
	reason, err := erldist.TermReason(etf.Tuple{etf.Atom("result"), []byte{1, 2, 3}})
	if err != nil {
		panic(err)
	}
	// A behaviour returns reason from its loop (or gen.ServerStatusStopWithReason(reason)),
	// and a watcher gets it in gen.MessageDown.Reason:
	fmt.Println(erldist.ReasonTerm(reason))
	fmt.Println(erldist.ReasonTerm("noproc"))
	// Output:
	// [result [1 2 3]]
	// noproc
}

// Go code that is not a process spawns a function on an Erlang node and
// reads its exit reason, as erlang:spawn_monitor/4 would.
func ExampleSpawnMonitor() {
	var from gen.Process // any process of this node, e.g. a bridge process
	if from == nil {
		return // needs a running node and an Erlang peer
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := erldist.SpawnMonitor(ctx, from, "nx@localhost", "Elixir.Nx.Serving", "__distributed_batched_run__",
		[]etf.Term{from.MakeRef(), etf.Atom("Elixir.MyServing"), []byte("input")})
	if err != nil {
		panic(err)
	}
	defer s.Cancel()
	if r := <-s.Reply(); r.Err != nil {
		fmt.Println("refused:", r.Err)
	}
	select {
	case reason := <-s.Down():
		fmt.Println("exited with", reason) // {Ref, Result} for Nx
	case <-ctx.Done():
	}
}

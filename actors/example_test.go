package actors_test

import (
	"fmt"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
)

// A node with ergonx's Erlang distribution and Erlang manners: Erlang and
// Elixir nodes can ping it, call its processes with gen_server:call and
// spawn on it; no anonymous metrics leave it.
func ExampleStartNode() {
	nd, err := actors.StartNode("example@localhost", "cookie", node.Options{
		Registrar: actors.NewStaticRegistrar(), // or none: an EPMD client (and server) on port 4369
		Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
	})
	if err != nil {
		panic(err)
	}
	defer func() { nd.Stop(); nd.Wait() }()
	fmt.Println(nd.Name())
	fmt.Println(nd.ProcessByName(actors.NetKernelName) != nil, nd.ProcessByName(actors.RexName) != nil)
	// Output:
	// example@localhost
	// true true
}

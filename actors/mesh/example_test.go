package mesh_test

import (
	"fmt"
	"slices"
	"time"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/mesh"
)

// startNode stands for a node started the usual way, with
// ergo.StartNode(name, cookie, actors.NodeOptions(opts)).
func startNode() node.Node { return mesh.LendNode() }

// Every node runs a mesh (the cluster application starts one). A
// connection that drops is made again, without anyone calling Connect.
func Example() {
	a, b := startNode(), startNode()
	ma, _ := mesh.Start(a, mesh.Options{})
	defer ma.Stop()
	mb, _ := mesh.Start(b, mesh.Options{})
	defer mb.Stop()

	_ = a.Connect(b.Name())
	waitUntil(func() bool { return len(ma.Peers()) == 1 && ma.Peers()[0].Connected })
	fmt.Println("a knows b:", ma.Peers()[0].Node == b.Name())

	_ = a.Disconnect(b.Name())
	waitUntil(func() bool { return !slices.Contains(a.Nodes(), b.Name()) })
	fmt.Println("disconnected")
	waitUntil(func() bool { return slices.Contains(a.Nodes(), b.Name()) })
	fmt.Println("connected again")
	// Output:
	// a knows b: true
	// disconnected
	// connected again
}

func waitUntil(cond func() bool) {
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			panic("timed out")
		}
	}
}

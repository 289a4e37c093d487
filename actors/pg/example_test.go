package pg_test

import (
	"fmt"

	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/pg"
)

// startNode stands for a node started the usual way, with
// actors.StartNode(name, cookie, opts).
func startNode() node.Node { return pg.LendNode() }

// A serving with two partitions joins the group of its name twice; callers
// pick a member weighted by those joins, and a watcher sees it go.
func Example() {
	nd := startNode()
	scope, err := pg.Start(nd, pg.Options{}) // registered as pg.DefaultScope
	if err != nil {
		panic(err)
	}
	defer scope.Stop()

	serving, _ := nd.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	if err := scope.Join("Elixir.MyServing", serving.Self(), serving.Self()); err != nil {
		panic(err)
	}
	fmt.Println("entries:", scope.Count("Elixir.MyServing"))

	// Every request picks a member; no message to the scope is involved.
	if pid, ok := scope.RandomMember("Elixir.MyServing"); ok {
		fmt.Println("picked the serving:", pid == serving.Self())
	}

	members, events, cancel := scope.Monitor("Elixir.MyServing")
	defer cancel()
	fmt.Println("watching", len(members), "entries")
	serving.Kill() // a dead member leaves all its groups, here and on peers
	ev := <-events
	fmt.Println(ev.Kind, ev.Group, len(ev.Pids))
	fmt.Println("groups left:", scope.Groups())
	// Output:
	// entries: 2
	// picked the serving: true
	// watching 2 entries
	// left Elixir.MyServing 2
	// groups left: []
}

// Scopes of the same name on connected nodes share their members: a join
// on one node, and a member's death, reach the others.
func ExampleScope_Members() {
	a, b := startNode(), startNode()
	// The scopes run as long as their nodes.
	sa, _ := pg.Start(a, pg.Options{Name: "example.scope"})
	sb, _ := pg.Start(b, pg.Options{Name: "example.scope"})

	_, events, cancel := sb.Monitor("workers")
	defer cancel()
	if err := a.Connect(b.Name()); err != nil { // discover → sync both ways
		panic(err)
	}
	worker, _ := a.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	_ = sa.Join("workers", worker.Self(), worker.Self())

	ev := <-events // b learns of the join
	fmt.Println(ev.Kind, len(ev.Pids), ev.Pids[0] == worker.Self())
	fmt.Println("on b:", len(sb.Members("workers")), "of which local:", len(sb.LocalMembers("workers")))

	worker.Kill() // a's scope tells b
	ev = <-events
	fmt.Println(ev.Kind, len(ev.Pids), "; left on b:", len(sb.Members("workers")))
	// Output:
	// joined 2 true
	// on b: 2 of which local: 0
	// left 2 ; left on b: 0
}

// A caller whose request to a member got noproc, or no answer, reports it
// with Suspect: the member is hidden on this node at once, and shown again
// only if its own node still announces it when asked.
func ExampleScope_Suspect() {
	a, b := startNode(), startNode()
	sa, _ := pg.Start(a, pg.Options{Name: "suspect.scope"})
	sb, _ := pg.Start(b, pg.Options{Name: "suspect.scope"})
	_, events, cancel := sa.Monitor("servings")
	defer cancel()
	if err := a.Connect(b.Name()); err != nil {
		panic(err)
	}
	member, _ := b.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	_ = sb.Join("servings", member.Self())
	fmt.Println((<-events).Kind) // a sees the member

	_ = sa.Suspect(member.Self()) // hidden on a when it returns
	ev := <-events
	fmt.Println(ev.Kind, len(ev.Pids), "; suspected:", sa.Stats().Suspected)

	// b's scope answers the probe and still lists the member: back.
	ev = <-events
	fmt.Println(ev.Kind, len(ev.Pids), "; restored:", sa.Stats().Restored)
	// Output:
	// joined
	// left 1 ; suspected: 1
	// joined 1 ; restored: 1
}

// Package cluster is the ergo application every ergonx node of a cluster
// runs: the process-group scope where servings announce themselves to the
// cluster (named like Nx's Nx.Serving.PG, so that Elixir nodes can share
// it), the mesh that keeps the node connected to every node of its
// cluster and reconnects to those that restart (actors/mesh), and the
// serving endpoint through which servings on other nodes are called and
// this node's servings are called from elsewhere.
//
// StartNode starts a node with it in one call; Start adds it to a node you
// started yourself (actors.StartNode), and App returns it for your own
// application list. A program that serves within one process needs none
// of this: serving.Start(nil, ...) runs a serving without a node.
//
// Nodes find each other through EPMD. StartNode's default registrar is an
// EPMD client that starts an EPMD embedded in the process when none runs,
// listening on loopback only (actors.EPMDRegistrar; ERL_EPMD_PORT moves
// it): set Options.Node.Registrar to actors.EPMDRegistrar("0.0.0.0") for
// a cluster across machines.
package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/mesh"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/serving"
	"github.com/ergonx/ergonx/supervisor"
)

// Name is the application's name on the node.
const Name = "ergonx_cluster"

// SupervisorName is the registered name of the application's supervisor.
const SupervisorName = "ergonx_cluster_sup"

// app is the ergo application behaviour.
type app struct {
	gen.Application
	nd    node.Node
	scope pg.Options
}

// App returns the cluster application for nd. Load and start it with
// nd.ApplicationLoad and nd.ApplicationStartPermanent (StartNode does).
func App(nd node.Node, scope pg.Options) gen.ApplicationBehavior {
	return &app{nd: nd, scope: scope}
}

// Load describes the application: one child, a supervisor (one-for-one,
// a few restarts) of the scope, the mesh (which learns of nodes from the
// scope's groups) and the endpoint.
func (a *app) Load(...etf.Term) (gen.ApplicationSpec, error) {
	scope, err := pg.ChildSpec(a.nd, a.scope)
	if err != nil {
		return gen.ApplicationSpec{}, err
	}
	meshOpts := mesh.Options{Scope: scope.Name}
	meshSpec, err := mesh.ChildSpec(a.nd, meshOpts)
	if err != nil {
		return gen.ApplicationSpec{}, err
	}
	endpoint := serving.EndpointChildSpec()
	spec := supervisor.Spec{
		Strategy:    supervisor.OneForOne,
		MaxRestarts: 3,
		Period:      5 * time.Second,
		Children: []supervisor.ChildSpec{
			{
				Name: scope.Name,
				// A fresh behaviour for every (re)start.
				Start: func() gen.ProcessBehavior {
					cs, _ := pg.ChildSpec(a.nd, a.scope) // validated above
					return cs.Child
				},
				Options: scope.Options,
			},
			{
				Name: meshSpec.Name,
				Start: func() gen.ProcessBehavior {
					cs, _ := mesh.ChildSpec(a.nd, meshOpts) // validated above
					return cs.Child
				},
				Options: meshSpec.Options,
			},
			{
				Name:    endpoint.Name,
				Start:   func() gen.ProcessBehavior { return serving.EndpointChildSpec().Child },
				Options: endpoint.Options,
			},
		},
	}
	sup := spec.ChildSpec(SupervisorName)
	return gen.ApplicationSpec{
		Name:        Name,
		Description: "ergonx cluster: process groups, the mesh and the serving endpoint",
		Version:     "v1",
		Children:    []gen.ApplicationChildSpec{{Name: sup.Name, Child: sup.Child, Options: sup.Options}},
	}, nil
}

// Start is called once the application's children run: it lets Nx
// callers on Erlang and Elixir nodes spawn requests on this node's
// servings (see serving.ProvideNxProtocol). A restarted application finds
// the behaviour registered already.
func (a *app) Start(gen.Process, ...etf.Term) {
	if err := serving.ProvideNxProtocol(a.nd); err != nil && !errors.Is(err, lib.ErrTaken) {
		slog.Error("cluster: Nx callers cannot reach this node's servings", "node", a.nd.Name(), "error", err)
	}
}

// Options start a node with StartNode.
type Options struct {
	// Cookie is the cluster's shared secret. Required.
	Cookie string
	// Node is the base ergo options (listeners, TLS, registrar...).
	// The node is started with actors.StartNode: anonymous metrics are
	// off, the distribution is ergonx's erldist (per-pair message order,
	// term exit reasons, OTP 25 interop) and Erlang nodes get pong.
	Node node.Options
	// Scope configures the process-group scope (default name
	// pg.DefaultScope).
	Scope pg.Options
}

// StartNode starts an ergo node named name ("name@host") with the cluster
// application. Stop it with Stop() and Wait() on the node.
func StartNode(name string, o Options) (node.Node, error) {
	if o.Cookie == "" {
		return nil, fmt.Errorf("cluster: start node %s: a cookie is required", name)
	}
	nd, err := actors.StartNode(name, o.Cookie, o.Node)
	if err != nil {
		return nil, fmt.Errorf("cluster: start node %s: %w", name, err)
	}
	if err := Start(nd, o.Scope); err != nil {
		nd.Stop()
		return nil, err
	}
	return nd, nil
}

// Start loads and starts the cluster application on a running node.
func Start(nd node.Node, scope pg.Options) error {
	if _, err := nd.ApplicationLoad(App(nd, scope)); err != nil {
		return fmt.Errorf("cluster: load on %s: %w", nd.Name(), err)
	}
	if _, err := nd.ApplicationStartPermanent(Name); err != nil {
		return fmt.Errorf("cluster: start on %s: %w", nd.Name(), err)
	}
	return nil
}

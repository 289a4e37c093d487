package main

import (
	"fmt"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/apps/cluster"
)

// The commands start their nodes here, so that a change in the runtime
// application's package changes this file only.

// startLocalNode starts a node that listens on loopback only and needs no
// EPMD: for commands that serve within one process. withRuntime adds the
// cluster application (process groups and the serving endpoint).
func startLocalNode(name string, withRuntime bool) (node.Node, error) {
	nd, err := actors.StartNode(name+"@localhost", "ergonx-local", node.Options{
		Registrar: actors.NewStaticRegistrar(),
		Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 15000, ListenEnd: 65000}},
	})
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", name, err)
	}
	if withRuntime {
		if err := cluster.Start(nd, pg.Options{}); err != nil {
			nd.Stop()
			return nil, err
		}
	}
	return nd, nil
}

// startClusterNode starts a named node with the cluster application, to
// join a cluster: base holds its listeners and registrar.
func startClusterNode(name, cookie string, base node.Options) (node.Node, error) {
	return cluster.StartNode(name, cluster.Options{Cookie: cookie, Node: base})
}

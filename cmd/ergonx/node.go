package main

import (
	"fmt"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
)

// startLocalNode starts a node that listens on loopback only and needs no
// EPMD: for commands that serve within one process.
func startLocalNode(name string) (node.Node, error) {
	nd, err := actors.StartNode(name+"@localhost", "ergonx-local", node.Options{
		Registrar: actors.NewStaticRegistrar(),
		Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 15000, ListenEnd: 65000}},
	})
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", name, err)
	}
	return nd, nil
}

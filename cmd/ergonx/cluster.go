package main

import (
	"fmt"
	"io"

	"github.com/ergo-services/ergo/node"
	"github.com/spf13/pflag"

	"github.com/ergonx/ergonx/actors"
)

// clusterOptions are the flags that make a command's node part of a
// cluster: `ergonx node` and `ergonx serve --name`.
type clusterOptions struct {
	name    string
	cookie  string
	port    uint16
	connect []string
	peers   []string // name@host=ip:port, for clusters without EPMD
}

// clusterFlags adds the cluster flags; portFlag names the flag of the
// node's listening port ("listen" for node, whose HTTP-free --listen it
// is; "node-port" for serve, whose --listen is HTTP's).
func clusterFlags(f *pflag.FlagSet, c *clusterOptions, defaultName, portFlag string) {
	f.StringVar(&c.name, "name", defaultName, "node name (name@host)")
	f.StringVar(&c.cookie, "cookie", "ergonx", "cluster cookie (the same on every node)")
	f.Uint16Var(&c.port, portFlag, 0, "the node's listening port (0: the first free one from 15000)")
	f.StringSliceVar(&c.connect, "connect", nil, "nodes to connect to (name@host, comma-separated), resolved through EPMD or --peer")
	f.StringSliceVar(&c.peers, "peer", nil, "static routes name@host=ip:port: nodes found without EPMD (repeat the flag or separate by commas)")
}

// validate checks the flags.
func (c clusterOptions) validate() error {
	var ch checks
	ch.add(checkNodeName("name", c.name))
	if c.cookie == "" {
		ch.add(usagef("--cookie \"\": a cluster needs a cookie, the same on every node"))
	}
	for _, n := range c.connect {
		ch.add(checkNodeName("connect", n))
	}
	for _, p := range c.peers {
		_, err := parsePeer(p)
		ch.add(err)
	}
	return ch.first()
}

// start starts the node with the cluster application.
func (c clusterOptions) start() (node.Node, error) {
	base := node.Options{}
	if c.port != 0 {
		base.Listeners = []node.Listener{{Listen: c.port}}
	}
	if len(c.peers) > 0 {
		reg := actors.NewStaticRegistrar()
		for _, s := range c.peers {
			p, err := parsePeer(s)
			if err != nil {
				return nil, err
			}
			reg.Add(p.name, p.host, p.port)
		}
		base.Registrar = reg
	}
	return startClusterNode(c.name, c.cookie, base)
}

// join connects nd to the --connect nodes, saying so on out.
func (c clusterOptions) join(out io.Writer, nd node.Node) error {
	for _, peer := range c.connect {
		if err := nd.Connect(peer); err != nil {
			return fmt.Errorf("connect to %s: %w (is it running, with the same cookie?)", peer, err)
		}
		fmt.Fprintf(out, "connected to %s\n", peer)
	}
	return nil
}

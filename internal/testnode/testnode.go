// Package testnode starts ergo nodes for ergonx's tests: each node has a
// unique name, listens on a free loopback port, needs no EPMD (the nodes of
// one test binary resolve each other through one actors.StaticRegistrar, so
// parallel test binaries never share an EPMD daemon) and is stopped when the
// test ends. Every node is started with actors.StartNode (so through
// actors.NodeOptions), so none of them sends anything off the machine.
package testnode

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/erldist"
)

// Cookie is the cookie every test node shares unless a test asks otherwise.
const Cookie = "ergonx-test-cookie"

var (
	counter atomic.Int64

	// Registrar resolves every node this package starts; Add other OS
	// processes' nodes to it to reach them.
	Registrar = actors.NewStaticRegistrar()
)

// Options tunes Start. The zero value starts a node with Cookie.
type Options struct {
	// Name is the part before '@'; "" picks a unique one.
	Name string
	// Cookie overrides Cookie.
	Cookie string
	// Node is the base ergo options (applications, flags...). Listeners,
	// Registrar and the safety settings are filled in by Start.
	Node node.Options
}

// Start starts a node and registers its shutdown with t.Cleanup.
func Start(t testing.TB, opts Options) node.Node {
	t.Helper()
	nd, err := StartE(opts)
	if err != nil {
		t.Fatalf("testnode: %v", err)
	}
	t.Cleanup(func() { Stop(nd) })
	return nd
}

// StartE is Start without a testing.TB, for benchmarks' helpers and
// subprocess nodes. The caller stops the node with Stop.
func StartE(opts Options) (node.Node, error) {
	name := opts.Name
	if name == "" {
		name = fmt.Sprintf("t%d_%d", os.Getpid(), counter.Add(1))
	}
	full := name + "@localhost"
	cookie := opts.Cookie
	if cookie == "" {
		cookie = Cookie
	}
	no := opts.Node
	no.Registrar = Registrar
	// ergo binds the first free port of the range itself, so no other
	// process can take it between a check and the bind.
	no.Listeners = []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}}
	nd, err := actors.StartNode(full, cookie, no)
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", full, err)
	}
	return nd, nil
}

// Stop stops nd and waits for it, at most 10 seconds.
func Stop(nd node.Node) {
	Registrar.Remove(nd.Name())
	erldist.Quiesce(nd.Name()) // as actors.StopNode does, before the bounded wait below
	nd.Stop()
	done := make(chan struct{})
	go func() { nd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// Mesh connects every pair of the given nodes, so that each sees the
// others in Nodes().
func Mesh(t testing.TB, nodes ...node.Node) {
	t.Helper()
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.Connect(b.Name()); err != nil {
				t.Fatalf("testnode: connect %s → %s: %v", a.Name(), b.Name(), err)
			}
		}
	}
}

package erldist

import (
	"context"
	"sync"
	"time"

	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// ergo v1.999.224 keeps the owner of node.EventNetwork in a package-level
// variable (node.corePID) that every node start writes (node.newCore) and
// every connection's registration and unregistration reads
// (network.registerConnection and unregisterConnection, which ergo runs
// right after Proto.Init and right after Proto.Serve returns): a node
// started while another node's connection comes or goes is a data race.
//
// coreLock closes it for the connections this package serves: a
// connection holds it (shared) from Init until Serve starts, and from the
// end of Serve until Terminate (ergo registers and unregisters in
// between); StartNode holds it exclusively while a node starts.
var coreLock sync.RWMutex

// registrationWindow bounds how long Init holds coreLock when ergo then
// drops the connection without serving it (a lost registration race).
const registrationWindow = time.Second

// StartNode runs start (which starts a node: node.StartWithContext with
// applications that do not connect to other nodes while they start) with
// no connection of this package registering or unregistering meanwhile.
// actors.StartNode uses it.
func StartNode(start func() (node.Node, error)) (node.Node, error) {
	coreLock.Lock()
	defer coreLock.Unlock()
	return start()
}

// holdCore takes coreLock (shared) and returns its idempotent release,
// which also runs by itself after limit (0: never).
func holdCore(limit time.Duration) func() {
	coreLock.RLock()
	var once sync.Once
	release := func() { once.Do(coreLock.RUnlock) }
	if limit > 0 {
		time.AfterFunc(limit, release)
	}
	return release
}

// GuardProto wraps another node.ProtoInterface (ergo's proto/dist, for a
// stock ergo node in tests) so that its connections take coreLock as this
// package's do.
func GuardProto(p node.ProtoInterface) node.ProtoInterface {
	return &guardedProto{inner: p, held: make(map[node.ConnectionInterface]func())}
}

type guardedProto struct {
	inner node.ProtoInterface
	mu    sync.Mutex // guards held
	held  map[node.ConnectionInterface]func()
}

func (g *guardedProto) Init(ctx context.Context, rw lib.NetReadWriter, nodename string, details node.HandshakeDetails) (node.ConnectionInterface, error) {
	release := holdCore(registrationWindow)
	ci, err := g.inner.Init(ctx, rw, nodename, details)
	if err != nil {
		release()
		return nil, err
	}
	g.mu.Lock()
	g.held[ci] = release
	g.mu.Unlock()
	return ci, nil
}

func (g *guardedProto) Serve(ci node.ConnectionInterface, router node.CoreRouter) {
	g.mu.Lock()
	if release := g.held[ci]; release != nil {
		release()
	}
	g.mu.Unlock()
	g.inner.Serve(ci, router)
	release := holdCore(0)
	g.mu.Lock()
	g.held[ci] = release
	g.mu.Unlock()
}

func (g *guardedProto) Terminate(ci node.ConnectionInterface) {
	g.mu.Lock()
	release := g.held[ci]
	delete(g.held, ci)
	g.mu.Unlock()
	if release != nil {
		release()
	}
	g.inner.Terminate(ci)
}

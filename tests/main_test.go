package tests

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ergonx/ergonx/actors/pg"
	ergonxcluster "github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/internal/testnode"
)

// Every node of this package is started here, before any test runs, and
// handed out by takeNode. ergo v1.999.224 keeps the owner of
// node.EventNetwork in a package-level variable (node.corePID) that every
// node start writes and every connection register and unregister reads:
// a node started while other nodes connect or disconnect is a data race
// that -race reports. Starting all nodes first orders every write before
// every read.
//
// A process started as a helper (helperEnv set, see TestHelperNodeProcess)
// runs its one helper test and nothing else: no pool, no leak check (the
// parent kills it).
//
// After the tests, the pool is drained (every node stopped and waited for)
// and goleak checks that nothing is left: no goroutine of ergo, of the
// servings, of the endpoints, or of the tests. Nothing is ignored.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(helperEnv) != "" {
		os.Exit(m.Run())
	}
	count := 1
	if f := flag.Lookup("test.count"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > 0 {
			count = n
		}
	}
	if err := fillPool(count); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(poolM{m})
}

// poolM runs the tests, then stops every node, so that goleak.VerifyTestMain
// checks for leaks once the nodes are gone.
type poolM struct{ m *testing.M }

func (p poolM) Run() int {
	code := p.m.Run()
	drainPool()
	return code
}

// nodeKind says how a pool node was started.
type nodeKind int

const (
	// ergonxNode: actors.StartNode (ergonx's erldist distribution),
	// testnode.Cookie.
	ergonxNode nodeKind = iota
	// ergoDefaultNode: ergo's own distribution (proto/dist handshake
	// version 5 and node.DefaultProtoOptions: NumHandlers =
	// runtime.NumCPU()), as a stock ergo node has it.
	ergoDefaultNode
	// ergoFragmentNode: ergo's own distribution with one handler per
	// connection and ergo's fragmentation unit (65,000 bytes), for the
	// flusher trap, and a send queue that holds all that test sends.
	ergoFragmentNode
	// wrongCookieNode: ergonx options, another cookie.
	wrongCookieNode
	nodeKinds
)

// perRun is at least how many nodes of each kind one run of every test takes; a
// test that finds its kind's pool empty fails and says so.
var perRun = [nodeKinds]int{
	ergonxNode:       88,
	ergoDefaultNode:  2,
	ergoFragmentNode: 6,
	wrongCookieNode:  1,
}

// wrongCookie is the cookie of wrongCookieNode nodes.
const wrongCookie = "not-" + testnode.Cookie

var pool struct {
	mu    sync.Mutex
	nodes [nodeKinds][]node.Node // not handed out yet
}

func fillPool(runs int) error {
	for kind := range nodeKinds {
		for range perRun[kind] * runs {
			nd, err := testnode.StartE(kind.options())
			if err != nil {
				drainPool()
				return fmt.Errorf("tests: fill the node pool: %w", err)
			}
			pool.nodes[kind] = append(pool.nodes[kind], nd)
		}
	}
	return nil
}

func (k nodeKind) options() testnode.Options {
	switch k {
	case ergoDefaultNode:
		return testnode.Options{Node: node.Options{
			Handshake: dist.CreateHandshake(dist.HandshakeOptions{}),
			Proto:     dist.CreateProto(node.DefaultProtoOptions()),
		}}
	case ergoFragmentNode:
		po := node.DefaultProtoOptions()
		po.NumHandlers = 1
		// Room for every message TestErgoFlusherCorruptsLargePackets
		// sends: once the stream is corrupted the peer reads no more, the
		// socket fills, and with ergo's queue of 100 the next Send would
		// block forever (holding the lock that closing the connection
		// needs).
		po.SendQueueLength = 4096
		return testnode.Options{Node: node.Options{
			Handshake: dist.CreateHandshake(dist.HandshakeOptions{}),
			Proto:     dist.CreateProto(po),
		}}
	case wrongCookieNode:
		return testnode.Options{Cookie: wrongCookie}
	}
	return testnode.Options{}
}

// drainPool stops the nodes no test took (tests stop theirs).
func drainPool() {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	var wg sync.WaitGroup
	for kind := range pool.nodes {
		for _, nd := range pool.nodes[kind] {
			wg.Go(func() { testnode.Stop(nd) })
		}
		pool.nodes[kind] = nil
	}
	wg.Wait()
}

// takeNode hands out a started node of kind, connected to nothing, and
// stops it when the test ends (after the test's later cleanups).
func takeNode(t testing.TB, kind nodeKind) node.Node {
	t.Helper()
	pool.mu.Lock()
	var nd node.Node
	if n := len(pool.nodes[kind]); n > 0 {
		nd = pool.nodes[kind][n-1]
		pool.nodes[kind] = pool.nodes[kind][:n-1]
	}
	pool.mu.Unlock()
	if nd == nil {
		t.Fatalf("the pool has no node of kind %d left: raise perRun", kind)
	}
	t.Cleanup(func() { testnode.Stop(nd) })
	return nd
}

// discovery is the scopes' scan interval in these tests: most nodes of one
// OS process get no node-up events (see actors/pg), and tests should not
// wait a second for each connection.
const discovery = 20 * time.Millisecond

// cluster takes n ergonx nodes, starts the cluster application (process
// groups and the serving endpoint) on each, and connects them all.
func cluster(t testing.TB, n int) []node.Node {
	t.Helper()
	nodes := make([]node.Node, n)
	for i := range nodes {
		nodes[i] = takeNode(t, ergonxNode)
		require.NoError(t, ergonxcluster.Start(nodes[i], pg.Options{DiscoveryInterval: discovery}))
	}
	testnode.Mesh(t, nodes...)
	return nodes
}

// waitLimit bounds every wait for the cluster to converge or for an
// answer. The machine has 2 noisy cores and runs with -race, so it is
// generous; a healthy run converges in milliseconds.
const waitLimit = 20 * time.Second

// testCtx returns a context that ends after waitLimit or with the test:
// calls that should answer never hold a failing test up for longer.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test with what (and every
// goroutine's stack) if it does not within waitLimit.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s\n%s", waitLimit, what, stacks())
		}
		<-tick.C
	}
}

// within receives from ch, failing the test after limit.
func within[T any](t testing.TB, limit time.Duration, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s\n%s", limit, what, stacks())
		var zero T
		return zero
	}
}

// waitGroup waits for wg, failing the test after limit.
func waitGroup(t testing.TB, limit time.Duration, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	within(t, limit, done, what)
}

func stacks() string {
	buf := make([]byte, 4<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// waitMembers waits until the default scope of each node lists want
// entries in group.
func waitMembers(t testing.TB, group string, want int, nodes ...node.Node) {
	t.Helper()
	for _, nd := range nodes {
		scope := pg.Lookup(nd, "")
		require.NotNil(t, scope, "node %s runs no scope", nd.Name())
		waitFor(t, fmt.Sprintf("%d members of %q on %s", want, group, nd.Name()), func() bool {
			return scope.Count(group) == want
		})
	}
}

// servingName returns a serving name (and process group) unique to the
// test, as Nx's tests use config.test.
func servingName(t testing.TB) string {
	r := strings.NewReplacer("/", ".", " ", "_", "#", "_")
	return "test." + r.Replace(t.Name())
}

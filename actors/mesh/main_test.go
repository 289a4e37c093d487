package mesh

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/internal/testnode"
)

// Every node is started here, before any test runs (see actors/pg's
// TestMain: a node started while others connect is a data race inside
// ergo). Some come as twins: two nodes of the same name and different
// creations, the second standing for the first restarted after a crash.
func TestMain(m *testing.M) {
	flag.Parse()
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
	code := m.Run()
	drainPool()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Nodes and twins one run of the tests and examples takes at most.
const nodesPerRun, twinsPerRun = 16, 1

// twin is a node and its restarted self: same name, another creation,
// another port.
type twin struct {
	first, second node.Node
	name          string
	port1, port2  uint16
}

var pool struct {
	mu    sync.Mutex
	nodes []node.Node
	twins []twin
	lent  []node.Node
}

func fillPool(runs int) error {
	for range nodesPerRun * runs {
		nd, err := testnode.StartE(testnode.Options{})
		if err != nil {
			drainPool()
			return err
		}
		pool.nodes = append(pool.nodes, nd)
	}
	for i := range twinsPerRun * runs {
		tw := twin{name: fmt.Sprintf("twin%d_%d", os.Getpid(), i)}
		for k, nd := range []*node.Node{&tw.first, &tw.second} {
			var err error
			// The creation tells incarnations apart, as a restart's
			// new time does.
			*nd, err = testnode.StartE(testnode.Options{Name: tw.name, Node: node.Options{Creation: uint32(1000 + k)}})
			if err != nil {
				drainPool()
				return err
			}
			route, err := testnode.Registrar.Resolve(tw.name + "@localhost")
			if err != nil {
				drainPool()
				return err
			}
			if k == 0 {
				tw.port1 = route.Port
			} else {
				tw.port2 = route.Port
			}
		}
		pool.twins = append(pool.twins, tw)
	}
	return nil
}

func drainPool() {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	all := append(slices.Clone(pool.nodes), pool.lent...)
	for _, tw := range pool.twins {
		all = append(all, tw.first, tw.second)
	}
	var wg sync.WaitGroup
	for _, nd := range all {
		wg.Go(func() { testnode.Stop(nd) })
	}
	wg.Wait()
	pool.nodes, pool.twins, pool.lent = nil, nil, nil
}

// newNode hands out a started node, connected to nothing, stopped when
// the test ends.
func newNode(t testing.TB) node.Node {
	t.Helper()
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.nodes) == 0 {
		t.Fatalf("the node pool is empty: raise nodesPerRun")
	}
	nd := pool.nodes[0]
	pool.nodes = pool.nodes[1:]
	t.Cleanup(func() { testnode.Stop(nd) })
	return nd
}

// newTwin hands out a twin; the registrar routes its name to the first
// node until the test routes it to the second.
func newTwin(t testing.TB) twin {
	t.Helper()
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.twins) == 0 {
		t.Fatalf("the twin pool is empty: raise twinsPerRun")
	}
	tw := pool.twins[0]
	pool.twins = pool.twins[1:]
	testnode.Registrar.Add(tw.first.Name(), "127.0.0.1", tw.port1)
	t.Cleanup(func() {
		testnode.Stop(tw.first)
		testnode.Stop(tw.second)
	})
	return tw
}

// LendNode lends the examples a node, stopped after the run.
func LendNode() node.Node {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.nodes) == 0 {
		panic("mesh tests: the node pool is empty: raise nodesPerRun")
	}
	nd := pool.nodes[0]
	pool.nodes = pool.nodes[1:]
	pool.lent = append(pool.lent, nd)
	return nd
}

// discovery is the scopes' scan interval here: most nodes of one process
// get no node-up events (see actors/pg).
const discovery = 20 * time.Millisecond

// member is a node of a test cluster: its scope, its mesh, and a process
// that is a member of the group "g".
type member struct {
	nd     node.Node
	scope  *pg.Scope
	mesh   *Mesh
	worker etf.Pid
}

// join starts a scope and a mesh on nd (stopped at the end of the test,
// the scope after the cluster has settled) and joins a worker to "g".
func join(t testing.TB, nd node.Node, opts Options) member {
	t.Helper()
	scope, err := pg.Start(nd, pg.Options{DiscoveryInterval: discovery})
	require.NoError(t, err)
	t.Cleanup(scope.Stop)
	m, err := Start(nd, opts)
	require.NoError(t, err)
	t.Cleanup(m.Stop)
	w, err := nd.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	require.NoError(t, err)
	require.NoError(t, scope.Join("g", w.Self()))
	return member{nd: nd, scope: scope, mesh: m, worker: w.Self()}
}

// waitLimit bounds the waits for convergence; reconnections have their
// own, tighter bound.
const waitLimit = 30 * time.Second

func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > limit {
			buf := make([]byte, 1<<20)
			t.Fatalf("timed out after %v waiting for %s\n%s", limit, what, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
	return time.Since(start)
}

// sees reports whether m's scope lists exactly workers in "g".
func (m member) sees(workers ...etf.Pid) bool {
	got := m.scope.Members("g")
	if len(got) != len(workers) {
		return false
	}
	for _, w := range workers {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// settle returns once no process-group message is in flight between the
// members' scopes: each pair exchanges markers both ways, twice, and
// messages between two processes keep their order. Stopping a node with
// messages in flight to it is a data race inside ergo (see actors/pg).
func settle(t testing.TB, members ...member) {
	t.Helper()
	for i, a := range members {
		for _, b := range members[i+1:] {
			for round := range 4 {
				from, to := a, b
				if round%2 == 1 {
					from, to = b, a
				}
				marker, err := from.nd.Spawn("", gen.ProcessOptions{}, &gen.Server{})
				require.NoError(t, err)
				require.NoError(t, from.scope.Join("~settle", marker.Self()))
				waitFor(t, waitLimit, "a settle marker", func() bool {
					return slices.Contains(to.scope.Members("~settle"), marker.Self())
				})
			}
		}
	}
}

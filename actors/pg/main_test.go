package pg

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ergonx/ergonx/internal/testnode"
)

// Every node the tests use is started here, before any test runs, and
// handed out by newNode. ergo v1.999.224 writes a package-level variable
// (node.corePID) in every node start and reads it in every connection
// register and unregister; a node started after other nodes' connections
// were torn down is a data race that -race reports (and that makes
// node-up events reach only the last node started, see the package doc).
// Starting all nodes first orders every write before every read.
func TestMain(m *testing.M) {
	flag.Parse()
	count := 1
	if f := flag.Lookup("test.count"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > 0 {
			count = n
		}
	}
	if err := fillPool(nodesPerRun * count); err != nil {
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

// nodesPerRun is at least how many nodes one run of all tests and
// examples takes from the pool; newNode fails the test that finds the pool
// empty.
const nodesPerRun = 60

var pool struct {
	mu    sync.Mutex
	nodes []node.Node // not handed out yet
	lent  []node.Node // handed out to examples, stopped by drainPool
}

func fillPool(n int) error {
	for range n {
		nd, err := testnode.StartE(testnode.Options{})
		if err != nil {
			drainPool()
			return err
		}
		pool.nodes = append(pool.nodes, nd)
	}
	return nil
}

func drainPool() {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	for _, nd := range append(pool.nodes, pool.lent...) {
		testnode.Stop(nd)
	}
	pool.nodes, pool.lent = nil, nil
}

func takeNode() (node.Node, bool) {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.nodes) == 0 {
		return nil, false
	}
	nd := pool.nodes[0]
	pool.nodes = pool.nodes[1:]
	return nd, true
}

// newNode hands out a started node, connected to nothing, and stops it
// when the test ends.
func newNode(t testing.TB) node.Node {
	t.Helper()
	nd, ok := takeNode()
	if !ok {
		t.Fatalf("the node pool is empty: raise nodesPerRun")
	}
	t.Cleanup(func() { testnode.Stop(nd) })
	return nd
}

// waitLimit bounds every wait for the cluster to converge. The test
// machine has 2 noisy cores and runs with -race, so it is generous; a
// healthy run converges in milliseconds.
const waitLimit = 60 * time.Second

// waitFor polls cond until it holds, failing the test with what (and all
// goroutine stacks) if it does not within waitLimit or before the test's
// own deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if td, ok := d.Deadline(); ok && td.Add(-5*time.Second).Before(deadline) {
			deadline = td.Add(-5 * time.Second)
		}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("timed out waiting for %s\n%s", what, buf)
		}
		<-tick.C
	}
}

// startScope starts a scope (default name unless given) on nd. When the
// test ends it settles the scope with its peers and stops it (before the
// node, as cleanups run last-in first-out).
func startScope(t testing.TB, nd node.Node, name ...string) *Scope {
	t.Helper()
	var opts Options
	if len(name) > 0 {
		opts.Name = name[0]
	}
	return startScopeWith(t, nd, opts)
}

// startScopeWith is startScope with options (a zero DiscoveryInterval
// means the tests' short one).
func startScopeWith(t testing.TB, nd node.Node, opts Options) *Scope {
	t.Helper()
	// A short scan interval: most nodes here do not get node-up events
	// (see TestMain), and tests should not wait a second per connection.
	if opts.DiscoveryInterval == 0 {
		opts.DiscoveryInterval = 50 * time.Millisecond
	}
	s, err := Start(nd, opts)
	require.NoError(t, err)
	scopes.add(t, s, nd)
	t.Cleanup(func() {
		settle(t, s)
		scopes.remove(s)
		s.Stop()
	})
	return s
}

// scopes remembers the running scopes of each test and their nodes, for
// settle.
var scopes = scopeRegistry{byT: map[testing.TB][]*Scope{}, nodes: map[*Scope]node.Node{}}

type scopeRegistry struct {
	mu    sync.Mutex
	byT   map[testing.TB][]*Scope // guarded by mu
	nodes map[*Scope]node.Node    // guarded by mu
}

func (r *scopeRegistry) add(t testing.TB, s *Scope, nd node.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byT[t] = append(r.byT[t], s)
	r.nodes[s] = nd
}

func (r *scopeRegistry) remove(s *Scope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, list := range r.byT {
		if list = slices.DeleteFunc(list, func(o *Scope) bool { return o == s }); len(list) == 0 {
			delete(r.byT, t)
		} else {
			r.byT[t] = list
		}
	}
	delete(r.nodes, s)
}

// settle returns once no pg message is in flight between s and the other
// running scopes of its name on connected nodes, and none will be sent
// unless something new happens. Tests call it before stopping a scope or
// a node: ergo v1.999.224 routes a message to a process without the lock
// that its cleanup takes, so a message arriving while a scope stops is a
// data race that -race reports (inside ergo; harmless in production).
//
// It relies on the order of messages between two processes (erldist's
// one ordered writer and reader per connection): a marker that from joins reaches to after everything
// from sent before it. Four alternating rounds outlast the discovery
// exchange, in which a discover is answered by a sync and, from a scope
// that did not know the sender yet, a discover.
func settle(t testing.TB, s *Scope) {
	t.Helper()
	scopes.mu.Lock()
	var peers []*Scope
	for _, list := range scopes.byT {
		for _, o := range list {
			if o != s && o.name == s.name && !isDone(o) && !isDone(s) &&
				slices.Contains(scopes.nodes[s].Nodes(), o.node) {
				peers = append(peers, o)
			}
		}
	}
	nodes := maps.Clone(scopes.nodes)
	scopes.mu.Unlock()

	const group = "~settle"
	for _, o := range peers {
		for round := range 4 {
			from, to := s, o
			if round%2 == 1 {
				from, to = o, s
			}
			marker, err := nodes[from].Spawn("", gen.ProcessOptions{}, &gen.Server{})
			require.NoError(t, err)
			require.NoError(t, from.Join(group, marker.Self()))
			waitFor(t, "a settle marker", func() bool {
				return slices.Contains(to.Members(group), marker.Self())
			})
		}
	}
}

func isDone(s *Scope) bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// spawn starts an idle process on nd to serve as a group member.
func spawn(t testing.TB, nd node.Node) gen.Process {
	t.Helper()
	p, err := nd.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	require.NoError(t, err)
	return p
}

// onScope runs f on the scope's process and waits for it: once it returns,
// the scope has handled every message queued before it.
func onScope(t testing.TB, s *Scope, f func()) {
	t.Helper()
	done := make(chan struct{})
	require.NoError(t, s.proc.Send(s.pid, hook(func() { f(); close(done) })))
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("scope %s did not run the hook within %v", s.pid, waitLimit)
	}
}

// within receives from ch or fails the test after waitLimit.
func within[T any](t testing.TB, ch <-chan T, what string) (T, bool) {
	t.Helper()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-time.After(waitLimit):
		var zero T
		t.Fatalf("timed out waiting for %s", what)
		return zero, false
	}
}

// sameMembers reports whether got and want hold the same pids with the
// same multiplicities, in any order.
func sameMembers(got, want []etf.Pid) bool {
	if len(got) != len(want) {
		return false
	}
	return slices.Equal(sortPids(got), sortPids(want))
}

func sortPids(pids []etf.Pid) []etf.Pid {
	out := slices.Clone(pids)
	slices.SortFunc(out, func(a, b etf.Pid) int {
		if c := strings.Compare(string(a.Node), string(b.Node)); c != 0 {
			return c
		}
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// waitMembers waits until every scope sees exactly want in group.
func waitMembers(t testing.TB, group string, want []etf.Pid, scopes ...*Scope) {
	t.Helper()
	for _, s := range scopes {
		waitFor(t, fmt.Sprintf("%d members of %q on %s", len(want), group, s.node), func() bool {
			return sameMembers(s.Members(group), want)
		})
	}
}

// cluster starts n meshed nodes, each with a scope of the default name.
func cluster(t testing.TB, n int) ([]node.Node, []*Scope) {
	t.Helper()
	nodes := make([]node.Node, n)
	scopes := make([]*Scope, n)
	for i := range nodes {
		nodes[i] = newNode(t)
		scopes[i] = startScope(t, nodes[i])
	}
	testnode.Mesh(t, nodes...)
	return nodes, scopes
}

func repeatPid(p etf.Pid, n int) []etf.Pid { return repeat(p, n) }

func pidsOf(ps ...gen.Process) []etf.Pid {
	out := make([]etf.Pid, len(ps))
	for i, p := range ps {
		out[i] = p.Self()
	}
	return out
}

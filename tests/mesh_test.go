package tests

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/mesh"
	"github.com/ergonx/ergonx/actors/pg"
	ergonxcluster "github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/internal/testnode"
)

// Environment of a mesh helper node.
const (
	helperNameEnv  = "ERGONX_TEST_NAME"  // the node's name, before '@'
	helperGroupEnv = "ERGONX_TEST_GROUP" // the group its worker joins
)

// restartBound is how soon after a restarted node listens again its
// members must be seen on the nodes that had it: the mesh's MaxBackoff and
// a scan, the scopes' discovery, and two seconds for a noisy 2-core
// machine.
const restartBound = mesh.DefaultMaxBackoff + mesh.DefaultScanInterval + discovery + 2*time.Second

// A node in an OS process of its own, killed with SIGKILL and started
// again under the same name (another port, another incarnation), is
// reconnected by the two nodes that had it, which see its member again
// within restartBound. The test connects it to one node only, once, at
// the start: the mesh connects the other, and reconnects both.
func TestKilledNodeProcessIsReconnectedAfterRestart(t *testing.T) {
	nodes := cluster(t, 2)
	group := servingName(t)
	var peers []string
	for _, nd := range nodes {
		route, err := testnode.Registrar.Resolve(nd.Name())
		require.NoError(t, err)
		peers = append(peers, fmt.Sprintf("%s=%d", nd.Name(), route.Port))
	}
	// A name that sorts after the parent's nodes (t<pid>_<n>): they dial
	// it first (see actors/mesh).
	name := fmt.Sprintf("zmesh%d", os.Getpid())
	childName := name + "@localhost"
	start := func() (*helper, time.Time) {
		child := startHelper(t, "TestHelperMeshNode", "mesh",
			helperPeersEnv+"="+strings.Join(peers, ","), helperNameEnv+"="+name, helperGroupEnv+"="+group)
		f := child.expect(waitLimit, "NODE")
		require.Equal(t, childName, f[1])
		port, err := strconv.ParseUint(f[2], 10, 16)
		require.NoError(t, err)
		testnode.Registrar.Add(childName, "127.0.0.1", uint16(port)) // as the node registers with EPMD
		return child, time.Now()
	}
	t.Cleanup(func() { testnode.Registrar.Remove(childName) })

	first, _ := start()
	require.NoError(t, nodes[0].Connect(childName))
	waitMembers(t, group, 1, nodes...)
	assert.Contains(t, nodes[1].Nodes(), childName, "connected by the mesh")

	first.kill()
	testnode.Registrar.Remove(childName) // as EPMD forgets a dead node
	waitMembers(t, group, 0, nodes...)

	_, listening := start()
	for _, nd := range nodes {
		scope := pg.Lookup(nd, "")
		waitFor(t, "the restarted node's member on "+nd.Name(), func() bool { return scope.Count(group) == 1 })
	}
	took := time.Since(listening)
	t.Logf("the restarted node's member was seen on both nodes %v after it listened (bound %v)", took, restartBound)
	assert.Less(t, took, restartBound)
}

// TestHelperMeshNode is the node of
// TestKilledNodeProcessIsReconnectedAfterRestart: it starts an ergonx node
// named helperNameEnv (routes to the parent's nodes from helperPeersEnv,
// but connects to none), the cluster application, and a worker in group
// helperGroupEnv, prints "NODE name port" and runs until killed.
func TestHelperMeshNode(t *testing.T) {
	if os.Getenv(helperEnv) != "mesh" {
		t.Skip("runs only as a helper process of TestKilledNodeProcessIsReconnectedAfterRestart")
	}
	for _, peer := range strings.Split(os.Getenv(helperPeersEnv), ",") {
		name, port, ok := strings.Cut(peer, "=")
		p, err := strconv.ParseUint(port, 10, 16)
		if !ok || err != nil {
			t.Fatalf("bad peer %q", peer)
		}
		testnode.Registrar.Add(name, "127.0.0.1", uint16(p))
	}
	nd, err := testnode.StartE(testnode.Options{Name: os.Getenv(helperNameEnv)})
	require.NoError(t, err)
	require.NoError(t, ergonxcluster.Start(nd, pg.Options{DiscoveryInterval: discovery}))
	worker, err := nd.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	require.NoError(t, err)
	require.NoError(t, pg.Lookup(nd, "").Join(os.Getenv(helperGroupEnv), worker.Self()))
	route, err := testnode.Registrar.Resolve(nd.Name())
	require.NoError(t, err)
	fmt.Println("NODE", nd.Name(), route.Port)
	helperLife()
}

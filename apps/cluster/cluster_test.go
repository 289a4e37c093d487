package cluster_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ergonx/ergonx/actors/mesh"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The cluster application runs the process-group scope, the mesh and the
// serving endpoint under their well-known names.
func TestStartRunsTheScopeAndTheEndpoint(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	require.NoError(t, cluster.Start(nd, pg.Options{}))
	scope := pg.Lookup(nd, "")
	require.NotNil(t, scope)
	assert.Equal(t, pg.DefaultScope, scope.Name())
	assert.NotNil(t, nd.ProcessByName(serving.EndpointName))
	assert.NotNil(t, mesh.Lookup(nd, ""), "the mesh runs")
	assert.NotNil(t, nd.ProcessByName(cluster.SupervisorName))

	// Loading it twice is refused.
	require.Error(t, cluster.Start(nd, pg.Options{}))
}

func TestStartNodeNeedsACookie(t *testing.T) {
	_, err := cluster.StartNode("nocookie@localhost", cluster.Options{})
	require.ErrorContains(t, err, "a cookie is required")
}

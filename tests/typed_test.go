package tests

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/serving"
)

// A typed serving on one node, called from another with typed clients: a
// row and several rows cross as tensors and come back as the clients'
// types; tensor rows keep their shape; a client of other types gets
// ErrRowType from the serving's node.
func TestTypedServingAcrossNodes(t *testing.T) {
	nodes := cluster(t, 2)
	caller, server := nodes[0], nodes[1]
	name := servingName(t)
	scale := serving.NewBatchFunc(func(_ context.Context, rows [][]float64) ([][]float64, error) {
		out := make([][]float64, len(rows))
		for i, r := range rows {
			out[i] = []float64{r[0] * 10, r[1] * 100}
		}
		return out, nil
	})
	h, err := serving.Start(server, serving.Options{Name: name, Serving: scale.Serving(), BatchSize: 4})
	require.NoError(t, err)
	defer h.Stop(context.Background())
	waitMembers(t, name, 1, caller)

	ctx := testCtx(t)
	for _, c := range []*serving.Client[[]float64, []float64]{
		serving.NewClient[[]float64, []float64](caller, name),
		serving.NewClient[[]float64, []float64](caller, serving.Distributed(name)),
	} {
		out, err := c.Call(ctx, []float64{1, 2})
		require.NoError(t, err)
		assert.Equal(t, []float64{10, 200}, out)
		outs, err := c.CallMany(ctx, [][]float64{{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}) // split across two batches
		require.NoError(t, err)
		assert.Equal(t, [][]float64{{10, 100}, {20, 200}, {30, 300}, {40, 400}, {50, 500}}, outs)
	}

	_, err = serving.NewClient[[]float32, []float64](caller, name).Call(ctx, []float32{1, 2})
	require.ErrorIs(t, err, serving.ErrRowType)
	var re *serving.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, server.Name(), re.Node)

	// Tensor rows of any shape keep it across nodes.
	tname := name + ".tensor"
	sum := serving.NewBatchFunc(func(_ context.Context, rows []*tensor.Dense) ([]*tensor.Dense, error) {
		out := make([]*tensor.Dense, len(rows))
		for i, r := range rows {
			s, err := r.Sum(1)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	})
	th, err := serving.Start(server, serving.Options{Name: tname, Serving: sum.Serving(), BatchSize: 4})
	require.NoError(t, err)
	defer th.Stop(context.Background())
	waitMembers(t, tname, 1, caller)
	row := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]int64{1, 2, 3, 4, 5, 6}))
	got, err := serving.NewClient[*tensor.Dense, *tensor.Dense](caller, serving.Distributed(tname)).Call(ctx, row)
	require.NoError(t, err)
	assert.Equal(t, []int{2}, []int(got.Shape()))
	assert.Equal(t, []int64{6, 15}, got.Data())
}

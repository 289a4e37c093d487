package tests

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/serving"
)

func TestSmokeDistributed(t *testing.T) {
	nodes := cluster(t, 2)
	a, b := nodes[0], nodes[1]
	s := serving.JIT(func(in any) (any, error) { return in.(*tensor.Dense).MulScalar(float32(2), true) })
	_, err := serving.Start(b, serving.Options{Name: "double", Serving: s, BatchSize: 4, BatchTimeout: time.Millisecond})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return pg.Lookup(a, "").Count("double") == 1 }, 10*time.Second, 10*time.Millisecond)
	in, _ := batch.Stack(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{1, 2})))
	out, err := serving.BatchedRun(testCtx(t), a, "double", in)
	require.NoError(t, err)
	require.Equal(t, []float32{2, 4}, out.(*tensor.Dense).Data())
}

package serving

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// f32 is a float32 tensor of the given shape.
func f32(shape []int, xs ...float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), xs...)))
}

// row is a 1-d float32 tensor.
func row(xs ...float32) *tensor.Dense { return f32([]int{len(xs)}, xs...) }

// floats returns d's data (empty for tensors without elements, whose
// Data() panics in gorgonia).
func floats(t testing.TB, v any) []float32 {
	t.Helper()
	d, ok := v.(*tensor.Dense)
	require.True(t, ok, "want *tensor.Dense, got %T", v)
	if d.Size() == 0 {
		return []float32{}
	}
	data, ok := d.Data().([]float32)
	require.True(t, ok, "want float32 data, got %T", d.Data())
	return append([]float32(nil), data...)
}

// shapeOf returns d's shape as []int.
func shapeOf(v any) []int { return []int(v.(*tensor.Dense).Shape()) }

// times2 is Nx's &(&1 * 2) on float32 tensors and containers: tuples
// become {a*2, b/2}, as in Nx's container tests.
func times2(in any) (any, error) {
	switch x := in.(type) {
	case *tensor.Dense:
		return x.MulScalar(float32(2), true)
	case batch.Tuple:
		a, err := x[0].(*tensor.Dense).MulScalar(float32(2), true)
		if err != nil {
			return nil, err
		}
		b, err := x[1].(*tensor.Dense).DivScalar(float32(2), true)
		if err != nil {
			return nil, err
		}
		return batch.Tuple{a, b}, nil
	}
	return nil, fmt.Errorf("times2: unexpected %T", in)
}

// doubling is Nx's new(fn opts -> Nx.Defn.jit(&(&1 * 2), opts) end).
func doubling(opts ...compiler.Option) *Serving {
	return New(func(o compiler.Options) (compiler.Func, error) {
		return compiler.JIT(times2, o)
	}, opts...)
}

// simpleEvent is what the simple module reports.
type simpleEvent struct {
	what       string // "init", "batch", "execute"
	kind       Kind
	partitions []compiler.Options
	partition  int
	batch      *batch.Batch
}

// simple is Nx's Nx.ServingTest.Simple: Init reports {:init, kind,
// partitions}, HandleBatch reports {:batch, partition, batch}, and its
// function reports :execute and returns {batch * 2, :metadata}.
type simple struct{ events chan simpleEvent }

func newSimple() simple { return simple{events: make(chan simpleEvent, 1024)} }

func (s simple) Init(kind Kind, _ any, partitions []compiler.Options) (any, error) {
	s.events <- simpleEvent{what: "init", kind: kind, partitions: partitions}
	return nil, nil
}

func (s simple) HandleBatch(b *batch.Batch, partition int, state any) (ExecFunc, any, error) {
	s.events <- simpleEvent{what: "batch", partition: partition, batch: b}
	return func() (any, any, error) {
		s.events <- simpleEvent{what: "execute", partition: partition}
		in, err := b.Materialize()
		if err != nil {
			return nil, nil, err
		}
		out, err := times2(in)
		return out, "metadata", err
	}, state, nil
}

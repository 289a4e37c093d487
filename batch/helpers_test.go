package batch

import (
	"testing"

	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"
)

// vec is a 1-d int64 tensor, like Nx's default integer tensors.
func vec(xs ...int64) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(xs)), tensor.WithBacking(append([]int64(nil), xs...)))
}

// mat is a rows×cols int64 tensor filled from xs.
func mat(rows, cols int, xs ...int64) *tensor.Dense {
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(append([]int64(nil), xs...)))
}

// realise materialises b and returns its single tensor.
func realise(t *testing.T, b *Batch) *tensor.Dense {
	t.Helper()
	c, err := b.Materialize()
	require.NoError(t, err)
	d, ok := c.(*tensor.Dense)
	require.True(t, ok, "materialised %T, want *tensor.Dense", c)
	return d
}

// ints returns d's data and shape.
func ints(t *testing.T, d *tensor.Dense) ([]int64, []int) {
	t.Helper()
	if d.Size() == 0 {
		// gorgonia's Data panics on tensors without elements.
		return []int64{}, []int(d.Shape())
	}
	data, ok := d.Data().([]int64)
	require.True(t, ok, "data is %T", d.Data())
	return append([]int64(nil), data...), []int(d.Shape())
}

package wire

import (
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/internal/dense"
)

// Decoded tensors are built without tensor.New (see package
// internal/dense): one allocation for a tensor whose memory is the
// decoded bytes.

// newDense returns a row-major tensor of dtype dt and shape dims (checked
// by the caller) whose memory is raw, which must hold exactly the
// elements, aligned for dt, and is not copied. It is what
// tensor.New(tensor.WithShape(dims...), tensor.WithBacking(typed raw))
// returns.
func newDense(dt tensor.Dtype, dims []int, raw []byte) *tensor.Dense {
	return dense.New(dt, dims, raw)
}

// alignedBytes returns n bytes of new memory aligned for every dtype.
func alignedBytes(n int) []byte { return dense.AlignedBytes(n) }

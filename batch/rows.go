package batch

import (
	"fmt"

	"gorgonia.org/tensor"
)

// Rows returns the first-axis length shared by every tensor of container
// c: the number of rows it holds. Scalars, empty containers and unequal
// lengths are errors, as for Concatenate.
func Rows(c any) (int, error) {
	_, n, _, err := describe(c, false, nil)
	return n, err
}

// SliceRows returns a container shaped like c holding rows [start,
// start+n) of every tensor along axis 0. The returned tensors share memory
// with c's (nothing is copied): writing to one shows in the other. When
// the range covers every row, c's own tensors are returned.
func SliceRows(c any, start, n int) (any, error) {
	return Traverse(c, func(d *tensor.Dense) (any, error) { return sliceLeaf(d, start, n) })
}

func sliceLeaf(d *tensor.Dense, start, n int) (*tensor.Dense, error) {
	shape := d.Shape()
	if len(shape) == 0 {
		return nil, fmt.Errorf("%w: cannot take rows of a scalar tensor", ErrRows)
	}
	if start < 0 || n < 0 || start+n > shape[0] {
		return nil, fmt.Errorf("%w: rows [%d,%d) of a tensor with %d rows", ErrRows, start, start+n, shape[0])
	}
	if start == 0 && n == shape[0] {
		return d, nil
	}
	d, err := rowMajor(d)
	if err != nil {
		return nil, err
	}
	raw := rawBytes(d)
	rowBytes := rowSize(d.Dtype(), shape[1:])
	back, err := typedBacking(d.Dtype(), raw[start*rowBytes:(start+n)*rowBytes])
	if err != nil {
		return nil, err
	}
	out := make([]int, len(shape))
	copy(out, shape)
	out[0] = n
	return tensor.New(tensor.WithShape(out...), tensor.WithBacking(back)), nil
}

// ConcatRows concatenates containers with the same template along axis 0
// into new tensors. It is how a caller whose request was split across
// several executions puts its rows back together.
func ConcatRows(parts ...any) (any, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	b, err := Concatenate(parts...)
	if err != nil {
		return nil, err
	}
	return b.Materialize()
}

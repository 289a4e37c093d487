// Package dense builds gorgonia *tensor.Dense values without tensor.New,
// for the hot paths of ergonx (decoding tensors off the wire, stacking a
// batch, cutting each caller's rows).
//
// tensor.New costs about 450 ns and 6 to 8 allocations for a small
// tensor: functional options, a reflected backing slice, pooled shape and
// stride slices. The functions here make the same *tensor.Dense in one
// allocation for the header (plus one for the memory when they allocate
// it): a copy of a prototype of the dtype, made once by tensor.New with a
// backing slice, whose shape, strides and memory are then replaced. What
// gorgonia keeps unexported (the dtype, the engines, flags) comes from
// the prototype; tests check that the result equals tensor.New's field
// for field.
package dense

import (
	"unsafe"

	"gorgonia.org/tensor"
)

// A tensor and the memory of its shape and strides, in one allocation
// (the tensor keeps it alive). Two sizes cover ranks up to 4.
type (
	rank2 struct {
		d    tensor.Dense
		dims [4]int
	}
	rank4 struct {
		d    tensor.Dense
		dims [8]int
	}
)

// header allocates a tensor and room for the shape and strides of rank
// axes.
func header(rank int) (*tensor.Dense, []int) {
	switch {
	case rank <= 2:
		h := new(rank2)
		return &h.d, h.dims[:]
	case rank <= 4:
		h := new(rank4)
		return &h.d, h.dims[:]
	}
	return new(tensor.Dense), make([]int, 2*rank)
}

// New returns a row-major tensor of dtype dt and shape dims whose memory
// is raw, which must hold exactly the elements, aligned for dt, and is
// not copied: what tensor.New(tensor.WithShape(dims...),
// tensor.WithBacking(typed raw)) returns. dt must be Supported.
func New(dt tensor.Dtype, dims []int, raw []byte) *tensor.Dense {
	d, ints := header(len(dims))
	*d = *prototype(dt)
	r := len(dims)
	// Full slice expressions: gorgonia may append to either, or return
	// them to its pool of int slices, and they must stay apart.
	shape := ints[:r:r]
	copy(shape, dims)
	var strides []int // nil for a scalar, as gorgonia has it
	if r > 0 {
		strides = ints[r : 2*r : 2*r]
		acc := 1
		for i := r - 1; i >= 0; i-- {
			strides[i] = acc
			acc *= dims[i]
		}
	}
	d.AP.Init(shape, strides)
	d.Raw = raw
	return d
}

// Zeros returns a new row-major tensor of dtype dt and shape dims, all
// zero, in two allocations (header and memory). dt must be Supported.
func Zeros(dt tensor.Dtype, dims []int) *tensor.Dense {
	n := int(dt.Size())
	for _, d := range dims {
		n *= d
	}
	return New(dt, dims, AlignedBytes(n))
}

// View returns a tensor like p — its dtype, shape and strides, in memory
// of its own so that reshaping it changes no other — on raw instead of
// p's memory: what p.ShallowClone() makes, with raw, in one allocation.
func View(p *tensor.Dense, raw []byte) *tensor.Dense {
	d, ints := header(len(p.Shape()))
	return fill(d, ints, p, raw)
}

// Views hands out up to n views from one allocation, for code that makes
// many small views at once (a serving cutting each caller's rows).
type Views struct{ slab []rank2 }

// NewViews makes room for n views of tensors of at most two axes.
func NewViews(n int) Views { return Views{slab: make([]rank2, n)} }

// At is View for a tensor of at most two axes, built in slot i (each slot
// is used once).
func (v Views) At(i int, p *tensor.Dense, raw []byte) *tensor.Dense {
	h := &v.slab[i]
	return fill(&h.d, h.dims[:], p, raw)
}

func fill(d *tensor.Dense, ints []int, p *tensor.Dense, raw []byte) *tensor.Dense {
	shape, strides := p.Shape(), p.Strides()
	r := len(shape)
	*d = *p
	copy(ints, shape)
	copy(ints[r:], strides)
	d.AP.Init(ints[:r:r], ints[r:r+len(strides):r+len(strides)])
	d.Raw = raw
	return d
}

// AlignedBytes returns n bytes of new, zeroed memory aligned for every
// dtype (complex128 needs 8).
func AlignedBytes(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

package batch

import (
	"fmt"
	"slices"
	"unsafe"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/internal/dense"
)

// Materialize returns one container shaped like b's template in which every
// leaf is a new tensor holding the rows of all entries along axis 0, in
// arrival order, followed by Padding rows of zeros: shape
// [Size+Padding, row shape...]. A batch without entries returns ErrEmpty,
// even when it has padding.
func (b *Batch) Materialize() (any, error) {
	if len(b.entries) == 0 {
		return nil, fmt.Errorf("%w (size %d, pad %d): stack or concatenate entries first", ErrEmpty, b.size, b.pad)
	}
	nl := b.entries[0].numLeaves()
	outs := make([]*tensor.Dense, nl)
	total := b.size + b.pad
	for li := 0; li < nl; li++ {
		out, err := b.materializeLeaf(li, total)
		if err != nil {
			return nil, err
		}
		outs[li] = out
	}
	c, _ := b.tmpl.rebuild(outs)
	return c, nil
}

// materializeLeaf builds leaf position li of every entry into one tensor
// of total rows; rows past b.size stay zero (tensor.New zeroes memory).
func (b *Batch) materializeLeaf(li, total int) (*tensor.Dense, error) {
	first := b.entries[0].leafAt(li)
	dt := first.Dtype()
	rowShape := leafRowShape(&b.entries[0], li)
	shape := make([]int, 0, len(rowShape)+1)
	shape = append(append(shape, total), rowShape...)
	var out *tensor.Dense
	if dense.Supported(dt) {
		out = dense.Zeros(dt, shape) // 2 allocations, where tensor.New makes 6 or more
	} else {
		out = tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	}
	dst := rawBytes(out)
	rowBytes := rowSize(dt, rowShape)
	off := 0
	for i := range b.entries {
		e := &b.entries[i]
		src, err := windowBytes(e.leafAt(li), e, rowBytes)
		if err != nil {
			return nil, err
		}
		off += copy(dst[off:], src)
	}
	return out, nil
}

// leafRowShape is the row shape of leaf li of e.
func leafRowShape(e *entry, li int) []int {
	shape := e.leafAt(li).Shape()
	if e.stacked {
		return shape
	}
	return shape[1:]
}

// windowBytes returns the bytes of the rows e holds of leaf d, in row-major
// order.
func windowBytes(d *tensor.Dense, e *entry, rowBytes int) ([]byte, error) {
	d, err := rowMajor(d)
	if err != nil {
		return nil, err
	}
	raw := rawBytes(d)
	lo, hi := e.start*rowBytes, (e.start+e.rows)*rowBytes
	if hi > len(raw) {
		return nil, fmt.Errorf("batch: internal error: rows [%d,%d) of a %d-byte tensor", e.start, e.start+e.rows, len(raw))
	}
	return raw[lo:hi], nil
}

// rowMajor returns d itself when its memory holds its elements in
// row-major order from the start of d.Raw (plain tensors and contiguous row
// slices of others), else a row-major copy in logical order (see
// AppendRowMajor).
func rowMajor(d *tensor.Dense) (*tensor.Dense, error) {
	if _, ok := ownRowMajor(d); ok {
		return d, nil
	}
	out := tensor.New(tensor.Of(d.Dtype()), tensor.WithShape(d.Shape()...))
	data, err := AppendRowMajor(rawBytes(out)[:0], d)
	if err != nil {
		return nil, err
	}
	if len(data) != len(rawBytes(out)) {
		return nil, fmt.Errorf("batch: internal error: laid out %d of %d bytes", len(data), len(rawBytes(out)))
	}
	return out, nil
}

// RowMajorBytes returns d's elements in row-major (logical) order, in the
// host's byte order: d's own memory when it is laid out that way (plain
// tensors, contiguous row slices; the caller must not write to it), else
// a new copy. Masks are ignored.
func RowMajorBytes(d *tensor.Dense) ([]byte, error) {
	if raw, ok := ownRowMajor(d); ok {
		return raw, nil
	}
	return AppendRowMajor(nil, d)
}

// AppendRowMajor appends d's elements in row-major (logical) order, in the
// host's byte order, to dst. gorgonia's iterator yields any tensor's
// elements in logical order, so transposed, strided and column-major
// tensors are walked with it; gorgonia's own Materialize leaves
// column-major tensors and views of transposed ones as they are. Masks
// are ignored.
func AppendRowMajor(dst []byte, d *tensor.Dense) ([]byte, error) {
	if raw, ok := ownRowMajor(d); ok {
		return append(dst, raw...), nil
	}
	es := int(d.Dtype().Size())
	want := d.Size() * es
	if want == 0 {
		return dst, nil
	}
	at := len(dst)
	dst = slices.Grow(dst, want)[:at+want]
	out, raw := dst[at:], rawBytes(d)
	off := 0
	it := d.Iterator()
	for i, err := it.Start(); err == nil; i, err = it.Next() {
		if off+es > want || i < 0 || (i+1)*es > len(raw) {
			return nil, fmt.Errorf("%w: cannot lay out a %v tensor of shape %v (order %v) as rows: its iterator left its memory",
				ErrUnsupported, d.Dtype(), d.Shape(), d.DataOrder())
		}
		copy(out[off:off+es], raw[i*es:(i+1)*es])
		off += es
	}
	if off != want {
		return nil, fmt.Errorf("%w: cannot lay out a %v tensor of shape %v (order %v) as rows: its iterator gave %d of %d elements",
			ErrUnsupported, d.Dtype(), d.Shape(), d.DataOrder(), off/es, want/es)
	}
	return dst, nil
}

// ownRowMajor returns the part of d's memory that holds its elements when
// they are laid out in row-major order from the start of d.Raw.
func ownRowMajor(d *tensor.Dense) ([]byte, bool) {
	if d.IsMasked() {
		return nil, false
	}
	o := d.DataOrder()
	plain := !d.IsMaterializable() && o.IsRowMajor() && o.IsContiguous()
	// A view is usable as is when its strides walk rows: gorgonia reports
	// a row slice of a lazily transposed tensor as contiguous row-major.
	if !plain && !(d.IsView() && rowMajorStrides(d)) {
		return nil, false
	}
	want := d.Size() * int(d.Dtype().Size())
	raw := rawBytes(d)
	if len(raw) < want {
		return nil, false
	}
	return raw[:want:want], true
}

// rowMajorStrides reports whether d's strides are those of a row-major
// tensor of its shape. gorgonia's own checks are not enough: a row slice
// of a lazily transposed tensor reports itself contiguous, row-major and
// needing no iterator, with strides that walk its columns.
func rowMajorStrides(d *tensor.Dense) bool {
	shape, strides := d.Shape(), d.Strides()
	if len(strides) != len(shape) {
		return false
	}
	want := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && strides[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// rowSize is the number of bytes of one row of shape rowShape.
func rowSize(dt tensor.Dtype, rowShape []int) int {
	n := int(dt.Size())
	for _, d := range rowShape {
		n *= d
	}
	return n
}

// rawBytes returns the memory of a non-view dense tensor. gorgonia keeps
// it as a Go slice (Dense embeds storage.Header{Raw []byte}), so it stays
// alive as long as d does. Using it avoids Data(), which boxes a typed
// slice into an interface on every call.
func rawBytes(d *tensor.Dense) []byte {
	return d.Raw
}

// typedBacking returns raw reinterpreted as a slice of dt's Go type, for
// tensor.WithBacking. raw must be aligned for the type, which it is when it
// starts at a row boundary of a tensor's memory.
func typedBacking(dt tensor.Dtype, raw []byte) (any, error) {
	p := unsafe.Pointer(unsafe.SliceData(raw))
	n := len(raw)
	switch dt {
	case tensor.Float32:
		return unsafe.Slice((*float32)(p), n/4), nil
	case tensor.Float64:
		return unsafe.Slice((*float64)(p), n/8), nil
	case tensor.Int:
		return unsafe.Slice((*int)(p), n/int(unsafe.Sizeof(int(0)))), nil
	case tensor.Int8:
		return unsafe.Slice((*int8)(p), n), nil
	case tensor.Int16:
		return unsafe.Slice((*int16)(p), n/2), nil
	case tensor.Int32:
		return unsafe.Slice((*int32)(p), n/4), nil
	case tensor.Int64:
		return unsafe.Slice((*int64)(p), n/8), nil
	case tensor.Uint8:
		return unsafe.Slice((*uint8)(p), n), nil
	case tensor.Uint16:
		return unsafe.Slice((*uint16)(p), n/2), nil
	case tensor.Uint32:
		return unsafe.Slice((*uint32)(p), n/4), nil
	case tensor.Uint64:
		return unsafe.Slice((*uint64)(p), n/8), nil
	case tensor.Bool:
		return unsafe.Slice((*bool)(p), n), nil
	case tensor.Complex64:
		return unsafe.Slice((*complex64)(p), n/8), nil
	case tensor.Complex128:
		return unsafe.Slice((*complex128)(p), n/16), nil
	}
	return nil, fmt.Errorf("%w: dtype %v", ErrUnsupported, dt)
}

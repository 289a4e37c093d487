package httpapi

import (
	"encoding/binary"
	"fmt"
	"slices"
	"unsafe"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// Limits on the tensors a body may describe. They bound what a few bytes
// of header can make the server allocate; the body itself is bounded by
// Options.MaxBodyBytes.
const (
	// MaxRank is the most axes a tensor may have.
	MaxRank = 32
	// MaxElements is the most elements a tensor may have.
	MaxElements = 1 << 31
	// MaxDepth is how deeply JSON containers (tuples and maps) may nest.
	MaxDepth = 16
)

// hostLittleEndian tells whether gorgonia's memory already holds elements
// in the binary format's byte order.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// checkShape validates dims and returns the number of elements.
func checkShape(dims []int) (int, error) {
	if len(dims) > MaxRank {
		return 0, fmt.Errorf("%w: rank %d, limit %d", ErrShape, len(dims), MaxRank)
	}
	elems, bound := int64(1), int64(1)
	for i, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("%w: shape %v: axis %d is %d, want >= 0", ErrShape, dims, i, d)
		}
		if int64(d) > MaxElements {
			return 0, fmt.Errorf("%w: shape %v has more than %d elements", ErrShape, dims, int64(MaxElements))
		}
		// Both factors are at most MaxElements (2^31): no overflow.
		bound *= int64(max(d, 1))
		if bound > MaxElements {
			return 0, fmt.Errorf("%w: shape %v has more than %d elements", ErrShape, dims, int64(MaxElements))
		}
		elems *= int64(d)
	}
	return int(elems), nil
}

// newBacking returns a new zeroed slice of n elements of d's Go type, for
// tensor.WithBacking, and its memory as bytes.
func newBacking(d *dtypeInfo, n int) (any, []byte) {
	var back any
	var p unsafe.Pointer
	switch d.dt {
	case tensor.Float32:
		s := make([]float32, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Float64:
		s := make([]float64, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Int8:
		s := make([]int8, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Int16:
		s := make([]int16, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Int32:
		s := make([]int32, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Int64:
		s := make([]int64, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Uint8:
		s := make([]uint8, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Uint16:
		s := make([]uint16, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Uint32:
		s := make([]uint32, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Uint64:
		s := make([]uint64, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Bool:
		s := make([]bool, n)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	default:
		panic("httpapi: newBacking of unsupported dtype " + d.name)
	}
	if n == 0 {
		return back, nil
	}
	return back, unsafe.Slice((*byte)(p), n*d.size())
}

// newTensor builds a tensor of shape dims over back.
func newTensor(dims []int, back any) *tensor.Dense {
	return tensor.New(tensor.WithShape(slices.Clone(dims)...), tensor.WithBacking(back))
}

// hostBytes returns d's elements in row-major order and in the host's byte
// order, with their wire type. The bytes may be d's own memory (a plain
// row-major tensor): the caller must not write to them. Views, transposed
// and column-major tensors are walked with gorgonia's iterator, which
// yields their elements in logical order.
func hostBytes(d *tensor.Dense) ([]byte, *dtypeInfo, error) {
	if d == nil {
		return nil, nil, fmt.Errorf("%w: nil *tensor.Dense", ErrDType)
	}
	info, ok := dtypeOf(d.Dtype())
	if !ok {
		return nil, nil, fmt.Errorf("%w: tensors of %v cannot be encoded; supported: %s", ErrDType, d.Dtype(), dtypeList())
	}
	elems, err := checkShape(d.Shape())
	if err != nil {
		return nil, nil, err
	}
	es := info.size()
	want := elems * es
	if want == 0 {
		// Before IsMasked, which holds for every empty tensor.
		return []byte{}, info, nil
	}
	if d.IsMasked() {
		return nil, nil, fmt.Errorf("%w: masked tensors cannot be encoded; fill the masked elements first", ErrDType)
	}
	raw, err := batch.RowMajorBytes(d)
	if err != nil || len(raw) != want {
		return nil, nil, fmt.Errorf("%w: cannot lay out a %v tensor of shape %v as rows", ErrShape, d.Dtype(), d.Shape())
	}
	return raw, info, nil
}

// swapBytes reverses the byte order of every width-byte number in b.
func swapBytes(b []byte, width int) {
	if width == 1 {
		return
	}
	for i := 0; i+width <= len(b); i += width {
		w := b[i : i+width]
		for j, k := 0, width-1; j < k; j, k = j+1, k-1 {
			w[j], w[k] = w[k], w[j]
		}
	}
}

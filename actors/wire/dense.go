package wire

import (
	"unsafe"

	"gorgonia.org/tensor"
)

// Decoded tensors are built without tensor.New, which costs about 450 ns
// and 8 allocations for a small tensor (functional options, a reflected
// backing slice, pooled shape and stride slices). newDense makes the same
// *tensor.Dense in one allocation: a copy of a prototype of the dtype,
// made once by tensor.New with a backing slice as Decode's tensors are,
// whose shape, strides and memory it then replaces. What gorgonia keeps
// unexported (the dtype, the engines, flags) comes from the prototype; a
// test checks that the result equals tensor.New's field for field.

// prototypes holds one tensor per dtype that dtypeOf returns; nothing
// writes to them after init.
var prototypes = func() map[tensor.Dtype]*tensor.Dense {
	out := make(map[tensor.Dtype]*tensor.Dense)
	for _, dt := range []tensor.Dtype{
		tensor.Float32, tensor.Float64, tensor.Int8, tensor.Int16, tensor.Int32, tensor.Int64,
		tensor.Uint8, tensor.Uint16, tensor.Uint32, tensor.Uint64, tensor.Complex64, tensor.Complex128,
	} {
		back, _ := makeTyped(dt, 1)
		out[dt] = tensor.New(tensor.WithShape(1), tensor.WithBacking(back))
	}
	return out
}()

// Prototypes by dtype without a map lookup on the hot path.
var (
	protoF32  = prototypes[tensor.Float32]
	protoF64  = prototypes[tensor.Float64]
	protoS8   = prototypes[tensor.Int8]
	protoS16  = prototypes[tensor.Int16]
	protoS32  = prototypes[tensor.Int32]
	protoS64  = prototypes[tensor.Int64]
	protoU8   = prototypes[tensor.Uint8]
	protoU16  = prototypes[tensor.Uint16]
	protoU32  = prototypes[tensor.Uint32]
	protoU64  = prototypes[tensor.Uint64]
	protoC64  = prototypes[tensor.Complex64]
	protoC128 = prototypes[tensor.Complex128]
)

func prototype(dt tensor.Dtype) *tensor.Dense {
	switch dt {
	case tensor.Float32:
		return protoF32
	case tensor.Float64:
		return protoF64
	case tensor.Int8:
		return protoS8
	case tensor.Int16:
		return protoS16
	case tensor.Int32:
		return protoS32
	case tensor.Int64:
		return protoS64
	case tensor.Uint8:
		return protoU8
	case tensor.Uint16:
		return protoU16
	case tensor.Uint32:
		return protoU32
	case tensor.Uint64:
		return protoU64
	case tensor.Complex64:
		return protoC64
	case tensor.Complex128:
		return protoC128
	}
	panic("wire: internal error: no prototype for dtype " + dt.String()) // dtypeOf returns only the dtypes above
}

// A tensor and the memory of its shape and strides, in one allocation
// (the tensor keeps it alive). Two sizes cover ranks up to 4.
type (
	dense2 struct {
		d    tensor.Dense
		dims [4]int
	}
	dense4 struct {
		d    tensor.Dense
		dims [8]int
	}
)

// newDense returns a row-major tensor of dtype dt and shape dims (checked
// by the caller) whose memory is raw, which must hold exactly the
// elements, aligned for dt, and is not copied. It is what
// tensor.New(tensor.WithShape(dims...), tensor.WithBacking(typed raw))
// returns.
func newDense(dt tensor.Dtype, dims []int, raw []byte) *tensor.Dense {
	r := len(dims)
	var d *tensor.Dense
	var ints []int
	switch {
	case r <= 2:
		box := new(dense2)
		d, ints = &box.d, box.dims[:2*r]
	case r <= 4:
		box := new(dense4)
		d, ints = &box.d, box.dims[:2*r]
	default:
		d, ints = new(tensor.Dense), make([]int, 2*r)
	}
	*d = *prototype(dt)
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

// alignedBytes returns n bytes of new memory aligned for every dtype
// (complex128 needs 8).
func alignedBytes(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

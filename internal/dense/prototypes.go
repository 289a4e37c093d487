package dense

import "gorgonia.org/tensor"

// prototypes holds one tensor per supported dtype, made by tensor.New
// with a backing slice; nothing writes to them after init.
var prototypes = func() map[tensor.Dtype]*tensor.Dense {
	out := make(map[tensor.Dtype]*tensor.Dense)
	for _, back := range []any{
		[]float32{0}, []float64{0}, []int8{0}, []int16{0}, []int32{0}, []int64{0},
		[]uint8{0}, []uint16{0}, []uint32{0}, []uint64{0}, []complex64{0}, []complex128{0},
	} {
		d := tensor.New(tensor.WithShape(1), tensor.WithBacking(back))
		out[d.Dtype()] = d
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

// Supported reports whether New and Zeros can build tensors of dt: the
// numeric dtypes Nx has (not bool, string or unsafe pointers).
func Supported(dt tensor.Dtype) bool { return prototype(dt) != nil }

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
	return nil
}

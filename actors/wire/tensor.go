package wire

import (
	"encoding/binary"
	"math"
	"strconv"
	"unsafe"

	"github.com/ergo-services/ergo/etf"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// hostLittleEndian tells whether gorgonia's memory (Dense.Raw) already
// holds elements in the wire's byte order. On a big-endian host every
// element is byte-swapped on the way in and out. A variable so that tests
// can take the big-endian path on a little-endian machine.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Nx type tuples, {Kind, Bits}, shared by every term (nothing modifies
// them).
var (
	typeS8   etf.Term = etf.Tuple{etf.Atom("s"), 8}
	typeS16  etf.Term = etf.Tuple{etf.Atom("s"), 16}
	typeS32  etf.Term = etf.Tuple{etf.Atom("s"), 32}
	typeS64  etf.Term = etf.Tuple{etf.Atom("s"), 64}
	typeU8   etf.Term = etf.Tuple{etf.Atom("u"), 8}
	typeU16  etf.Term = etf.Tuple{etf.Atom("u"), 16}
	typeU32  etf.Term = etf.Tuple{etf.Atom("u"), 32}
	typeU64  etf.Term = etf.Tuple{etf.Atom("u"), 64}
	typeF32  etf.Term = etf.Tuple{etf.Atom("f"), 32}
	typeF64  etf.Term = etf.Tuple{etf.Atom("f"), 64}
	typeC64  etf.Term = etf.Tuple{etf.Atom("c"), 64}
	typeC128 etf.Term = etf.Tuple{etf.Atom("c"), 128}
)

// nxTypeOf returns the Nx type tuple of a gorgonia dtype. Go's int and
// uint travel as 64-bit integers, bool as u8 (Nx has no boolean type and
// uses u8 for predicates); so they come back as Int64, Uint64 and Uint8.
func nxTypeOf(dt tensor.Dtype) (etf.Term, bool) {
	switch dt {
	case tensor.Float32:
		return typeF32, true
	case tensor.Float64:
		return typeF64, true
	case tensor.Int8:
		return typeS8, true
	case tensor.Int16:
		return typeS16, true
	case tensor.Int32:
		return typeS32, true
	case tensor.Int64:
		return typeS64, true
	case tensor.Uint8, tensor.Bool:
		return typeU8, true
	case tensor.Uint16:
		return typeU16, true
	case tensor.Uint32:
		return typeU32, true
	case tensor.Uint64:
		return typeU64, true
	case tensor.Complex64:
		return typeC64, true
	case tensor.Complex128:
		return typeC128, true
	case tensor.Int:
		// Raw holds Go ints: 8 bytes, the layout of int64, on 64-bit
		// hosts only.
		if strconv.IntSize == 64 {
			return typeS64, true
		}
	case tensor.Uint:
		if strconv.IntSize == 64 {
			return typeU64, true
		}
	}
	return nil, false
}

// dtypeOf returns the gorgonia dtype of the Nx type {kind, bits}.
func dtypeOf(kind string, bits int64) (tensor.Dtype, *Error) {
	switch {
	case kind == "f" && bits == 32:
		return tensor.Float32, nil
	case kind == "f" && bits == 64:
		return tensor.Float64, nil
	case kind == "s" && bits == 8:
		return tensor.Int8, nil
	case kind == "s" && bits == 16:
		return tensor.Int16, nil
	case kind == "s" && bits == 32:
		return tensor.Int32, nil
	case kind == "s" && bits == 64:
		return tensor.Int64, nil
	case kind == "u" && bits == 8:
		return tensor.Uint8, nil
	case kind == "u" && bits == 16:
		return tensor.Uint16, nil
	case kind == "u" && bits == 32:
		return tensor.Uint32, nil
	case kind == "u" && bits == 64:
		return tensor.Uint64, nil
	case kind == "c" && bits == 64:
		return tensor.Complex64, nil
	case kind == "c" && bits == 128:
		return tensor.Complex128, nil
	case kind == "f" && (bits == 8 || bits == 16),
		kind == "bf" && bits == 16,
		(kind == "s" || kind == "u") && (bits == 2 || bits == 4):
		// Real Nx types that gorgonia cannot hold.
		return tensor.Dtype{}, errorf(ErrUnsupportedType,
			"Nx type {%s, %d} has no gorgonia dtype; convert it with Nx.as_type/2 (to {f, 32}, for example) before sending", kind, bits)
	}
	return tensor.Dtype{}, errorf(ErrMalformed, "{%s, %d} is not an Nx type", kind, bits)
}

// componentSize is the width of the numbers an element is made of: the
// unit of byte order (a complex number is two floats).
func componentSize(dt tensor.Dtype) int {
	switch dt {
	case tensor.Complex64:
		return 4
	case tensor.Complex128:
		return 8
	}
	return int(dt.Size())
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

// maxElementSize is the largest element size of an Nx type (c128).
const maxElementSize = 16

// checkShape validates dims and returns the number of elements.
func checkShape(dims []int) (int, *Error) {
	if len(dims) > MaxRank {
		return 0, errorf(ErrTooLarge, "tensor of rank %d, limit %d (MaxRank)", len(dims), MaxRank)
	}
	elems, bound := int64(1), int64(1)
	for i, d := range dims {
		if d < 0 {
			return 0, errorf(ErrMalformed, "tensor shape %v: dimension %d is %d, want >= 0", dims, i, d)
		}
		if int64(d) > MaxElements {
			return 0, errorf(ErrTooLarge, "tensor shape %v: dimension %d is %d, limit %d elements (MaxElements)", dims, i, d, int64(MaxElements))
		}
		// Both factors are at most MaxElements (2^31), so neither
		// product overflows before the check.
		bound *= int64(max(d, 1))
		if bound > MaxElements {
			return 0, errorf(ErrTooLarge, "tensor shape %v has more than %d elements (MaxElements)", dims, int64(MaxElements))
		}
		elems *= int64(d)
	}
	if elems*maxElementSize > math.MaxInt {
		// Only on 32-bit platforms.
		return 0, errorf(ErrTooLarge, "tensor shape %v: %d elements do not fit this platform's memory", dims, elems)
	}
	return int(elems), nil
}

// tensorBytes returns d's elements in row-major order, little-endian, as
// the wire wants them. With share, the result may be d's own memory (a
// plain row-major tensor on a little-endian host); otherwise it is one new
// copy. Views, lazily transposed and column-major tensors are walked with
// gorgonia's iterator, which yields their elements in logical order.
func tensorBytes(d *tensor.Dense, elems int, share bool) ([]byte, *Error) {
	dt := d.Dtype()
	es := int(dt.Size())
	want := elems * es
	if want == 0 {
		// Before IsMasked, which holds for every empty tensor.
		return []byte{}, nil
	}
	if d.IsMasked() {
		return nil, errorf(ErrUnsupportedType, "masked tensor: Nx tensors have no mask; fill the masked elements first")
	}
	// With share, d's own memory will do; without, one fresh copy.
	var raw []byte
	var err error
	if share && hostLittleEndian {
		raw, err = batch.RowMajorBytes(d)
	} else {
		raw, err = batch.AppendRowMajor(nil, d)
	}
	if err != nil {
		return nil, errorf(ErrUnsupportedType, "%v", err)
	}
	if len(raw) != want {
		return nil, errorf(ErrUnsupportedType, "a %v tensor of shape %v laid out as %d bytes, want %d", dt, d.Shape(), len(raw), want)
	}
	if !hostLittleEndian {
		swapBytes(raw, componentSize(dt))
	}
	return raw, nil
}

// encodeTensor builds the %Nx.Tensor{} term of d.
func encodeTensor(d *tensor.Dense, share bool) (etf.Term, error) {
	if d == nil {
		return nil, errorf(ErrUnsupportedType, "nil *tensor.Dense")
	}
	typ, ok := nxTypeOf(d.Dtype())
	if !ok {
		return nil, errorf(ErrUnsupportedType, "gorgonia dtype %v has no Nx type", d.Dtype())
	}
	shape := d.Shape()
	elems, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	data, err := tensorBytes(d, elems, share)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > MaxTensorBytes {
		return nil, errorf(ErrTooLarge, "tensor data of %d bytes, limit %d (MaxTensorBytes)", len(data), int64(MaxTensorBytes))
	}
	dims := make(etf.Tuple, len(shape))
	for i, n := range shape {
		dims[i] = n
	}
	return etf.Map{
		keyStruct:         atomNxTensor,
		keyData:           etf.Map{keyStruct: atomNxBinary, keyState: data},
		keyType:           typ,
		keyShape:          dims,
		keyNames:          nilNames[len(shape)],
		keyVectorizedAxes: emptyList,
	}, nil
}

// decodeTensor decodes an %Nx.Tensor{} map (its __struct__ already
// checked).
func (dec *decoder) decodeTensor(m etf.Map) (*tensor.Dense, error) {
	dataT, okData := m[keyData]
	typT, okType := m[keyType]
	shapeT, okShape := m[keyShape]
	namesT, okNames := m[keyNames]
	vecT, okVec := m[keyVectorizedAxes]
	switch {
	case !okData:
		return nil, errorf(ErrMalformed, "Nx.Tensor without a data key")
	case !okType:
		return nil, errorf(ErrMalformed, "Nx.Tensor without a type key")
	case !okShape:
		return nil, errorf(ErrMalformed, "Nx.Tensor without a shape key")
	case !okNames:
		return nil, errorf(ErrMalformed, "Nx.Tensor without a names key")
	}
	known := 5
	if okVec {
		known++
	}
	if len(m) != known {
		return nil, unknownKey(m, "Nx.Tensor", keyStruct, keyData, keyType, keyShape, keyNames, keyVectorizedAxes)
	}
	dt, err := decodeType(typT)
	if err != nil {
		return nil, err
	}
	shape, elems, err := decodeShape(shapeT)
	if err != nil {
		return nil, err
	}
	if err := checkNames(namesT, len(shape)); err != nil {
		return nil, err
	}
	if okVec {
		if l, ok := vecT.(etf.List); !ok || len(l) != 0 {
			return nil, errorf(ErrUnsupportedType, "vectorized tensor (vectorized_axes %s): devectorize it before sending", showTerm(vecT))
		}
	}
	state, err := decodeBackend(dataT)
	if err != nil {
		return nil, err
	}
	if want := elems * int(dt.Size()); len(state) != want {
		return nil, lengthError(dt, shape, elems, len(state))
	}
	back := dec.backing(dt, state, elems)
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(back)), nil
}

// lengthError is the error of a tensor whose data is got bytes long.
func lengthError(dt tensor.Dtype, shape []int, elems, got int) *Error {
	es := int(dt.Size())
	return &Error{Kind: ErrLength, Msg: nxName(dt) + " tensor of shape " + showDims(shape) +
		": expected " + strconv.Itoa(elems*es) + " bytes (" + strconv.Itoa(elems) + " elements of " +
		strconv.Itoa(es) + " bytes), got " + strconv.Itoa(got)}
}

func decodeType(t etf.Term) (tensor.Dtype, *Error) {
	tup, ok := t.(etf.Tuple)
	if !ok || len(tup) != 2 {
		return tensor.Dtype{}, errorf(ErrMalformed, "Nx.Tensor type is %s, want a {kind, bits} tuple", showTerm(t))
	}
	kind, ok := atomText(tup[0])
	if !ok {
		return tensor.Dtype{}, errorf(ErrMalformed, "Nx.Tensor type kind is %s, want an atom (s, u, f, bf or c)", showTerm(tup[0]))
	}
	bits, res := termInt(tup[1])
	if res != intOK {
		return tensor.Dtype{}, errorf(ErrMalformed, "Nx.Tensor type bits is %s, want an integer", showTerm(tup[1]))
	}
	return dtypeOf(kind, bits)
}

func decodeShape(t etf.Term) ([]int, int, *Error) {
	tup, ok := t.(etf.Tuple)
	if !ok {
		return nil, 0, errorf(ErrMalformed, "Nx.Tensor shape is %s, want a tuple of integers", showTerm(t))
	}
	if len(tup) > MaxRank {
		return nil, 0, errorf(ErrTooLarge, "tensor of rank %d, limit %d (MaxRank)", len(tup), MaxRank)
	}
	shape := make([]int, len(tup))
	for i, e := range tup {
		n, res := termInt(e)
		switch {
		case res == intNotInt:
			return nil, 0, errorf(ErrMalformed, "Nx.Tensor shape dimension %d is %s, want an integer", i, showTerm(e))
		case res == intTooLarge || n > MaxElements:
			return nil, 0, errorf(ErrTooLarge, "Nx.Tensor shape dimension %d is %s, limit %d elements (MaxElements)", i, showTerm(e), int64(MaxElements))
		case n < 0:
			return nil, 0, errorf(ErrMalformed, "Nx.Tensor shape dimension %d is %d, want >= 0", i, n)
		}
		shape[i] = int(n)
	}
	elems, err := checkShape(shape)
	return shape, elems, err
}

// checkNames checks the names list: one atom per axis. Axis names are not
// kept (gorgonia has none); Encode writes nil for every axis.
func checkNames(t etf.Term, rank int) *Error {
	l, ok := t.(etf.List)
	if !ok {
		return errorf(ErrMalformed, "Nx.Tensor names is %s, want a list of atoms", showTerm(t))
	}
	if len(l) != rank {
		return errorf(ErrMalformed, "Nx.Tensor names has %d entries for %d axes", len(l), rank)
	}
	for i, e := range l {
		if _, ok := atomText(e); !ok {
			return errorf(ErrMalformed, "Nx.Tensor name %d is %s, want an atom or nil", i, showTerm(e))
		}
	}
	return nil
}

// decodeBackend returns the binary of %Nx.BinaryBackend{state: Binary}.
func decodeBackend(t etf.Term) ([]byte, *Error) {
	m, ok := t.(etf.Map)
	if !ok {
		return nil, errorf(ErrMalformed, "Nx.Tensor data is %s, want an %%Nx.BinaryBackend{} map", showTerm(t))
	}
	s, ok := m[keyStruct]
	if !ok {
		return nil, errorf(ErrMalformed, "Nx.Tensor data is a map without __struct__, want %%Nx.BinaryBackend{}")
	}
	if s != atomNxBinary {
		if name, isAtom := s.(etf.Atom); isAtom {
			return nil, errorf(ErrUnsupportedType, "tensor data on backend %s: only Nx.BinaryBackend tensors can travel; Nx.backend_transfer/2 them first", trimElixir(string(name)))
		}
		return nil, errorf(ErrMalformed, "Nx.Tensor data __struct__ is %s, want an atom", showTerm(s))
	}
	st, ok := m[keyState]
	if !ok {
		return nil, errorf(ErrMalformed, "Nx.BinaryBackend without a state key")
	}
	if len(m) != 2 {
		return nil, unknownKey(m, "Nx.BinaryBackend", keyStruct, keyState)
	}
	b, ok := st.([]byte)
	if !ok {
		return nil, errorf(ErrMalformed, "Nx.BinaryBackend state is %s, want a binary", showTerm(st))
	}
	return b, nil
}

// backing returns the typed slice that becomes the tensor's memory. By
// default it is state itself, reinterpreted, when state is suitably
// aligned, already in host byte order and not handed out before in this
// Decode; else (or with Copy) a new slice with one copy of state.
func (dec *decoder) backing(dt tensor.Dtype, state []byte, elems int) any {
	if elems > 0 && hostLittleEndian &&
		uintptr(unsafe.Pointer(unsafe.SliceData(state)))%uintptr(dt.Align()) == 0 &&
		dec.take(state) {
		return viewAs(dt, state, elems)
	}
	back, mem := makeTyped(dt, elems)
	copy(mem, state)
	if !hostLittleEndian {
		swapBytes(mem, componentSize(dt))
	}
	return back
}

// viewAs reinterprets b (elems elements of dt, aligned for dt) as a Go
// slice of dt's element type. The elements hold no pointers, so the
// garbage collector keeps b alive through the new slice and nothing else
// changes.
func viewAs(dt tensor.Dtype, b []byte, elems int) any {
	p := unsafe.Pointer(unsafe.SliceData(b))
	switch dt {
	case tensor.Float32:
		return unsafe.Slice((*float32)(p), elems)
	case tensor.Float64:
		return unsafe.Slice((*float64)(p), elems)
	case tensor.Int8:
		return unsafe.Slice((*int8)(p), elems)
	case tensor.Int16:
		return unsafe.Slice((*int16)(p), elems)
	case tensor.Int32:
		return unsafe.Slice((*int32)(p), elems)
	case tensor.Int64:
		return unsafe.Slice((*int64)(p), elems)
	case tensor.Uint8:
		return b[:elems:elems]
	case tensor.Uint16:
		return unsafe.Slice((*uint16)(p), elems)
	case tensor.Uint32:
		return unsafe.Slice((*uint32)(p), elems)
	case tensor.Uint64:
		return unsafe.Slice((*uint64)(p), elems)
	case tensor.Complex64:
		return unsafe.Slice((*complex64)(p), elems)
	case tensor.Complex128:
		return unsafe.Slice((*complex128)(p), elems)
	}
	panic("wire: internal error: no view for dtype " + dt.String()) // dtypeOf returns only the dtypes above
}

// makeTyped allocates elems elements of dt as a typed slice (aligned for
// its type) and returns it with a byte view of its memory.
func makeTyped(dt tensor.Dtype, elems int) (any, []byte) {
	var back any
	var p unsafe.Pointer
	switch dt {
	case tensor.Float32:
		s := make([]float32, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Float64:
		s := make([]float64, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Int8:
		s := make([]int8, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Int16:
		s := make([]int16, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Int32:
		s := make([]int32, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Int64:
		s := make([]int64, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Uint8:
		s := make([]uint8, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Uint16:
		s := make([]uint16, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Uint32:
		s := make([]uint32, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Uint64:
		s := make([]uint64, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Complex64:
		s := make([]complex64, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	case tensor.Complex128:
		s := make([]complex128, elems)
		back, p = s, unsafe.Pointer(unsafe.SliceData(s))
	default:
		panic("wire: internal error: no slice type for dtype " + dt.String()) // dtypeOf returns only the dtypes above
	}
	if elems == 0 {
		return back, nil
	}
	return back, unsafe.Slice((*byte)(p), elems*int(dt.Size()))
}

// nxName writes an Nx type as "f32", "s64", "c128".
func nxName(dt tensor.Dtype) string {
	t, ok := nxTypeOf(dt)
	if !ok {
		return dt.String()
	}
	tup := t.(etf.Tuple)
	return string(tup[0].(etf.Atom)) + strconv.Itoa(tup[1].(int))
}

func showDims(dims []int) string {
	b := []byte{'{'}
	for i, d := range dims {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, int64(d), 10)
	}
	return string(append(b, '}'))
}

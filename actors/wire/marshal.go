package wire

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"

	"github.com/ergo-services/ergo/etf"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// encoder writes a value in the external term format without building a
// term. Marshal runs it twice: size validates the value exactly as Encode
// does (same checks, same errors, in the same order) and returns the
// bytes it takes; write then appends them to buf, allocated once.
type encoder struct {
	buf []byte

	// The rows of the batches that size materialised, for write. A
	// value holds few batches (usually one, or none).
	mats []materialised
}

type materialised struct {
	b    *batch.Batch
	rows any // nil for an empty batch
}

// Byte strings that every tensor and batch term holds.
var (
	tensorStruct   = kvAtoms("__struct__", "Elixir.Nx.Tensor")
	backendStruct  = kvAtoms("__struct__", "Elixir.Nx.BinaryBackend")
	backendHead    = append(atomBytes("data"), mapBytes(2, backendStruct, atomBytes("state"), []byte{tagBinary})...)
	stateKey       = atomBytes("state")
	backendHead2   = append(atomBytes("data"), mapBytes(2, stateKey, []byte{tagBinary})...) // __struct__ after the data
	shapeKey       = atomBytes("shape")
	namesKey       = atomBytes("names")
	vectorizedKV   = append(atomBytes("vectorized_axes"), tagNil)
	atomNilBytes   = atomBytes("nil")
	atomTrueBytes  = atomBytes("true")
	atomFalseBytes = atomBytes("false")
	batchHead      = mapBytes(5, kvAtoms("__struct__", "Elixir.Nx.Batch"))
	sizeKey        = atomBytes("size")
	padKey         = atomBytes("pad")
	keyKeyBytes    = atomBytes("key")
	stackKey       = atomBytes("stack")
)

// The sizes of a tensor term's parts: the map header and __struct__
// entry, the data entry up to the first byte of the data, the type entry.
var (
	tensorHeadSize = 5 + len(tensorStruct)
	backendSize    = len(backendHead) + 4
	typeKVSize     = len(typeKV(tensor.Float32))
)

func atomBytes(s string) []byte { return append([]byte{tagSmallAtomUTF8, byte(len(s))}, s...) }

func kvAtoms(k, v string) []byte { return append(atomBytes(k), atomBytes(v)...) }

func mapBytes(n int, parts ...[]byte) []byte {
	out := []byte{tagMap, 0, 0, 0, byte(n)}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// The type entries, type => {Kind, Bits}, of the Nx types.
var (
	typeKVS8   = typeEntry("s", 8)
	typeKVS16  = typeEntry("s", 16)
	typeKVS32  = typeEntry("s", 32)
	typeKVS64  = typeEntry("s", 64)
	typeKVU8   = typeEntry("u", 8)
	typeKVU16  = typeEntry("u", 16)
	typeKVU32  = typeEntry("u", 32)
	typeKVU64  = typeEntry("u", 64)
	typeKVF32  = typeEntry("f", 32)
	typeKVF64  = typeEntry("f", 64)
	typeKVC64  = typeEntry("c", 64)
	typeKVC128 = typeEntry("c", 128)
)

func typeEntry(kind string, bits byte) []byte {
	kv := append(atomBytes("type"), tagSmallTuple, 2)
	kv = append(kv, atomBytes(kind)...)
	return append(kv, tagSmallInteger, bits)
}

// typeKV returns the type entry of dt, or nil if it has no Nx type: the
// entry of the tuple nxTypeOf returns.
func typeKV(dt tensor.Dtype) []byte {
	switch dt {
	case tensor.Float32:
		return typeKVF32
	case tensor.Float64:
		return typeKVF64
	case tensor.Int8:
		return typeKVS8
	case tensor.Int16:
		return typeKVS16
	case tensor.Int32:
		return typeKVS32
	case tensor.Int64:
		return typeKVS64
	case tensor.Uint8, tensor.Bool:
		return typeKVU8
	case tensor.Uint16:
		return typeKVU16
	case tensor.Uint32:
		return typeKVU32
	case tensor.Uint64:
		return typeKVU64
	case tensor.Complex64:
		return typeKVC64
	case tensor.Complex128:
		return typeKVC128
	case tensor.Int:
		if strconv.IntSize == 64 {
			return typeKVS64
		}
	case tensor.Uint:
		if strconv.IntSize == 64 {
			return typeKVU64
		}
	}
	return nil
}

// size validates v, which sits inside depth containers, as Encode does
// and returns the bytes write will append for it.
func (e *encoder) size(v any, depth int) (int, error) {
	switch x := v.(type) {
	case *tensor.Dense:
		return tensorSize(x)
	case batch.Tuple:
		if depth >= MaxDepth {
			return 0, tooDeep()
		}
		n := tupleHeadSize(len(x))
		for i, el := range x {
			s, err := e.size(el, depth+1)
			if err != nil {
				return 0, atIndex(err, i)
			}
			n += s
		}
		return n, nil
	case batch.Map:
		return e.mapSize(x, depth)
	case map[string]any:
		return e.mapSize(x, depth)
	case *batch.Batch:
		return e.batchSize(x, depth)
	case []float32, []float64, []int64, []int32:
		return tensorSize(sliceTensor(v))
	}
	return plainSize(v)
}

func tupleHeadSize(n int) int {
	if n <= math.MaxUint8 {
		return 2
	}
	return 5
}

func (e *encoder) mapSize(m map[string]any, depth int) (int, error) {
	if depth >= MaxDepth {
		return 0, tooDeep()
	}
	n := 5
	for k, el := range m {
		if err := checkAtom(k); err != nil {
			err.Msg = "map key: " + err.Msg
			return 0, atKey(err, k)
		}
		if k == "__struct__" {
			// Decode would read the map as a struct.
			return 0, errorf(ErrUnsupportedType, "map key __struct__ is reserved for Elixir structs")
		}
		s, err := e.size(el, depth+1)
		if err != nil {
			return 0, atKey(err, k)
		}
		n += 2 + len(k) + s
	}
	return n, nil
}

func (e *encoder) batchSize(b *batch.Batch, depth int) (int, error) {
	if b == nil {
		return 0, errorf(ErrUnsupportedType, "nil *batch.Batch")
	}
	if depth >= MaxDepth {
		return 0, tooDeep()
	}
	key := b.Key()
	if err := checkAtom(key); err != nil {
		err.Msg = "batch key: " + err.Msg
		return 0, err
	}
	n := len(batchHead) + len(sizeKey) + intSize(int64(b.Size())) + len(padKey) + intSize(int64(b.Padding())) +
		len(keyKeyBytes) + 2 + len(key) + len(stackKey) + 1
	var rows any
	if b.Template() != nil {
		var err error
		if rows, err = unpadded(b); err != nil {
			return 0, &Error{Kind: ErrUnsupportedType, Path: ".stack[0]", Msg: "cannot materialise the batch", Err: err}
		}
		s, err := e.size(rows, depth+1)
		if err != nil {
			return 0, atKey(atIndex(err, 0), "stack")
		}
		n += 5 + s // a list of one element: header, rows, and the [] counted above
	}
	e.mats = append(e.mats, materialised{b, rows})
	return n, nil
}

// tensorSize validates d as encodeTensor does and returns the size of its
// term.
func tensorSize(d *tensor.Dense) (int, error) {
	if d == nil {
		return 0, errorf(ErrUnsupportedType, "nil *tensor.Dense")
	}
	if typeKV(d.Dtype()) == nil {
		return 0, errorf(ErrUnsupportedType, "gorgonia dtype %v has no Nx type", d.Dtype())
	}
	shape := d.Shape()
	elems, err := checkShape(shape)
	if err != nil {
		return 0, err
	}
	data := int64(elems) * int64(d.Dtype().Size())
	if data > 0 && d.IsMasked() {
		// As tensorBytes: an empty tensor counts as masked in gorgonia.
		return 0, errorf(ErrUnsupportedType, "masked tensor: Nx tensors have no mask; fill the masked elements first")
	}
	if data > MaxTensorBytes {
		return 0, errorf(ErrTooLarge, "tensor data of %d bytes, limit %d (MaxTensorBytes)", data, int64(MaxTensorBytes))
	}
	return tensorHeadSize + backendSize + int(data) + typeKVSize + shapeKVSize(shape) + namesKVSize(len(shape)) + len(vectorizedKV), nil
}

func shapeKVSize(shape []int) int {
	n := len(shapeKey) + 2 // rank <= MaxRank: a small tuple
	for _, d := range shape {
		n += intSize(int64(d))
	}
	return n
}

func namesKVSize(rank int) int {
	if rank == 0 {
		return len(namesKey) + 1
	}
	return len(namesKey) + 5 + rank*len(atomNilBytes) + 1
}

// plainSize validates a plain value as encodePlain does and returns its
// size.
func plainSize(v any) (int, error) {
	switch x := v.(type) {
	case nil:
		return len(atomNilBytes), nil
	case bool:
		if x {
			return len(atomTrueBytes), nil
		}
		return len(atomFalseBytes), nil
	case etf.Atom:
		if err := checkAtom(string(x)); err != nil {
			return 0, err
		}
		return 2 + len(x), nil
	case int:
		return intSize(int64(x)), nil
	case int8:
		return intSize(int64(x)), nil
	case int16:
		return intSize(int64(x)), nil
	case int32:
		return intSize(int64(x)), nil
	case int64:
		return intSize(x), nil
	case uint:
		return uintSize(uint64(x)), nil
	case uint8:
		return intSize(int64(x)), nil
	case uint16:
		return intSize(int64(x)), nil
	case uint32:
		return intSize(int64(x)), nil
	case uint64:
		return uintSize(x), nil
	case float32:
		if _, err := checkFloat(float64(x)); err != nil {
			return 0, err
		}
		return 9, nil
	case float64:
		if _, err := checkFloat(x); err != nil {
			return 0, err
		}
		return 9, nil
	case string:
		if len(x) > MaxStringBytes {
			return 0, errorf(ErrTooLarge, "string of %d bytes, limit %d (MaxStringBytes); send long text as []byte", len(x), MaxStringBytes)
		}
		return 3 + len(x), nil
	case []byte:
		if int64(len(x)) > MaxTensorBytes {
			return 0, errorf(ErrTooLarge, "binary of %d bytes, limit %d (MaxTensorBytes)", len(x), int64(MaxTensorBytes))
		}
		return 5 + len(x), nil
	}
	return 0, errorf(ErrUnsupportedType, "cannot encode %s: want a *tensor.Dense, batch.Tuple, batch.Map, *batch.Batch, "+
		"nil, bool, etf.Atom, integer, float, string or []byte", goTypeName(v))
}

// intSize is the size of an integer as appendInt writes it.
func intSize(v int64) int {
	switch {
	case v >= 0 && v <= math.MaxUint8:
		return 2
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return 5
	}
	return 3 + magnitudeBytes(magnitude(v))
}

func uintSize(u uint64) int {
	if u <= math.MaxInt64 {
		return intSize(int64(u))
	}
	return 3 + 8
}

func magnitude(v int64) uint64 {
	if v < 0 {
		return -uint64(v) // MinInt64 too: 1<<63
	}
	return uint64(v)
}

func magnitudeBytes(m uint64) int { return (bits.Len64(m) + 7) / 8 }

// appendInt writes v as Erlang does: SMALL_INTEGER_EXT for 0..255,
// INTEGER_EXT within 32 bits, else SMALL_BIG_EXT with as few digits as
// the magnitude takes.
func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= math.MaxUint8:
		return append(b, tagSmallInteger, byte(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(b, tagInteger), uint32(v))
	}
	sign := byte(0)
	if v < 0 {
		sign = 1
	}
	return appendBig(b, sign, magnitude(v))
}

func appendUint(b []byte, u uint64) []byte {
	if u <= math.MaxInt64 {
		return appendInt(b, int64(u))
	}
	return appendBig(b, 0, u)
}

func appendBig(b []byte, sign byte, m uint64) []byte {
	n := magnitudeBytes(m)
	b = append(b, tagSmallBig, byte(n), sign)
	for i := range n {
		b = append(b, byte(m>>(8*i)))
	}
	return b
}

func appendAtom(b []byte, s string) []byte {
	return append(append(b, tagSmallAtomUTF8, byte(len(s))), s...)
}

// write appends v, which size has validated.
func (e *encoder) write(v any) error {
	switch x := v.(type) {
	case *tensor.Dense:
		return e.writeTensor(x)
	case batch.Tuple:
		if len(x) <= math.MaxUint8 {
			e.buf = append(e.buf, tagSmallTuple, byte(len(x)))
		} else {
			e.buf = binary.BigEndian.AppendUint32(append(e.buf, tagLargeTuple), uint32(len(x)))
		}
		for i, el := range x {
			if err := e.write(el); err != nil {
				return atIndex(err, i)
			}
		}
		return nil
	case batch.Map:
		return e.writeMap(x)
	case map[string]any:
		return e.writeMap(x)
	case *batch.Batch:
		return e.writeBatch(x)
	case []float32, []float64, []int64, []int32:
		return e.writeTensor(sliceTensor(v))
	}
	e.writePlain(v)
	return nil
}

func (e *encoder) writeMap(m map[string]any) error {
	e.buf = binary.BigEndian.AppendUint32(append(e.buf, tagMap), uint32(len(m)))
	for k, el := range m {
		e.buf = appendAtom(e.buf, k)
		if err := e.write(el); err != nil {
			return atKey(err, k)
		}
	}
	return nil
}

func (e *encoder) writeBatch(b *batch.Batch) error {
	var rows any
	found := false
	for _, m := range e.mats {
		if m.b == b {
			rows, found = m.rows, true
			break
		}
	}
	if !found {
		// size met every batch that write meets.
		return errorf(ErrUnsupportedType, "wire: internal error: batch not sized before it was written")
	}
	e.buf = append(e.buf, batchHead...)
	e.buf = appendInt(append(e.buf, sizeKey...), int64(b.Size()))
	e.buf = appendInt(append(e.buf, padKey...), int64(b.Padding()))
	e.buf = appendAtom(append(e.buf, keyKeyBytes...), b.Key())
	e.buf = append(e.buf, stackKey...)
	if b.Template() != nil {
		e.buf = append(e.buf, tagList, 0, 0, 0, 1)
		if err := e.write(rows); err != nil {
			return atKey(atIndex(err, 0), "stack")
		}
	}
	e.buf = append(e.buf, tagNil)
	return nil
}

func (e *encoder) writePlain(v any) {
	b := e.buf
	switch x := v.(type) {
	case nil:
		b = append(b, atomNilBytes...)
	case bool:
		if x {
			b = append(b, atomTrueBytes...)
		} else {
			b = append(b, atomFalseBytes...)
		}
	case etf.Atom:
		b = appendAtom(b, string(x))
	case int:
		b = appendInt(b, int64(x))
	case int8:
		b = appendInt(b, int64(x))
	case int16:
		b = appendInt(b, int64(x))
	case int32:
		b = appendInt(b, int64(x))
	case int64:
		b = appendInt(b, x)
	case uint:
		b = appendUint(b, uint64(x))
	case uint8:
		b = appendInt(b, int64(x))
	case uint16:
		b = appendInt(b, int64(x))
	case uint32:
		b = appendInt(b, int64(x))
	case uint64:
		b = appendUint(b, x)
	case float32:
		b = binary.BigEndian.AppendUint64(append(b, tagNewFloat), math.Float64bits(float64(x)))
	case float64:
		b = binary.BigEndian.AppendUint64(append(b, tagNewFloat), math.Float64bits(x))
	case string:
		b = binary.BigEndian.AppendUint16(append(b, tagString), uint16(len(x)))
		b = append(b, x...)
	case []byte:
		b = binary.BigEndian.AppendUint32(append(b, tagBinary), uint32(len(x)))
		b = append(b, x...)
	}
	e.buf = b
}

// writeTensor appends the %Nx.Tensor{} term of d, which tensorSize has
// validated. Map entries may come in any order: writeTensor chooses which
// of the type, shape, names and vectorized_axes entries come before data,
// and whether the backend's __struct__ comes before or after its state,
// so that the data starts at a multiple of its element alignment from the
// start of the binary. Marshal's buffer and the copies ergo makes of it
// are 8-byte aligned, so Unmarshal can use the data in place.
func (e *encoder) writeTensor(d *tensor.Dense) error {
	dt := d.Dtype()
	shape := d.Shape()
	parts := [4]int{typeKVSize, shapeKVSize(shape), namesKVSize(len(shape)), len(vectorizedKV)}
	align := int(dt.Align())
	start := len(e.buf) + tensorHeadSize + backendSize // the data, with nothing before it
	layout := 0                                        // bits 0-3: parts before data; bit 4: backend __struct__ after state
	for l := range 32 {
		off := start
		for i, n := range parts {
			if l&(1<<i) != 0 {
				off += n
			}
		}
		if l&16 != 0 {
			off -= len(backendStruct)
		}
		if off%align == 0 {
			layout = l
			break
		}
	}
	e.buf = append(e.buf, tagMap, 0, 0, 0, 6)
	e.buf = append(e.buf, tensorStruct...)
	e.writeTensorParts(dt, shape, layout&15)
	if layout&16 == 0 {
		e.buf = append(e.buf, backendHead...)
	} else {
		e.buf = append(e.buf, backendHead2...)
	}
	if err := e.appendData(d); err != nil {
		return err
	}
	if layout&16 != 0 {
		e.buf = append(e.buf, backendStruct...)
	}
	e.writeTensorParts(dt, shape, 15&^layout)
	return nil
}

// writeTensorParts appends the type, shape, names and vectorized_axes
// entries of a tensor whose bit is set in which.
func (e *encoder) writeTensorParts(dt tensor.Dtype, shape []int, which int) {
	b := e.buf
	if which&1 != 0 {
		b = append(b, typeKV(dt)...)
	}
	if which&2 != 0 {
		b = append(b, shapeKey...)
		b = append(b, tagSmallTuple, byte(len(shape)))
		for _, n := range shape {
			b = appendInt(b, int64(n))
		}
	}
	if which&4 != 0 {
		b = append(b, namesKey...)
		if len(shape) > 0 {
			b = binary.BigEndian.AppendUint32(append(b, tagList), uint32(len(shape)))
			for range shape {
				b = append(b, atomNilBytes...)
			}
		}
		b = append(b, tagNil)
	}
	if which&8 != 0 {
		b = append(b, vectorizedKV...)
	}
	e.buf = b
}

// appendData appends the length and the elements of d in row-major
// order, little-endian, as tensorBytes lays them out.
func (e *encoder) appendData(d *tensor.Dense) error {
	dt := d.Dtype()
	es := int(dt.Size())
	want := es
	for _, n := range d.Shape() {
		want *= n // checked by tensorSize: no overflow
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(want))
	if want == 0 {
		return nil
	}
	at := len(e.buf)
	buf, err := batch.AppendRowMajor(e.buf, d)
	if err != nil {
		return errorf(ErrUnsupportedType, "%v", err)
	}
	if len(buf)-at != want {
		return errorf(ErrUnsupportedType, "a %v tensor of shape %v laid out as %d bytes, want %d", dt, d.Shape(), len(buf)-at, want)
	}
	e.buf = buf
	if !hostLittleEndian {
		swapBytes(e.buf[at:], componentSize(dt))
	}
	return nil
}

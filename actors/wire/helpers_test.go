package wire_test

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// toBytes runs term through ergo's real encoder.
func toBytes(t testing.TB, term etf.Term) []byte {
	t.Helper()
	b := lib.TakeBuffer()
	defer lib.ReleaseBuffer(b)
	require.NoError(t, etf.Encode(term, b, etf.EncodeOptions{}))
	return slices.Clone(b.B)
}

// fromBytes runs packet through ergo's real decoder and requires that it
// uses all of it.
func fromBytes(t testing.TB, packet []byte) etf.Term {
	t.Helper()
	term, rest, err := etf.Decode(packet, []etf.Atom{}, etf.DecodeOptions{})
	require.NoError(t, err)
	require.Empty(t, rest)
	return term
}

// overErgo is what a remote node receives for term.
func overErgo(t testing.TB, term etf.Term) etf.Term {
	t.Helper()
	return fromBytes(t, toBytes(t, term))
}

// roundTrip encodes v, sends it through ergo's encoder and decoder, and
// decodes it.
func roundTrip(t testing.TB, v any) any {
	t.Helper()
	term, err := wire.Encode(v)
	require.NoError(t, err)
	out, err := wire.Decode(overErgo(t, term))
	require.NoError(t, err)
	return out
}

// requireSame fails unless got is the value want decodes to.
func requireSame(t testing.TB, want, got any) {
	t.Helper()
	if msg := diff(want, got); msg != "" {
		t.Fatalf("values differ: %s\nwant %#v\ngot  %#v", msg, want, got)
	}
}

// diff compares two decoded values: tensors by dtype, shape and bytes in
// row-major order, batches by size, padding, key and rows, containers
// element by element, floats bit for bit. It returns "" when equal.
func diff(a, b any) string {
	switch x := a.(type) {
	case *tensor.Dense:
		y, ok := b.(*tensor.Dense)
		if !ok {
			return fmt.Sprintf("tensor vs %T", b)
		}
		if x.Dtype() != y.Dtype() || !slices.Equal(x.Shape(), y.Shape()) {
			return fmt.Sprintf("tensor %v%v vs %v%v", x.Dtype(), x.Shape(), y.Dtype(), y.Shape())
		}
		if !bytes.Equal(logicalBytes(x), logicalBytes(y)) {
			return fmt.Sprintf("tensor data %v vs %v", x.Data(), y.Data())
		}
		return ""
	case *batch.Batch:
		y, ok := b.(*batch.Batch)
		if !ok {
			return fmt.Sprintf("batch vs %T", b)
		}
		if x.Size() != y.Size() || x.Padding() != y.Padding() || x.Key() != y.Key() {
			return fmt.Sprintf("batch %v key %q vs %v key %q", x, x.Key(), y, y.Key())
		}
		if (x.Template() == nil) != (y.Template() == nil) || x.Template() != nil && !x.Template().Equal(y.Template()) {
			return fmt.Sprintf("batch template %v vs %v", x.Template(), y.Template())
		}
		if x.Template() == nil {
			return ""
		}
		return diff(rowsOf(x), rowsOf(y))
	case batch.Tuple:
		y, ok := b.(batch.Tuple)
		if !ok || len(x) != len(y) {
			return fmt.Sprintf("tuple of %d vs %#v", len(x), b)
		}
		for i := range x {
			if m := diff(x[i], y[i]); m != "" {
				return fmt.Sprintf("[%d]: %s", i, m)
			}
		}
		return ""
	case batch.Map:
		y, ok := b.(batch.Map)
		if !ok || len(x) != len(y) {
			return fmt.Sprintf("map of %d vs %#v", len(x), b)
		}
		for k := range x {
			if m := diff(x[k], y[k]); m != "" {
				return fmt.Sprintf(".%s: %s", k, m)
			}
		}
		return ""
	case []byte:
		y, ok := b.([]byte)
		if !ok || !bytes.Equal(x, y) {
			return fmt.Sprintf("binary %v vs %#v", x, b)
		}
		return ""
	case float64:
		y, ok := b.(float64)
		if !ok || math.Float64bits(x) != math.Float64bits(y) {
			return fmt.Sprintf("float %v vs %#v", x, b)
		}
		return ""
	}
	if a != b {
		return fmt.Sprintf("%#v vs %#v", a, b)
	}
	return ""
}

// rowsOf materialises b's rows without padding (no allocation for the
// padding, which may be large in fuzzed batches).
func rowsOf(b *batch.Batch) any {
	if b.Size() == 0 {
		return nil
	}
	left, _, err := b.Split(b.Size())
	if err != nil {
		panic(err)
	}
	c, err := left.Materialize()
	if err != nil {
		panic(err)
	}
	return c
}

// logicalBytes returns d's elements in logical row-major order as bytes,
// read one by one with At, whatever d's memory layout.
func logicalBytes(d *tensor.Dense) []byte {
	shape := d.Shape()
	n := d.Size()
	out := make([]byte, 0, n*int(d.Dtype().Size()))
	coords := make([]int, len(shape))
	for range n {
		v, err := d.At(coords...)
		if err != nil {
			panic(err)
		}
		out = appendLE(out, v)
		for k := len(coords) - 1; k >= 0; k-- {
			coords[k]++
			if coords[k] < shape[k] {
				break
			}
			coords[k] = 0
		}
	}
	return out
}

// appendLE appends v in Nx's little-endian layout.
func appendLE(b []byte, v any) []byte {
	u := func(x uint64, n int) []byte {
		for i := range n {
			b = append(b, byte(x>>(8*i)))
		}
		return b
	}
	switch x := v.(type) {
	case float32:
		return u(uint64(math.Float32bits(x)), 4)
	case float64:
		return u(math.Float64bits(x), 8)
	case int8:
		return u(uint64(x), 1)
	case int16:
		return u(uint64(x), 2)
	case int32:
		return u(uint64(x), 4)
	case int64:
		return u(uint64(x), 8)
	case int:
		return u(uint64(x), 8)
	case uint8:
		return u(uint64(x), 1)
	case uint16:
		return u(uint64(x), 2)
	case uint32:
		return u(uint64(x), 4)
	case uint64:
		return u(x, 8)
	case uint:
		return u(uint64(x), 8)
	case bool:
		if x {
			return append(b, 1)
		}
		return append(b, 0)
	case complex64:
		b = u(uint64(math.Float32bits(real(x))), 4)
		return u(uint64(math.Float32bits(imag(x))), 4)
	case complex128:
		b = u(math.Float64bits(real(x)), 8)
		return u(math.Float64bits(imag(x)), 8)
	}
	panic(fmt.Sprintf("appendLE: %T", v))
}

// dtypes lists every gorgonia dtype the wire carries, with the dtype it
// decodes to and its Nx type.
var dtypes = []struct {
	in, out tensor.Dtype
	kind    string
	bits    int
}{
	{tensor.Float32, tensor.Float32, "f", 32},
	{tensor.Float64, tensor.Float64, "f", 64},
	{tensor.Int8, tensor.Int8, "s", 8},
	{tensor.Int16, tensor.Int16, "s", 16},
	{tensor.Int32, tensor.Int32, "s", 32},
	{tensor.Int64, tensor.Int64, "s", 64},
	{tensor.Int, tensor.Int64, "s", 64},
	{tensor.Uint8, tensor.Uint8, "u", 8},
	{tensor.Uint16, tensor.Uint16, "u", 16},
	{tensor.Uint32, tensor.Uint32, "u", 32},
	{tensor.Uint64, tensor.Uint64, "u", 64},
	{tensor.Uint, tensor.Uint64, "u", 64},
	{tensor.Bool, tensor.Uint8, "u", 8},
	{tensor.Complex64, tensor.Complex64, "c", 64},
	{tensor.Complex128, tensor.Complex128, "c", 128},
}

// filled returns a tensor of dtype dt and shape whose elements are
// distinct (as far as the type allows) and include negative values and
// fractions where the type has them.
func filled(dt tensor.Dtype, shape ...int) *tensor.Dense {
	n := 1
	for _, d := range shape {
		n *= d
	}
	val := func(i int) float64 { return float64(i*7%251) - 100.25 }
	var back any
	switch dt {
	case tensor.Float32:
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(val(i))
		}
		back = s
	case tensor.Float64:
		s := make([]float64, n)
		for i := range s {
			s[i] = val(i) * 1e10
		}
		back = s
	case tensor.Int8:
		s := make([]int8, n)
		for i := range s {
			s[i] = int8(val(i))
		}
		back = s
	case tensor.Int16:
		s := make([]int16, n)
		for i := range s {
			s[i] = int16(val(i)) * 300
		}
		back = s
	case tensor.Int32:
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(val(i)) * 1e6
		}
		back = s
	case tensor.Int64:
		s := make([]int64, n)
		for i := range s {
			s[i] = int64(val(i)) * 1e15
		}
		back = s
	case tensor.Int:
		s := make([]int, n)
		for i := range s {
			s[i] = int(int64(val(i)) * 1e15) // truncated where int is 32-bit
		}
		back = s
	case tensor.Uint8:
		s := make([]uint8, n)
		for i := range s {
			s[i] = uint8(i * 7)
		}
		back = s
	case tensor.Uint16:
		s := make([]uint16, n)
		for i := range s {
			s[i] = uint16(i * 7001)
		}
		back = s
	case tensor.Uint32:
		s := make([]uint32, n)
		for i := range s {
			s[i] = uint32(i) * 4_000_001
		}
		back = s
	case tensor.Uint64:
		s := make([]uint64, n)
		for i := range s {
			s[i] = math.MaxUint64 - uint64(i)*1e15
		}
		back = s
	case tensor.Uint:
		s := make([]uint, n)
		for i := range s {
			s[i] = uint(math.MaxUint64 - uint64(i)*1e15) // truncated where uint is 32-bit
		}
		back = s
	case tensor.Bool:
		s := make([]bool, n)
		for i := range s {
			s[i] = i%3 == 0
		}
		back = s
	case tensor.Complex64:
		s := make([]complex64, n)
		for i := range s {
			s[i] = complex(float32(val(i)), float32(-val(i+1)))
		}
		back = s
	case tensor.Complex128:
		s := make([]complex128, n)
		for i := range s {
			s[i] = complex(val(i), -val(i+1)*1e-9)
		}
		back = s
	default:
		panic(dt.String())
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(back))
}

func f32(shape []int, xs ...float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(xs))
}

func i64s(xs ...int64) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(xs)), tensor.WithBacking(xs))
}

// etfEncodeErr returns ergo's encoder's error for term.
func etfEncodeErr(term etf.Term) error {
	b := lib.TakeBuffer()
	defer lib.ReleaseBuffer(b)
	return etf.Encode(term, b, etf.EncodeOptions{})
}

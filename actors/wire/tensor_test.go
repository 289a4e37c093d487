package wire_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"unsafe"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

var shapes = [][]int{
	{},           // scalar
	{5},          // vector
	{3, 4},       // matrix
	{2, 3, 1, 2}, // rank 4
	{0, 16},      // empty: no rows
	{0},          // empty vector
	{2, 0, 3},    // empty in the middle
	{1, 300},     // a dimension that ergo decodes as int64
}

func TestTensorRoundTripsEveryDtypeAndShapeThroughErgo(t *testing.T) {
	for _, dt := range dtypes {
		for _, shape := range shapes {
			t.Run(fmt.Sprintf("%v%v", dt.in, shape), func(t *testing.T) {
				in := filled(dt.in, shape...)
				want := logicalBytes(in)

				term, err := wire.EncodeTensor(in)
				require.NoError(t, err)
				out, err := wire.DecodeTensor(overErgo(t, term))
				require.NoError(t, err)

				assert.Equal(t, dt.out, out.Dtype())
				assert.Equal(t, len(shape), out.Dims())
				assert.Equal(t, tensor.Shape(shape), out.Shape())
				assert.Equal(t, want, logicalBytes(out))
				// Nothing left in memory after the tensor's elements.
				assert.Len(t, out.Raw, len(want))
			})
		}
	}
}

func TestTensorTermHasNxShape(t *testing.T) {
	in := f32([]int{2, 3}, 1, 2, 3, 4, 5, 6.5)
	term, err := wire.EncodeTensor(in)
	require.NoError(t, err)

	state := []byte{
		0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40,
		0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40, 0, 0, 0xd0, 0x40,
	}
	// As Encode builds it, and as a remote node receives it from ergo
	// (both atom keys, small integers as int, the binary as []byte).
	for name, got := range map[string]etf.Term{"encoded": term, "received": overErgo(t, term)} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, etf.Map{
				etf.Atom("__struct__"): etf.Atom("Elixir.Nx.Tensor"),
				etf.Atom("data"): etf.Map{
					etf.Atom("__struct__"): etf.Atom("Elixir.Nx.BinaryBackend"),
					etf.Atom("state"):      state,
				},
				etf.Atom("type"):            etf.Tuple{etf.Atom("f"), 32},
				etf.Atom("shape"):           etf.Tuple{2, 3},
				etf.Atom("names"):           etf.List{etf.Atom("nil"), etf.Atom("nil")},
				etf.Atom("vectorized_axes"): etf.List{},
			}, got)
		})
	}
}

func TestTensorTermScalarHasEmptyShapeAndNames(t *testing.T) {
	term, err := wire.EncodeTensor(tensor.New(tensor.FromScalar(int64(-7))))
	require.NoError(t, err)
	got := overErgo(t, term).(etf.Map)
	assert.Equal(t, etf.Tuple{}, got[etf.Atom("shape")])
	assert.Equal(t, etf.List{}, got[etf.Atom("names")])
	assert.Equal(t, etf.Tuple{etf.Atom("s"), 64}, got[etf.Atom("type")])
}

func TestTensorTermLargeDimensionsArriveAsInt64(t *testing.T) {
	term, err := wire.EncodeTensor(filled(tensor.Uint8, 2, 256))
	require.NoError(t, err)
	got := overErgo(t, term).(etf.Map)
	assert.Equal(t, etf.Tuple{2, int64(256)}, got[etf.Atom("shape")])
}

// Views, lazy transposes and column-major tensors go out in their logical
// (At) order, not in their memory order.
func TestEncodeTensorWritesLogicalRowMajorOrderForAnyLayout(t *testing.T) {
	base := func() *tensor.Dense { return filled(tensor.Float64, 3, 4) }
	layouts := map[string]func() *tensor.Dense{
		"plain":          base,
		"lazy transpose": func() *tensor.Dense { d := base(); require.NoError(t, d.T()); return d },
		"transposed in place": func() *tensor.Dense {
			d := base()
			require.NoError(t, d.T())
			require.NoError(t, d.Transpose())
			return d
		},
		"row view": func() *tensor.Dense {
			v, err := base().Slice(tensor.S(1, 3))
			require.NoError(t, err)
			return v.(*tensor.Dense)
		},
		"column view": func() *tensor.Dense {
			v, err := base().Slice(nil, tensor.S(1, 3))
			require.NoError(t, err)
			return v.(*tensor.Dense)
		},
		"one column": func() *tensor.Dense {
			v, err := base().Slice(nil, tensor.S(2))
			require.NoError(t, err)
			return v.(*tensor.Dense)
		},
		"view of a lazy transpose": func() *tensor.Dense {
			d := base()
			require.NoError(t, d.T())
			v, err := d.Slice(tensor.S(1, 3))
			require.NoError(t, err)
			return v.(*tensor.Dense)
		},
		"column-major": func() *tensor.Dense {
			return tensor.New(tensor.WithShape(3, 4), tensor.AsFortran(base().Float64s()))
		},
		"rank 3 lazy transpose": func() *tensor.Dense {
			d := filled(tensor.Int16, 2, 3, 2)
			require.NoError(t, d.T(2, 0, 1))
			return d
		},
	}
	for name, mk := range layouts {
		t.Run(name, func(t *testing.T) {
			d := mk()
			for _, share := range []bool{false, true} {
				term, err := wire.Options{Share: share}.EncodeTensor(d)
				require.NoError(t, err)
				state := term.(etf.Map)[etf.Atom("data")].(etf.Map)[etf.Atom("state")].([]byte)
				assert.Equal(t, logicalBytes(d), state, "share=%v", share)

				out, err := wire.DecodeTensor(overErgo(t, term))
				require.NoError(t, err)
				requireSame(t, d, out)
			}
		})
	}
}

func TestEncodeTensorCopiesDataUnlessShared(t *testing.T) {
	d := filled(tensor.Float32, 4, 4)
	stateOf := func(term etf.Term) []byte {
		return term.(etf.Map)[etf.Atom("data")].(etf.Map)[etf.Atom("state")].([]byte)
	}

	term, err := wire.EncodeTensor(d)
	require.NoError(t, err)
	assert.Equal(t, d.Raw, stateOf(term))
	assert.NotSame(t, &d.Raw[0], &stateOf(term)[0], "Encode must not alias the tensor: ergo encodes after Send returns")

	term, err = wire.Options{Share: true}.EncodeTensor(d)
	require.NoError(t, err)
	assert.Same(t, &d.Raw[0], &stateOf(term)[0], "Share must not copy a plain tensor")
}

// ergo's decoder allocates a fresh slice for every binary; Decode makes it
// the tensor's memory instead of copying it.
func TestDecodeTensorUsesTheReceivedBinaryAsMemory(t *testing.T) {
	term, err := wire.EncodeTensor(filled(tensor.Float64, 8, 8))
	require.NoError(t, err)
	received := overErgo(t, term)
	state := received.(etf.Map)[etf.Atom("data")].(etf.Map)[etf.Atom("state")].([]byte)

	out, err := wire.DecodeTensor(received)
	require.NoError(t, err)
	assert.Same(t, &state[0], &out.Raw[0])
}

func TestDecodeTensorWithCopyLeavesTheTermAlone(t *testing.T) {
	in := filled(tensor.Float64, 8, 8)
	term, err := wire.EncodeTensor(in)
	require.NoError(t, err)
	received := overErgo(t, term)
	state := received.(etf.Map)[etf.Atom("data")].(etf.Map)[etf.Atom("state")].([]byte)

	a, err := wire.Options{Copy: true}.DecodeTensor(received)
	require.NoError(t, err)
	b, err := wire.Options{Copy: true}.DecodeTensor(received)
	require.NoError(t, err)
	assert.NotSame(t, &state[0], &a.Raw[0])
	assert.NotSame(t, &a.Raw[0], &b.Raw[0])
	requireSame(t, in, a)
	requireSame(t, in, b)
}

// A binary that is not aligned for the element type (a term built in
// memory from a sub-slice) is copied into aligned memory.
func TestDecodeTensorCopiesMisalignedBinary(t *testing.T) {
	in := filled(tensor.Float64, 3)
	buf := make([]byte, 1+len(in.Raw))
	copy(buf[1:], in.Raw)
	state := buf[1:]
	require.NotZero(t, uintptr(unsafe.Pointer(&state[0]))%8)

	term, err := wire.EncodeTensor(in)
	require.NoError(t, err)
	m := term.(etf.Map)
	m[etf.Atom("data")] = etf.Map{
		etf.Atom("__struct__"): etf.Atom("Elixir.Nx.BinaryBackend"),
		etf.Atom("state"):      state,
	}
	out, err := wire.DecodeTensor(m)
	require.NoError(t, err)
	assert.NotSame(t, &state[0], &out.Raw[0])
	assert.Zero(t, uintptr(unsafe.Pointer(&out.Raw[0]))%8)
	requireSame(t, in, out)
}

// A term from Erlang or Elixir may name its axes and leave out
// vectorized_axes (Nx 0.5): both decode.
func TestDecodeTensorAcceptsNamedAxesAndNx05Struct(t *testing.T) {
	term := etf.Map{
		etf.Atom("__struct__"): etf.Atom("Elixir.Nx.Tensor"),
		etf.Atom("data"): etf.Map{
			etf.Atom("__struct__"): etf.Atom("Elixir.Nx.BinaryBackend"),
			etf.Atom("state"):      []byte{1, 0, 2, 0, 3, 0, 4, 0},
		},
		etf.Atom("type"):  etf.Tuple{etf.Atom("s"), 16},
		etf.Atom("shape"): etf.Tuple{2, 2},
		etf.Atom("names"): etf.List{etf.Atom("batch"), etf.Atom("nil")},
	}
	out, err := wire.DecodeTensor(overErgo(t, term))
	require.NoError(t, err)
	assert.Equal(t, tensor.Int16, out.Dtype())
	assert.Equal(t, tensor.Shape{2, 2}, out.Shape())
	assert.Equal(t, []int16{1, 2, 3, 4}, out.Data())
}

func TestEncodeTensorSharesNoMutableStateBetweenTerms(t *testing.T) {
	a, err := wire.EncodeTensor(filled(tensor.Float32, 2))
	require.NoError(t, err)
	b, err := wire.EncodeTensor(filled(tensor.Float32, 2))
	require.NoError(t, err)
	sa := a.(etf.Map)[etf.Atom("shape")].(etf.Tuple)
	sb := b.(etf.Map)[etf.Atom("shape")].(etf.Tuple)
	sa[0] = 99
	assert.Equal(t, 2, sb[0], "shape tuples are per term")
	assert.True(t, bytes.Equal(a.(etf.Map)[etf.Atom("data")].(etf.Map)[etf.Atom("state")].([]byte),
		b.(etf.Map)[etf.Atom("data")].(etf.Map)[etf.Atom("state")].([]byte)))
	assert.True(t, slices.Equal(sb, etf.Tuple{2}))
}

// A term built in memory may hold the same binary twice; the values one
// Decode returns never share memory all the same.
func TestDecodeNeverReturnsValuesSharingMemory(t *testing.T) {
	term, err := wire.EncodeTensor(filled(tensor.Float32, 4))
	require.NoError(t, err)
	bin := []byte{1, 2, 3, 4}
	v, err := wire.Decode(etf.Tuple{term, term, bin, bin[1:3]})
	require.NoError(t, err)
	tup := v.(batch.Tuple)
	a, b := tup[0].(*tensor.Dense), tup[1].(*tensor.Dense)
	state := term.(etf.Map)[etf.Atom("data")].(etf.Map)[etf.Atom("state")].([]byte)
	assert.Same(t, &state[0], &a.Raw[0], "the first use takes the binary")
	assert.NotSame(t, &a.Raw[0], &b.Raw[0])
	requireSame(t, a, b)
	x, y := tup[2].([]byte), tup[3].([]byte)
	assert.Same(t, &bin[0], &x[0])
	assert.NotSame(t, &bin[1], &y[0], "an overlapping binary is copied")
	assert.Equal(t, []byte{2, 3}, y)
}

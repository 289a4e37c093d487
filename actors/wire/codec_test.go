package wire_test

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

func TestContainersRoundTripNestedThroughErgo(t *testing.T) {
	in := batch.Map{
		"image": filled(tensor.Float32, 2, 3),
		"pair":  batch.Tuple{i64s(1, 2, 3), batch.Tuple{filled(tensor.Uint8, 4), batch.Map{}}},
		"deep":  batch.Map{"a": batch.Map{"b": batch.Tuple{filled(tensor.Complex128, 1, 1)}}},
		"empty": batch.Tuple{},
		"true":  filled(tensor.Int32), // a key that ergo decodes as a bool
	}
	requireSame(t, in, roundTrip(t, in))
}

func TestContainerTermUsesTuplesAndAtomKeyedMaps(t *testing.T) {
	term, err := wire.Encode(batch.Tuple{batch.Map{"x": int64(300)}, "s"})
	require.NoError(t, err)
	assert.Equal(t, etf.Tuple{etf.Map{etf.Atom("x"): int64(300)}, "s"}, overErgo(t, term))
}

func TestPlainMapStringAnyEncodesAsBatchMap(t *testing.T) {
	out := roundTrip(t, map[string]any{"n": 3, "t": i64s(1)})
	requireSame(t, batch.Map{"n": int64(3), "t": i64s(1)}, out)
}

func TestPlainValuesRoundTripThroughErgo(t *testing.T) {
	cases := []struct {
		name    string
		in, out any
	}{
		{"nil", nil, nil},
		{"true", true, true},
		{"false", false, false},
		{"atom", etf.Atom("ok"), etf.Atom("ok")},
		{"long atom", etf.Atom(strings.Repeat("a", wire.MaxAtomBytes)), etf.Atom(strings.Repeat("a", wire.MaxAtomBytes))},
		{"unicode atom", etf.Atom("héllo"), etf.Atom("héllo")},
		{"atom nil", etf.Atom("nil"), nil},
		{"int 0", 0, int64(0)},
		{"int 255", 255, int64(255)},
		{"int 256", 256, int64(256)},
		{"int -1", -1, int64(-1)},
		{"int8", int8(-128), int64(-128)},
		{"uint16", uint16(65535), int64(65535)},
		{"int32 min", int32(math.MinInt32), int64(math.MinInt32)},
		{"int64 max", int64(math.MaxInt64), int64(math.MaxInt64)},
		{"int64 min", int64(math.MinInt64), int64(math.MinInt64)},
		{"uint64 max", uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{"uint64 small", uint64(7), int64(7)},
		{"float64", 1.5, 1.5},
		{"negative zero", math.Copysign(0, -1), math.Copysign(0, -1)},
		{"float32", float32(0.25), 0.25},
		{"max float", math.MaxFloat64, math.MaxFloat64},
		{"string", "hello", "hello"},
		{"utf-8 string", "naïve ☃", "naïve ☃"},
		{"empty string", "", ""},
		{"longest string", strings.Repeat("x", wire.MaxStringBytes), strings.Repeat("x", wire.MaxStringBytes)},
		{"bytes", []byte{0, 1, 255}, []byte{0, 1, 255}},
		{"empty bytes", []byte{}, []byte{}},
		{"nil bytes", []byte(nil), []byte{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			requireSame(t, c.out, roundTrip(t, c.in))
			// Inside a container too.
			requireSame(t, batch.Tuple{c.out}, roundTrip(t, batch.Tuple{c.in}))
		})
	}
}

func TestBatchRoundTripKeepsRowsPaddingAndKey(t *testing.T) {
	stacked, err := batch.Stack(i64s(1, 2), i64s(3, 4), i64s(5, 6))
	require.NoError(t, err)
	require.NoError(t, stacked.Pad(2))
	stacked.SetKey("text")

	containers, err := batch.Concatenate(
		batch.Map{"x": filled(tensor.Float32, 2, 3), "y": batch.Tuple{filled(tensor.Uint8, 2)}},
		batch.Map{"x": filled(tensor.Float32, 1, 3), "y": batch.Tuple{filled(tensor.Uint8, 1)}},
	)
	require.NoError(t, err)

	merged, err := batch.Merge(stacked, stacked)
	require.NoError(t, err)
	left, right, err := merged.Split(4)
	require.NoError(t, err)

	zeroRows, err := batch.Concatenate(filled(tensor.Float64, 0, 2))
	require.NoError(t, err)
	require.NoError(t, zeroRows.Pad(3))

	empty := batch.New()
	require.NoError(t, empty.Pad(5))
	empty.SetKey("k")

	for name, b := range map[string]*batch.Batch{
		"stacked with padding": stacked,
		"containers":           containers,
		"merged":               merged,
		"split left":           left,
		"split right":          right,
		"zero rows":            zeroRows,
		"empty":                empty,
	} {
		t.Run(name, func(t *testing.T) {
			out := roundTrip(t, b)
			requireSame(t, b, out)
			// Padding comes back as padding: same rows materialised.
			if b.Template() != nil {
				want, err := b.Materialize()
				require.NoError(t, err)
				got, err := out.(*batch.Batch).Materialize()
				require.NoError(t, err)
				requireSame(t, want, got)
			}
			// And inside a container.
			requireSame(t, batch.Tuple{b, "meta"}, roundTrip(t, batch.Tuple{b, "meta"}))
		})
	}
}

func TestBatchTermStacksRowsWithoutPadding(t *testing.T) {
	b, err := batch.Stack(i64s(1, 2), i64s(3, 4))
	require.NoError(t, err)
	require.NoError(t, b.Pad(6))
	b.SetKey("k")
	term, err := wire.Encode(b)
	require.NoError(t, err)

	m := overErgo(t, term).(etf.Map)
	assert.Equal(t, etf.Atom("Elixir.Nx.Batch"), m[etf.Atom("__struct__")])
	assert.Equal(t, 2, m[etf.Atom("size")])
	assert.Equal(t, 6, m[etf.Atom("pad")])
	assert.Equal(t, etf.Atom("k"), m[etf.Atom("key")])
	stack := m[etf.Atom("stack")].(etf.List)
	require.Len(t, stack, 1)
	rows, err := wire.DecodeTensor(stack[0])
	require.NoError(t, err)
	assert.Equal(t, tensor.Shape{2, 2}, rows.Shape())
	assert.Equal(t, []int64{1, 2, 3, 4}, rows.Data())
	assert.Len(t, m, 5)
}

// ergo's encoder never returns on a top-level empty list (etf.List{} or an
// empty slice): no value Encode returns may be one, nor any list at all.
func TestEncodeNeverReturnsATopLevelList(t *testing.T) {
	empty := batch.New()
	values := []any{
		nil, "", []byte{}, []byte(nil), batch.Tuple{}, batch.Map{}, map[string]any{},
		empty, tensor.New(tensor.FromScalar(float32(1))), filled(tensor.Float32, 0),
		filled(tensor.Float32, 0, 3), etf.Atom(""), 0, false,
	}
	for _, v := range values {
		term, err := wire.Encode(v)
		require.NoError(t, err)
		require.NotNil(t, term, "ergo writes Go nil as []")
		switch term.(type) {
		case etf.Tuple, []byte:
		default:
			k := reflect.TypeOf(term).Kind()
			require.True(t, k != reflect.Slice && k != reflect.Array, "%#v encodes to the list %#v", v, term)
		}
		// Safe to run now: ergo's encoder terminates on it.
		_ = toBytes(t, term)
	}
}

// The ETF decoding rules this package relies on and works around, pinned
// against ergo's real encoder and decoder (see the package doc).
func TestErgoETFDecodesAsDocumented(t *testing.T) {
	t.Run("integers 0..255 as int, others as int64", func(t *testing.T) {
		got := overErgo(t, etf.Tuple{0, 255, 256, -1, int64(1) << 40, uint8(7), int32(70000)})
		assert.Equal(t, etf.Tuple{0, 255, int64(256), int64(-1), int64(1) << 40, 7, int64(70000)}, got)
	})
	t.Run("uint64 above MaxInt64 as uint64", func(t *testing.T) {
		assert.Equal(t, etf.Tuple{uint64(math.MaxUint64)}, overErgo(t, etf.Tuple{uint64(math.MaxUint64)}))
	})
	t.Run("atoms as etf.Atom, true and false as bool", func(t *testing.T) {
		got := overErgo(t, etf.Tuple{etf.Atom("ok"), etf.Atom("true"), false, etf.Atom("nil")})
		assert.Equal(t, etf.Tuple{etf.Atom("ok"), true, false, etf.Atom("nil")}, got)
	})
	t.Run("float32 as float64", func(t *testing.T) {
		assert.Equal(t, etf.Tuple{0.5}, overErgo(t, etf.Tuple{float32(0.5)}))
	})
	t.Run("binaries as []byte, strings as string", func(t *testing.T) {
		assert.Equal(t, etf.Tuple{[]byte("b"), "s"}, overErgo(t, etf.Tuple{[]byte("b"), "s"}))
	})
	t.Run("nested Go nil as an empty list", func(t *testing.T) {
		assert.Equal(t, etf.Tuple{etf.List{}}, overErgo(t, etf.Tuple{nil}))
	})
	t.Run("top-level Go nil not at all", func(t *testing.T) {
		_, _, err := etf.Decode(toBytes(t, nil), []etf.Atom{}, etf.DecodeOptions{})
		assert.Error(t, err)
	})
	t.Run("strings of 65534 bytes not at all", func(t *testing.T) {
		_, _, err := etf.Decode(toBytes(t, strings.Repeat("x", 65534)), []etf.Atom{}, etf.DecodeOptions{})
		assert.Error(t, err)
		got := overErgo(t, strings.Repeat("x", wire.MaxStringBytes))
		assert.Len(t, got, wire.MaxStringBytes)
	})
	t.Run("maps with binary keys not at all", func(t *testing.T) {
		// #{<<"k">> => 1}: Go cannot even build such an etf.Map.
		packet := []byte{116, 0, 0, 0, 1, 109, 0, 0, 0, 1, 'k', 97, 1}
		_, _, err := etf.Decode(packet, []etf.Atom{}, etf.DecodeOptions{})
		assert.Error(t, err)
	})
	t.Run("atoms over 255 characters refused by the encoder", func(t *testing.T) {
		assert.ErrorIs(t, etfEncodeErr(etf.Atom(strings.Repeat("a", 256))), etf.ErrAtomTooLong)
	})
	t.Run("strings over 65535 bytes refused by the encoder", func(t *testing.T) {
		assert.ErrorIs(t, etfEncodeErr(strings.Repeat("a", 65536)), etf.ErrStringTooLong)
	})
}

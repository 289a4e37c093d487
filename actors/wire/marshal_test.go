package wire_test

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// namedValue is a value of the differential corpus.
type namedValue struct {
	name string
	v    any
}

// corpus returns values of every kind the codec carries: tensors of
// every dtype and of many shapes and layouts, nested containers, batches
// with padding and keys, plain values at the edges of their encodings.
func corpus(t testing.TB) []namedValue {
	var out []namedValue
	add := func(name string, v any) { out = append(out, namedValue{name, v}) }

	tensorShapes := append(slices.Clone(shapes), []int{1, 16}, []int{64, 16}, []int{1, 2, 1, 2, 1}, []int{256}, []int{70000, 0})
	for _, dt := range dtypes {
		for _, shape := range tensorShapes {
			add(fmt.Sprintf("%v%v", dt.in, shape), filled(dt.in, shape...))
		}
	}
	transposed := filled(tensor.Float64, 3, 4)
	require.NoError(t, transposed.T())
	view, err := filled(tensor.Int16, 4, 5).Slice(nil, tensor.S(1, 3))
	require.NoError(t, err)
	add("lazy transpose", transposed)
	add("column view", view)
	add("column-major", tensor.New(tensor.WithShape(3, 4), tensor.AsFortran(filled(tensor.Float32, 12).Float32s())))

	// Tensors at every offset modulo 8 inside a container, for alignment.
	for pad := range 8 {
		for _, dt := range dtypes {
			add(fmt.Sprintf("%v after %d bytes", dt.in, pad), batch.Tuple{strings.Repeat("s", pad), filled(dt.in, 2, 3)})
			add(fmt.Sprintf("scalar %v after %d bytes", dt.in, pad), batch.Tuple{strings.Repeat("s", pad), filled(dt.in)})
		}
	}

	// Containers.
	add("nested", batch.Map{
		"image": filled(tensor.Float32, 2, 3),
		"pair":  batch.Tuple{i64s(1, 2, 3), batch.Tuple{filled(tensor.Uint8, 4), batch.Map{}}},
		"deep":  batch.Map{"a": batch.Map{"b": batch.Tuple{filled(tensor.Complex128, 1, 1)}}},
		"empty": batch.Tuple{},
		"true":  filled(tensor.Int32),
		"é ☃":   "unicode key",
	})
	add("map[string]any", map[string]any{"n": 3, "t": i64s(1)})
	var deep any = filled(tensor.Float32, 2)
	for range wire.MaxDepth {
		deep = batch.Tuple{deep}
	}
	add("MaxDepth deep", deep)
	large := make(batch.Tuple, 300)
	for i := range large {
		large[i] = int64(i * 1000)
	}
	add("large tuple", large)
	add("empty tuple", batch.Tuple{})
	add("empty map", batch.Map{})

	// Batches.
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
	oneRow, err := batch.Stack(filled(tensor.Float32, 16))
	require.NoError(t, err)
	bigPad, err := batch.Stack(filled(tensor.Float32, 2))
	require.NoError(t, err)
	require.NoError(t, bigPad.Pad(1000))
	bigPad.SetKey(strings.Repeat("k", wire.MaxAtomBytes))
	for name, b := range map[string]*batch.Batch{
		"stacked with padding": stacked, "containers": containers, "merged": merged,
		"split left": left, "split right": right, "zero rows": zeroRows, "empty": empty,
		"one row": oneRow, "padding past 255, long key": bigPad, "new": batch.New(),
	} {
		add("batch "+name, b)
	}
	add("batches in a container", batch.Tuple{stacked, batch.Map{"b": oneRow, "c": stacked}, oneRow})

	// Numeric slices: 1-D tensors.
	for _, v := range []any{
		[]float32{1, 2.5, -3}, []float64{}, []float64{math.Pi}, []int64(nil), []int64{math.MinInt64, 7},
		[]int32{1, 2, 3, 4}, make([]float32, 1000),
	} {
		add(fmt.Sprintf("slice %T len %d", v, reflect.ValueOf(v).Len()), v)
		add(fmt.Sprintf("slice in a map: %T len %d", v, reflect.ValueOf(v).Len()), batch.Map{"row": v, "s": "x"})
	}

	// Plain values.
	for _, v := range []any{
		nil, true, false, etf.Atom("ok"), etf.Atom(""), etf.Atom("nil"), etf.Atom("true"), etf.Atom("héllo"),
		etf.Atom(strings.Repeat("a", wire.MaxAtomBytes)),
		0, 255, 256, -1, math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1,
		1 << 32, -(1 << 32), 1 << 40, -(1 << 48), 1 << 56, int64(math.MaxInt64), int64(math.MinInt64),
		int8(-128), int16(-300), int32(70000), uint(7), uint(math.MaxUint64), uint8(255), uint16(65535),
		uint32(math.MaxUint32), uint64(math.MaxInt64), uint64(math.MaxInt64) + 1, uint64(math.MaxUint64),
		1.5, -0.0, math.Copysign(0, -1), float32(0.25), math.MaxFloat64, math.SmallestNonzeroFloat64,
		"", "hello", "naïve ☃", strings.Repeat("x", wire.MaxStringBytes),
		[]byte{}, []byte(nil), []byte{0, 1, 255}, make([]byte, 70000),
	} {
		add(fmt.Sprintf("%T %.40v", v, v), v)
		add(fmt.Sprintf("in a tuple: %T %.40v", v, v), batch.Tuple{v})
	}
	return out
}

// TestMarshalMatchesTheReference compares Marshal with the former
// implementation (Encode, then ergo's encoder) on the corpus: ergo's
// decoder must read the same term from both, every way of reading them
// back must give the same value, and Marshal must allocate its result at
// its exact size.
func TestMarshalMatchesTheReference(t *testing.T) {
	for _, c := range corpus(t) {
		t.Run(c.name, func(t *testing.T) {
			old, err := wire.Options{}.MarshalViaETF(c.v)
			require.NoError(t, err)
			got, err := wire.Marshal(c.v)
			require.NoError(t, err)
			assert.Equal(t, len(got), cap(got), "Marshal sized its buffer wrong")
			assert.Equal(t, byte(131), got[0])

			// The same term, as ergo's decoder reads it.
			require.True(t, reflect.DeepEqual(fromBytes(t, old[1:]), fromBytes(t, got[1:])), "ergo reads another term")

			// The same value, however it is read.
			want, err := wire.Options{}.UnmarshalViaETF(old)
			require.NoError(t, err)
			for name, read := range map[string]func() (any, error){
				"new bytes, old Unmarshal":          func() (any, error) { return wire.Options{}.UnmarshalViaETF(slices.Clone(got)) },
				"new bytes, Unmarshal":              func() (any, error) { return wire.Unmarshal(slices.Clone(got)) },
				"new bytes, Unmarshal with Copy":    func() (any, error) { return wire.Options{Copy: true}.Unmarshal(got) },
				"old bytes, Unmarshal":              func() (any, error) { return wire.Unmarshal(slices.Clone(old)) },
				"new bytes, ergo's decoder, Decode": func() (any, error) { return wire.Decode(fromBytes(t, got[1:])) },
			} {
				v, err := read()
				require.NoError(t, err, name)
				if msg := diff(want, v); msg != "" {
					t.Fatalf("%s: %s", name, msg)
				}
			}
		})
	}
}

// Marshal refuses what Encode refuses, with the same errors.
func TestMarshalRefusesWhatTheReferenceRefuses(t *testing.T) {
	cyclic := batch.Map{}
	cyclic["self"] = cyclic
	masked := filled(tensor.Float32, 3)
	masked.ResetMask(false)
	tooDeep := any(1)
	for range wire.MaxDepth + 1 {
		tooDeep = batch.Tuple{tooDeep}
	}
	keyed := batch.New()
	keyed.SetKey(strings.Repeat("k", 300))
	badKey := batch.New()
	badKey.SetKey("\xff")
	inBatch, err := batch.Stack(filled(tensor.Float32, 2))
	require.NoError(t, err)
	inBatch.SetKey("\xc3")
	for _, v := range []any{
		make(chan int), struct{ A int }{1}, []int{1}, etf.List{}, etf.Pid{}, (*tensor.Dense)(nil), (*batch.Batch)(nil),
		tensor.New(tensor.WithShape(1), tensor.WithBacking([]string{"a"})), masked,
		batch.Tuple{math.NaN()}, float32(math.Inf(1)), math.Inf(-1),
		strings.Repeat("s", wire.MaxStringBytes+1), etf.Atom(strings.Repeat("a", 256)), etf.Atom("\xc3"),
		batch.Map{strings.Repeat("k", 256): 1}, map[string]any{"\xff": 1}, batch.Map{"__struct__": etf.Atom("Elixir.Nx.Tensor")},
		keyed, badKey, inBatch, tooDeep, cyclic,
		batch.Map{"a": batch.Tuple{0, batch.Map{"b c": complex(1, 2)}}},
		batch.Tuple{1, batch.Tuple{"x", []any{}}},
		batch.Map{"t": batch.Tuple{inBatch}},
	} {
		t.Run(fmt.Sprintf("%T", v), func(t *testing.T) {
			_, want := wire.Options{}.MarshalViaETF(v)
			require.Error(t, want)
			got, err := wire.Marshal(v)
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Equal(t, want.Error(), err.Error())
			var we *wire.Error
			require.ErrorAs(t, err, &we)
			assert.Equal(t, want.(*wire.Error).Kind, we.Kind)
		})
	}
}

// Marshal lays tensors out so that their data is aligned in the binary;
// Unmarshal then uses it in place, without a copy, unless told to copy.
func TestUnmarshalUsesAlignedTensorDataInPlace(t *testing.T) {
	checked := 0
	defer func() { assert.Greater(t, checked, 500, "tensors checked") }()
	for _, c := range corpus(t) {
		bin, err := wire.Marshal(c.v)
		require.NoError(t, err)
		if uintptr(unsafe.Pointer(&bin[0]))%8 != 0 {
			// Go aligns allocations of 16 bytes and more to 8 at least;
			// a term holding a tensor is longer than that.
			require.Less(t, len(bin), 16, "%s: Marshal's buffer is not 8-byte aligned", c.name)
			continue
		}
		lo, hi := uintptr(unsafe.Pointer(&bin[0])), uintptr(unsafe.Pointer(&bin[0]))+uintptr(len(bin))
		inside := func(d *tensor.Dense) bool {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(d.Raw)))
			return p >= lo && p < hi
		}
		for _, copied := range []bool{false, true} {
			v, err := wire.Options{Copy: copied}.Unmarshal(bin)
			require.NoError(t, err, c.name)
			forEachTensor(v, func(d *tensor.Dense) {
				if len(d.Raw) == 0 {
					return
				}
				checked++
				assert.Zero(t, uintptr(unsafe.Pointer(&d.Raw[0]))%uintptr(d.Dtype().Align()), "%s: misaligned memory", c.name)
				if copied {
					assert.False(t, inside(d), "%s: Copy, yet a tensor uses the binary", c.name)
				} else {
					assert.True(t, inside(d), "%s: a %v tensor of shape %v was copied", c.name, d.Dtype(), d.Shape())
				}
			})
		}
	}
}

// forEachTensor calls fn with every tensor of a decoded value.
func forEachTensor(v any, fn func(*tensor.Dense)) {
	switch x := v.(type) {
	case *tensor.Dense:
		fn(x)
	case batch.Tuple:
		for _, e := range x {
			forEachTensor(e, fn)
		}
	case batch.Map:
		for _, e := range x {
			forEachTensor(e, fn)
		}
	}
}

// A misaligned binary (one byte into a buffer) is copied into aligned
// memory; the value is the same.
func TestUnmarshalCopiesMisalignedTensorData(t *testing.T) {
	in := filled(tensor.Float64, 4, 4)
	bin, err := wire.Marshal(in)
	require.NoError(t, err)
	buf := make([]byte, len(bin)+1)
	shifted := buf[1:]
	copy(shifted, bin)
	v, err := wire.Unmarshal(shifted)
	require.NoError(t, err)
	out := v.(*tensor.Dense)
	assert.Zero(t, uintptr(unsafe.Pointer(&out.Raw[0]))%8)
	requireSame(t, in, out)
}

// The tensors Unmarshal returns are ordinary gorgonia tensors: they
// compute, reshape and slice, and changing one changes no other.
func TestUnmarshalledTensorsAreIndependent(t *testing.T) {
	in := batch.Tuple{filled(tensor.Float32, 2, 3), filled(tensor.Float32, 2, 3), filled(tensor.Float32, 1, 2, 3, 1, 1)}
	bin, err := wire.Marshal(in)
	require.NoError(t, err)
	v, err := wire.Unmarshal(slices.Clone(bin)) // the tensors use this copy's memory
	require.NoError(t, err)
	a, b, c := v.(batch.Tuple)[0].(*tensor.Dense), v.(batch.Tuple)[1].(*tensor.Dense), v.(batch.Tuple)[2].(*tensor.Dense)

	require.NoError(t, a.Reshape(3, 2))
	assert.Equal(t, tensor.Shape{3, 2}, a.Shape())
	assert.Equal(t, tensor.Shape{2, 3}, b.Shape())
	require.NoError(t, c.Reshape(6))
	assert.Equal(t, tensor.Shape{6}, c.Shape())

	doubled, err := b.MulScalar(float32(2), true)
	require.NoError(t, err)
	assert.Equal(t, float32(2)*b.Float32s()[1], doubled.Float32s()[1])
	row, err := b.Slice(tensor.S(1))
	require.NoError(t, err)
	assert.Equal(t, b.Float32s()[3:], row.Data())
	b.Float32s()[0] = 42
	assert.NotEqual(t, float32(42), a.Float32s()[0])

	// Giving a tensor back to gorgonia's pool spoils nothing else.
	tensor.ReturnTensor(a)
	again, err := wire.Unmarshal(bin)
	require.NoError(t, err)
	requireSame(t, in[1], again.(batch.Tuple)[1])
	assert.Equal(t, tensor.Shape{2, 3}, b.Shape())
}

// A batch of zero rows and much padding travels without its padding
// being materialised.
func TestMarshalDoesNotMaterialisePadding(t *testing.T) {
	b, err := batch.Concatenate(filled(tensor.Float64, 0, 1000))
	require.NoError(t, err)
	require.NoError(t, b.Pad(1<<20)) // 8 GB of padding rows
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	bin, err := wire.Marshal(b)
	require.NoError(t, err)
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
	got, err := wire.Unmarshal(bin)
	require.NoError(t, err)
	requireSame(t, b, got)
}

// A numeric slice crosses nodes as the 1-D tensor of its elements: the
// same bytes, decoded as a *tensor.Dense of shape (n).
func TestNumericSlicesAreOneDimensionalTensors(t *testing.T) {
	for _, tc := range []struct {
		slice any
		dtype tensor.Dtype
	}{
		{[]float32{1, 2.5, -3}, tensor.Float32},
		{[]float64{math.Pi, 0}, tensor.Float64},
		{[]int64{math.MinInt64, 7}, tensor.Int64},
		{[]int32{1, 2, 3, 4}, tensor.Int32},
		{[]float32{}, tensor.Float32},
	} {
		t.Run(fmt.Sprintf("%T", tc.slice), func(t *testing.T) {
			n := reflect.ValueOf(tc.slice).Len()
			asTensor := tensor.New(tensor.WithShape(n), tensor.WithBacking(tc.slice))
			want, err := wire.Marshal(asTensor)
			require.NoError(t, err)
			got, err := wire.Marshal(tc.slice)
			require.NoError(t, err)
			assert.Equal(t, want, got)

			v, err := wire.Unmarshal(got)
			require.NoError(t, err)
			d, ok := v.(*tensor.Dense)
			require.True(t, ok, "decoded as %T", v)
			assert.Equal(t, tc.dtype, d.Dtype())
			assert.Equal(t, []int{n}, []int(d.Shape()))
			if n > 0 {
				assert.Equal(t, tc.slice, d.Data())
			}

			term, err := wire.Encode(tc.slice)
			require.NoError(t, err)
			viaTerm, err := wire.Decode(term)
			require.NoError(t, err)
			assert.Equal(t, []int{n}, []int(viaTerm.(*tensor.Dense).Shape()))
		})
	}
}

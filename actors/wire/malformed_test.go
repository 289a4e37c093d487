package wire_test

import (
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// tensorTerm returns a fresh, valid %Nx.Tensor{} term of a 2×3 float32
// tensor, as a remote node receives it.
func tensorTerm(t testing.TB) etf.Map {
	term, err := wire.EncodeTensor(filled(tensor.Float32, 2, 3))
	require.NoError(t, err)
	return overErgo(t, term).(etf.Map)
}

// batchTerm returns a fresh, valid %Nx.Batch{} term of 2 rows of 3
// floats, padding 1, as a remote node receives it.
func batchTerm(t testing.TB) etf.Map {
	b, err := batch.Concatenate(filled(tensor.Float32, 2, 3))
	require.NoError(t, err)
	require.NoError(t, b.Pad(1))
	term, err := wire.Encode(b)
	require.NoError(t, err)
	return overErgo(t, term).(etf.Map)
}

func atom(s string) etf.Atom { return etf.Atom(s) }

func dataOf(m etf.Map) etf.Map { return m[atom("data")].(etf.Map) }

// nested returns depth tuples, one inside the other, around leaf.
func nested(depth int, leaf etf.Term) etf.Term {
	for range depth {
		leaf = etf.Tuple{leaf}
	}
	return leaf
}

// malformedTerm is a term that Decode refuses.
type malformedTerm struct {
	name string
	term func(t testing.TB) etf.Term
	want error
	msg  string // in the error message
}

func malformedTerms() []malformedTerm {
	return []malformedTerm{
		// The tensor struct.
		{"unknown struct", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("__struct__")] = atom("Elixir.Nx.Tensorr")
			return m
		}, wire.ErrUnsupportedType, "struct %Nx.Tensorr{}"},
		{"struct name not an atom", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("__struct__")] = []byte("Elixir.Nx.Tensor")
			return m
		}, wire.ErrMalformed, "__struct__ key of binary"},
		{"missing data", func(t testing.TB) etf.Term { m := tensorTerm(t); delete(m, atom("data")); return m }, wire.ErrMalformed, "without a data key"},
		{"missing type", func(t testing.TB) etf.Term { m := tensorTerm(t); delete(m, atom("type")); return m }, wire.ErrMalformed, "without a type key"},
		{"missing shape", func(t testing.TB) etf.Term { m := tensorTerm(t); delete(m, atom("shape")); return m }, wire.ErrMalformed, "without a shape key"},
		{"missing names", func(t testing.TB) etf.Term { m := tensorTerm(t); delete(m, atom("names")); return m }, wire.ErrMalformed, "without a names key"},
		{"unknown key", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("device")] = 0; return m }, wire.ErrMalformed, `unknown key atom "device"`},
		{"vectorized", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("vectorized_axes")] = etf.List{etf.Tuple{atom("x"), 2}}
			return m
		}, wire.ErrUnsupportedType, "vectorized tensor"},

		// The backend.
		{"data not a map", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("data")] = []byte{1}; return m }, wire.ErrMalformed, "data is binary of 1 bytes"},
		{"other backend", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			dataOf(m)[atom("__struct__")] = atom("Elixir.EXLA.Backend")
			return m
		}, wire.ErrUnsupportedType, "backend EXLA.Backend"},
		{"backend without struct", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			delete(dataOf(m), atom("__struct__"))
			return m
		}, wire.ErrMalformed, "without __struct__"},
		{"missing state", func(t testing.TB) etf.Term { m := tensorTerm(t); delete(dataOf(m), atom("state")); return m }, wire.ErrMalformed, "without a state key"},
		{"extra backend key", func(t testing.TB) etf.Term { m := tensorTerm(t); dataOf(m)[atom("ref")] = 1; return m }, wire.ErrMalformed, `unknown key atom "ref"`},
		{"state not a binary", func(t testing.TB) etf.Term { m := tensorTerm(t); dataOf(m)[atom("state")] = "abc"; return m }, wire.ErrMalformed, "state is string"},

		// The type.
		{"type not a tuple", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("type")] = atom("f32"); return m }, wire.ErrMalformed, "type is atom"},
		{"type of 3", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("type")] = etf.Tuple{atom("f"), 32, 1}
			return m
		}, wire.ErrMalformed, "{kind, bits}"},
		{"kind not an atom", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("type")] = etf.Tuple{"f", 32}; return m }, wire.ErrMalformed, "kind is string"},
		{"bits not an integer", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("type")] = etf.Tuple{atom("f"), 32.0}
			return m
		}, wire.ErrMalformed, "bits is float"},
		{"unknown kind", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("type")] = etf.Tuple{atom("q"), 32}; return m }, wire.ErrMalformed, "{q, 32} is not an Nx type"},
		{"unknown bits", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("type")] = etf.Tuple{atom("f"), 24}; return m }, wire.ErrMalformed, "{f, 24} is not an Nx type"},
		{"f16", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("type")] = etf.Tuple{atom("f"), 16}; return m }, wire.ErrUnsupportedType, "{f, 16} has no gorgonia dtype"},
		{"bf16", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("type")] = etf.Tuple{atom("bf"), 16}; return m }, wire.ErrUnsupportedType, "{bf, 16} has no gorgonia dtype"},

		// The shape and names.
		{"shape not a tuple", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("shape")] = etf.List{2, 3}; return m }, wire.ErrMalformed, "shape is list"},
		{"dimension not an integer", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("shape")] = etf.Tuple{2, atom("x")}; return m }, wire.ErrMalformed, "dimension 1 is atom"},
		{"negative dimension", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("shape")] = etf.Tuple{int64(-2), int64(-3)}
			return m
		}, wire.ErrMalformed, "dimension 0 is -2"},
		{"huge dimension", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("shape")] = etf.Tuple{int64(1) << 40, 0}
			return m
		}, wire.ErrTooLarge, "MaxElements"},
		{"dimension past int64", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("shape")] = etf.Tuple{new(big.Int).Lsh(big.NewInt(1), 70), 0}
			return m
		}, wire.ErrTooLarge, "dimension 0 is integer 1180591620717411303424"},
		{"elements overflow", func(t testing.TB) etf.Term {
			// 2^20 × 2^20 × 2^20 × 2^20 overflows int64 after 4 steps;
			// with a zero the element count is 0 but strides are not.
			m := tensorTerm(t)
			m[atom("shape")] = etf.Tuple{int64(1 << 20), int64(1 << 20), int64(1 << 20), int64(1 << 20), 0}
			m[atom("names")] = etf.List{atom("nil"), atom("nil"), atom("nil"), atom("nil"), atom("nil")}
			return m
		}, wire.ErrTooLarge, "more than 2147483648 elements"},
		{"rank too large", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("shape")] = make(etf.Tuple, wire.MaxRank+1)
			return m
		}, wire.ErrTooLarge, "rank 33"},
		{"names too short", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("names")] = etf.List{atom("nil")}; return m }, wire.ErrMalformed, "names has 1 entries for 2 axes"},
		{"names not a list", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("names")] = etf.Tuple{}; return m }, wire.ErrMalformed, "names is tuple"},
		{"name not an atom", func(t testing.TB) etf.Term { m := tensorTerm(t); m[atom("names")] = etf.List{atom("nil"), 1}; return m }, wire.ErrMalformed, "name 1 is integer 1"},

		// The data length.
		{"data too short", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			dataOf(m)[atom("state")] = make([]byte, 23)
			return m
		}, wire.ErrLength, "expected 24 bytes (6 elements of 4 bytes), got 23"},
		{"data too long", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("type")] = etf.Tuple{atom("u"), 8}
			return m
		}, wire.ErrLength, "expected 6 bytes (6 elements of 1 bytes), got 24"},

		// Containers.
		{"map key not an atom", func(t testing.TB) etf.Term { return etf.Map{"x": 1} }, wire.ErrMalformed, "map key string of 1 bytes, want an atom"},
		{"map key integer", func(t testing.TB) etf.Term { return etf.Map{1: 1} }, wire.ErrMalformed, "map key integer 1"},
		{"duplicate map key", func(t testing.TB) etf.Term { return etf.Map{true: 1, atom("true"): 2} }, wire.ErrMalformed, `"true" appears twice`},
		{"map key too long", func(t testing.TB) etf.Term { return etf.Map{atom(strings.Repeat("k", 256)): 1} }, wire.ErrTooLarge, "atom of 256 bytes"},
		{"map key not UTF-8", func(t testing.TB) etf.Term { return etf.Map{atom("\xff"): 1} }, wire.ErrUnsupportedType, "not valid UTF-8"},
		{"nested too deep", func(t testing.TB) etf.Term { return nested(wire.MaxDepth+1, 1) }, wire.ErrTooLarge, "MaxDepth"},
		{"malformed tensor deep inside", func(t testing.TB) etf.Term {
			m := tensorTerm(t)
			m[atom("shape")] = etf.Tuple{2, int64(-3)}
			return etf.Tuple{1, etf.Map{atom("x"): etf.Tuple{0, m}}}
		}, wire.ErrMalformed, "at [1].x[1]: Nx.Tensor shape dimension 1 is -3"},

		// Plain values.
		{"non-empty list", func(t testing.TB) etf.Term { return etf.List{1, 2} }, wire.ErrUnsupportedType, "list of 2 elements"},
		{"pid", func(t testing.TB) etf.Term { return etf.Tuple{etf.Pid{Node: "a@b"}} }, wire.ErrUnsupportedType, "at [0]: cannot decode pid"},
		{"NaN", func(t testing.TB) etf.Term { return math.NaN() }, wire.ErrUnsupportedType, "float NaN"},
		{"infinity", func(t testing.TB) etf.Term { return etf.Tuple{math.Inf(-1)} }, wire.ErrUnsupportedType, "float -Inf"},
		{"integer past 64 bits", func(t testing.TB) etf.Term { return new(big.Int).Lsh(big.NewInt(-1), 64) }, wire.ErrUnsupportedType, "does not fit in 64 bits"},
		{"long string", func(t testing.TB) etf.Term { return strings.Repeat("s", wire.MaxStringBytes+1) }, wire.ErrTooLarge, "MaxStringBytes"},
		{"Go nil", func(t testing.TB) etf.Term { return nil }, wire.ErrUnsupportedType, "cannot decode Go nil"},

		// The batch struct.
		{"batch missing size", func(t testing.TB) etf.Term { m := batchTerm(t); delete(m, atom("size")); return m }, wire.ErrMalformed, "without a size key"},
		{"batch missing stack", func(t testing.TB) etf.Term { m := batchTerm(t); delete(m, atom("stack")); return m }, wire.ErrMalformed, "without a stack key"},
		{"Nx's own batch", func(t testing.TB) etf.Term { m := batchTerm(t); m[atom("template")] = atom("nil"); return m }, wire.ErrMalformed, "closures"},
		{"batch size wrong", func(t testing.TB) etf.Term { m := batchTerm(t); m[atom("size")] = 3; return m }, wire.ErrMalformed, "size is 3 but its stack holds 2 rows"},
		{"batch size negative", func(t testing.TB) etf.Term { m := batchTerm(t); m[atom("size")] = int64(-1); return m }, wire.ErrMalformed, "size is -1"},
		{"batch pad negative", func(t testing.TB) etf.Term { m := batchTerm(t); m[atom("pad")] = int64(-1); return m }, wire.ErrMalformed, "pad is -1"},
		{"batch pad not an integer", func(t testing.TB) etf.Term { m := batchTerm(t); m[atom("pad")] = 1.0; return m }, wire.ErrMalformed, "pad is float"},
		{"batch pad too large", func(t testing.TB) etf.Term { m := batchTerm(t); m[atom("pad")] = int64(1) << 40; return m }, wire.ErrTooLarge, "pad is integer"},
		{"batch padding materialises too much", func(t testing.TB) etf.Term {
			m := batchTerm(t)
			m[atom("pad")] = int64(wire.MaxElements / 2)
			return m
		}, wire.ErrTooLarge, "would materialise"},
		{"batch key not an atom", func(t testing.TB) etf.Term { m := batchTerm(t); m[atom("key")] = "default"; return m }, wire.ErrMalformed, "key is string"},
		{"batch stack not a list", func(t testing.TB) etf.Term { m := batchTerm(t); m[atom("stack")] = etf.Tuple{}; return m }, wire.ErrMalformed, "stack is tuple"},
		{"batch stack of plain values", func(t testing.TB) etf.Term {
			m := batchTerm(t)
			m[atom("stack")] = etf.List{1}
			m[atom("size")] = 1
			return m
		}, wire.ErrMalformed, "at .stack: the rows do not make a batch"},
		{"batch stack of a scalar", func(t testing.TB) etf.Term {
			scalar, err := wire.EncodeTensor(tensor.New(tensor.FromScalar(float32(1))))
			require.NoError(t, err)
			m := batchTerm(t)
			m[atom("stack")] = etf.List{scalar}
			return m
		}, wire.ErrMalformed, "the rows do not make a batch"},
		{"batch stack of different templates", func(t testing.TB) etf.Term {
			m := batchTerm(t)
			other := tensorTerm(t)
			other[atom("shape")] = etf.Tuple{3, 2}
			m[atom("stack")] = etf.List{m[atom("stack")].(etf.List)[0], other}
			m[atom("size")] = 5
			return m
		}, wire.ErrMalformed, "incompatible"},
		{"batch with bad tensor", func(t testing.TB) etf.Term {
			m := batchTerm(t)
			row := m[atom("stack")].(etf.List)[0].(etf.Map)
			row[atom("type")] = etf.Tuple{atom("bf"), 16}
			return m
		}, wire.ErrUnsupportedType, "at .stack[0]:"},
	}
}

func TestDecodeRejectsMalformedTerms(t *testing.T) {
	for _, c := range malformedTerms() {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.Decode(c.term(t))
			require.Error(t, err)
			assert.ErrorIs(t, err, c.want)
			assert.Contains(t, err.Error(), c.msg)
			var we *wire.Error
			assert.True(t, errors.As(err, &we), "an *wire.Error")
		})
	}
}

func TestDecodeTensorRejectsOtherTerms(t *testing.T) {
	for _, term := range []etf.Term{etf.Tuple{}, etf.Map{}, 1, batchTerm(t)} {
		_, err := wire.DecodeTensor(term)
		assert.ErrorIs(t, err, wire.ErrMalformed)
		assert.Contains(t, err.Error(), "is not an %Nx.Tensor{}")
	}
}

// Depth MaxDepth is fine; one more is not.
func TestDecodeAcceptsNestingUpToMaxDepth(t *testing.T) {
	_, err := wire.Decode(nested(wire.MaxDepth, 1))
	require.NoError(t, err)
}

func TestEncodeRejectsWhatCannotTravel(t *testing.T) {
	cyclic := batch.Map{}
	cyclic["self"] = cyclic
	masked := filled(tensor.Float32, 3)
	masked.ResetMask(false)

	cases := []struct {
		name string
		v    any
		want error
		msg  string
	}{
		{"channel", make(chan int), wire.ErrUnsupportedType, "cannot encode chan int"},
		{"struct", struct{ A int }{1}, wire.ErrUnsupportedType, "cannot encode struct"},
		{"slice", []int{1}, wire.ErrUnsupportedType, "cannot encode []int"},
		{"etf.List", etf.List{}, wire.ErrUnsupportedType, "cannot encode etf.List"},
		{"pid", etf.Pid{}, wire.ErrUnsupportedType, "cannot encode etf.Pid"},
		{"nil tensor", (*tensor.Dense)(nil), wire.ErrUnsupportedType, "nil *tensor.Dense"},
		{"nil batch", (*batch.Batch)(nil), wire.ErrUnsupportedType, "nil *batch.Batch"},
		{"string tensor", tensor.New(tensor.WithShape(1), tensor.WithBacking([]string{"a"})), wire.ErrUnsupportedType, "dtype string has no Nx type"},
		{"masked tensor", masked, wire.ErrUnsupportedType, "masked tensor"},
		{"NaN", batch.Tuple{math.NaN()}, wire.ErrUnsupportedType, "at [0]: float NaN"},
		{"infinity", float32(math.Inf(1)), wire.ErrUnsupportedType, "float +Inf"},
		{"long string", strings.Repeat("s", wire.MaxStringBytes+1), wire.ErrTooLarge, "65534 bytes"},
		{"long atom", etf.Atom(strings.Repeat("a", 256)), wire.ErrTooLarge, "atom of 256 bytes"},
		{"atom not UTF-8", etf.Atom("\xc3"), wire.ErrUnsupportedType, "not valid UTF-8"},
		{"long map key", batch.Map{strings.Repeat("k", 256): 1}, wire.ErrTooLarge, "map key: atom of 256 bytes"},
		{"unicode key past 255 bytes", batch.Map{strings.Repeat("é", 128): 1}, wire.ErrTooLarge, "atom of 256 bytes"},
		{"map key not UTF-8", map[string]any{"\xff": 1}, wire.ErrUnsupportedType, "map key: atom"},
		{"struct key", batch.Map{"__struct__": etf.Atom("Elixir.Nx.Tensor")}, wire.ErrUnsupportedType, "reserved"},
		{"batch key too long", func() *batch.Batch { b := batch.New(); b.SetKey(strings.Repeat("k", 300)); return b }(), wire.ErrTooLarge, "batch key: atom of 300 bytes"},
		{"too deep", func() any {
			var v any = 1
			for range wire.MaxDepth + 1 {
				v = batch.Tuple{v}
			}
			return v
		}(), wire.ErrTooLarge, "MaxDepth"},
		{"cyclic map", cyclic, wire.ErrTooLarge, "MaxDepth"},
		{"bad value deep inside", batch.Map{"a": batch.Tuple{0, batch.Map{"b c": complex(1, 2)}}}, wire.ErrUnsupportedType, `at .a[1]["b c"]: cannot encode complex128`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.Encode(c.v)
			require.Error(t, err)
			assert.ErrorIs(t, err, c.want)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

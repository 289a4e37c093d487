package wire_test

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// The terms Decode refuses, written by ergo's encoder, are refused by
// Unmarshal with the very errors of the former Unmarshal (ergo's decoder,
// then Decode), but where ergo's decoder changes the term on the way.
func TestUnmarshalRejectsMalformedTermsAsTheReferenceDoes(t *testing.T) {
	for _, c := range malformedTerms() {
		t.Run(c.name, func(t *testing.T) {
			buf := lib.TakeBuffer()
			defer lib.ReleaseBuffer(buf)
			if err := etf.Encode(c.term(t), buf, etf.EncodeOptions{}); err != nil {
				t.Skipf("ergo cannot encode the term: %v", err)
			}
			bin := packet(slices.Clone(buf.B))
			_, want := wire.Options{}.UnmarshalViaETF(slices.Clone(bin))
			v, err := wire.Unmarshal(bin)
			switch c.name {
			case "Go nil":
				// ergo writes nil as [], which its decoder cannot read at
				// the top level, and Unmarshal reads as "".
				require.Error(t, want)
				require.NoError(t, err)
				assert.Equal(t, "", v)
				return
			case "duplicate map key":
				// ergo writes true and 'true' alike and its decoder keeps
				// one of the two; Unmarshal sees both.
				require.NoError(t, want)
				assert.ErrorIs(t, err, wire.ErrMalformed)
				assert.Contains(t, err.Error(), `"true" appears twice`)
				return
			case "long string":
				// ergo's decoder fails on strings of 65534 bytes (a 16-bit
				// overflow): Unmarshal finds the string too long.
				assert.ErrorIs(t, want, wire.ErrMalformed)
				assert.ErrorIs(t, err, c.want)
				assert.Contains(t, err.Error(), c.msg)
				return
			}
			require.Error(t, err)
			var we *wire.Error
			require.ErrorAs(t, err, &we)
			require.Error(t, want)
			assert.Equal(t, want.Error(), err.Error())
		})
	}
}

// Erlang may write a tensor in other ways than Marshal does: each atom
// in any of four encodings, integers in wider encodings, keys in any
// order, vectorized_axes left out, named axes. All decode to the same
// tensor, as the former Unmarshal read them.
func TestUnmarshalReadsEveryEncodingOfATensor(t *testing.T) {
	want := filled(tensor.Int16, 2, 3)
	data := slices.Clone(want.Raw)
	n := 0
	for _, form := range atomForms {
		for intName, num := range intForms {
			for order, keys := range tensorKeyOrders {
				for _, names := range [][]string{{"nil", "nil"}, {"batch", "nil"}, {"true", "false"}} {
					atom := func(s string) []byte { return atomAs(form, s) }
					bin := packet(tensorB(atom, num, keys, "s", 16, []uint32{2, 3}, names, data))
					name := fmt.Sprintf("atoms %d, integers %s, order %s, names %v", form, intName, order, names)
					checkReads(t, name, bin, want)
					n++
				}
			}
		}
	}
	// The shape and type as LARGE_TUPLE_EXT, the data's keys swapped.
	bin := packet(mapB(
		kv{atomB("__struct__"), atomB("Elixir.Nx.Tensor")},
		kv{atomB("type"), largeTupleB(atomB("s"), smallIntB(16))},
		kv{atomB("shape"), largeTupleB(smallIntB(2), smallIntB(3))},
		kv{atomB("names"), listB(atomB("nil"), atomB("nil"))},
		kv{atomB("data"), mapB(kv{atomB("state"), binaryB(data)}, kv{atomB("__struct__"), atomB("Elixir.Nx.BinaryBackend")})},
	))
	checkReads(t, "large tuples", bin, want)
	assert.Greater(t, n, 100)
}

// checkReads requires that bin decodes to want, and that the former
// Unmarshal agrees wherever ergo's decoder reads bin.
func checkReads(t *testing.T, name string, bin []byte, want any) {
	t.Helper()
	got, err := wire.Unmarshal(slices.Clone(bin))
	require.NoError(t, err, name)
	if msg := diff(want, got); msg != "" {
		t.Fatalf("%s: %s", name, msg)
	}
	if !wire.ErgoCanDecode(bin[1:]) {
		t.Fatalf("%s: not a well-formed term", name)
	}
	if _, _, err := etf.Decode(slices.Clone(bin[1:]), []etf.Atom{}, etf.DecodeOptions{}); err != nil {
		return // LARGE_BIG_EXT near the end, for one: ergo refuses it
	}
	old, err := wire.Options{}.UnmarshalViaETF(slices.Clone(bin))
	require.NoError(t, err, name)
	if msg := diff(old, got); msg != "" {
		t.Fatalf("%s: the former Unmarshal reads %s", name, msg)
	}
}

func TestUnmarshalReadsEveryEncodingOfABatch(t *testing.T) {
	rows := filled(tensor.Float32, 2, 3)
	want, err := batch.Concatenate(rows)
	require.NoError(t, err)
	require.NoError(t, want.Pad(300))
	want.SetKey("text")
	for _, form := range atomForms {
		for intName, num := range intForms {
			atom := func(s string) []byte { return atomAs(form, s) }
			tensor := tensorB(atom, num, tensorKeyOrders["erlang"], "f", 32, []uint32{2, 3}, []string{"nil", "nil"}, rows.Raw)
			entries := map[string]kv{
				"__struct__": {atom("__struct__"), atom("Elixir.Nx.Batch")},
				"size":       {atom("size"), num(2)},
				"pad":        {atom("pad"), num(300)},
				"key":        {atom("key"), atom("text")},
				"stack":      {atom("stack"), listB(tensor)},
			}
			for order, keys := range map[string][]string{
				"erlang":      {"__struct__", "key", "pad", "size", "stack"},
				"struct last": {"stack", "size", "pad", "key", "__struct__"},
			} {
				var kvs []kv
				for _, k := range keys {
					kvs = append(kvs, entries[k])
				}
				checkReads(t, fmt.Sprintf("atoms %d, integers %s, order %s", form, intName, order), packet(mapB(kvs...)), want)
			}
		}
	}
	// A stack of two containers (Erlang may send one).
	two, err := batch.Concatenate(filled(tensor.Float32, 1, 3), filled(tensor.Float32, 2, 3))
	require.NoError(t, err)
	tb := func(d *tensor.Dense) []byte {
		return tensorB(atomB, intForms["small or integer"], tensorKeyOrders["marshal"], "f", 32,
			[]uint32{uint32(d.Shape()[0]), 3}, []string{"nil", "nil"}, d.Raw)
	}
	bin := packet(mapB(kv{atomB("__struct__"), atomB("Elixir.Nx.Batch")}, kv{atomB("size"), smallIntB(3)},
		kv{atomB("pad"), smallIntB(0)}, kv{atomB("key"), atomB("default")},
		kv{atomB("stack"), listB(tb(filled(tensor.Float32, 1, 3)), tb(filled(tensor.Float32, 2, 3)))}))
	checkReads(t, "two containers", bin, two)
}

// Plain values in the encodings Marshal does not write.
func TestUnmarshalReadsEveryEncodingOfPlainValues(t *testing.T) {
	cases := []struct {
		name string
		term []byte
		want any
	}{
		{"ATOM_EXT", atomAs(atomExt, "ok"), etf.Atom("ok")},
		{"ATOM_UTF8_EXT", atomAs(atomUTF8Ext, "héllo"), etf.Atom("héllo")},
		{"SMALL_ATOM_EXT", atomAs(smallAtomExt, "ok"), etf.Atom("ok")},
		{"long true", atomAs(atomUTF8Ext, "true"), true},
		{"long false", atomAs(atomExt, "false"), false},
		{"long nil", atomAs(atomExt, "nil"), nil},
		{"short nil", atomAs(smallAtomExt, "nil"), nil},
		{"INTEGER_EXT small", intB(7), int64(7)},
		{"INTEGER_EXT negative", intB(-7), int64(-7)},
		{"SMALL_BIG_EXT small", smallBigB(false, 7, 1), int64(7)},
		{"SMALL_BIG_EXT negative", smallBigB(true, 1<<40, 6), int64(-1 << 40)},
		{"SMALL_BIG_EXT MinInt64", smallBigB(true, 1<<63, 8), int64(math.MinInt64)},
		{"SMALL_BIG_EXT MaxUint64", smallBigB(false, math.MaxUint64, 8), uint64(math.MaxUint64)},
		{"SMALL_BIG_EXT 12 digits", smallBigB(false, 5, 12), int64(5)},
		{"SMALL_BIG_EXT zero digits", smallBigB(false, 0, 0), int64(0)},
		{"SMALL_BIG_EXT negative zero", smallBigB(true, 0, 2), int64(0)},
		{"LARGE_BIG_EXT", largeBigB(false, 1<<50, 300), int64(1 << 50)},
		{"LARGE_BIG_EXT negative", largeBigB(true, 1<<50, 7), int64(-1 << 50)},
		{"top-level []", nilB(), ""},
		{"[] in a tuple", tupleB(nilB()), batch.Tuple{""}},
		{"empty STRING_EXT", stringB(""), ""},
		{"LARGE_TUPLE_EXT", largeTupleB(smallIntB(1), atomB("a")), batch.Tuple{int64(1), etf.Atom("a")}},
		{"map, keys in every encoding", mapB(kv{atomAs(atomExt, "a"), smallIntB(1)}, kv{atomAs(smallAtomExt, "b"), smallIntB(2)},
			kv{atomAs(atomUTF8Ext, "c"), smallIntB(3)}), batch.Map{"a": int64(1), "b": int64(2), "c": int64(3)}},
		{"map, a true key", mapB(kv{atomAs(smallAtomExt, "true"), smallIntB(1)}), batch.Map{"true": int64(1)}},
		{"float", floatB(-2.5), -2.5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkReads(t, c.name, packet(c.term), c.want) })
	}
}

// What Unmarshal refuses beyond Decode: terms that ergo's decoder would
// have changed silently, and errors that the bytes show before any term.
func TestUnmarshalRefusesMalformedBytes(t *testing.T) {
	tensorWith := func(key string, v []byte) []byte {
		entries := map[string][]byte{
			"__struct__": atomB("Elixir.Nx.Tensor"),
			"data":       mapB(kv{atomB("__struct__"), atomB("Elixir.Nx.BinaryBackend")}, kv{atomB("state"), binaryB(make([]byte, 8))}),
			"type":       tupleB(atomB("f"), smallIntB(32)),
			"shape":      tupleB(smallIntB(2)),
			"names":      listB(atomB("nil")),
		}
		entries[key] = v
		var kvs []kv
		for _, k := range []string{"__struct__", "data", "type", "shape", "names"} {
			kvs = append(kvs, kv{atomB(k), entries[k]})
		}
		return mapB(kvs...)
	}
	okTensor := tensorWith("names", listB(atomB("nil")))
	// okTensor with one more entry, first.
	tensorAnd := func(k, v []byte) []byte {
		out := mapB(kv{k, v})
		out[4] = 6
		return append(out, okTensor[5:]...)
	}
	cases := []struct {
		name string
		bin  []byte
		want error
		msg  string
	}{
		{"empty", nil, wire.ErrMalformed, "must start with 131"},
		{"version only", []byte{131}, wire.ErrMalformed, "does not fit the bytes"},
		{"other version", []byte{130, 97, 1}, wire.ErrMalformed, "must start with 131"},
		{"trailing bytes", packet(append(smallIntB(1), 97, 2)), wire.ErrMalformed, "does not fit the bytes"},
		{"unknown tag", packet(tupleB([]byte{88, 0})), wire.ErrMalformed, "does not fit the bytes"},
		{"cut binary", packet([]byte{109, 0, 0, 0, 9, 1, 2}), wire.ErrMalformed, "does not fit the bytes"},
		{"cut tensor", packet(okTensor[:len(okTensor)-3]), wire.ErrMalformed, "does not fit the bytes"},
		{"huge list", packet([]byte{108, 0xff, 0xff, 0xff, 0xff}), wire.ErrMalformed, "does not fit the bytes"},
		{"huge tuple", packet([]byte{105, 0xff, 0xff, 0xff, 0xff, 97, 1}), wire.ErrMalformed, "does not fit the bytes"},
		{"huge map", packet([]byte{116, 0x7f, 0xff, 0xff, 0xff, 97, 1}), wire.ErrMalformed, "does not fit the bytes"},
		{"empty LIST_EXT", packet([]byte{108, 0, 0, 0, 0, 106}), wire.ErrUnsupportedType, "list of 0 elements"},
		{"pid", packet([]byte{88, 100, 0, 1, 'a', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}), wire.ErrMalformed, "does not fit the bytes"},
		{"atom of 256 characters", packet(atomAs(atomUTF8Ext, strings.Repeat("é", 256))), wire.ErrMalformed, "256 characters"},
		{"atom of 256 bytes", packet(atomAs(atomUTF8Ext, strings.Repeat("é", 128))), wire.ErrTooLarge, "atom of 256 bytes"},
		{"atom not UTF-8", packet(atomAs(smallAtomExt, "\xe9t\xe9")), wire.ErrUnsupportedType, "not valid UTF-8"},
		{"string of 65534 bytes", packet(stringB(strings.Repeat("s", 65534))), wire.ErrTooLarge, "MaxStringBytes"},
		{"integer past 64 bits", packet(smallBigB(false, 1, 9)[:3:3]), wire.ErrMalformed, "does not fit the bytes"},
		{"integer of 9 digits", packet(append(smallBigB(false, 0, 8), 1)), wire.ErrMalformed, "does not fit the bytes"},
		{"big integer", packet(func() []byte { b := smallBigB(false, 0, 9); b[len(b)-1] = 1; return b }()), wire.ErrUnsupportedType, "integer integer 18446744073709551616 does not fit"},
		{"negative past int64", packet(smallBigB(true, 1<<63+1, 8)), wire.ErrUnsupportedType, "integer -9223372036854775809 does not fit"},
		{"NaN", packet(floatB(math.NaN())), wire.ErrUnsupportedType, "float NaN"},
		{"map key twice", packet(mapB(kv{atomB("a"), smallIntB(1)}, kv{atomAs(atomExt, "a"), smallIntB(2)})), wire.ErrMalformed, `map key "a" appears twice`},
		{"tuple map key", packet(mapB(kv{atomB("a"), smallIntB(1)}, kv{tupleB(), smallIntB(2)})), wire.ErrMalformed, "map key tuple of 0 elements, want an atom"},
		{"binary map key", packet(mapB(kv{binaryB([]byte("k")), smallIntB(2)})), wire.ErrMalformed, "map key binary of 1 bytes, want an atom"},
		{"struct key after an error", packet(mapB(kv{tupleB(), smallIntB(2)}, kv{atomB("__struct__"), atomB("Elixir.Nx.Vector")})), wire.ErrUnsupportedType, "struct %Nx.Vector{}"},
		{"struct key after a bad value", packet(mapB(kv{atomB("a"), floatB(math.Inf(1))}, kv{atomB("__struct__"), floatB(1)})), wire.ErrMalformed, "__struct__ key of float 1"},
		{"tensor key twice", packet(tensorAnd(atomB("type"), tupleB(atomB("f"), smallIntB(32)))), wire.ErrMalformed, "the key atom \"type\" twice"},
		{"tensor tuple key", packet(tensorAnd(tupleB(), nilB())), wire.ErrMalformed, "unknown key tuple of 0 elements"},
		{"improper names", packet(tensorWith("names", improperB(atomB("nil"), atomB("nil")))), wire.ErrMalformed, "names is an improper list"},
		{"names of a string", packet(tensorWith("names", stringB("ab"))), wire.ErrMalformed, "names is string of 2 bytes"},
		{"improper stack", packet(mapB(kv{atomB("__struct__"), atomB("Elixir.Nx.Batch")}, kv{atomB("size"), smallIntB(2)},
			kv{atomB("pad"), smallIntB(0)}, kv{atomB("key"), atomB("k")}, kv{atomB("stack"), improperB(okTensor, okTensor)})), wire.ErrMalformed, "stack is an improper list"},
		{"improper list value", packet(improperB(smallIntB(2), smallIntB(1))), wire.ErrUnsupportedType, "list of 2 elements"},
		{"nested too deep", packet(append(slices.Repeat([]byte{104, 1}, wire.MaxDepth+1), 97, 1)), wire.ErrTooLarge, "MaxDepth"},
		{"map nested too deep", packet(append(slices.Repeat([]byte{116, 0, 0, 0, 1, 119, 1, 'a'}, wire.MaxDepth+1), 97, 1)), wire.ErrTooLarge, "MaxDepth"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := wire.Unmarshal(c.bin)
			require.Error(t, err)
			assert.ErrorIs(t, err, c.want)
			assert.Contains(t, err.Error(), c.msg)
			var we *wire.Error
			assert.True(t, errors.As(err, &we))
		})
	}
}

// A header may claim far more elements than follow; Unmarshal allocates
// for what arrives, not for what is claimed, even with the claims nested
// as deep as containers go.
func TestUnmarshalAllocatesForWhatArrives(t *testing.T) {
	var bin []byte
	for range wire.MaxDepth {
		bin = append(bin, 105, 0, 0, 0, 0) // LARGE_TUPLE_EXT
		bin = append(bin, 116, 0, 0, 0, 0) // MAP_EXT
		bin = append(bin, 119, 1, 'k')     // its first key
	}
	bin = packet(bin)
	for i := 1; i < len(bin); {
		// Each header claims as many elements as bytes follow it.
		claim := len(bin) - i - 5
		if bin[i] == 116 {
			claim /= 2
			bin[i+1], bin[i+2], bin[i+3], bin[i+4] = byte(claim>>24), byte(claim>>16), byte(claim>>8), byte(claim)
			i += 8
			continue
		}
		bin[i+1], bin[i+2], bin[i+3], bin[i+4] = byte(claim>>24), byte(claim>>16), byte(claim>>8), byte(claim)
		i += 5
	}
	big := append(bin, make([]byte, 1<<20)...) // the claims now reach a MiB each
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := wire.Unmarshal(big)
	runtime.ReadMemStats(&after)
	require.Error(t, err)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "allocated for claims, not for bytes")
}

// The former Unmarshal's known failures, which Unmarshal does not share.
func TestUnmarshalDoesNotShareErgosDecodingMistakes(t *testing.T) {
	// ergo drops map entries whose key is a tuple.
	bin := packet(mapB(kv{atomB("a"), smallIntB(1)}, kv{tupleB(smallIntB(1)), smallIntB(2)}))
	old, err := wire.Options{}.UnmarshalViaETF(slices.Clone(bin))
	require.NoError(t, err)
	assert.Equal(t, batch.Map{"a": int64(1)}, old)
	_, err = wire.Unmarshal(bin)
	assert.ErrorIs(t, err, wire.ErrMalformed)

	// ergo wraps negative bignums of 64 bits around.
	bin = packet(smallBigB(true, math.MaxUint64, 8))
	old, err = wire.Options{}.UnmarshalViaETF(slices.Clone(bin))
	require.NoError(t, err)
	assert.Equal(t, int64(1), old)
	_, err = wire.Unmarshal(bin)
	assert.ErrorIs(t, err, wire.ErrUnsupportedType)

	// ergo keeps the last of two equal keys.
	bin = packet(mapB(kv{atomB("a"), smallIntB(1)}, kv{atomB("a"), smallIntB(2)}))
	old, err = wire.Options{}.UnmarshalViaETF(slices.Clone(bin))
	require.NoError(t, err)
	assert.Equal(t, batch.Map{"a": int64(2)}, old)
	_, err = wire.Unmarshal(bin)
	assert.ErrorIs(t, err, wire.ErrMalformed)

	// ergo cannot read [] at the top level: it is the empty string.
	v, err := wire.Unmarshal(packet(nilB()))
	require.NoError(t, err)
	assert.Equal(t, "", v)
}

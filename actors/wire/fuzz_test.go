package wire_test

import (
	"errors"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// FuzzDecode feeds arbitrary bytes through ergo's decoder and then Decode:
// Decode must not panic, every error must be one of the package's kinds,
// and whatever decodes must encode again and decode to the same value
// through ergo's encoder and decoder.
func FuzzDecode(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, packet []byte) {
		if !ergoCanDecode(packet) {
			// ergo's decoder allocates whatever a list or tuple header
			// claims before reading it: five bytes can ask for 64 GiB.
			// That is ergo's bug to fix, not this package's to find.
			return
		}
		term, _, err := etf.Decode(packet, []etf.Atom{}, etf.DecodeOptions{})
		if err != nil {
			return
		}
		v, err := wire.Decode(term)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || !(errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnsupportedType) ||
				errors.Is(err, wire.ErrLength) || errors.Is(err, wire.ErrTooLarge)) {
				t.Fatalf("Decode error of no known kind: %v", err)
			}
			return
		}
		again, err := wire.Encode(v)
		if err != nil {
			t.Fatalf("Decode gave %#v, which Encode refuses: %v", v, err)
		}
		back, err := wire.Decode(overErgo(t, again))
		if err != nil {
			t.Fatalf("Encode(Decode(x)) does not decode: %v", err)
		}
		if msg := diff(v, back); msg != "" {
			t.Fatalf("round trip changed the value: %s", msg)
		}
	})
}

// fuzzSeeds returns ETF encodings (as ergo writes them) of valid values
// and of broken ones.
func fuzzSeeds(t testing.TB) [][]byte {
	encode := func(v any) etf.Term {
		term, err := wire.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return term
	}
	stacked, err := batch.Stack(i64s(1, 2), i64s(3, 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := stacked.Pad(2); err != nil {
		t.Fatal(err)
	}
	stacked.SetKey("k")
	pair, err := batch.Concatenate(batch.Tuple{filled(tensor.Float32, 2, 2), batch.Map{"m": filled(tensor.Uint8, 2)}})
	if err != nil {
		t.Fatal(err)
	}

	valid := []etf.Term{
		encode(filled(tensor.Float32, 2, 3)),
		encode(tensor.New(tensor.FromScalar(int64(-5)))),
		encode(filled(tensor.Complex128, 2)),
		encode(filled(tensor.Float64, 0, 4)),
		encode(batch.Map{"a": filled(tensor.Int16, 3), "b": batch.Tuple{filled(tensor.Uint8, 1, 1), "s", 1.5, nil, true}}),
		encode(stacked),
		encode(pair),
		encode(batch.New()),
		encode(batch.Tuple{int64(300), uint64(1) << 63, []byte("bin"), etf.Atom("ok"), -7}),
	}
	broken := []etf.Term{
		withKey(encode(filled(tensor.Float32, 2)), "shape", etf.Tuple{int64(-2)}),
		withKey(encode(filled(tensor.Float32, 2)), "type", etf.Tuple{etf.Atom("bf"), 16}),
		withKey(encode(filled(tensor.Float32, 2)), "names", etf.List{}),
		withKey(encode(filled(tensor.Float32, 2)), "__struct__", etf.Atom("Elixir.Nx.Other")),
		withKey(encode(stacked), "size", 9),
		withKey(encode(stacked), "pad", int64(1)<<40),
		etf.Map{etf.Atom("x"): etf.List{1, 2}},
		etf.Tuple{etf.Tuple{etf.Tuple{etf.Tuple{1.5, "x"}}}},
	}
	var seeds [][]byte
	for _, term := range append(valid, broken...) {
		seeds = append(seeds, toBytes(t, term))
	}
	whole := toBytes(t, valid[0])
	seeds = append(seeds,
		whole[:len(whole)/2],                // truncated
		[]byte{108, 0xff, 0xff, 0xff, 0xff}, // a list claiming 4G elements
		[]byte{106},                         // a bare [] (ergo cannot decode it)
		[]byte{116, 0, 0, 0, 1, 118, 0, 4, 't', 'r', 'u', 'e', 97, 1, 119, 4, 't', 'r', 'u', 'e', 97, 2}, // #{'true' (long form) => 1, true => 2}
	)
	return seeds
}

// withKey returns a copy of the map term m with key set to v.
func withKey(m etf.Term, key string, v etf.Term) etf.Term {
	out := etf.Map{}
	for k, x := range m.(etf.Map) {
		out[k] = x
	}
	out[etf.Atom(key)] = v
	return out
}

// ergoCanDecode is the package's structure check (see Unmarshal).
func ergoCanDecode(packet []byte) bool { return wire.ErgoCanDecode(packet) }

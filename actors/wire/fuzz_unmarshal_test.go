package wire_test

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// FuzzUnmarshal feeds arbitrary bytes (after the version byte) to
// Unmarshal: it must not panic, its errors must be the package's kinds,
// Copy must not change the value, and what decodes must marshal and
// decode again to the same value. Where ergo's decoder reads the bytes,
// the former Unmarshal (ergo's decoder, then Decode) must agree: both
// decode to the same value, or both fail with the same error, except
// where ergo's decoder changes the term (see ergoQuirk).
func FuzzUnmarshal(f *testing.F) {
	for _, seed := range unmarshalSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		bin := packet(body)
		got, err := wire.Unmarshal(slices.Clone(bin))
		if err != nil {
			requireKnownKind(t, err)
		}
		copied, cerr := wire.Options{Copy: true}.Unmarshal(bin)
		if (err == nil) != (cerr == nil) || err != nil && err.Error() != cerr.Error() {
			t.Fatalf("Copy changes the outcome: %v, then %v", err, cerr)
		}
		if err == nil {
			if msg := diff(got, copied); msg != "" {
				t.Fatalf("Copy changes the value: %s", msg)
			}
			again, err := wire.Marshal(got)
			if err != nil {
				t.Fatalf("Unmarshal gave %#v, which Marshal refuses: %v", got, err)
			}
			back, err := wire.Unmarshal(again)
			if err != nil {
				t.Fatalf("Unmarshal(Marshal(v)) fails: %v", err)
			}
			if msg := diff(got, back); msg != "" {
				t.Fatalf("Marshal, Unmarshal changed the value: %s", msg)
			}
		}

		if !wire.ErgoCanDecode(body) {
			if err == nil {
				t.Fatalf("Unmarshal reads %#v from bytes that are no term of the codec's", got)
			}
			return
		}
		// ergo's decoder reverses some bignums in place: give it a copy.
		term, rest, ergoErr := etf.Decode(slices.Clone(body), []etf.Atom{}, etf.DecodeOptions{})
		if ergoErr != nil || len(rest) != 0 {
			return // ergo cannot decode them
		}
		if quirk := ergoQuirk(body); quirk != "" {
			return
		}
		old, oldErr := wire.Decode(term)
		switch {
		case err == nil && oldErr == nil:
			if msg := diff(old, got); msg != "" {
				t.Fatalf("Unmarshal and the former Unmarshal read different values: %s", msg)
			}
		case err == nil:
			t.Fatalf("Unmarshal reads %#v where the former Unmarshal fails: %v", got, oldErr)
		case oldErr == nil:
			t.Fatalf("Unmarshal fails (%v) where the former Unmarshal reads %#v", err, old)
		case err.Error() != oldErr.Error():
			// Decode walks maps in Go's random order, and may meet
			// another of two errors first: try again.
			for range 100 {
				term, _, _ := etf.Decode(slices.Clone(body), []etf.Atom{}, etf.DecodeOptions{})
				if _, oldErr = wire.Decode(term); oldErr.Error() == err.Error() {
					return
				}
			}
			t.Fatalf("Unmarshal fails with %q, the former Unmarshal with %q", err, oldErr)
		}
	})
}

func requireKnownKind(t *testing.T, err error) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) || !(errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnsupportedType) ||
		errors.Is(err, wire.ErrLength) || errors.Is(err, wire.ErrTooLarge)) {
		t.Fatalf("error of no known kind: %v", err)
	}
}

// ergoQuirk names what ergo's decoder would change in the term of body,
// a well-formed term, or returns "". Unmarshal refuses these terms or
// reads them as Erlang does:
//
//   - a map entry whose key is a tuple: ergo drops the entry;
//   - a map with a key twice: ergo keeps the last value;
//   - an improper list: ergo counts its tail as an element;
//   - a negative SMALL_BIG_EXT of 8 bytes or fewer past -2^63: ergo wraps
//     it around into an int64.
func ergoQuirk(body []byte) string {
	_, quirk := quirkAt(body, 0)
	return quirk
}

func quirkAt(b []byte, p int) (int, string) {
	end, ok := wire.SkipAt(b, p)
	if !ok {
		panic("ergoQuirk: not a term")
	}
	elems := func(q, n int) (int, string) {
		for range n {
			var quirk string
			if q, quirk = quirkAt(b, q); quirk != "" {
				return 0, quirk
			}
		}
		return q, ""
	}
	switch b[p] {
	case 104:
		return elems(p+2, int(b[p+1]))
	case 105:
		return elems(p+5, int(binary.BigEndian.Uint32(b[p+1:])))
	case 108:
		q, quirk := elems(p+5, int(binary.BigEndian.Uint32(b[p+1:])))
		if quirk != "" {
			return 0, quirk
		}
		if b[q] != 106 {
			return 0, "improper list"
		}
		return q + 1, ""
	case 116:
		seen := map[any]bool{}
		q := p + 5
		for range int(binary.BigEndian.Uint32(b[p+1:])) {
			keyEnd, _ := wire.SkipAt(b, q)
			if b[q] == 104 || b[q] == 105 {
				return 0, "tuple map key"
			}
			key, _, err := etf.Decode(slices.Clone(b[q:keyEnd]), []etf.Atom{}, etf.DecodeOptions{})
			if err == nil && hashable(key) {
				if seen[key] {
					return 0, "map key twice"
				}
				seen[key] = true
			}
			var quirk string
			if q, quirk = elems(q, 2); quirk != "" {
				return 0, quirk
			}
		}
		return q, ""
	case 110:
		n := int(b[p+1])
		if n <= 8 && b[p+2] == 1 {
			var m uint64
			for i := n - 1; i >= 0; i-- {
				m = m<<8 | uint64(b[p+3+i])
			}
			if m > 1<<63 {
				return 0, "wrapped bignum"
			}
		}
	}
	return end, ""
}

func hashable(v any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	_ = map[any]bool{v: true}
	return true
}

// unmarshalSeeds returns bodies (without the version byte) of valid and
// broken binaries: Marshal's, the former Marshal's, hand-written ones in
// Erlang's other encodings.
func unmarshalSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	add := func(bin []byte) {
		if len(bin) <= 4096 {
			seeds = append(seeds, slices.Clone(bin[1:]))
		}
	}
	for _, c := range corpus(t) {
		if bin, err := wire.Marshal(c.v); err == nil {
			add(bin)
		}
		if bin, err := (wire.Options{}).MarshalViaETF(c.v); err == nil {
			add(bin)
		}
	}
	for _, seed := range fuzzSeeds(t) {
		seeds = append(seeds, seed)
	}
	rows := filled(tensor.Float32, 2, 3)
	for _, form := range atomForms {
		atom := func(s string) []byte { return atomAs(form, s) }
		for _, num := range intForms {
			tb := tensorB(atom, num, tensorKeyOrders["erlang"], "f", 32, []uint32{2, 3}, []string{"nil", "batch"}, rows.Raw)
			seeds = append(seeds, tb, mapB(kv{atom("__struct__"), atom("Elixir.Nx.Batch")}, kv{atom("key"), atom("k")},
				kv{atom("pad"), num(3)}, kv{atom("size"), num(2)}, kv{atom("stack"), listB(tb)}))
		}
	}
	seeds = append(seeds,
		nilB(), improperB(smallIntB(1), smallIntB(2)), smallBigB(true, 1<<63, 8), largeBigB(false, 5, 9),
		mapB(kv{tupleB(), smallIntB(1)}, kv{atomB("a"), smallIntB(2)}),
		mapB(kv{atomB("a"), smallIntB(1)}, kv{atomAs(atomExt, "a"), smallIntB(2)}),
	)
	two, err := batch.Stack(filled(tensor.Uint8, 3), filled(tensor.Uint8, 3))
	if err != nil {
		t.Fatal(err)
	}
	if bin, err := wire.Marshal(batch.Map{"b": two, "t": batch.Tuple{1.5, "x", []byte("y")}}); err == nil {
		add(bin)
	}
	return seeds
}

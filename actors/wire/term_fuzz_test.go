package wire_test

import (
	"errors"
	"math/big"
	"reflect"
	"testing"

	"github.com/ergo-services/ergo/etf"

	"github.com/ergonx/ergonx/actors/wire"
)

// FuzzDecodeTerm feeds arbitrary bytes to the term decoder: it must never
// panic, every error must be a *wire.Error of a known kind, Skip must
// accept whatever Decode accepts and end at the same byte, and whatever
// decodes must encode and decode again to the same term. The committed
// corpus is in testdata/fuzz/FuzzDecodeTerm.
func FuzzDecodeTerm(f *testing.F) {
	f.Add(fromErlang)
	f.Add([]byte{131, 108, 0, 0, 0, 1, 108, 0, 0, 0, 1, 106, 106, 106})
	f.Add([]byte{131, 116, 0, 0, 0, 1, 109, 0, 0, 0, 1, 107, 97, 1})
	f.Add([]byte{131, 112, 0, 0, 0, 44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0,
		119, 1, 109, 97, 2, 97, 99, 88, 119, 1, 110, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{131, 90, 0, 3, 119, 1, 110, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := wire.TermDecoder{MaxDepth: 64, MaxSize: 1 << 20, AtomCache: []etf.Atom{"cached", "true"}}
		term, rest, err := d.Decode(b)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || !(errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnsupportedType) ||
				errors.Is(err, wire.ErrTooLarge)) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		skipped, _, err := d.Skip(b)
		if err != nil {
			t.Fatalf("Decode accepted what Skip refuses: %v", err)
		}
		if len(skipped) != len(rest) {
			t.Fatalf("Decode ended %d bytes before the end, Skip %d", len(rest), len(skipped))
		}
		again, err := wire.TermEncoder{MaxDepth: 64}.Append(nil, term)
		if err != nil {
			t.Fatalf("decoded %#v, which does not encode: %v", term, err)
		}
		back, rest, err := wire.TermDecoder{MaxDepth: 64}.Decode(again)
		if err != nil || len(rest) != 0 {
			t.Fatalf("the encoding of %#v does not decode: %v (%d bytes left)", term, err, len(rest))
		}
		if !reflect.DeepEqual(canonical(term), canonical(back)) {
			t.Fatalf("round trip changed the term:\n%#v\n%#v", term, back)
		}
	})
}

// canonical replaces every integer with its *big.Int, so that terms that
// differ only in the Go type of an integer (an INTEGER_EXT 48 decodes to
// int64, its canonical SMALL_INTEGER_EXT to int) compare equal.
func canonical(t etf.Term) etf.Term {
	switch v := t.(type) {
	case int:
		return big.NewInt(int64(v))
	case int64:
		return big.NewInt(v)
	case uint64:
		return new(big.Int).SetUint64(v)
	case *big.Int:
		return new(big.Int).Set(v)
	case etf.Tuple:
		out := make(etf.Tuple, len(v))
		for i, x := range v {
			out[i] = canonical(x)
		}
		return out
	case etf.List:
		out := make(etf.List, len(v))
		for i, x := range v {
			out[i] = canonical(x)
		}
		return out
	case etf.Map:
		out := make(etf.Map, len(v))
		for k, x := range v {
			out[canonicalKey(k)] = canonical(x)
		}
		return out
	case etf.Function:
		v.FreeVars = canonical(etf.List(v.FreeVars)).(etf.List)
		return v
	}
	return t
}

// canonicalKey makes integer map keys comparable across Go types.
func canonicalKey(k etf.Term) etf.Term {
	if b, ok := canonical(k).(*big.Int); ok {
		return "int:" + b.String()
	}
	return k
}

package wire

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"
)

// Atoms of the wire form. They are stored as etf.Term so that putting
// them in a term does not box them again.
var (
	keyStruct         etf.Term = etf.Atom("__struct__")
	keyData           etf.Term = etf.Atom("data")
	keyType           etf.Term = etf.Atom("type")
	keyShape          etf.Term = etf.Atom("shape")
	keyNames          etf.Term = etf.Atom("names")
	keyVectorizedAxes etf.Term = etf.Atom("vectorized_axes")
	keyState          etf.Term = etf.Atom("state")
	keySize           etf.Term = etf.Atom("size")
	keyPad            etf.Term = etf.Atom("pad")
	keyKey            etf.Term = etf.Atom("key")
	keyStack          etf.Term = etf.Atom("stack")
	atomNxTensor      etf.Term = etf.Atom("Elixir.Nx.Tensor")
	atomNxBinary      etf.Term = etf.Atom("Elixir.Nx.BinaryBackend")
	atomNxBatch       etf.Term = etf.Atom("Elixir.Nx.Batch")
	atomNil           etf.Term = etf.Atom("nil")
	emptyList         etf.Term = etf.List{}
)

// nilNames[r] is the names list of a rank-r tensor: r nil atoms. Terms
// share these lists; nothing modifies them.
var nilNames = func() [MaxRank + 1]etf.Term {
	var out [MaxRank + 1]etf.Term
	for r := range out {
		l := make(etf.List, r)
		for i := range l {
			l[i] = atomNil
		}
		out[r] = l
	}
	return out
}()

// checkAtom reports why s cannot travel as an atom, or nil.
func checkAtom(s string) *Error {
	if len(s) > MaxAtomBytes {
		return errorf(ErrTooLarge, "atom of %d bytes, limit %d (MaxAtomBytes)", len(s), MaxAtomBytes)
	}
	if !utf8.ValidString(s) {
		return errorf(ErrUnsupportedType, "atom %q is not valid UTF-8", s)
	}
	return nil
}

// atomText returns the text of an atom term. ergo's decoder turns the
// atoms true and false into Go bools, so a bool is an atom here too.
func atomText(t etf.Term) (string, bool) {
	switch x := t.(type) {
	case etf.Atom:
		return string(x), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// intResult classifies termInt's answer.
type intResult uint8

const (
	intOK       intResult = iota
	intNotInt             // not an integer term
	intTooLarge           // an integer outside int64
)

// termInt returns the integer an ETF term holds. ergo decodes 0..255 as
// int, other small integers as int64, larger ones as int64, uint64 or
// *big.Int; terms built in memory may hold any Go integer type.
func termInt(t etf.Term) (int64, intResult) {
	switch x := t.(type) {
	case int:
		return int64(x), intOK
	case int64:
		return x, intOK
	case int32:
		return int64(x), intOK
	case int16:
		return int64(x), intOK
	case int8:
		return int64(x), intOK
	case uint8:
		return int64(x), intOK
	case uint16:
		return int64(x), intOK
	case uint32:
		return int64(x), intOK
	case uint:
		if uint64(x) > math.MaxInt64 {
			return 0, intTooLarge
		}
		return int64(x), intOK
	case uint64:
		if x > math.MaxInt64 {
			return 0, intTooLarge
		}
		return int64(x), intOK
	case *big.Int:
		if x == nil {
			return 0, intNotInt
		}
		if !x.IsInt64() {
			return 0, intTooLarge
		}
		return x.Int64(), intOK
	case big.Int:
		if !x.IsInt64() {
			return 0, intTooLarge
		}
		return x.Int64(), intOK
	}
	return 0, intNotInt
}

// typeName names an ETF term's type for error messages, in Erlang's
// words where there is one.
func typeName(t etf.Term) string {
	switch t.(type) {
	case nil:
		return "Go nil"
	case etf.Atom, bool:
		return "atom"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, *big.Int, big.Int:
		return "integer"
	case float32, float64:
		return "float"
	case string:
		return "string"
	case []byte:
		return "binary"
	case etf.Tuple:
		return "tuple"
	case etf.List:
		return "list"
	case etf.Map:
		return "map"
	case etf.Pid:
		return "pid"
	case etf.Ref:
		return "reference"
	case etf.Port:
		return "port"
	case etf.Function, etf.Export:
		return "fun"
	}
	return goTypeName(t)
}

func goTypeName(v any) string { return fmt.Sprintf("%T", v) }

// bigUint returns an integer term above math.MaxInt64 that fits in 64
// bits as a uint64.
func bigUint(t etf.Term) (uint64, bool) {
	switch x := t.(type) {
	case uint64:
		return x, true
	case uint:
		return uint64(x), true
	case *big.Int:
		if x != nil && x.IsUint64() {
			return x.Uint64(), true
		}
	case big.Int:
		if x.IsUint64() {
			return x.Uint64(), true
		}
	}
	return 0, false
}

// bigString writes a wide integer term in decimal.
func bigString(t etf.Term) (string, bool) {
	switch x := t.(type) {
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case *big.Int:
		if x != nil {
			return x.String(), true
		}
	case big.Int:
		return x.String(), true
	}
	return "", false
}

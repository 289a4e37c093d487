package wire_test

import (
	"encoding/binary"
	"math"
)

// Hand-written external term format, in each of the encodings an Erlang
// node may use, to test what Unmarshal reads beyond what Marshal and
// ergo's encoder write.

const (
	atomExt          = 100 // ATOM_EXT
	atomUTF8Ext      = 118 // ATOM_UTF8_EXT
	smallAtomExt     = 115 // SMALL_ATOM_EXT
	smallAtomUTF8Ext = 119 // SMALL_ATOM_UTF8_EXT
)

// atomForms are the four encodings of an atom.
var atomForms = []byte{atomExt, atomUTF8Ext, smallAtomExt, smallAtomUTF8Ext}

func atomAs(tag byte, s string) []byte {
	if tag == atomExt || tag == atomUTF8Ext {
		return append(binary.BigEndian.AppendUint16([]byte{tag}, uint16(len(s))), s...)
	}
	return append([]byte{tag, byte(len(s))}, s...)
}

func atomB(s string) []byte { return atomAs(smallAtomUTF8Ext, s) }

func smallIntB(v byte) []byte { return []byte{97, v} }

func intB(v int32) []byte { return binary.BigEndian.AppendUint32([]byte{98}, uint32(v)) }

// smallBigB writes a SMALL_BIG_EXT of magnitude m in n digits (n may be
// more than m needs: leading zeros).
func smallBigB(negative bool, m uint64, n int) []byte {
	out := []byte{110, byte(n), 0}
	if negative {
		out[2] = 1
	}
	for i := range n {
		if i < 8 {
			out = append(out, byte(m>>(8*i)))
		} else {
			out = append(out, 0)
		}
	}
	return out
}

func largeBigB(negative bool, m uint64, n int) []byte {
	out := binary.BigEndian.AppendUint32([]byte{111}, uint32(n))
	sign := byte(0)
	if negative {
		sign = 1
	}
	out = append(out, sign)
	for i := range n {
		if i < 8 {
			out = append(out, byte(m>>(8*i)))
		} else {
			out = append(out, 0)
		}
	}
	return out
}

// intForms are encodings of a non-negative integer that every form can
// hold: what Erlang writes and the wider forms it may meet.
var intForms = map[string]func(v uint32) []byte{
	"small or integer": func(v uint32) []byte {
		if v <= 255 {
			return smallIntB(byte(v))
		}
		return intB(int32(v))
	},
	"INTEGER_EXT":           func(v uint32) []byte { return intB(int32(v)) },
	"SMALL_BIG_EXT":         func(v uint32) []byte { return smallBigB(false, uint64(v), 4) },
	"SMALL_BIG_EXT 9 bytes": func(v uint32) []byte { return smallBigB(false, uint64(v), 9) },
}

func floatB(f float64) []byte {
	return binary.BigEndian.AppendUint64([]byte{70}, math.Float64bits(f))
}

func stringB(s string) []byte {
	return append(binary.BigEndian.AppendUint16([]byte{107}, uint16(len(s))), s...)
}

func binaryB(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{109}, uint32(len(b))), b...)
}

func nilB() []byte { return []byte{106} }

func tupleB(elems ...[]byte) []byte {
	out := []byte{104, byte(len(elems))}
	for _, e := range elems {
		out = append(out, e...)
	}
	return out
}

func largeTupleB(elems ...[]byte) []byte {
	out := binary.BigEndian.AppendUint32([]byte{105}, uint32(len(elems)))
	for _, e := range elems {
		out = append(out, e...)
	}
	return out
}

// listB writes a proper list: NIL_EXT when empty, else LIST_EXT with a
// NIL_EXT tail.
func listB(elems ...[]byte) []byte {
	if len(elems) == 0 {
		return nilB()
	}
	return improperB(nilB(), elems...)
}

func improperB(tail []byte, elems ...[]byte) []byte {
	out := binary.BigEndian.AppendUint32([]byte{108}, uint32(len(elems)))
	for _, e := range elems {
		out = append(out, e...)
	}
	return append(out, tail...)
}

// kv is one map entry.
type kv struct{ k, v []byte }

func mapB(entries ...kv) []byte {
	out := binary.BigEndian.AppendUint32([]byte{116}, uint32(len(entries)))
	for _, e := range entries {
		out = append(append(out, e.k...), e.v...)
	}
	return out
}

// packet makes a term a binary Unmarshal reads.
func packet(term []byte) []byte { return append([]byte{131}, term...) }

// tensorB writes an %Nx.Tensor{} with the atoms written by atom, the
// integers by num, and its entries in the order of keys (those of a
// tensor; vectorized_axes may be left out).
func tensorB(atom func(string) []byte, num func(uint32) []byte, keys []string, kind string, bits uint32, dims []uint32, names []string, data []byte) []byte {
	var entries []kv
	for _, k := range keys {
		var v []byte
		switch k {
		case "__struct__":
			v = atom("Elixir.Nx.Tensor")
		case "data":
			v = mapB(kv{atom("__struct__"), atom("Elixir.Nx.BinaryBackend")}, kv{atom("state"), binaryB(data)})
		case "type":
			v = tupleB(atom(kind), num(bits))
		case "shape":
			var ds [][]byte
			for _, d := range dims {
				ds = append(ds, num(d))
			}
			v = tupleB(ds...)
		case "names":
			var ns [][]byte
			for _, n := range names {
				ns = append(ns, atom(n))
			}
			v = listB(ns...)
		case "vectorized_axes":
			v = nilB()
		default:
			panic(k)
		}
		entries = append(entries, kv{atom(k), v})
	}
	return mapB(entries...)
}

// Orders of a tensor's keys: Erlang's (atoms sorted; __struct__ first,
// as '_' sorts before lowercase letters), Marshal's usual one, a reversed
// one with __struct__ last, and Nx 0.5's struct, without vectorized_axes.
var tensorKeyOrders = map[string][]string{
	"erlang":             {"__struct__", "data", "names", "shape", "type", "vectorized_axes"},
	"marshal":            {"__struct__", "data", "type", "shape", "names", "vectorized_axes"},
	"struct last":        {"vectorized_axes", "type", "shape", "names", "data", "__struct__"},
	"nx 0.5":             {"__struct__", "data", "names", "shape", "type"},
	"data in the middle": {"names", "__struct__", "shape", "data", "type", "vectorized_axes"},
}

package wire

import (
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
)

// externalTermVersion is the first byte of Erlang's external term format
// (term_to_binary).
const externalTermVersion = 131

// Tags of the external term format that this package writes or reads.
const (
	tagNewFloat      = 70  // NEW_FLOAT_EXT: 8 bytes, a big-endian IEEE double
	tagSmallInteger  = 97  // SMALL_INTEGER_EXT: 1 byte, 0..255
	tagInteger       = 98  // INTEGER_EXT: 4 bytes, big-endian, signed
	tagAtom          = 100 // ATOM_EXT: 2-byte length (Latin-1, read as bytes)
	tagSmallTuple    = 104 // SMALL_TUPLE_EXT: 1-byte arity
	tagLargeTuple    = 105 // LARGE_TUPLE_EXT: 4-byte arity
	tagNil           = 106 // NIL_EXT: []
	tagString        = 107 // STRING_EXT: 2-byte length, bytes
	tagList          = 108 // LIST_EXT: 4-byte length, elements, tail
	tagBinary        = 109 // BINARY_EXT: 4-byte length, bytes
	tagSmallBig      = 110 // SMALL_BIG_EXT: 1-byte length, sign, little-endian digits
	tagLargeBig      = 111 // LARGE_BIG_EXT: 4-byte length, sign, little-endian digits
	tagSmallAtom     = 115 // SMALL_ATOM_EXT: 1-byte length (Latin-1, read as bytes)
	tagMap           = 116 // MAP_EXT: 4-byte arity, keys and values
	tagAtomUTF8      = 118 // ATOM_UTF8_EXT: 2-byte length
	tagSmallAtomUTF8 = 119 // SMALL_ATOM_UTF8_EXT: 1-byte length
)

const (
	// maxSkipDepth is how deeply skipAt follows nested terms.
	maxSkipDepth = 256

	msgBadStructure  = "external term format: a length or count does not fit the bytes, or a term kind is not one of the wire codec's"
	msgNotTermBinary = "not an external term format binary (it must start with 131)"
)

// Marshal returns v's term (see Encode) in Erlang's external term format,
// as term_to_binary would: a binary that an Erlang or Elixir node turns
// back into the %Nx.Tensor{} (or container) with binary_to_term.
//
// ergonx nodes send inputs and results this way, wrapped in their own
// messages, rather than as nested terms: ergo encodes and decodes every
// message of a connection on one goroutine each way, and the maps of Nx's
// term shape are its slowest terms. Marshal and Unmarshal run in the
// callers' goroutines, in parallel, and ergo only copies bytes.
//
// Marshal writes the bytes itself, without building a term: it accepts
// and refuses exactly what Encode does, with the same errors, and its
// bytes decode (in Erlang, or with ergo's decoder) to the term Encode
// builds. Map keys may come in another order than ergo's encoder would
// write them; in a tensor they are ordered so that its data starts at a
// multiple of its element alignment from the start of the binary, which
// lets Unmarshal use the data in place.
func Marshal(v any) ([]byte, error) { return Options{}.Marshal(v) }

// Unmarshal decodes what Marshal produced (or term_to_binary of an Nx
// term): Decode of the term the bytes hold, read straight from the bytes
// without ergo's decoder. It checks that every length and count fits the
// bytes that follow before it allocates anything for them.
func Unmarshal(b []byte) (any, error) { return Options{}.Unmarshal(b) }

// Marshal is Marshal with o's options. It never shares memory with v
// (Share makes no difference): the bytes are a new slice, which Marshal
// allocates once, at its final size.
func (o Options) Marshal(v any) ([]byte, error) {
	var e encoder
	n, err := e.size(v, 0)
	if err != nil {
		return nil, err
	}
	e.buf = make([]byte, 1, 1+n)
	e.buf[0] = externalTermVersion
	if err := e.write(v); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// Unmarshal is Unmarshal with o's options. The decoded value never shares
// memory with b unless o.Copy is false and the tensor bytes can be used
// in place: on a little-endian host, when they are aligned for their
// element type in memory (Marshal places them so, counting from b[0]).
// []byte values are always copies.
//
// Unmarshal reads everything an Erlang node may write for the terms of
// the package doc: atoms in any of their four encodings, integers as
// SMALL_INTEGER_EXT, INTEGER_EXT or bignums, tuples small or large, lists
// with a [] tail, map keys in any order (a map with a __struct__ key is a
// struct). It checks the term as Decode does, with the same errors.
// Bytes that hold no such term (a length or count past the end, a tag
// that is none of those, bytes after the term) are ErrMalformed, unless
// Unmarshal met another error earlier in the bytes. Beyond what Decode
// can see in a term, Unmarshal refuses, with ErrMalformed, what ergo's
// decoder would silently have changed: a map with a key twice, a map key
// that is a tuple, an improper list, an integer it would have wrapped.
//
// Memory is allocated as the bytes are read, not ahead of them on a
// length's say-so: a header that claims more than the bytes hold costs at
// most a small allocation (see maxPrealloc).
func (o Options) Unmarshal(b []byte) (any, error) {
	if len(b) == 0 || b[0] != externalTermVersion {
		return nil, &Error{Kind: ErrMalformed, Msg: msgNotTermBinary}
	}
	p := parser{b: b, copy: o.Copy}
	v, end, err := p.value(1, 0)
	if err == errCut || err == nil && end != len(b) {
		return nil, &Error{Kind: ErrMalformed, Msg: msgBadStructure}
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// marshalViaETF is the former Marshal, which built the term with Encode
// and wrote it with ergo's encoder: the reference that tests and
// benchmarks compare Marshal with.
func (o Options) marshalViaETF(v any) ([]byte, error) {
	o.Share = true
	term, err := o.Encode(v)
	if err != nil {
		return nil, err
	}
	buf := lib.TakeBuffer()
	defer lib.ReleaseBuffer(buf)
	buf.AppendByte(externalTermVersion)
	if err := etf.Encode(term, buf, etf.EncodeOptions{}); err != nil {
		return nil, &Error{Kind: ErrUnsupportedType, Msg: fmt.Sprintf("external term format: %v", err)}
	}
	return append([]byte(nil), buf.B...), nil
}

// unmarshalViaETF is the former Unmarshal, which decoded the bytes with
// ergo's decoder and the term with Decode: the reference that tests and
// benchmarks compare Unmarshal with.
func (o Options) unmarshalViaETF(b []byte) (any, error) {
	if len(b) == 0 || b[0] != externalTermVersion {
		return nil, &Error{Kind: ErrMalformed, Msg: msgNotTermBinary}
	}
	body := b[1:]
	if rest, ok := skipTerm(body, 0); !ok || len(rest) != 0 {
		return nil, &Error{Kind: ErrMalformed, Msg: msgBadStructure}
	}
	term, rest, err := etf.Decode(body, nil, etf.DecodeOptions{})
	if err != nil {
		return nil, &Error{Kind: ErrMalformed, Msg: fmt.Sprintf("external term format: %v", err)}
	}
	if len(rest) != 0 {
		return nil, &Error{Kind: ErrMalformed, Msg: fmt.Sprintf("external term format: %d bytes after the term", len(rest))}
	}
	return o.Decode(term)
}

// ergoCanDecode reports whether packet is one ETF term of the kinds this
// package meets whose every length and count fits in the bytes that
// follow.
func ergoCanDecode(packet []byte) bool {
	rest, ok := skipTerm(packet, 0)
	return ok && len(rest) == 0
}

// skipTerm returns what follows the term at the start of b, or false if
// the term is not of a kind the wire codec uses or claims more elements
// or bytes than b holds. It allocates nothing.
func skipTerm(b []byte, depth int) ([]byte, bool) {
	end, ok := skipAt(b, 0, depth)
	if !ok {
		return nil, false
	}
	return b[end:], true
}

// skipAt returns the end of the term that starts at b[p], or false if the
// term is not of a kind the wire codec uses (BIT_BINARY_EXT, pids, ports,
// references, funs, atom cache references: ergo mishandles some), claims
// more elements or bytes than b holds, is an empty LIST_EXT, or nests more
// than maxSkipDepth deep (depth is how deep b[p] already is). It is the
// general term skipper (term_skip.go) held to the wire codec's kinds.
func skipAt(b []byte, p, depth int) (int, bool) {
	if depth > maxSkipDepth {
		return 0, false
	}
	s := termSkipper{b: b, p: p, maxDepth: maxSkipDepth, wireOnly: true}
	if s.skip(1, depth) != nil {
		return 0, false
	}
	return s.p, true
}

package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
)

// externalTermVersion is the first byte of Erlang's external term format
// (term_to_binary).
const externalTermVersion = 131

// Marshal returns v's term (see Encode) in Erlang's external term format,
// as term_to_binary would: a binary that an Erlang or Elixir node turns
// back into the %Nx.Tensor{} (or container) with binary_to_term.
//
// ergonx nodes send inputs and results this way, wrapped in their own
// messages, rather than as nested terms: ergo encodes and decodes every
// message of a connection on one goroutine each way, and the maps of Nx's
// term shape are its slowest terms. Marshal and Unmarshal run in the
// callers' goroutines, in parallel, and ergo only copies bytes.
func Marshal(v any) ([]byte, error) { return Options{}.Marshal(v) }

// Unmarshal decodes what Marshal produced (or term_to_binary of an Nx
// term) after checking that every length and count in it fits the bytes
// that follow: ergo's decoder allocates whatever a list or tuple header
// claims before looking, so five bytes could otherwise ask for gigabytes.
func Unmarshal(b []byte) (any, error) { return Options{}.Unmarshal(b) }

// Marshal is Marshal with o's options. It never shares memory with v:
// the term is written out before Marshal returns, so the intermediate
// copy Encode makes for ergo's later encoding is skipped (as with Share).
func (o Options) Marshal(v any) ([]byte, error) {
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

// Unmarshal is Unmarshal with o's options. The decoded value never shares
// memory with b unless o.Copy is false and the tensor bytes can be used
// in place (see Options).
func (o Options) Unmarshal(b []byte) (any, error) {
	if len(b) == 0 || b[0] != externalTermVersion {
		return nil, &Error{Kind: ErrMalformed, Msg: "not an external term format binary (it must start with 131)"}
	}
	body := b[1:]
	if rest, ok := skipTerm(body, 0); !ok || len(rest) != 0 {
		return nil, &Error{Kind: ErrMalformed, Msg: "external term format: a length or count does not fit the bytes, or a term kind is not one of the wire codec's"}
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
	if len(b) == 0 || depth > 256 {
		return nil, false
	}
	tag := b[0]
	b = b[1:]
	take := func(n int) ([]byte, bool) {
		if n < 0 || n > len(b) {
			return nil, false
		}
		return b[n:], true
	}
	u8 := func(off int) int {
		if off >= len(b) {
			return -1
		}
		return int(b[off])
	}
	u16 := func() int {
		if len(b) < 2 {
			return -1
		}
		return int(binary.BigEndian.Uint16(b))
	}
	u32 := func() int {
		if len(b) < 4 {
			return -1
		}
		return int(binary.BigEndian.Uint32(b))
	}
	elems := func(header, n int) ([]byte, bool) {
		if n < 0 || n > len(b) { // every element takes a byte at least
			return nil, false
		}
		rest := b[header:]
		for range n {
			var ok bool
			if rest, ok = skipTerm(rest, depth+1); !ok {
				return nil, false
			}
		}
		return rest, true
	}
	switch tag {
	case 97: // SMALL_INTEGER_EXT
		return take(1)
	case 98: // INTEGER_EXT
		return take(4)
	case 70: // NEW_FLOAT_EXT
		return take(8)
	case 100, 118, 107: // ATOM_EXT, ATOM_UTF8_EXT, STRING_EXT
		if n := u16(); n >= 0 {
			return take(2 + n)
		}
	case 115, 119: // SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT
		if n := u8(0); n >= 0 {
			return take(1 + n)
		}
	case 110: // SMALL_BIG_EXT
		if n := u8(0); n >= 0 && len(b) >= 2 {
			return take(2 + n)
		}
	case 111: // LARGE_BIG_EXT
		if n := u32(); n >= 0 && len(b) >= 5 {
			return take(5 + n)
		}
	case 109: // BINARY_EXT
		if n := u32(); n >= 0 {
			return take(4 + n)
		}
	case 106: // NIL_EXT
		return b, true
	case 104: // SMALL_TUPLE_EXT
		return elems(1, u8(0))
	case 105: // LARGE_TUPLE_EXT
		return elems(4, u32())
	case 116: // MAP_EXT
		if n := u32(); n >= 0 {
			return elems(4, 2*n)
		}
	case 108: // LIST_EXT: elements and a tail
		if n := u32(); n > 0 {
			return elems(4, n+1)
		}
	}
	// BIT_BINARY_EXT, pids, ports, references, funs, atom cache
	// references: not what this package reads, and ergo mishandles some.
	return nil, false
}

package wire

import (
	"github.com/ergo-services/ergo/etf"
)

// The general term codec: EncodeTerm/AppendTerm write any ergo etf.Term
// (and the Go values ergo's encoder accepts) in Erlang's external term
// format, DecodeTerm/TermDecoder read it back into the Go types ergo's own
// decoder produces. It is what the distribution layer (internal/erldist)
// uses for every control message and message, so it is built for bytes
// that come from the network:
//
//   - every length and count a term claims is checked against the bytes
//     that remain before anything is allocated for it, and the decoded
//     size (binaries, strings, elements) is charged against a budget
//     (TermDecoder.MaxSize), so a few bytes cannot make it allocate much;
//   - nesting is bounded (TermDecoder.MaxDepth): a list nested a million
//     deep is refused with an error, it does not overflow the stack;
//   - it never panics, whatever the input (FuzzDecodeTerm).
//
// Decoded types, as ergo's decoder gives them (code that type-switches on
// ergo's terms keeps working): atoms are etf.Atom, except true and false,
// which are bool; SMALL_INTEGER_EXT is int; INTEGER_EXT is int64; bignums
// are int64 when they fit, else uint64 when they fit, else *big.Int;
// floats are float64; STRING_EXT is a Go string; binaries are []byte (a
// copy: a decoded term never aliases the input); [] is etf.List{}; a proper
// list is etf.List; an improper list [a, b | t] is etf.List{a, b, t} (as
// ergo decodes it: ergo's gen.Server reads the OTP 24+ call tag
// [alias | Ref] that way) unless TermDecoder.ImproperLists asks for
// etf.ListImproper; tuples are etf.Tuple; maps are etf.Map; pids, ports,
// references, exports and funs are etf.Pid, etf.Port, etf.Ref,
// etf.Export and etf.Function. A bitstring (BIT_BINARY_EXT) is its bytes
// with the last one shifted right to drop the unused bits, as ergo does.
//
// Map keys must be hashable Go values. A binary key (Elixir's string keys)
// decodes to etf.String, which is hashable and encodes back to the same
// binary; a tuple, list or map key cannot be a Go map key and fails the
// term with ErrUnsupportedType (ergo's decoder drops such entries
// silently, or panics).

// RawTerm is a term already in the external term format: the bytes
// term_to_binary returns, starting with the version byte 131 (a compressed
// term, 131 then 80, is accepted too). Wherever a RawTerm appears inside a
// term given to EncodeTerm or AppendTerm — a message, an element of a
// tuple, an argument list, an exit reason — its bytes are written in place
// without being decoded, so a large value (a tensor) can be encoded once,
// in its owner's goroutine, and sent as often as needed. The bytes are
// checked structurally (every length fits, nothing is truncated, no atom
// cache reference) before they are written, so a broken RawTerm fails the
// encoding instead of the peer's connection; a compressed one is
// inflated first (ETF does not allow compression inside a term).
//
// A RawTerm is not copied: do not change its bytes while a message that
// holds it may still be encoded.
type RawTerm []byte

// Limits of the term codec.
const (
	// DefaultTermDepth is how deeply TermDecoder (and the encoder) let
	// tuples, lists and maps nest when no MaxDepth is given. Real terms
	// nest a few levels; OTP itself has no limit, but a Go stack is not
	// the place to find out how deep a hostile term goes.
	DefaultTermDepth = 1024

	// DefaultTermSize is the decoded-size budget of TermDecoder when no
	// MaxSize is given: 1 GiB of binaries, strings, big integers and
	// element slots (16 bytes per list or tuple element, 32 per map
	// entry).
	DefaultTermSize = 1 << 30

	// MaxAtomRunes is the longest atom Erlang accepts, in characters.
	MaxAtomRunes = 255
)

// Tags of the external term format beyond those the Nx-shape codec uses.
const (
	tagAtomCacheRef = 82  // ATOM_CACHE_REF: 1-byte index into the distribution header's atoms
	tagNewPid       = 88  // NEW_PID_EXT: node, 4-byte id, 4-byte serial, 4-byte creation
	tagNewPort      = 89  // NEW_PORT_EXT: node, 4-byte id, 4-byte creation
	tagNewerRef     = 90  // NEWER_REFERENCE_EXT: 2-byte len, node, 4-byte creation, len words
	tagBitBinary    = 77  // BIT_BINARY_EXT: 4-byte length, bits in the last byte, bytes
	tagCompressed   = 80  // compressed term: 4-byte uncompressed size, zlib data
	tagFloat        = 99  // FLOAT_EXT: 31 bytes of "%.20e" text
	tagPort         = 102 // PORT_EXT: node, 4-byte id, 1-byte creation
	tagPid          = 103 // PID_EXT: node, 4-byte id, 4-byte serial, 1-byte creation
	tagNewFun       = 112 // NEW_FUN_EXT
	tagExport       = 113 // EXPORT_EXT: module, function, arity
	tagNewRef       = 114 // NEW_REFERENCE_EXT: 2-byte len, node, 1-byte creation, len words
	tagV4Port       = 120 // V4_PORT_EXT: node, 8-byte id, 4-byte creation
	tagRef          = 101 // REFERENCE_EXT (deprecated): node, 4-byte id, 1-byte creation
)

// etfVersion is the first byte of a term in the external format.
const etfVersion = externalTermVersion

// Atoms that decode to Go values.
var (
	atomTrue  = etf.Atom("true")
	atomFalse = etf.Atom("false")
)

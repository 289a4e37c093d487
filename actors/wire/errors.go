package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors of this package. Every error Encode and Decode return is an
// *Error whose Kind is one of these, so test them with errors.Is.
var (
	// ErrMalformed is returned by Decode for a term that does not have the
	// shape of what it claims to be: a struct with a wrong or missing key,
	// a value of the wrong ETF type, a negative dimension, a names list
	// whose length is not the rank, a batch whose rows do not add up to
	// its size, a map key that is not an atom.
	ErrMalformed = errors.New("wire: malformed term")

	// ErrUnsupportedType is returned for a well-formed value that this
	// package cannot carry: by Encode for Go values it does not know (a
	// channel, a struct, a gorgonia dtype without an Nx type, a masked
	// tensor, a NaN float), by Decode for terms it does not map to Go (Nx
	// types without a gorgonia dtype such as {f,16} and {bf,16}, tensors on
	// a backend other than Nx.BinaryBackend, vectorized tensors, lists,
	// pids, integers wider than 64 bits).
	ErrUnsupportedType = errors.New("wire: unsupported type")

	// ErrLength is returned by Decode for a tensor whose binary does not
	// hold exactly elements × element-size bytes. The message gives both.
	ErrLength = errors.New("wire: tensor data length does not match its shape and type")

	// ErrTooLarge is returned by Encode and Decode for a value past one of
	// the limits below (MaxDepth, MaxRank, MaxElements, MaxTensorBytes,
	// MaxAtomBytes, MaxStringBytes).
	ErrTooLarge = errors.New("wire: value too large")
)

// Limits that Encode and Decode enforce in both directions, so that
// whatever Encode produces Decode accepts, and so that a term from the
// network cannot make Decode overflow, recurse without end or build a
// tensor whose size arithmetic overflows.
const (
	// MaxDepth is how deeply containers (tuples, maps, batches) may nest.
	MaxDepth = 64

	// MaxRank is the largest number of axes a tensor may have.
	MaxRank = 32

	// MaxElements caps the elements of one tensor. Dimensions of zero
	// count as one here, so that no partial product (a stride) can
	// overflow either; a decoded batch's padded rows count too.
	MaxElements = 1 << 31

	// MaxTensorBytes is the largest binary a tensor's data may take:
	// ETF's BINARY_EXT length is 32 bits and ergo's decoder adds 4 to it
	// in 32-bit arithmetic, so larger binaries would not survive it.
	MaxTensorBytes = 1<<32 - 5

	// MaxAtomBytes is the longest atom (map key, batch key, plain atom) in
	// bytes. Erlang allows 255 characters; this package counts bytes, so
	// that every atom it writes or reads fits SMALL_ATOM_UTF8_EXT.
	MaxAtomBytes = 255

	// MaxStringBytes is the longest Go string carried as a plain value.
	// Strings travel as STRING_EXT (16-bit length), and ergo's decoder
	// fails on the two longest lengths, 65534 and 65535: it computes
	// length+2 in 16 bits.
	MaxStringBytes = 65533
)

// Error is the error type of Encode and Decode. It matches its Kind (and
// its Err, when set) with errors.Is. An *Error is not changed after it has
// been returned, so it may be read from any goroutine.
type Error struct {
	// Kind is ErrMalformed, ErrUnsupportedType, ErrLength or ErrTooLarge.
	Kind error
	// Path locates the offending value: "" for the value itself, else a
	// path such as "[1].x.stack[0]" (tuple element 1, map key x, the
	// first container of a batch's stack).
	Path string
	// Msg says what was wrong.
	Msg string
	// Err is the underlying error, if any (for example a batch error).
	Err error
}

func (e *Error) Error() string {
	var sb strings.Builder
	sb.WriteString(e.Kind.Error())
	if e.Path != "" {
		sb.WriteString(" at ")
		sb.WriteString(e.Path)
	}
	sb.WriteString(": ")
	sb.WriteString(e.Msg)
	if e.Err != nil {
		sb.WriteString(": ")
		sb.WriteString(e.Err.Error())
	}
	return sb.String()
}

// Unwrap returns Kind and Err, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func errorf(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// atIndex and atKey prefix err's path with a tuple index or map key as the
// error travels up. Paths are built only on failure, so the success path
// pays nothing for them.
func atIndex(err error, i int) error {
	if e, ok := err.(*Error); ok {
		e.Path = "[" + strconv.Itoa(i) + "]" + e.Path
	}
	return err
}

func atKey(err error, key string) error {
	if e, ok := err.(*Error); ok {
		if isPlainKey(key) {
			e.Path = "." + key + e.Path
		} else {
			e.Path = "[" + strconv.Quote(key) + "]" + e.Path
		}
	}
	return err
}

// isPlainKey reports whether key reads unambiguously after a dot.
func isPlainKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

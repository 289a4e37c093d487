package wire

import (
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/ergo-services/ergo/etf"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// Options chooses how Encode and Decode treat memory. The zero value is
// what the package-level functions use: Encode copies tensor data once
// into the term, Decode takes the term's binaries as tensor memory.
//
// An Options value is immutable and safe for concurrent use.
type Options struct {
	// Share makes Encode (not Marshal) put a tensor's own memory in the
	// term instead of a copy, for plain row-major tensors (others are copied anyway). The
	// term then aliases the tensor: do not write to the tensor for as
	// long as the term may be read. ergo encodes a remote message later,
	// in a connection goroutine, after Send has returned, and says
	// nothing when it has: in practice share only tensors nobody writes
	// again, such as a computation's outputs. Batches are always encoded
	// without an extra copy (their rows are materialised into new
	// memory), whatever Share says.
	Share bool

	// Copy makes Decode copy tensor data out of the term, leaving the
	// term untouched and reusable. Without it Decode uses the term's
	// binaries as the tensors' memory (see Decode), and Unmarshal the
	// bytes it is given (see Options.Unmarshal).
	Copy bool
}

// Encode returns the ETF term that carries v (see the package doc for the
// shapes). v may be a *tensor.Dense, a batch.Tuple, a batch.Map (or a
// map[string]any, encoded the same way), a *batch.Batch, a numeric slice
// ([]float32, []float64, []int64, []int32: a 1-D tensor), nested up to
// MaxDepth deep, or a plain value: nil, bool, etf.Atom, any Go integer,
// float32, float64, string, []byte. Anything else is an error matching
// ErrUnsupportedType that says what it was and where; values past a limit
// match ErrTooLarge. Encode checks everything ergo's encoder would refuse
// later, because ergo encodes remote messages after Send has returned and
// only logs (and drops the message) when that fails.
//
// Tensor data is copied once into the term, so the term never aliases v
// (see Options.Share to avoid the copy). Treat the term as read-only: it
// shares immutable parts (type tuples, names lists) with other terms.
func Encode(v any) (etf.Term, error) { return Options{}.Encode(v) }

// EncodeTensor returns the %Nx.Tensor{} term of d, as Encode does.
func EncodeTensor(d *tensor.Dense) (etf.Term, error) { return Options{}.EncodeTensor(d) }

// Decode returns the Go value that term carries: the inverse of Encode,
// and the reader of the same shapes from Erlang or Elixir. Tensors decode
// to *tensor.Dense, tuples to batch.Tuple, maps with atom keys to
// batch.Map, %Nx.Batch{} to *batch.Batch, the atom nil to nil, true and
// false to bool, other atoms to etf.Atom, integers to int64 (uint64 above
// math.MaxInt64), floats to float64, strings (charlists) to string, the
// empty list to "" (in Erlang they are the same term), binaries to []byte.
//
// Decode validates everything and never panics: a malformed term gives an
// *Error matching ErrMalformed, ErrUnsupportedType, ErrLength or
// ErrTooLarge, with the path of the offending part.
//
// Decode consumes term: decoded tensors (and []byte values) use the
// term's binaries as their memory when those are aligned for the element
// type, which saves a copy of every tensor. ergo's decoder allocates a
// new slice for every binary of every message it receives, so a term
// received from another node belongs to nobody else. A term that ergo
// delivered locally is the sender's own Go value, though: if the sender
// may use it again (send it once more on a retry, say), decode it with
// Options{Copy: true}, as any term that is decoded twice or kept. Within
// one call no two returned values share memory, even when term holds the
// same binary twice.
func Decode(term etf.Term) (any, error) { return Options{}.Decode(term) }

// DecodeTensor decodes a term that must be an %Nx.Tensor{}, as Decode
// does.
func DecodeTensor(term etf.Term) (*tensor.Dense, error) { return Options{}.DecodeTensor(term) }

// Encode is the package-level Encode with o's memory options.
func (o Options) Encode(v any) (etf.Term, error) { return o.encode(v, 0) }

// EncodeTensor is the package-level EncodeTensor with o's memory options.
func (o Options) EncodeTensor(d *tensor.Dense) (etf.Term, error) {
	return encodeTensor(d, o.Share)
}

// Decode is the package-level Decode with o's memory options.
func (o Options) Decode(term etf.Term) (any, error) {
	dec := decoder{Options: o}
	return dec.decode(term, 0)
}

// DecodeTensor is the package-level DecodeTensor with o's memory options.
func (o Options) DecodeTensor(term etf.Term) (*tensor.Dense, error) {
	m, ok := term.(etf.Map)
	if !ok || m[keyStruct] != atomNxTensor {
		return nil, errorf(ErrMalformed, "%s is not an %%Nx.Tensor{}", showTerm(term))
	}
	dec := decoder{Options: o}
	return dec.decodeTensor(m)
}

// encode encodes v, which sits inside depth containers.
func (o Options) encode(v any, depth int) (etf.Term, error) {
	switch x := v.(type) {
	case *tensor.Dense:
		return encodeTensor(x, o.Share)
	case batch.Tuple:
		if depth >= MaxDepth {
			return nil, tooDeep()
		}
		out := make(etf.Tuple, len(x))
		for i, e := range x {
			t, err := o.encode(e, depth+1)
			if err != nil {
				return nil, atIndex(err, i)
			}
			out[i] = t
		}
		return out, nil
	case batch.Map:
		return o.encodeMap(x, depth)
	case map[string]any:
		return o.encodeMap(x, depth)
	case *batch.Batch:
		return o.encodeBatch(x, depth)
	case []float32, []float64, []int64, []int32:
		return encodeTensor(sliceTensor(v), o.Share)
	}
	return o.encodePlain(v)
}

// sliceTensor is the 1-D tensor over a numeric slice ([]float32,
// []float64, []int64, []int32), which the codecs encode as such: a Go
// slice is a row (serving's typed servings take them as rows), and Nx has
// no other shape for it. It shares the slice's memory.
func sliceTensor(v any) *tensor.Dense {
	var n int
	switch x := v.(type) {
	case []float32:
		n = len(x)
	case []float64:
		n = len(x)
	case []int64:
		n = len(x)
	case []int32:
		n = len(x)
	}
	return tensor.New(tensor.WithShape(n), tensor.WithBacking(v))
}

func tooDeep() *Error {
	return errorf(ErrTooLarge, "containers nested more than %d deep (MaxDepth)", MaxDepth)
}

func (o Options) encodeMap(m map[string]any, depth int) (etf.Term, error) {
	if depth >= MaxDepth {
		return nil, tooDeep()
	}
	out := make(etf.Map, len(m))
	for k, e := range m {
		if err := checkAtom(k); err != nil {
			err.Msg = "map key: " + err.Msg
			return nil, atKey(err, k)
		}
		if k == "__struct__" {
			// Decode would read the map as a struct.
			return nil, errorf(ErrUnsupportedType, "map key __struct__ is reserved for Elixir structs")
		}
		t, err := o.encode(e, depth+1)
		if err != nil {
			return nil, atKey(err, k)
		}
		out[etf.Atom(k)] = t
	}
	return out, nil
}

// encodePlain encodes the values ETF carries as they are.
func (o Options) encodePlain(v any) (etf.Term, error) {
	switch x := v.(type) {
	case nil:
		// Not Go nil: ergo writes that as [], which decodes as an empty
		// list (and, at the top level, not at all).
		return atomNil, nil
	case bool:
		return x, nil
	case etf.Atom:
		if err := checkAtom(string(x)); err != nil {
			return nil, err
		}
		return x, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint:
		return canonicalUint(uint64(x)), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		return canonicalUint(x), nil
	case float32:
		return checkFloat(float64(x))
	case float64:
		return checkFloat(x)
	case string:
		if len(x) > MaxStringBytes {
			return nil, errorf(ErrTooLarge, "string of %d bytes, limit %d (MaxStringBytes); send long text as []byte", len(x), MaxStringBytes)
		}
		return x, nil
	case []byte:
		if int64(len(x)) > MaxTensorBytes {
			return nil, errorf(ErrTooLarge, "binary of %d bytes, limit %d (MaxTensorBytes)", len(x), int64(MaxTensorBytes))
		}
		if o.Share {
			return x, nil
		}
		return append(make([]byte, 0, len(x)), x...), nil
	}
	return nil, errorf(ErrUnsupportedType, "cannot encode %s: want a *tensor.Dense, batch.Tuple, batch.Map, *batch.Batch, "+
		"nil, bool, etf.Atom, integer, float, string or []byte", goTypeName(v))
}

func canonicalUint(x uint64) etf.Term {
	if x > math.MaxInt64 {
		return x
	}
	return int64(x)
}

// checkFloat refuses NaN and infinities: Erlang has no such floats and
// its binary_to_term rejects the whole message that holds one.
func checkFloat(f float64) (etf.Term, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errorf(ErrUnsupportedType, "float %v: Erlang floats are finite (tensor data may hold any float)", f)
	}
	return f, nil
}

// decoder is the state of one Decode call.
type decoder struct {
	Options

	// taken holds the memory of every binary this call has handed out
	// without a copy (first, then rest), so that a binary reached twice
	// is copied the second time: a term built in memory may hold the same
	// sub-term twice, and no two values one Decode returns may share
	// memory. Terms from ergo's decoder never do; for them this costs a
	// comparison per tensor.
	first span
	rest  []span
}

// span is the memory of a binary, [lo, hi).
type span struct{ lo, hi uintptr }

// take reports whether b may be handed out without a copy, and records it
// if so.
func (dec *decoder) take(b []byte) bool {
	if dec.Copy || len(b) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	s := span{lo, lo + uintptr(len(b))}
	if dec.first.hi == 0 {
		dec.first = s
		return true
	}
	if s.overlaps(dec.first) {
		return false
	}
	for _, o := range dec.rest {
		if s.overlaps(o) {
			return false
		}
	}
	dec.rest = append(dec.rest, s)
	return true
}

func (s span) overlaps(o span) bool { return s.lo < o.hi && o.lo < s.hi }

// decode decodes t, which sits inside depth containers.
func (dec *decoder) decode(t etf.Term, depth int) (any, error) {
	switch x := t.(type) {
	case etf.Map:
		s, isStruct := x[keyStruct]
		if !isStruct {
			return dec.decodeMap(x, depth)
		}
		switch s {
		case atomNxTensor:
			return dec.decodeTensor(x)
		case atomNxBatch:
			return dec.decodeBatch(x, depth)
		}
		if name, ok := atomText(s); ok {
			return nil, errorf(ErrUnsupportedType, "struct %%%s{}: only %%Nx.Tensor{} and %%Nx.Batch{} structs can be decoded", trimElixir(name))
		}
		return nil, errorf(ErrMalformed, "map with a __struct__ key of %s, want an atom", showTerm(s))
	case etf.Tuple:
		if depth >= MaxDepth {
			return nil, tooDeep()
		}
		out := make(batch.Tuple, len(x))
		for i, e := range x {
			v, err := dec.decode(e, depth+1)
			if err != nil {
				return nil, atIndex(err, i)
			}
			out[i] = v
		}
		return out, nil
	case etf.Atom:
		if err := checkAtom(string(x)); err != nil {
			return nil, err
		}
		switch x {
		case "nil":
			return nil, nil
		case "true":
			// ergo makes bools of true and false only in their short
			// form; the long form (ATOM_UTF8_EXT) arrives as an atom.
			return true, nil
		case "false":
			return false, nil
		}
		return x, nil
	case bool:
		return x, nil
	case float64:
		return checkFloat(x)
	case float32:
		return checkFloat(float64(x))
	case string:
		if len(x) > MaxStringBytes {
			return nil, errorf(ErrTooLarge, "string of %d bytes, limit %d (MaxStringBytes)", len(x), MaxStringBytes)
		}
		return x, nil
	case []byte:
		if int64(len(x)) > MaxTensorBytes {
			return nil, errorf(ErrTooLarge, "binary of %d bytes, limit %d (MaxTensorBytes)", len(x), int64(MaxTensorBytes))
		}
		if !dec.take(x) {
			return append(make([]byte, 0, len(x)), x...), nil
		}
		return x, nil
	case etf.List:
		if len(x) == 0 {
			return "", nil
		}
		return nil, errorf(ErrUnsupportedType, "list of %d elements: containers are tuples and maps", len(x))
	}
	if n, res := termInt(t); res == intOK {
		return n, nil
	} else if res == intTooLarge {
		if u, ok := bigUint(t); ok {
			return u, nil
		}
		return nil, errorf(ErrUnsupportedType, "integer %s does not fit in 64 bits", showTerm(t))
	}
	return nil, errorf(ErrUnsupportedType, "cannot decode %s", showTerm(t))
}

func (dec *decoder) decodeMap(m etf.Map, depth int) (any, error) {
	if depth >= MaxDepth {
		return nil, tooDeep()
	}
	out := make(batch.Map, len(m))
	for k, e := range m {
		key, ok := atomText(k)
		if !ok {
			return nil, errorf(ErrMalformed, "map key %s, want an atom", showTerm(k))
		}
		if err := checkAtom(key); err != nil {
			err.Msg = "map key: " + err.Msg
			return nil, err
		}
		if _, dup := out[key]; dup {
			// The atom and its long form, or a bool and the atom.
			return nil, atKey(errorf(ErrMalformed, "map key %q appears twice", key), key)
		}
		v, err := dec.decode(e, depth+1)
		if err != nil {
			return nil, atKey(err, key)
		}
		out[key] = v
	}
	return out, nil
}

// unknownKey reports the first key of m (a struct) that is not allowed.
func unknownKey(m etf.Map, what string, allowed ...etf.Term) *Error {
	for k := range m {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			return errorf(ErrMalformed, "%s has an unknown key %s", what, showTerm(k))
		}
	}
	return errorf(ErrMalformed, "%s has unexpected keys", what)
}

// showTerm describes a term in an error message without dumping data.
func showTerm(t etf.Term) string {
	switch x := t.(type) {
	case etf.Atom:
		return "atom " + strconv.Quote(string(x))
	case bool:
		return "atom " + strconv.FormatBool(x)
	case string:
		return "string of " + strconv.Itoa(len(x)) + " bytes"
	case []byte:
		return "binary of " + strconv.Itoa(len(x)) + " bytes"
	case etf.Tuple:
		return "tuple of " + strconv.Itoa(len(x)) + " elements"
	case etf.List:
		return "list of " + strconv.Itoa(len(x)) + " elements"
	case etf.Map:
		return "map of " + strconv.Itoa(len(x)) + " entries"
	case float64:
		return "float " + strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return "Go nil"
	}
	if n, res := termInt(t); res == intOK {
		return "integer " + strconv.FormatInt(n, 10)
	}
	if s, ok := bigString(t); ok {
		return "integer " + s
	}
	return typeName(t)
}

func trimElixir(module string) string { return strings.TrimPrefix(module, "Elixir.") }

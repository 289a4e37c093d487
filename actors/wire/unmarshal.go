package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/ergo-services/ergo/etf"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// parser reads an external term format binary straight into the values
// that Decode returns for the term it holds, with Decode's checks and
// errors, without building the term. It checks every length against the
// bytes left and returns errCut where one fails.
type parser struct {
	b    []byte // the whole binary, version byte included
	copy bool   // Options.Copy: tensors never use b's memory
}

// errCut reports bytes that end inside a term or hold an unknown tag.
// It is never returned to callers (Unmarshal turns it into an *Error)
// and passes atIndex and atKey unchanged.
var errCut = errors.New("wire: internal: external term format cut short")

// atomForm tells how an atom is written.
type atomForm uint8

const (
	notAtom   atomForm = iota
	longAtom           // ATOM_EXT, ATOM_UTF8_EXT: read as an etf.Atom by ergo
	shortAtom          // SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT: true and false read as bools
)

// The keys of the structs, numbered for fields.at.
const (
	fieldStruct = iota // __struct__
	fieldData
	fieldType
	fieldShape
	fieldNames
	fieldVectorized
	fieldState
	fieldSize
	fieldPad
	fieldKey
	fieldStack
	numFields
)

// The keys each struct has, as bits of field numbers.
const (
	tensorFields  = 1<<fieldStruct | 1<<fieldData | 1<<fieldType | 1<<fieldShape | 1<<fieldNames | 1<<fieldVectorized
	backendFields = 1<<fieldStruct | 1<<fieldState
	batchFields   = 1<<fieldStruct | 1<<fieldSize | 1<<fieldPad | 1<<fieldKey | 1<<fieldStack
)

// fieldOf returns the number of a struct key, or -1.
func fieldOf(text []byte) int {
	switch string(text) {
	case "__struct__":
		return fieldStruct
	case "data":
		return fieldData
	case "type":
		return fieldType
	case "shape":
		return fieldShape
	case "names":
		return fieldNames
	case "vectorized_axes":
		return fieldVectorized
	case "state":
		return fieldState
	case "size":
		return fieldSize
	case "pad":
		return fieldPad
	case "key":
		return fieldKey
	case "stack":
		return fieldStack
	}
	return -1
}

// maxPrealloc is the most elements Unmarshal allocates for a container
// before it has read them; larger containers grow as their elements
// come. A length claims elements that need not follow: with containers
// nested MaxDepth deep, such claims cost at most MaxDepth small
// allocations (a few hundred KiB in all) before the bytes run out.
const maxPrealloc = 64

func be16(b []byte) int { return int(binary.BigEndian.Uint16(b)) }

// be32 reads a 4-byte length; on 32-bit hosts one past MaxInt is negative,
// which every caller's bounds check refuses.
func be32(b []byte) int { return int(binary.BigEndian.Uint32(b)) }

// value decodes the term at p, which sits inside depth containers, and
// returns its end.
//
// A goroutine starts with a small stack that Go grows by copying it,
// frame by frame, which costs far more than decoding a small term: the
// servers decode every request on a new goroutine. So the readers on the
// way down to a batch's tensors (value, batchAt, stackAt, tensorAt and
// the readers of a tensor's entries) keep their frames small: error
// messages are written out of line, and the struct readers' second
// halves run after their recursion.
func (r *parser) value(p, depth int) (any, int, error) {
	if p >= len(r.b) {
		return nil, 0, errCut
	}
	switch r.b[p] {
	case tagMap:
		switch r.structNamed(p) {
		case "Elixir.Nx.Tensor":
			d, end, err := r.tensorAt(p)
			if err != nil {
				return nil, 0, err
			}
			return d, end, nil
		case "Elixir.Nx.Batch":
			bt, end, err := r.batchAt(p, depth)
			if err != nil {
				return nil, 0, err
			}
			return bt, end, nil
		}
		return r.mapValue(p, depth)
	case tagSmallTuple, tagLargeTuple:
		return r.tuple(p, depth)
	}
	return r.leaf(p)
}

// structNamed returns the name of the struct at p, a map, if its first
// key is __struct__ (as Elixir and Marshal write them) and names an atom,
// else "". The name is one of the two that value reads, or "".
func (r *parser) structNamed(p int) string {
	n, q, err := r.mapHead(p)
	if err != nil || n == 0 {
		return ""
	}
	text, form, end, err := r.atomAt(q)
	if err != nil || form == notAtom || string(text) != "__struct__" {
		return ""
	}
	text, form, _, err = r.atomAt(end)
	if err != nil || form == notAtom {
		return ""
	}
	switch string(text) {
	case "Elixir.Nx.Tensor":
		return "Elixir.Nx.Tensor"
	case "Elixir.Nx.Batch":
		return "Elixir.Nx.Batch"
	}
	return ""
}

// leaf decodes the term at p, which is no tuple or map.
func (r *parser) leaf(p int) (any, int, error) {
	b := r.b
	switch b[p] {
	case tagSmallInteger, tagInteger, tagSmallBig, tagLargeBig:
		v, end, err := r.intAt(p)
		if err != nil {
			return nil, 0, err
		}
		switch {
		case v.res == intOK:
			return v.n, end, nil
		case v.unsigned:
			return v.u, end, nil
		}
		return nil, 0, errorf(ErrUnsupportedType, "integer %s does not fit in 64 bits", v.describe())
	case tagNewFloat:
		if p+9 > len(b) {
			return nil, 0, errCut
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(b[p+1:]))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			_, err := checkFloat(f)
			return nil, 0, err
		}
		return f, p + 9, nil
	case tagAtom, tagAtomUTF8, tagSmallAtom, tagSmallAtomUTF8:
		text, form, end, err := r.atomAt(p)
		if err != nil {
			return nil, 0, err
		}
		v, err := atomValue(text, form)
		return v, end, err
	case tagString:
		if p+3 > len(b) {
			return nil, 0, errCut
		}
		n := be16(b[p+1:])
		end := p + 3 + n
		if end > len(b) {
			return nil, 0, errCut
		}
		if n > MaxStringBytes {
			return nil, 0, errorf(ErrTooLarge, "string of %d bytes, limit %d (MaxStringBytes)", n, MaxStringBytes)
		}
		return string(b[p+3 : end]), end, nil
	case tagBinary:
		if p+5 > len(b) {
			return nil, 0, errCut
		}
		n := be32(b[p+1:])
		if n < 0 || n > len(b)-p-5 {
			return nil, 0, errCut
		}
		if int64(n) > MaxTensorBytes {
			return nil, 0, errorf(ErrTooLarge, "binary of %d bytes, limit %d (MaxTensorBytes)", n, int64(MaxTensorBytes))
		}
		return append(make([]byte, 0, n), b[p+5:p+5+n]...), p + 5 + n, nil
	case tagNil:
		return "", p + 1, nil // in Erlang, the empty list is the empty string
	case tagList:
		l, err := r.listAt(p)
		if err != nil {
			return nil, 0, err
		}
		return nil, 0, errorf(ErrUnsupportedType, "list of %d elements: containers are tuples and maps", l.ergoLen())
	}
	return nil, 0, errCut
}

// atomValue is what Decode makes of an atom.
func atomValue(text []byte, form atomForm) (any, error) {
	if form == shortAtom {
		// ergo reads these as bools, which Decode returns unchecked.
		switch string(text) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	if err := checkAtomBytes(text); err != nil {
		return nil, err
	}
	switch string(text) {
	case "nil":
		return nil, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return etf.Atom(text), nil
}

// checkAtomBytes is checkAtom for an atom's bytes.
func checkAtomBytes(text []byte) *Error {
	if len(text) > MaxAtomBytes {
		return errorf(ErrTooLarge, "atom of %d bytes, limit %d (MaxAtomBytes)", len(text), MaxAtomBytes)
	}
	if !utf8.Valid(text) {
		return errorf(ErrUnsupportedType, "atom %q is not valid UTF-8", string(text))
	}
	return nil
}

// atomAt returns the text of the atom at p, how it is written and its
// end; form is notAtom if the term at p is no atom. An atom of more than
// 255 characters is malformed (Erlang has none; ergo's decoder refuses
// them).
func (r *parser) atomAt(p int) (text []byte, form atomForm, end int, err error) {
	// SMALL_ATOM_UTF8_EXT, what Erlang and Marshal write, inline.
	if b := r.b; p+2 <= len(b) && b[p] == tagSmallAtomUTF8 {
		if end = p + 2 + int(b[p+1]); end <= len(b) {
			return b[p+2 : end], shortAtom, end, nil
		}
	}
	return r.atomAtSlow(p)
}

func (r *parser) atomAtSlow(p int) (text []byte, form atomForm, end int, err error) {
	b := r.b
	if p >= len(b) {
		return nil, notAtom, 0, errCut
	}
	switch b[p] {
	case tagSmallAtomUTF8, tagSmallAtom:
		if p+2 > len(b) {
			return nil, notAtom, 0, errCut
		}
		end = p + 2 + int(b[p+1])
		if end > len(b) {
			return nil, notAtom, 0, errCut
		}
		return b[p+2 : end], shortAtom, end, nil
	case tagAtomUTF8, tagAtom:
		if p+3 > len(b) {
			return nil, notAtom, 0, errCut
		}
		end = p + 3 + be16(b[p+1:])
		if end > len(b) {
			return nil, notAtom, 0, errCut
		}
		text = b[p+3 : end]
		if len(text) > 255 {
			if n := utf8.RuneCount(text); n > 255 {
				return nil, notAtom, 0, errorf(ErrMalformed, "atom of %d characters: Erlang atoms have at most 255", n)
			}
		}
		return text, longAtom, end, nil
	}
	return nil, notAtom, p, nil
}

// isBool reports whether an atom is one that ergo reads as a bool.
func isBool(text []byte, form atomForm) bool {
	return form == shortAtom && (string(text) == "true" || string(text) == "false")
}

// intValue is an integer term.
type intValue struct {
	n        int64
	res      intResult
	unsigned bool   // res is intTooLarge and the value is u, in 64 bits unsigned
	u        uint64 //
	sign     byte   // bignums: sign byte (1 is negative, as ergo reads it)
	digits   []byte // bignums: little-endian digits
}

// intAt reads the integer at p; res is intNotInt (and end p) if the term
// at p is no integer.
func (r *parser) intAt(p int) (v intValue, end int, err error) {
	b := r.b
	if p >= len(b) {
		return v, 0, errCut
	}
	switch b[p] {
	case tagSmallInteger:
		if p+2 > len(b) {
			return v, 0, errCut
		}
		v.n = int64(b[p+1])
		return v, p + 2, nil
	case tagInteger:
		if p+5 > len(b) {
			return v, 0, errCut
		}
		v.n = int64(int32(binary.BigEndian.Uint32(b[p+1:])))
		return v, p + 5, nil
	case tagSmallBig:
		if p+3 > len(b) {
			return v, 0, errCut
		}
		end = p + 3 + int(b[p+1])
		if end > len(b) {
			return v, 0, errCut
		}
		return bigValue(b[p+2], b[p+3:end]), end, nil
	case tagLargeBig:
		if p+6 > len(b) {
			return v, 0, errCut
		}
		n := be32(b[p+1:])
		if n < 0 || n > len(b)-p-6 {
			return v, 0, errCut
		}
		end = p + 6 + n
		return bigValue(b[p+5], b[p+6:end]), end, nil
	}
	v.res = intNotInt
	return v, p, nil
}

// bigValue reads a bignum: its sign byte and little-endian digits.
func bigValue(sign byte, digits []byte) intValue {
	v := intValue{sign: sign, digits: digits}
	k := len(digits)
	for k > 0 && digits[k-1] == 0 {
		k--
	}
	if k > 8 {
		v.res = intTooLarge
		return v
	}
	var m uint64
	for i := k - 1; i >= 0; i-- {
		m = m<<8 | uint64(digits[i])
	}
	if sign == 1 {
		if m > 1<<63 {
			v.res = intTooLarge
			return v
		}
		v.n = int64(-m) // 1<<63 gives MinInt64
		return v
	}
	if m > math.MaxInt64 {
		v.res, v.unsigned, v.u = intTooLarge, true, m
		return v
	}
	v.n = int64(m)
	return v
}

// describe writes the integer as showTerm does.
func (v intValue) describe() string {
	switch {
	case v.res == intOK:
		return "integer " + strconv.FormatInt(v.n, 10)
	case v.unsigned:
		return "integer " + strconv.FormatUint(v.u, 10)
	}
	be := slices.Clone(v.digits)
	slices.Reverse(be)
	x := new(big.Int).SetBytes(be)
	if v.sign == 1 {
		x.Neg(x)
	}
	return "integer " + x.String()
}

// list is a LIST_EXT term or []: n elements from first, a tail at tail.
type list struct {
	n           int
	first, tail int
	proper      bool // the tail is []
	end         int
}

// ergoLen is the length ergo's decoder gives the list: an improper
// list's tail counts as an element.
func (l list) ergoLen() int {
	if l.proper {
		return l.n
	}
	return l.n + 1
}

// listAt reads the list at p (LIST_EXT or NIL_EXT), skipping its
// elements.
func (r *parser) listAt(p int) (list, error) {
	b := r.b
	if p < len(b) && b[p] == tagNil {
		return list{first: p + 1, tail: p, proper: true, end: p + 1}, nil
	}
	if p+5 > len(b) || b[p] != tagList {
		return list{}, errCut
	}
	l := list{n: be32(b[p+1:]), first: p + 5}
	if l.n < 0 || l.n > len(b)-l.first {
		return list{}, errCut
	}
	q := l.first
	for range l.n {
		var ok bool
		if q, ok = skipAt(b, q, 0); !ok {
			return list{}, errCut
		}
	}
	end, ok := skipAt(b, q, 0)
	if !ok {
		return list{}, errCut
	}
	l.tail, l.proper, l.end = q, b[q] == tagNil, end
	return l, nil
}

// describe writes the term at p as showTerm writes the term ergo makes
// of it, for error messages.
func (r *parser) describe(p int) string {
	b := r.b
	if p >= len(b) {
		return "nothing"
	}
	switch b[p] {
	case tagAtom, tagAtomUTF8, tagSmallAtom, tagSmallAtomUTF8:
		text, form, _, err := r.atomAt(p)
		if err != nil {
			break
		}
		if isBool(text, form) {
			return "atom " + string(text)
		}
		return "atom " + strconv.Quote(string(text))
	case tagSmallInteger, tagInteger, tagSmallBig, tagLargeBig:
		v, _, err := r.intAt(p)
		if err != nil {
			break
		}
		return v.describe()
	case tagNewFloat:
		if p+9 > len(b) {
			break
		}
		return "float " + strconv.FormatFloat(math.Float64frombits(binary.BigEndian.Uint64(b[p+1:])), 'g', -1, 64)
	case tagString:
		if p+3 > len(b) {
			break
		}
		return "string of " + strconv.Itoa(be16(b[p+1:])) + " bytes"
	case tagBinary:
		if p+5 > len(b) {
			break
		}
		return "binary of " + strconv.Itoa(be32(b[p+1:])) + " bytes"
	case tagSmallTuple, tagLargeTuple:
		n, _, err := r.tupleHead(p)
		if err != nil {
			break
		}
		return "tuple of " + strconv.Itoa(n) + " elements"
	case tagNil, tagList:
		l, err := r.listAt(p)
		if err != nil {
			break
		}
		return "list of " + strconv.Itoa(l.ergoLen()) + " elements"
	case tagMap:
		n, _, err := r.mapHead(p)
		if err != nil {
			break
		}
		return "map of " + strconv.Itoa(n) + " entries"
	}
	return "a malformed term"
}

// tupleHead returns the arity of the tuple at p and where its elements
// start; an arity the bytes cannot hold is errCut.
func (r *parser) tupleHead(p int) (n, first int, err error) {
	b := r.b
	switch {
	case p+2 <= len(b) && b[p] == tagSmallTuple:
		n, first = int(b[p+1]), p+2
	case p+5 <= len(b) && b[p] == tagLargeTuple:
		n, first = be32(b[p+1:]), p+5
	default:
		return 0, 0, errCut
	}
	if n < 0 || n > len(b)-first { // every element takes a byte at least
		return 0, 0, errCut
	}
	return n, first, nil
}

func isTuple(b []byte, p int) bool {
	return p < len(b) && (b[p] == tagSmallTuple || b[p] == tagLargeTuple)
}

// mapHead returns the number of entries of the map at p and where they
// start.
func (r *parser) mapHead(p int) (n, first int, err error) {
	b := r.b
	if p+5 > len(b) || b[p] != tagMap {
		return 0, 0, errCut
	}
	n, first = be32(b[p+1:]), p+5
	if n < 0 || n > (len(b)-first)/2 {
		return 0, 0, errCut
	}
	return n, first, nil
}

func (r *parser) tuple(p, depth int) (any, int, error) {
	n, q, err := r.tupleHead(p)
	if err != nil {
		return nil, 0, err
	}
	if depth >= MaxDepth {
		return nil, 0, tooDeep()
	}
	out := make(batch.Tuple, 0, min(n, maxPrealloc))
	for i := range n {
		v, end, err := r.value(q, depth+1)
		if err != nil {
			return nil, 0, atIndex(err, i)
		}
		out, q = append(out, v), end
	}
	return out, q, nil
}

// mapValue decodes the map at p: a struct if one of its keys is
// __struct__ (Elixir, and Marshal, write it first), else a batch.Map.
func (r *parser) mapValue(p, depth int) (any, int, error) {
	n, q, err := r.mapHead(p)
	if err != nil {
		return nil, 0, err
	}
	if n > 0 {
		text, form, end, err := r.atomAt(q)
		if err != nil {
			return nil, 0, err
		}
		if form != notAtom && string(text) == "__struct__" {
			return r.structOf(p, end, depth)
		}
	}
	if depth >= MaxDepth {
		return r.unlessStruct(p, q, n, depth, tooDeep())
	}
	out := make(batch.Map, min(n, maxPrealloc))
	for i := range n {
		text, form, next, err := r.atomAt(q)
		if err != nil {
			return nil, 0, err
		}
		if form == notAtom {
			return r.unlessStruct(p, q, n-i, depth, errorf(ErrMalformed, "map key %s, want an atom", r.describe(q)))
		}
		if string(text) == "__struct__" {
			return r.structOf(p, next, depth)
		}
		if err := checkAtomBytes(text); err != nil {
			err.Msg = "map key: " + err.Msg
			return r.unlessStruct(p, q, n-i, depth, err)
		}
		key := string(text)
		if _, dup := out[key]; dup {
			// The atom in two encodings, or twice in one (which ergo's
			// decoder would have let the last win).
			return r.unlessStruct(p, q, n-i, depth, atKey(errorf(ErrMalformed, "map key %q appears twice", key), key))
		}
		v, end, err := r.value(next, depth+1)
		if err == errCut {
			return nil, 0, err
		}
		if err != nil {
			return r.unlessStruct(p, q, n-i, depth, atKey(err, key))
		}
		out[key], q = v, end
	}
	return out, q, nil
}

// unlessStruct returns err, the error of the map at p, unless one of its
// left entries, from q on, has the key __struct__: then the map is a
// struct, which Decode checks as such.
func (r *parser) unlessStruct(p, q, left, depth int, err error) (any, int, error) {
	for range left {
		text, form, _, aerr := r.atomAt(q)
		if aerr != nil {
			return nil, 0, aerr
		}
		end, ok := skipAt(r.b, q, 0)
		if !ok {
			return nil, 0, errCut
		}
		if form != notAtom && string(text) == "__struct__" {
			return r.structOf(p, end, depth)
		}
		if q, ok = skipAt(r.b, end, 0); !ok {
			return nil, 0, errCut
		}
	}
	return nil, 0, err
}

// structOf decodes the struct at p whose __struct__ value is at s.
func (r *parser) structOf(p, s, depth int) (any, int, error) {
	text, form, _, err := r.atomAt(s)
	if err != nil {
		return nil, 0, err
	}
	if form == notAtom {
		return nil, 0, errorf(ErrMalformed, "map with a __struct__ key of %s, want an atom", r.describe(s))
	}
	switch string(text) {
	case "Elixir.Nx.Tensor":
		d, end, err := r.tensorAt(p)
		if err != nil {
			return nil, 0, err
		}
		return d, end, nil
	case "Elixir.Nx.Batch":
		bt, end, err := r.batchAt(p, depth)
		if err != nil {
			return nil, 0, err
		}
		return bt, end, nil
	}
	return nil, 0, errorf(ErrUnsupportedType, "struct %%%s{}: only %%Nx.Tensor{} and %%Nx.Batch{} structs can be decoded", trimElixir(string(text)))
}

// fields records where the values of a struct's keys are.
type fields struct {
	at      [numFields]int // where the value of each key is; 0 if absent (0 is the version byte)
	unknown int            // the first key that is not the struct's, or 0
	dup     int            // the first key met a second time, or 0
}

// key reads the key at q of a struct whose keys are the bits of allowed,
// and returns its field number and where its value starts. The number is
// -1 for a key not allowed, or one seen before: its value is to be
// skipped.
func (r *parser) key(f *fields, q int, allowed uint) (field, value int, err error) {
	text, form, value, err := r.atomAt(q)
	if err != nil {
		return 0, 0, err
	}
	if form == notAtom {
		if value, err = r.skipValue(q); err != nil {
			return 0, 0, err
		}
		if f.unknown == 0 {
			f.unknown = q
		}
		return -1, value, nil
	}
	field = fieldOf(text)
	switch {
	case field < 0 || allowed&(1<<field) == 0:
		if f.unknown == 0 {
			f.unknown = q
		}
		return -1, value, nil
	case f.at[field] != 0:
		if f.dup == 0 {
			f.dup = q
		}
		return -1, value, nil
	}
	f.at[field] = value
	return field, value, nil
}

// next returns where a struct's entries go on after the value at v, for
// which a reader returned end and err: errCut stops the reading, another
// error is kept for later (Decode checks the keys in its own order), and
// the value is skipped.
func (r *parser) next(v, end int, err error) (int, error) {
	if err == nil {
		return end, nil
	}
	if err == errCut {
		return 0, errCut
	}
	end, ok := skipAt(r.b, v, 0)
	if !ok {
		return 0, errCut
	}
	return end, nil
}

// skipValue is next for a value that is only skipped.
func (r *parser) skipValue(v int) (int, error) {
	end, ok := skipAt(r.b, v, 0)
	if !ok {
		return 0, errCut
	}
	return end, nil
}

// scanFields reads the keys of the map at p, a struct whose keys are the
// bits of allowed, and returns where the map ends.
func (r *parser) scanFields(p int, allowed uint) (fields, int, error) {
	var f fields
	n, q, err := r.mapHead(p)
	if err != nil {
		return f, 0, err
	}
	for range n {
		_, v, err := r.key(&f, q, allowed)
		if err != nil {
			return f, 0, err
		}
		if q, err = r.skipValue(v); err != nil {
			return f, 0, err
		}
	}
	return f, q, nil
}

// extraKey is the error of a struct with a key it does not have or a key
// twice.
func (r *parser) extraKey(what string, f *fields) *Error {
	if f.unknown != 0 {
		return errorf(ErrMalformed, "%s has an unknown key %s", what, r.describe(f.unknown))
	}
	return errorf(ErrMalformed, "%s has the key %s twice", what, r.describe(f.dup))
}

// tensorRead is what tensorAt has read of a tensor's entries.
type tensorRead struct {
	f        fields
	dt       tensor.Dtype
	elems    int
	names    nameList
	state    []byte
	shapeErr error // and the others, to report in decodeTensor's order
	typeErr  error //
	dataErr  error //
}

// tensorAt decodes the %Nx.Tensor{} at p as decodeTensor does. It reads
// every entry where it stands, in one pass, then checks what it read in
// decodeTensor's order (see tensorProblem).
func (r *parser) tensorAt(p int) (*tensor.Dense, int, error) {
	n, q, err := r.mapHead(p)
	if err != nil {
		return nil, 0, err
	}
	var (
		t     tensorRead
		small [4]int // the dimensions up to rank 4, apart from t (which escapes)
		dims  []int
	)
	for range n {
		idx, v, err := r.key(&t.f, q, tensorFields)
		if err != nil {
			return nil, 0, err
		}
		var end int
		switch idx {
		case fieldData:
			t.state, end, t.dataErr = r.backendAt(v)
			q, err = r.next(v, end, t.dataErr)
		case fieldType:
			t.dt, end, t.typeErr = r.dtypeAt(v)
			q, err = r.next(v, end, t.typeErr)
		case fieldShape:
			dims, t.elems, end, t.shapeErr = r.shapeAt(v, &small)
			q, err = r.next(v, end, t.shapeErr)
		case fieldNames:
			t.names, err = r.namesAt(v)
			q = t.names.end
		default: // __struct__, vectorized_axes, and keys to skip
			q, err = r.skipValue(v)
		}
		if err != nil {
			return nil, 0, err
		}
	}
	f := &t.f
	if f.at[fieldData] == 0 || f.at[fieldType] == 0 || f.at[fieldShape] == 0 || f.at[fieldNames] == 0 ||
		f.unknown != 0 || f.dup != 0 || t.typeErr != nil || t.shapeErr != nil || t.dataErr != nil ||
		!t.names.fits(len(dims)) || f.at[fieldVectorized] != 0 && r.b[f.at[fieldVectorized]] != tagNil ||
		len(t.state) != t.elems*int(t.dt.Size()) {
		return nil, 0, r.tensorProblem(&t, dims)
	}
	return newDense(t.dt, dims, r.backing(t.dt, t.state, t.elems)), q, nil
}

// tensorProblem returns the first error, in decodeTensor's order, of a
// tensor that tensorAt read.
//
//go:noinline
func (r *parser) tensorProblem(t *tensorRead, dims []int) error {
	f := &t.f
	switch {
	case f.at[fieldData] == 0:
		return errorf(ErrMalformed, "Nx.Tensor without a data key")
	case f.at[fieldType] == 0:
		return errorf(ErrMalformed, "Nx.Tensor without a type key")
	case f.at[fieldShape] == 0:
		return errorf(ErrMalformed, "Nx.Tensor without a shape key")
	case f.at[fieldNames] == 0:
		return errorf(ErrMalformed, "Nx.Tensor without a names key")
	case f.unknown != 0 || f.dup != 0:
		return r.extraKey("Nx.Tensor", f)
	case t.typeErr != nil:
		return t.typeErr
	case t.shapeErr != nil:
		return t.shapeErr
	}
	if err := r.checkNames(f.at[fieldNames], t.names, len(dims)); err != nil {
		return err
	}
	if vec := f.at[fieldVectorized]; vec != 0 && r.b[vec] != tagNil {
		return errorf(ErrUnsupportedType, "vectorized tensor (vectorized_axes %s): devectorize it before sending", r.describe(vec))
	}
	if t.dataErr != nil {
		return t.dataErr
	}
	return lengthError(t.dt, dims, t.elems, len(t.state))
}

// backing is decoder.backing for bytes: state itself when Copy is off
// and it is aligned for dt (and the host little-endian), else a copy.
func (r *parser) backing(dt tensor.Dtype, state []byte, elems int) []byte {
	if elems == 0 {
		return []byte{}
	}
	if !r.copy && hostLittleEndian && uintptr(unsafe.Pointer(unsafe.SliceData(state)))%uintptr(dt.Align()) == 0 {
		return state[:len(state):len(state)]
	}
	mem := alignedBytes(len(state))
	copy(mem, state)
	if !hostLittleEndian {
		swapBytes(mem, componentSize(dt))
	}
	return mem
}

// dtypeAt decodes a tensor's type, {Kind, Bits}, as decodeType does.
func (r *parser) dtypeAt(p int) (tensor.Dtype, int, error) {
	// As Erlang and Marshal write it: {'f', 32}, a small tuple of a
	// one-letter SMALL_ATOM_UTF8_EXT and a SMALL_INTEGER_EXT.
	if b := r.b; p+7 <= len(b) && b[p] == tagSmallTuple && b[p+1] == 2 && b[p+2] == tagSmallAtomUTF8 && b[p+3] == 1 && b[p+5] == tagSmallInteger {
		if dt, ok := dtypeFor(b[p+4:p+5], int64(b[p+6])); ok {
			return dt, p + 7, nil
		}
	}
	return r.dtypeAtSlow(p)
}

// dtypeAtSlow is dtypeAt for any encoding, and for errors.
//
//go:noinline
func (r *parser) dtypeAtSlow(p int) (tensor.Dtype, int, error) {
	if !isTuple(r.b, p) {
		return tensor.Dtype{}, 0, errorf(ErrMalformed, "Nx.Tensor type is %s, want a {kind, bits} tuple", r.describe(p))
	}
	n, q, err := r.tupleHead(p)
	if err != nil {
		return tensor.Dtype{}, 0, err
	}
	if n != 2 {
		return tensor.Dtype{}, 0, errorf(ErrMalformed, "Nx.Tensor type is %s, want a {kind, bits} tuple", r.describe(p))
	}
	kind, form, next, err := r.atomAt(q)
	if err != nil {
		return tensor.Dtype{}, 0, err
	}
	if form == notAtom {
		return tensor.Dtype{}, 0, errorf(ErrMalformed, "Nx.Tensor type kind is %s, want an atom (s, u, f, bf or c)", r.describe(q))
	}
	bits, end, err := r.intAt(next)
	if err != nil {
		return tensor.Dtype{}, 0, err
	}
	if bits.res != intOK {
		return tensor.Dtype{}, 0, errorf(ErrMalformed, "Nx.Tensor type bits is %s, want an integer", r.describe(next))
	}
	if dt, ok := dtypeFor(kind, bits.n); ok {
		return dt, end, nil
	}
	dt, derr := dtypeOf(string(kind), bits.n)
	if derr != nil {
		return tensor.Dtype{}, 0, derr
	}
	return dt, end, nil
}

// dtypeFor returns the gorgonia dtype of the Nx type {kind, bits}, as
// dtypeOf does, without making a string of kind; false if dtypeOf would
// return an error.
func dtypeFor(kind []byte, bits int64) (tensor.Dtype, bool) {
	if len(kind) != 1 {
		return tensor.Dtype{}, false
	}
	switch kind[0] {
	case 'f':
		switch bits {
		case 32:
			return tensor.Float32, true
		case 64:
			return tensor.Float64, true
		}
	case 's':
		switch bits {
		case 8:
			return tensor.Int8, true
		case 16:
			return tensor.Int16, true
		case 32:
			return tensor.Int32, true
		case 64:
			return tensor.Int64, true
		}
	case 'u':
		switch bits {
		case 8:
			return tensor.Uint8, true
		case 16:
			return tensor.Uint16, true
		case 32:
			return tensor.Uint32, true
		case 64:
			return tensor.Uint64, true
		}
	case 'c':
		switch bits {
		case 64:
			return tensor.Complex64, true
		case 128:
			return tensor.Complex128, true
		}
	}
	return tensor.Dtype{}, false
}

// shapeAt decodes a tensor's shape as decodeShape does and returns its
// dimensions (in small for a rank up to 4), number of elements and end.
func (r *parser) shapeAt(p int, small *[4]int) (dims []int, elems, end int, err error) {
	// As Erlang and Marshal write it: a small tuple of SMALL_INTEGER_EXT
	// and INTEGER_EXT.
	b := r.b
	if p+2 > len(b) || b[p] != tagSmallTuple || int(b[p+1]) > len(small) {
		return r.shapeAtSlow(p)
	}
	rank, q := int(b[p+1]), p+2
	total, bound := int64(1), int64(1)
	for i := range rank {
		var d int64
		switch {
		case q+2 <= len(b) && b[q] == tagSmallInteger:
			d, q = int64(b[q+1]), q+2
		case q+5 <= len(b) && b[q] == tagInteger:
			d, q = int64(int32(binary.BigEndian.Uint32(b[q+1:]))), q+5
		default:
			return r.shapeAtSlow(p)
		}
		if d < 0 {
			return r.shapeAtSlow(p) // for the error
		}
		small[i] = int(d)
		// Before each step total <= bound <= MaxElements (or total is
		// 0), and d < 2^31: no overflow.
		total *= d
		bound *= max(d, 1)
		if bound > MaxElements { // checkShape's limits
			return r.shapeAtSlow(p)
		}
	}
	if total*maxElementSize > math.MaxInt { // 32-bit hosts only
		return r.shapeAtSlow(p)
	}
	return small[:rank], int(total), q, nil
}

// shapeAtSlow is shapeAt for any encoding and rank, and for errors.
//
//go:noinline
func (r *parser) shapeAtSlow(p int) (dims []int, elems, end int, err error) {
	if !isTuple(r.b, p) {
		return nil, 0, 0, errorf(ErrMalformed, "Nx.Tensor shape is %s, want a tuple of integers", r.describe(p))
	}
	n, q, err := r.tupleHead(p)
	if err != nil {
		return nil, 0, 0, err
	}
	if n > MaxRank {
		return nil, 0, 0, errorf(ErrTooLarge, "tensor of rank %d, limit %d (MaxRank)", n, MaxRank)
	}
	dims = make([]int, n)
	for i := range n {
		v, end, err := r.intAt(q)
		if err != nil {
			return nil, 0, 0, err
		}
		switch {
		case v.res == intNotInt:
			return nil, 0, 0, errorf(ErrMalformed, "Nx.Tensor shape dimension %d is %s, want an integer", i, r.describe(q))
		case v.res == intTooLarge || v.n > MaxElements:
			return nil, 0, 0, errorf(ErrTooLarge, "Nx.Tensor shape dimension %d is %s, limit %d elements (MaxElements)", i, v.describe(), int64(MaxElements))
		case v.n < 0:
			return nil, 0, 0, errorf(ErrMalformed, "Nx.Tensor shape dimension %d is %d, want >= 0", i, v.n)
		}
		dims[i], q = int(v.n), end
	}
	total, bound := int64(1), int64(1)
	for _, d := range dims {
		bound *= int64(max(d, 1))
		if bound > MaxElements {
			break
		}
		total *= int64(d)
	}
	if bound > MaxElements || total*maxElementSize > math.MaxInt {
		_, err := checkShape(dims)
		return nil, 0, 0, err
	}
	return dims, int(total), q, nil
}

// nameList is what checkNames needs to know of a tensor's names.
type nameList struct {
	n       int  // elements
	bad     int  // the index of the first element that is no atom, or -1
	badAt   int  // and where it is
	end     int  // the end of the names
	notList bool // the names are no list at all
	proper  bool // the list ends in []
}

// fits reports whether the names are a proper list of rank atoms.
func (nl *nameList) fits(rank int) bool {
	return !nl.notList && nl.proper && nl.n == rank && nl.bad < 0
}

// namesAt reads a tensor's names.
func (r *parser) namesAt(p int) (nameList, error) {
	// As Erlang and Marshal write them: [] or a list of nil atoms.
	if b := r.b; p < len(b) && b[p] == tagNil {
		return nameList{bad: -1, end: p + 1, proper: true}, nil
	}
	return r.namesAtSlow(p)
}

// namesAtSlow is namesAt for lists.
//
//go:noinline
func (r *parser) namesAtSlow(p int) (nameList, error) {
	b := r.b
	if p >= len(b) || b[p] != tagNil && b[p] != tagList {
		end, err := r.skipValue(p)
		return nameList{notList: true, end: end}, err
	}
	nl := nameList{bad: -1}
	if b[p] == tagNil {
		nl.proper, nl.end = true, p+1
		return nl, nil
	}
	if p+5 > len(b) {
		return nl, errCut
	}
	nl.n = be32(b[p+1:])
	q := p + 5
	if nl.n < 0 || nl.n > len(b)-q {
		return nl, errCut
	}
	for i := range nl.n {
		_, form, end, err := r.atomAt(q)
		if err != nil {
			return nl, err
		}
		if form == notAtom {
			if nl.bad < 0 {
				nl.bad, nl.badAt = i, q
			}
			if end, err = r.skipValue(q); err != nil {
				return nl, err
			}
		}
		q = end
	}
	if q >= len(b) {
		return nl, errCut
	}
	nl.proper = b[q] == tagNil
	end, err := r.skipValue(q)
	if err != nil {
		return nl, err
	}
	nl.end = end
	return nl, nil
}

// checkNames checks a tensor's names, read by namesAt from p, as
// checkNames does: a list of one atom per axis.
func (r *parser) checkNames(p int, nl nameList, rank int) error {
	switch {
	case nl.notList:
		return errorf(ErrMalformed, "Nx.Tensor names is %s, want a list of atoms", r.describe(p))
	case !nl.proper:
		return errorf(ErrMalformed, "Nx.Tensor names is an improper list (its tail is not []), want a list of atoms")
	case nl.n != rank:
		return errorf(ErrMalformed, "Nx.Tensor names has %d entries for %d axes", nl.n, rank)
	case nl.bad >= 0:
		return errorf(ErrMalformed, "Nx.Tensor name %d is %s, want an atom or nil", nl.bad, r.describe(nl.badAt))
	}
	return nil
}

// backendAt returns the binary of %Nx.BinaryBackend{state: Binary} at p,
// and the end of the map, as decodeBackend does.
func (r *parser) backendAt(p int) ([]byte, int, error) {
	// As Marshal writes it, __struct__ first or last.
	b := r.b
	if p+5 <= len(b) && b[p] == tagMap && be32(b[p+1:]) == 2 {
		q := p + 5
		first := bytes.HasPrefix(b[q:], backendStruct)
		if first {
			q += len(backendStruct)
		}
		if bytes.HasPrefix(b[q:], stateKey) && q+len(stateKey)+5 <= len(b) && b[q+len(stateKey)] == tagBinary {
			q += len(stateKey)
			n := be32(b[q+1:])
			if n >= 0 && n <= len(b)-q-5 {
				state, end := b[q+5:q+5+n], q+5+n
				if first {
					return state, end, nil
				}
				if bytes.HasPrefix(b[end:], backendStruct) {
					return state, end + len(backendStruct), nil
				}
			}
		}
	}
	return r.backendAtSlow(p)
}

// backendAtSlow is backendAt for any encoding, and for errors.
//
//go:noinline
func (r *parser) backendAtSlow(p int) ([]byte, int, error) {
	b := r.b
	if p >= len(b) || b[p] != tagMap {
		return nil, 0, errorf(ErrMalformed, "Nx.Tensor data is %s, want an %%Nx.BinaryBackend{} map", r.describe(p))
	}
	f, end, err := r.scanFields(p, backendFields)
	if err != nil {
		return nil, 0, err
	}
	s, st := f.at[fieldStruct], f.at[fieldState]
	if s == 0 {
		return nil, 0, errorf(ErrMalformed, "Nx.Tensor data is a map without __struct__, want %%Nx.BinaryBackend{}")
	}
	text, form, _, err := r.atomAt(s)
	if err != nil {
		return nil, 0, err
	}
	if form == notAtom || string(text) != "Elixir.Nx.BinaryBackend" {
		if form != notAtom && !isBool(text, form) {
			return nil, 0, errorf(ErrUnsupportedType, "tensor data on backend %s: only Nx.BinaryBackend tensors can travel; Nx.backend_transfer/2 them first", trimElixir(string(text)))
		}
		return nil, 0, errorf(ErrMalformed, "Nx.Tensor data __struct__ is %s, want an atom", r.describe(s))
	}
	if st == 0 {
		return nil, 0, errorf(ErrMalformed, "Nx.BinaryBackend without a state key")
	}
	if f.unknown != 0 || f.dup != 0 {
		return nil, 0, r.extraKey("Nx.BinaryBackend", &f)
	}
	if b[st] != tagBinary {
		return nil, 0, errorf(ErrMalformed, "Nx.BinaryBackend state is %s, want a binary", r.describe(st))
	}
	if st+5 > len(b) {
		return nil, 0, errCut
	}
	n := be32(b[st+1:])
	if n < 0 || n > len(b)-st-5 {
		return nil, 0, errCut
	}
	return b[st+5 : st+5+n], end, nil
}

// batchAt decodes the %Nx.Batch{} at p, inside depth containers, as
// decodeBatch does. It reads the values in one pass, the stack's
// containers included, and then reports the first error in
// decodeBatch's order.
func (r *parser) batchAt(p, depth int) (*batch.Batch, int, error) {
	if depth >= MaxDepth {
		return nil, 0, tooDeep()
	}
	n, q, err := r.mapHead(p)
	if err != nil {
		return nil, 0, err
	}
	var (
		f        fields
		st       stack
		stackErr error
	)
	for range n {
		idx, v, err := r.key(&f, q, batchFields)
		if err != nil {
			return nil, 0, err
		}
		if idx == fieldStack {
			var end int
			st, end, stackErr = r.stackAt(v, depth)
			q, err = r.next(v, end, stackErr)
		} else {
			q, err = r.skipValue(v)
		}
		if err != nil {
			return nil, 0, err
		}
	}
	bt, err := r.finishBatch(&f, &st, stackErr)
	return bt, q, err
}

// finishBatch checks what batchAt read, in decodeBatch's order, and
// builds the batch.
//
//go:noinline
func (r *parser) finishBatch(f *fields, st *stack, stackErr error) (*batch.Batch, error) {
	sizeAt, padAt, keyAt, stackAt := f.at[fieldSize], f.at[fieldPad], f.at[fieldKey], f.at[fieldStack]
	switch {
	case sizeAt == 0:
		return nil, errorf(ErrMalformed, "Nx.Batch without a size key")
	case padAt == 0:
		return nil, errorf(ErrMalformed, "Nx.Batch without a pad key")
	case keyAt == 0:
		return nil, errorf(ErrMalformed, "Nx.Batch without a key key")
	case stackAt == 0:
		return nil, errorf(ErrMalformed, "Nx.Batch without a stack key")
	case f.unknown != 0 || f.dup != 0:
		err := r.extraKey("Nx.Batch", f)
		err.Msg += " (ergonx sends batches as size, pad, key and stack, the rows; Nx's own batches hold closures and cannot travel)"
		return nil, err
	}
	size, err := r.batchCountAt(sizeAt, "size")
	if err != nil {
		return nil, err
	}
	pad, err := r.batchCountAt(padAt, "pad")
	if err != nil {
		return nil, err
	}
	keyText, form, _, err := r.atomAt(keyAt)
	if err != nil {
		return nil, err
	}
	if form == notAtom {
		return nil, errorf(ErrMalformed, "Nx.Batch key is %s, want an atom", r.describe(keyAt))
	}
	if err := checkAtomBytes(keyText); err != nil {
		err.Msg = "batch key: " + err.Msg
		return nil, err
	}
	if stackErr != nil {
		return nil, stackErr
	}
	bt := batch.New()
	if st.count > 0 {
		var err error
		if st.rest == nil {
			err = bt.Concatenate(st.first)
		} else {
			err = bt.Concatenate(st.rest...)
		}
		if err != nil {
			return nil, &Error{Kind: ErrMalformed, Path: ".stack", Msg: "the rows do not make a batch", Err: err}
		}
	}
	if bt.Size() != size {
		return nil, errorf(ErrMalformed, "Nx.Batch size is %d but its stack holds %d rows", size, bt.Size())
	}
	if st.count > 0 {
		var err *Error
		if d, ok := st.first.(*tensor.Dense); ok {
			err = checkPaddedLeaf(d, size, pad)
		} else {
			err = checkPadded([]any{st.first}, size, pad)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := bt.Pad(pad); err != nil {
		return nil, &Error{Kind: ErrMalformed, Msg: "Nx.Batch pad", Err: err}
	}
	if string(keyText) != batch.DefaultKey {
		bt.SetKey(string(keyText))
	}
	return bt, nil
}

// stack is a batch's stack: count containers, the first in first (the
// usual case, one), all of them in rest when there are more.
type stack struct {
	count int
	first any
	rest  []any
}

//go:noinline
func (r *parser) notAStack(p int) error {
	return errorf(ErrMalformed, "Nx.Batch stack is %s, want a list of containers", r.describe(p))
}

// stackAt decodes a batch's stack, inside a batch depth containers deep,
// and returns its end.
func (r *parser) stackAt(p, depth int) (stack, int, error) {
	var st stack
	b := r.b
	if p >= len(b) {
		return st, 0, errCut
	}
	switch b[p] {
	case tagNil:
		return st, p + 1, nil
	case tagList:
	default:
		return st, 0, r.notAStack(p)
	}
	if p+5 > len(b) {
		return st, 0, errCut
	}
	count, q := be32(b[p+1:]), p+5
	if count < 0 || count > len(b)-q {
		return st, 0, errCut
	}
	for i := range count {
		v, end, err := r.value(q, depth+1)
		if err != nil {
			return st, 0, inStack(err, i)
		}
		if i == 0 {
			st.first = v
		} else {
			if st.rest == nil {
				st.rest = make([]any, 1, min(count, maxPrealloc))
				st.rest[0] = st.first
			}
			st.rest = append(st.rest, v)
		}
		q = end
	}
	st.count = count
	if q >= len(b) {
		return st, 0, errCut
	}
	if b[q] != tagNil {
		return st, 0, improperStack()
	}
	return st, q + 1, nil
}

//go:noinline
func inStack(err error, i int) error { return atKey(atIndex(err, i), "stack") }

//go:noinline
func improperStack() error {
	return errorf(ErrMalformed, "Nx.Batch stack is an improper list (its tail is not []), want a list of containers")
}

// batchCountAt decodes a batch's size or pad as batchCount does.
func (r *parser) batchCountAt(p int, what string) (int, error) {
	v, _, err := r.intAt(p)
	if err != nil {
		return 0, err
	}
	switch {
	case v.res == intNotInt:
		return 0, errorf(ErrMalformed, "Nx.Batch %s is %s, want an integer", what, r.describe(p))
	case v.res == intTooLarge || v.n > MaxElements:
		return 0, errorf(ErrTooLarge, "Nx.Batch %s is %s, limit %d (MaxElements)", what, v.describe(), int64(MaxElements))
	case v.n < 0:
		return 0, errorf(ErrMalformed, "Nx.Batch %s is %d, want >= 0", what, v.n)
	}
	return int(v.n), nil
}

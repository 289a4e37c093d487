package wire

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"io"
	"math"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"
)

// TermDecoder reads terms in the external term format into ergo's term
// types (see the package's term codec notes in term.go for the mapping).
// The zero value decodes with the default limits and no atom cache.
//
// A TermDecoder is a small value: copy it freely. It is safe for
// concurrent use as long as AtomCache is not changed meanwhile.
type TermDecoder struct {
	// MaxDepth bounds how deeply tuples, lists, maps, funs and the
	// node containers nest. 0 means DefaultTermDepth.
	MaxDepth int

	// MaxSize bounds the decoded size: bytes of binaries, strings, atoms
	// and big integers, plus 16 bytes per list or tuple element and 32
	// per map entry. 0 means DefaultTermSize. A compressed term's
	// uncompressed size counts against it too.
	MaxSize int

	// AtomCache resolves ATOM_CACHE_REF: index i is the atom of the
	// i-th atom cache reference of the distribution header the term
	// follows. A reference past its end is malformed.
	AtomCache []etf.Atom

	// ImproperLists makes an improper list decode to etf.ListImproper
	// (elements, then the tail) instead of ergo's etf.List with the tail
	// as its last element.
	ImproperLists bool

	// ShareBinaries makes decoded binaries slices of the input instead
	// of copies: one allocation fewer per binary, but the input must not
	// change afterwards, and all of it stays in memory while any decoded
	// binary does. For inputs read into memory of their own, and small
	// (erldist shares the binaries of packets up to 64 KiB).
	ShareBinaries bool
}

// DecodeTerm decodes b, the whole output of term_to_binary (131 first,
// possibly compressed), with the default limits. Bytes after the term are
// an error.
func DecodeTerm(b []byte) (etf.Term, error) { return TermDecoder{}.DecodeTerm(b) }

// DecodeTerm decodes b, the whole output of term_to_binary (131 first,
// possibly compressed). Bytes after the term are an error.
func (d TermDecoder) DecodeTerm(b []byte) (etf.Term, error) {
	body, err := d.body(b)
	if err != nil {
		return nil, err
	}
	t, rest, err := d.Decode(body)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errorf(ErrMalformed, "%d bytes after the term", len(rest))
	}
	return t, nil
}

// body strips the version byte of b and inflates a compressed term,
// within MaxSize.
func (d TermDecoder) body(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != etfVersion {
		return nil, errorf(ErrMalformed, "%s", msgNotTermBinary)
	}
	if b[1] != tagCompressed {
		return b[1:], nil
	}
	return inflate(b[2:], d.maxSize())
}

// inflate returns the uncompressed body of a compressed term (the bytes
// after 131, 80), refusing one that claims more than limit bytes or whose
// data does not inflate to exactly what it claims.
func inflate(b []byte, limit int) ([]byte, error) {
	if len(b) < 4 {
		return nil, errorf(ErrMalformed, "compressed term: truncated size")
	}
	size := binary.BigEndian.Uint32(b)
	if uint64(size) > uint64(limit) {
		return nil, errorf(ErrTooLarge, "compressed term inflates to %d bytes, over the limit of %d", size, limit)
	}
	zr, err := zlib.NewReader(bytes.NewReader(b[4:]))
	if err != nil {
		return nil, &Error{Kind: ErrMalformed, Msg: "compressed term", Err: err}
	}
	defer zr.Close()
	out := make([]byte, size)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, &Error{Kind: ErrMalformed, Msg: "compressed term: shorter than its size", Err: err}
	}
	var one [1]byte
	if n, _ := zr.Read(one[:]); n != 0 {
		return nil, errorf(ErrMalformed, "compressed term: longer than its size %d", size)
	}
	return out, nil
}

// Decode decodes the term at the start of b, which holds no version byte
// (as in a distribution message, where the terms follow the header), and
// returns what follows it.
func (d TermDecoder) Decode(b []byte) (etf.Term, []byte, error) {
	r := termReader{b: b, maxDepth: d.maxDepth(), budget: d.maxSize(), atoms: d.AtomCache, improper: d.ImproperLists,
		share: d.ShareBinaries}
	t, err := r.term(0)
	if err != nil {
		return nil, nil, err
	}
	return t, b[r.p:], nil
}

// Skip checks the structure of the term at the start of b (no version
// byte) without building it, and returns what follows it and whether it
// holds ATOM_CACHE_REFs (bytes that mean something only after the
// distribution header they came with). It allocates nothing; MaxDepth
// holds, MaxSize does not (nothing is decoded).
func (d TermDecoder) Skip(b []byte) (rest []byte, cached bool, err error) {
	s := termSkipper{b: b, maxDepth: d.maxDepth(), atoms: len(d.AtomCache)}
	if err := s.skip(1, 0); err != nil {
		return nil, false, err
	}
	return b[s.p:], s.cached, nil
}

func (d TermDecoder) maxDepth() int {
	if d.MaxDepth > 0 {
		return d.MaxDepth
	}
	return DefaultTermDepth
}

func (d TermDecoder) maxSize() int {
	if d.MaxSize > 0 {
		return d.MaxSize
	}
	return DefaultTermSize
}

// termReader decodes one term; p is the read position in b.
type termReader struct {
	b        []byte
	p        int
	maxDepth int
	budget   int // decoded bytes still allowed
	atoms    []etf.Atom
	improper bool
	share    bool
}

func (r *termReader) malformed(what string) error {
	return errorf(ErrMalformed, "%s at byte %d", what, r.p)
}

// need fails unless n more bytes remain.
func (r *termReader) need(n int) error {
	if n < 0 || n > len(r.b)-r.p {
		return r.malformed("truncated term")
	}
	return nil
}

// charge takes n decoded bytes from the budget.
func (r *termReader) charge(n int) error {
	if n < 0 || n > r.budget {
		return errorf(ErrTooLarge, "term at byte %d decodes to more than the size limit allows", r.p)
	}
	r.budget -= n
	return nil
}

// count reads a claimed element count and checks that the remaining bytes
// can hold that many elements (each takes a byte at least) and that the
// budget can hold their slots.
func (r *termReader) count(n uint64, per int, slot int) (int, error) {
	if n > uint64(len(r.b)-r.p)/uint64(per) {
		return 0, r.malformed("count of " + strconv.FormatUint(n, 10) + " elements longer than the term")
	}
	if err := r.charge(int(n) * slot); err != nil {
		return 0, err
	}
	return int(n), nil
}

func (r *termReader) u8() byte { v := r.b[r.p]; r.p++; return v }
func (r *termReader) u16() uint16 {
	v := binary.BigEndian.Uint16(r.b[r.p:])
	r.p += 2
	return v
}
func (r *termReader) u32() uint32 {
	v := binary.BigEndian.Uint32(r.b[r.p:])
	r.p += 4
	return v
}

// bytesN returns the next n bytes (not copied).
func (r *termReader) bytesN(n int) ([]byte, error) {
	if err := r.need(n); err != nil {
		return nil, err
	}
	v := r.b[r.p : r.p+n]
	r.p += n
	return v, nil
}

func (r *termReader) term(depth int) (etf.Term, error) {
	if err := r.need(1); err != nil {
		return nil, err
	}
	tag := r.u8()
	switch tag {
	case tagSmallInteger:
		if err := r.need(1); err != nil {
			return nil, err
		}
		return int(r.u8()), nil
	case tagInteger:
		if err := r.need(4); err != nil {
			return nil, err
		}
		return int64(int32(r.u32())), nil
	case tagNewFloat:
		if err := r.need(8); err != nil {
			return nil, err
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(r.b[r.p:]))
		r.p += 8
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, r.malformed("float that is not finite")
		}
		return v, nil
	case tagFloat:
		txt, err := r.bytesN(31)
		if err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(txt, 0); i >= 0 {
			txt = txt[:i]
		}
		v, perr := strconv.ParseFloat(string(bytes.TrimSpace(txt)), 64)
		if perr != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, r.malformed("FLOAT_EXT text")
		}
		return v, nil
	case tagAtom, tagAtomUTF8, tagSmallAtom, tagSmallAtomUTF8, tagAtomCacheRef:
		r.p--
		a, err := r.atom()
		if err != nil {
			return nil, err
		}
		switch a {
		case atomTrue:
			return true, nil
		case atomFalse:
			return false, nil
		}
		return a, nil
	case tagSmallTuple, tagLargeTuple:
		var n uint64
		if tag == tagSmallTuple {
			if err := r.need(1); err != nil {
				return nil, err
			}
			n = uint64(r.u8())
		} else {
			if err := r.need(4); err != nil {
				return nil, err
			}
			n = uint64(r.u32())
		}
		if n > 0 && depth >= r.maxDepth {
			return nil, r.tooDeep()
		}
		count, err := r.count(n, 1, 16)
		if err != nil {
			return nil, err
		}
		t := make(etf.Tuple, count)
		for i := range t {
			if t[i], err = r.term(depth + 1); err != nil {
				return nil, err
			}
		}
		return t, nil
	case tagNil:
		return etf.List{}, nil
	case tagString:
		if err := r.need(2); err != nil {
			return nil, err
		}
		n := int(r.u16())
		if err := r.charge(n); err != nil {
			return nil, err
		}
		s, err := r.bytesN(n)
		if err != nil {
			return nil, err
		}
		return string(s), nil
	case tagList:
		if err := r.need(4); err != nil {
			return nil, err
		}
		n := uint64(r.u32())
		if depth >= r.maxDepth {
			return nil, r.tooDeep()
		}
		// n elements and a tail: n+1 terms of a byte at least.
		count, err := r.count(n+1, 1, 16)
		if err != nil {
			return nil, err
		}
		l := make([]etf.Term, count)
		for i := range l {
			if l[i], err = r.term(depth + 1); err != nil {
				return nil, err
			}
		}
		if tail, ok := l[count-1].(etf.List); ok && len(tail) == 0 {
			return etf.List(l[:count-1]), nil
		}
		if r.improper {
			return etf.ListImproper(l), nil
		}
		return etf.List(l), nil
	case tagBinary:
		if err := r.need(4); err != nil {
			return nil, err
		}
		n := r.u32()
		if uint64(n) > uint64(len(r.b)-r.p) {
			return nil, r.malformed("binary longer than the term")
		}
		if err := r.charge(int(n)); err != nil {
			return nil, err
		}
		if r.share {
			out := r.b[r.p : r.p+int(n) : r.p+int(n)] // capped: an append copies
			r.p += int(n)
			return out, nil
		}
		out := make([]byte, n)
		copy(out, r.b[r.p:])
		r.p += int(n)
		return out, nil
	case tagBitBinary:
		if err := r.need(5); err != nil {
			return nil, err
		}
		n := r.u32()
		bits := r.u8()
		if uint64(n) > uint64(len(r.b)-r.p) {
			return nil, r.malformed("bitstring longer than the term")
		}
		if (n == 0) != (bits == 0) || bits > 8 {
			return nil, r.malformed("bitstring bit count")
		}
		if err := r.charge(int(n)); err != nil {
			return nil, err
		}
		out := make([]byte, n)
		copy(out, r.b[r.p:])
		r.p += int(n)
		if n > 0 {
			out[n-1] >>= 8 - bits
		}
		return out, nil
	case tagSmallBig, tagLargeBig:
		return r.bignum(tag)
	case tagMap:
		if err := r.need(4); err != nil {
			return nil, err
		}
		n := uint64(r.u32())
		if n > 0 && depth >= r.maxDepth {
			return nil, r.tooDeep()
		}
		count, err := r.count(n, 2, 32)
		if err != nil {
			return nil, err
		}
		m := make(etf.Map, count)
		for range count {
			k, err := r.term(depth + 1)
			if err != nil {
				return nil, err
			}
			key, err := mapKey(k)
			if err != nil {
				return nil, err
			}
			v, err := r.term(depth + 1)
			if err != nil {
				return nil, err
			}
			if _, dup := m[key]; dup {
				return nil, r.malformed("duplicate map key")
			}
			m[key] = v
		}
		return m, nil
	case tagPid, tagNewPid:
		return r.pid(tag)
	case tagPort, tagNewPort, tagV4Port:
		return r.port(tag)
	case tagNewRef, tagNewerRef, tagRef:
		return r.ref(tag)
	case tagExport:
		if depth >= r.maxDepth {
			return nil, r.tooDeep()
		}
		m, err := r.atom()
		if err != nil {
			return nil, err
		}
		f, err := r.atom()
		if err != nil {
			return nil, err
		}
		a, err := r.term(depth + 1)
		if err != nil {
			return nil, err
		}
		arity, ok := a.(int)
		if !ok {
			return nil, r.malformed("export arity")
		}
		return etf.Export{Module: m, Function: f, Arity: arity}, nil
	case tagNewFun:
		return r.fun(depth)
	}
	r.p--
	return nil, r.malformed("unknown term tag " + strconv.Itoa(int(tag)))
}

func (r *termReader) tooDeep() error {
	return errorf(ErrTooLarge, "term nests deeper than %d at byte %d", r.maxDepth, r.p)
}

// atom reads an atom in any of its encodings.
func (r *termReader) atom() (etf.Atom, error) {
	if err := r.need(1); err != nil {
		return "", err
	}
	var n int
	latin1 := false
	switch tag := r.u8(); tag {
	case tagAtomCacheRef:
		if err := r.need(1); err != nil {
			return "", err
		}
		i := int(r.u8())
		if i >= len(r.atoms) {
			r.p--
			return "", r.malformed("atom cache reference " + strconv.Itoa(i) + " not in the header")
		}
		return r.atoms[i], nil
	case tagSmallAtom, tagSmallAtomUTF8:
		if err := r.need(1); err != nil {
			return "", err
		}
		n, latin1 = int(r.u8()), tag == tagSmallAtom
	case tagAtom, tagAtomUTF8:
		if err := r.need(2); err != nil {
			return "", err
		}
		n, latin1 = int(r.u16()), tag == tagAtom
	default:
		r.p--
		return "", r.malformed("atom expected, tag " + strconv.Itoa(int(tag)))
	}
	if err := r.charge(2 * n); err != nil {
		return "", err
	}
	b, err := r.bytesN(n)
	if err != nil {
		return "", err
	}
	if latin1 {
		// ATOM_EXT and SMALL_ATOM_EXT hold Latin-1 characters, one a
		// byte; etf.Atom holds UTF-8.
		if n > MaxAtomRunes {
			return "", r.malformed("atom longer than 255 characters")
		}
		return etf.Atom(latin1ToUTF8(b)), nil
	}
	if !utf8.Valid(b) {
		return "", r.malformed("atom that is not valid UTF-8")
	}
	if n > MaxAtomRunes && utf8.RuneCount(b) > MaxAtomRunes {
		return "", r.malformed("atom longer than 255 characters")
	}
	return etf.Atom(b), nil
}

// latin1ToUTF8 returns the UTF-8 text of Latin-1 bytes.
func latin1ToUTF8(b []byte) string {
	ascii := true
	for _, c := range b {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return string(out)
}

func (r *termReader) bignum(tag byte) (etf.Term, error) {
	var n int
	if tag == tagSmallBig {
		if err := r.need(2); err != nil {
			return nil, err
		}
		n = int(r.u8())
	} else {
		if err := r.need(5); err != nil {
			return nil, err
		}
		n32 := r.u32()
		if uint64(n32) > uint64(len(r.b)-r.p) {
			return nil, r.malformed("bignum longer than the term")
		}
		n = int(n32)
	}
	sign := r.u8()
	if sign > 1 {
		return nil, r.malformed("bignum sign")
	}
	if err := r.charge(n); err != nil {
		return nil, err
	}
	digits, err := r.bytesN(n)
	if err != nil {
		return nil, err
	}
	// Trailing zero digits do not change the value.
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	if len(digits) <= 8 {
		var m uint64
		for i := len(digits) - 1; i >= 0; i-- {
			m = m<<8 | uint64(digits[i])
		}
		switch {
		case sign == 0 && m <= math.MaxInt64:
			return int64(m), nil
		case sign == 0:
			return m, nil
		case m <= 1<<63:
			return int64(-m), nil // -2^63 wraps to itself: exact
		}
	}
	be := make([]byte, len(digits))
	for i, d := range digits {
		be[len(digits)-1-i] = d
	}
	v := new(big.Int).SetBytes(be)
	if sign == 1 {
		v.Neg(v)
	}
	return v, nil
}

func (r *termReader) pid(tag byte) (etf.Term, error) {
	node, err := r.atom()
	if err != nil {
		return nil, err
	}
	size := 12
	if tag == tagPid {
		size = 9
	}
	if err := r.need(size); err != nil {
		return nil, err
	}
	id := uint64(r.u32())
	serial := uint64(r.u32())
	var creation uint32
	if tag == tagPid {
		creation = uint32(r.u8())
	} else {
		creation = r.u32()
	}
	// ID and Serial are kept whole (DFLAG_V4_NC): the pid encodes back
	// to the same bytes.
	return etf.Pid{Node: node, ID: id | serial<<32, Creation: creation}, nil
}

func (r *termReader) port(tag byte) (etf.Term, error) {
	node, err := r.atom()
	if err != nil {
		return nil, err
	}
	var id uint64
	var creation uint32
	switch tag {
	case tagPort:
		if err := r.need(5); err != nil {
			return nil, err
		}
		id, creation = uint64(r.u32()), uint32(r.u8())
	case tagNewPort:
		if err := r.need(8); err != nil {
			return nil, err
		}
		id, creation = uint64(r.u32()), r.u32()
	default:
		if err := r.need(12); err != nil {
			return nil, err
		}
		id = binary.BigEndian.Uint64(r.b[r.p:])
		r.p += 8
		creation = r.u32()
	}
	if id > math.MaxUint32 {
		return nil, errorf(ErrUnsupportedType, "port id %d does not fit etf.Port", id)
	}
	return etf.Port{Node: node, ID: uint32(id), Creation: creation}, nil
}

func (r *termReader) ref(tag byte) (etf.Term, error) {
	words := 1
	if tag != tagRef {
		if err := r.need(2); err != nil {
			return nil, err
		}
		words = int(r.u16())
	}
	if words < 1 || words > 5 {
		return nil, r.malformed("reference with " + strconv.Itoa(words) + " id words")
	}
	node, err := r.atom()
	if err != nil {
		return nil, err
	}
	var ref etf.Ref
	ref.Node = node
	switch tag {
	case tagRef: // the one id word, then a 1-byte creation
		if err := r.need(5); err != nil {
			return nil, err
		}
		ref.ID[0] = r.u32()
		ref.Creation = uint32(r.u8())
		return ref, nil
	case tagNewerRef:
		if err := r.need(4); err != nil {
			return nil, err
		}
		ref.Creation = r.u32()
	default:
		if err := r.need(1); err != nil {
			return nil, err
		}
		ref.Creation = uint32(r.u8())
	}
	if err := r.need(4 * words); err != nil {
		return nil, err
	}
	for i := range words {
		ref.ID[i] = r.u32()
	}
	return ref, nil
}

func (r *termReader) fun(depth int) (etf.Term, error) {
	if depth >= r.maxDepth {
		return nil, r.tooDeep()
	}
	start := r.p // Size counts from itself, not from the tag
	if err := r.need(4 + 1 + 16 + 4 + 4); err != nil {
		return nil, err
	}
	size := int(r.u32())
	if size < 29 || size > len(r.b)-start {
		return nil, r.malformed("fun size")
	}
	var f etf.Function
	f.Arity = r.u8()
	copy(f.Unique[:], r.b[r.p:r.p+16])
	r.p += 16
	f.Index = r.u32()
	free, err := r.count(uint64(r.u32()), 1, 16)
	if err != nil {
		return nil, err
	}
	if f.Module, err = r.atom(); err != nil {
		return nil, err
	}
	oldIndex, err := r.term(depth + 1)
	if err != nil {
		return nil, err
	}
	oldUniq, err := r.term(depth + 1)
	if err != nil {
		return nil, err
	}
	oi, ok1 := funInt(oldIndex)
	ou, ok2 := funInt(oldUniq)
	if !ok1 || !ok2 || oi < 0 || oi > math.MaxUint32 || ou < math.MinInt32 || ou > math.MaxInt32 {
		return nil, r.malformed("fun old index or old uniq")
	}
	f.OldIndex, f.OldUnique = uint32(oi), uint32(ou)
	p, err := r.term(depth + 1)
	if err != nil {
		return nil, err
	}
	if f.Pid, ok1 = p.(etf.Pid); !ok1 {
		return nil, r.malformed("fun pid")
	}
	f.FreeVars = make([]etf.Term, free)
	for i := range f.FreeVars {
		if f.FreeVars[i], err = r.term(depth + 1); err != nil {
			return nil, err
		}
	}
	if r.p-start != size {
		return nil, r.malformed("fun size does not match its contents")
	}
	return f, nil
}

func funInt(t etf.Term) (int64, bool) {
	switch v := t.(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}

// mapKey returns k as a Go map key: binaries become etf.String (hashable,
// and they encode back to the same binary); tuples, lists and maps cannot
// be Go map keys.
func mapKey(k etf.Term) (etf.Term, error) {
	switch v := k.(type) {
	case []byte:
		return etf.String(v), nil
	case etf.Tuple, etf.List, etf.ListImproper, etf.Map, etf.Function:
		return nil, errorf(ErrUnsupportedType, "a map key of type %T cannot be a Go map key", k)
	}
	return k, nil
}

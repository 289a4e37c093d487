package wire

import (
	"encoding/binary"
	"math"
	"math/big"
	"reflect"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"
)

// TermEncoder writes terms in the external term format. The zero value
// encodes with the default depth limit.
//
// What it writes, by Go type: nil as [] (NIL_EXT, as ergo writes it);
// bool as the atoms true and false; etf.Atom as SMALL_ATOM_UTF8_EXT or
// ATOM_UTF8_EXT (at most 255 characters of valid UTF-8); any Go integer
// as SMALL_INTEGER_EXT, INTEGER_EXT or SMALL_BIG_EXT, *big.Int as a
// bignum; float32 and float64 as NEW_FLOAT_EXT (NaN and infinities have
// no Erlang value and are refused); string as STRING_EXT (a charlist on
// the Erlang side), or as a list of byte values when longer than 65535
// bytes (as term_to_binary does); etf.String and []byte as binaries;
// etf.Charlist as a list of code points; etf.Tuple, etf.List,
// etf.ListImproper (its last element is the tail) and etf.Map as tuples,
// lists and maps; etf.Pid, etf.Ref, etf.Alias and etf.Port as NEW_PID_EXT,
// NEWER_REFERENCE_EXT and NEW_PORT_EXT; etf.Export and etf.Function as
// EXPORT_EXT and NEW_FUN_EXT; a RawTerm in place; an etf.Marshaler as the
// binary its MarshalETF returns (as ergo does); any other slice or array
// as a list and any other map as a map (through reflection); a non-nil
// pointer as what it points to. Anything else — structs, channels,
// functions — is an error matching ErrUnsupportedType that names the type
// and where it was.
//
// A TermEncoder is a small value, safe for concurrent use.
type TermEncoder struct {
	// MaxDepth bounds how deeply tuples, lists and maps nest (a cyclic
	// value built with pointers or maps ends here). 0 means
	// DefaultTermDepth.
	MaxDepth int
}

// EncodeTerm returns t as term_to_binary would: 131, then the term.
func EncodeTerm(t etf.Term) ([]byte, error) {
	return TermEncoder{}.Append([]byte{etfVersion}, t)
}

// AppendTerm appends t to b without the version byte, as the terms that
// follow a distribution header are written.
func AppendTerm(b []byte, t etf.Term) ([]byte, error) { return TermEncoder{}.Append(b, t) }

// Append appends t to b without the version byte. On error b is returned
// as it was given (its length, not necessarily its spare capacity).
func (e TermEncoder) Append(b []byte, t etf.Term) ([]byte, error) {
	max := e.MaxDepth
	if max <= 0 {
		max = DefaultTermDepth
	}
	w := termWriter{b: b, maxDepth: max}
	if err := w.term(t, 0); err != nil {
		return b, err
	}
	return w.b, nil
}

// RawTermOf returns t as a RawTerm (EncodeTerm's bytes).
func RawTermOf(t etf.Term) (RawTerm, error) {
	b, err := EncodeTerm(t)
	return RawTerm(b), err
}

// Check verifies that r is one whole, well-formed term (see RawTerm), and
// returns its body: the bytes that follow the version byte, inflated if
// r was compressed.
func (r RawTerm) Check() ([]byte, error) {
	if len(r) < 2 || r[0] != etfVersion {
		return nil, errorf(ErrMalformed, "raw term: %s", msgNotTermBinary)
	}
	body := []byte(r[1:])
	if r[1] == tagCompressed {
		var err error
		if body, err = inflate(r[2:], DefaultTermSize); err != nil {
			return nil, err
		}
	}
	s := termSkipper{b: body, maxDepth: DefaultTermDepth}
	if err := s.skip(1, 0); err != nil {
		return nil, err
	}
	if s.p != len(body) {
		return nil, errorf(ErrMalformed, "raw term: %d bytes after the term", len(body)-s.p)
	}
	return body, nil
}

type termWriter struct {
	b        []byte
	maxDepth int
}

func unsupported(t any) error {
	return errorf(ErrUnsupportedType, "cannot encode a %s as an Erlang term", goTypeName(t))
}

func (w *termWriter) term(t etf.Term, depth int) error {
	switch v := t.(type) {
	case nil:
		w.b = append(w.b, tagNil)
	case etf.Atom:
		return w.atom(v)
	case bool:
		if v {
			w.b = append(w.b, tagSmallAtomUTF8, 4, 't', 'r', 'u', 'e')
		} else {
			w.b = append(w.b, tagSmallAtomUTF8, 5, 'f', 'a', 'l', 's', 'e')
		}
	case int:
		w.b = appendInt(w.b, int64(v))
	case int64:
		w.b = appendInt(w.b, v)
	case int32:
		w.b = appendInt(w.b, int64(v))
	case int16:
		w.b = appendInt(w.b, int64(v))
	case int8:
		w.b = appendInt(w.b, int64(v))
	case uint:
		w.b = appendUint(w.b, uint64(v))
	case uint64:
		w.b = appendUint(w.b, v)
	case uint32:
		w.b = appendUint(w.b, uint64(v))
	case uint16:
		w.b = appendUint(w.b, uint64(v))
	case uint8:
		w.b = appendUint(w.b, uint64(v))
	case uintptr:
		w.b = appendUint(w.b, uint64(v))
	case float64:
		return w.float(v)
	case float32:
		return w.float(float64(v))
	case string:
		w.string(v)
	case etf.String:
		w.binary([]byte(v))
	case []byte:
		w.binary(v)
	case etf.Charlist:
		if v == "" {
			w.b = append(w.b, tagNil)
			return nil
		}
		n := utf8.RuneCountInString(string(v))
		w.b = binary.BigEndian.AppendUint32(append(w.b, tagList), uint32(n))
		for _, r := range string(v) {
			w.b = appendInt(w.b, int64(r))
		}
		w.b = append(w.b, tagNil)
	case etf.Tuple:
		if len(v) > 0 && depth >= w.maxDepth {
			return w.tooDeep()
		}
		if len(v) <= math.MaxUint8 {
			w.b = append(w.b, tagSmallTuple, byte(len(v)))
		} else {
			w.b = binary.BigEndian.AppendUint32(append(w.b, tagLargeTuple), uint32(len(v)))
		}
		for i, x := range v {
			if err := w.term(x, depth+1); err != nil {
				return atIndex(err, i)
			}
		}
	case etf.List:
		return w.list([]etf.Term(v), nil, depth)
	case etf.ListImproper:
		if len(v) < 2 {
			return errorf(ErrMalformed, "an improper list needs an element and a tail; got %d terms", len(v))
		}
		return w.list([]etf.Term(v[:len(v)-1]), v[len(v)-1], depth)
	case etf.Map:
		if len(v) > 0 && depth >= w.maxDepth {
			return w.tooDeep()
		}
		w.b = binary.BigEndian.AppendUint32(append(w.b, tagMap), uint32(len(v)))
		for k, x := range v {
			if err := w.term(k, depth+1); err != nil {
				return err
			}
			if err := w.term(x, depth+1); err != nil {
				return atKey(err, keyText(k))
			}
		}
	case etf.Pid:
		return w.pid(v)
	case etf.Ref:
		return w.ref(v)
	case etf.Alias:
		return w.ref(etf.Ref(v))
	case etf.Port:
		w.b = append(w.b, tagNewPort)
		if err := w.atom(v.Node); err != nil {
			return err
		}
		w.b = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(w.b, v.ID), v.Creation)
	case etf.Export:
		w.b = append(w.b, tagExport)
		if err := w.atom(v.Module); err != nil {
			return err
		}
		if err := w.atom(v.Function); err != nil {
			return err
		}
		if v.Arity < 0 || v.Arity > math.MaxUint8 {
			return errorf(ErrMalformed, "export arity %d", v.Arity)
		}
		w.b = append(w.b, tagSmallInteger, byte(v.Arity))
	case etf.Function:
		return w.fun(v, depth)
	case RawTerm:
		body, err := v.Check()
		if err != nil {
			return err
		}
		w.b = append(w.b, body...)
	case *big.Int:
		if v == nil {
			return errorf(ErrUnsupportedType, "cannot encode a nil *big.Int")
		}
		w.bignum(v)
	case etf.Marshaler:
		data, err := v.MarshalETF()
		if err != nil {
			return &Error{Kind: ErrUnsupportedType, Msg: "MarshalETF of " + goTypeName(t), Err: err}
		}
		w.binary(data)
	default:
		return w.reflected(t, depth)
	}
	return nil
}

func (w *termWriter) tooDeep() error {
	return errorf(ErrTooLarge, "term nests deeper than %d", w.maxDepth)
}

// keyText names a map key in an error path.
func keyText(k etf.Term) string {
	switch v := k.(type) {
	case etf.Atom:
		return string(v)
	case string:
		return v
	case etf.String:
		return string(v)
	}
	return goTypeName(k)
}

func (w *termWriter) atom(a etf.Atom) error {
	if !utf8.ValidString(string(a)) {
		return errorf(ErrMalformed, "atom %q is not valid UTF-8", string(a))
	}
	if len(a) <= math.MaxUint8 {
		w.b = append(append(w.b, tagSmallAtomUTF8, byte(len(a))), a...)
		return nil
	}
	if utf8.RuneCountInString(string(a)) > MaxAtomRunes {
		return errorf(ErrTooLarge, "atom of %d characters: Erlang allows %d", utf8.RuneCountInString(string(a)), MaxAtomRunes)
	}
	w.b = append(binary.BigEndian.AppendUint16(append(w.b, tagAtomUTF8), uint16(len(a))), a...)
	return nil
}

func (w *termWriter) float(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return errorf(ErrUnsupportedType, "float %v has no Erlang value", f)
	}
	w.b = binary.BigEndian.AppendUint64(append(w.b, tagNewFloat), math.Float64bits(f))
	return nil
}

func (w *termWriter) string(s string) {
	if len(s) <= math.MaxUint16 {
		w.b = append(binary.BigEndian.AppendUint16(append(w.b, tagString), uint16(len(s))), s...)
		return
	}
	w.b = binary.BigEndian.AppendUint32(append(w.b, tagList), uint32(len(s)))
	for i := 0; i < len(s); i++ {
		w.b = append(w.b, tagSmallInteger, s[i])
	}
	w.b = append(w.b, tagNil)
}

func (w *termWriter) binary(v []byte) {
	w.b = append(binary.BigEndian.AppendUint32(append(w.b, tagBinary), uint32(len(v))), v...)
}

// list writes elems with tail (nil: a proper list).
func (w *termWriter) list(elems []etf.Term, tail etf.Term, depth int) error {
	if len(elems) == 0 && tail == nil {
		w.b = append(w.b, tagNil)
		return nil
	}
	if depth >= w.maxDepth {
		return w.tooDeep()
	}
	w.b = binary.BigEndian.AppendUint32(append(w.b, tagList), uint32(len(elems)))
	for i, x := range elems {
		if err := w.term(x, depth+1); err != nil {
			return atIndex(err, i)
		}
	}
	if tail == nil {
		w.b = append(w.b, tagNil)
		return nil
	}
	return w.term(tail, depth+1)
}

func (w *termWriter) pid(p etf.Pid) error {
	w.b = append(w.b, tagNewPid)
	if err := w.atom(p.Node); err != nil {
		return err
	}
	// ID and Serial whole (DFLAG_V4_NC), the inverse of the decoder.
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(p.ID))
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(p.ID>>32))
	w.b = binary.BigEndian.AppendUint32(w.b, p.Creation)
	return nil
}

func (w *termWriter) ref(r etf.Ref) error {
	// Three id words as every reference has, four or five when the
	// extra words are used (DFLAG_V4_NC), so that a reference decoded
	// here encodes back to the words it came with.
	words := 3
	switch {
	case r.ID[4] != 0:
		words = 5
	case r.ID[3] != 0:
		words = 4
	}
	w.b = binary.BigEndian.AppendUint16(append(w.b, tagNewerRef), uint16(words))
	if err := w.atom(r.Node); err != nil {
		return err
	}
	w.b = binary.BigEndian.AppendUint32(w.b, r.Creation)
	for i := range words {
		w.b = binary.BigEndian.AppendUint32(w.b, r.ID[i])
	}
	return nil
}

func (w *termWriter) fun(f etf.Function, depth int) error {
	if depth >= w.maxDepth {
		return w.tooDeep()
	}
	start := len(w.b)
	w.b = append(w.b, tagNewFun, 0, 0, 0, 0, f.Arity)
	w.b = append(w.b, f.Unique[:]...)
	w.b = binary.BigEndian.AppendUint32(w.b, f.Index)
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(f.FreeVars)))
	if err := w.atom(f.Module); err != nil {
		return err
	}
	w.b = appendInt(w.b, int64(f.OldIndex))
	w.b = appendInt(w.b, int64(int32(f.OldUnique)))
	if err := w.pid(f.Pid); err != nil {
		return err
	}
	for i, x := range f.FreeVars {
		if err := w.term(x, depth+1); err != nil {
			return atIndex(err, i)
		}
	}
	binary.BigEndian.PutUint32(w.b[start+1:], uint32(len(w.b)-start-1))
	return nil
}

func (w *termWriter) bignum(v *big.Int) {
	if v.IsInt64() {
		w.b = appendInt(w.b, v.Int64())
		return
	}
	if v.IsUint64() {
		w.b = appendUint(w.b, v.Uint64())
		return
	}
	mag := new(big.Int).Abs(v).Bytes() // big-endian
	sign := byte(0)
	if v.Sign() < 0 {
		sign = 1
	}
	if len(mag) <= math.MaxUint8 {
		w.b = append(w.b, tagSmallBig, byte(len(mag)), sign)
	} else {
		w.b = append(binary.BigEndian.AppendUint32(append(w.b, tagLargeBig), uint32(len(mag))), sign)
	}
	for i := len(mag) - 1; i >= 0; i-- {
		w.b = append(w.b, mag[i])
	}
}

// reflected writes slices, arrays, maps and pointers of any type.
func (w *termWriter) reflected(t etf.Term, depth int) error {
	v := reflect.ValueOf(t)
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			w.b = append(w.b, tagNil)
			return nil
		}
		if depth >= w.maxDepth {
			return w.tooDeep()
		}
		w.b = binary.BigEndian.AppendUint32(append(w.b, tagList), uint32(v.Len()))
		for i := range v.Len() {
			if err := w.term(v.Index(i).Interface(), depth+1); err != nil {
				return atIndex(err, i)
			}
		}
		w.b = append(w.b, tagNil)
		return nil
	case reflect.Map:
		if v.Len() > 0 && depth >= w.maxDepth {
			return w.tooDeep()
		}
		w.b = binary.BigEndian.AppendUint32(append(w.b, tagMap), uint32(v.Len()))
		it := v.MapRange()
		for it.Next() {
			if err := w.term(it.Key().Interface(), depth+1); err != nil {
				return err
			}
			if err := w.term(it.Value().Interface(), depth+1); err != nil {
				return atKey(err, keyText(it.Key().Interface()))
			}
		}
		return nil
	case reflect.Pointer:
		if v.IsNil() || depth >= w.maxDepth {
			return unsupported(t)
		}
		return w.term(v.Elem().Interface(), depth+1)
	}
	return unsupported(t)
}

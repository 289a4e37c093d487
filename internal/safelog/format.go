package safelog

import (
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"
)

// Limits bound what Format writes and reads. A zero field means its
// default.
type Limits struct {
	// MaxBytes bounds the whole output, the … that marks a cut included.
	// Default DefaultMaxBytes; values under 16 are raised to 16.
	MaxBytes int
	// MaxDepth is how many containers (tuples, lists, maps, structs,
	// pointers) deep the formatter goes; deeper ones print as {…}, […].
	// Default DefaultMaxDepth.
	MaxDepth int
	// MaxItems is how many elements of one container are printed; the
	// rest are counted (…+N). Default DefaultMaxItems.
	MaxItems int
	// MaxString is how many bytes of one string, atom or binary are
	// printed; the rest are counted (…(+N bytes)). Default
	// DefaultMaxString.
	MaxString int
}

// The default Limits: a line that says what a term was without quoting it
// at length.
const (
	DefaultMaxBytes  = 512
	DefaultMaxDepth  = 8
	DefaultMaxItems  = 16
	DefaultMaxString = 64
)

// ellipsis marks everything the formatter left out.
const ellipsis = "…"

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	l.MaxBytes = max(l.MaxBytes, 16)
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultMaxItems
	}
	if l.MaxString <= 0 {
		l.MaxString = DefaultMaxString
	}
	return l
}

// Format returns v printed within the default Limits.
func Format(v any) string { return Limits{}.Format(v) }

// Format returns v printed within l.
func (l Limits) Format(v any) string { return string(l.Append(nil, v)) }

// Append appends v printed within l to dst. At most l.MaxBytes bytes are
// appended, whatever v is, and the work done is bounded by the limits,
// not by v's size.
func (l Limits) Append(dst []byte, v any) (out []byte) {
	l = l.withDefaults()
	w := writer{lim: l, buf: dst, start: len(dst), limit: len(dst) + l.MaxBytes - len(ellipsis)}
	defer func() {
		// A method the formatter calls (Error) may panic, as may a
		// reflection corner the formatter did not foresee: a log line
		// must never take its caller down.
		if r := recover(); r != nil {
			w.full = false
			w.put("<panic while formatting>")
			out = w.finish()
		}
	}()
	w.term(v, 0)
	return w.finish()
}

// writer accumulates one formatted value. Every write goes through put,
// which stops at limit; once full, every call returns at once.
type writer struct {
	lim   Limits
	buf   []byte
	start int  // len(buf) before this value
	limit int  // len(buf) may not pass it; room for the ellipsis is kept
	full  bool // something was cut because the limit was reached
}

func (w *writer) finish() []byte {
	if w.full {
		w.buf = append(w.buf, ellipsis...)
	}
	return w.buf
}

// put appends s, or as much of it as fits (cut at a rune boundary).
func (w *writer) put(s string) {
	if w.full {
		return
	}
	room := w.limit - len(w.buf)
	if len(s) <= room {
		w.buf = append(w.buf, s...)
		return
	}
	cut := room
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	w.buf = append(w.buf, s[:cut]...)
	w.full = true
}

func (w *writer) int(i int64)   { w.put(strconv.FormatInt(i, 10)) }
func (w *writer) uint(u uint64) { w.put(strconv.FormatUint(u, 10)) }

// term prints one value; depth is the number of containers around it.
func (w *writer) term(v any, depth int) {
	if w.full {
		return
	}
	switch v := v.(type) {
	case nil:
		w.put("nil")
	case etf.Atom:
		w.atom(string(v))
	case bool:
		w.put(strconv.FormatBool(v))
	case string:
		w.quoted(v)
	case etf.String:
		w.binaryText(string(v))
	case etf.Charlist:
		w.quoted(string(v))
	case []byte:
		w.binary(v)
	case int:
		w.int(int64(v))
	case int8:
		w.int(int64(v))
	case int16:
		w.int(int64(v))
	case int32:
		w.int(int64(v))
	case int64:
		w.int(v)
	case uint:
		w.uint(uint64(v))
	case uint8:
		w.uint(uint64(v))
	case uint16:
		w.uint(uint64(v))
	case uint32:
		w.uint(uint64(v))
	case uint64:
		w.uint(v)
	case float32:
		w.put(strconv.FormatFloat(float64(v), 'g', -1, 32))
	case float64:
		w.put(strconv.FormatFloat(v, 'g', -1, 64))
	case etf.Pid:
		w.put("<")
		w.atom(string(v.Node))
		w.put(".")
		w.uint(v.ID)
		w.put(".")
		w.uint(uint64(v.Creation))
		w.put(">")
	case etf.Ref:
		w.ref("#Ref<", v)
	case etf.Alias:
		w.ref("#Alias<", etf.Ref(v))
	case etf.Port:
		w.put("#Port<")
		w.atom(string(v.Node))
		w.put(".")
		w.uint(uint64(v.ID))
		w.put(">")
	case etf.Tuple:
		w.seq("{", "}", len(v), depth, func(i int) { w.term(v[i], depth+1) })
	case etf.List:
		w.seq("[", "]", len(v), depth, func(i int) { w.term(v[i], depth+1) })
	case etf.ListImproper:
		w.improper(v, depth)
	case etf.Map:
		w.etfMap(v, depth)
	case error:
		w.escaped(v.Error(), w.lim.MaxBytes, 0)
	default:
		w.value(reflect.ValueOf(v), depth)
	}
}

func (w *writer) ref(open string, r etf.Ref) {
	w.put(open)
	w.atom(string(r.Node))
	for _, id := range r.ID[:3] {
		w.put(".")
		w.uint(uint64(id))
	}
	w.put(">")
}

// seq prints a container of n elements: open, at most MaxItems of them
// (each printed by item), a count of the rest, close. A container deeper
// than MaxDepth prints as open…close without reading any element.
func (w *writer) seq(open, close string, n, depth int, item func(i int)) {
	w.put(open)
	if n > 0 && depth >= w.lim.MaxDepth {
		w.put(ellipsis)
		w.put(close)
		return
	}
	shown := min(n, w.lim.MaxItems)
	for i := range shown {
		if w.full {
			return
		}
		if i > 0 {
			w.put(",")
		}
		item(i)
	}
	w.more(n - shown)
	w.put(close)
}

// more notes n elements left out.
func (w *writer) more(n int) {
	if n > 0 {
		w.put("," + ellipsis + "+")
		w.int(int64(n))
	}
}

// improper prints [a,b|Tail]; the tail is the last element.
func (w *writer) improper(v etf.ListImproper, depth int) {
	if len(v) < 2 {
		w.seq("[", "]", len(v), depth, func(i int) { w.term(v[i], depth+1) })
		return
	}
	head := v[:len(v)-1]
	w.put("[")
	if depth >= w.lim.MaxDepth {
		w.put(ellipsis + "]")
		return
	}
	shown := min(len(head), w.lim.MaxItems)
	for i := range shown {
		if w.full {
			return
		}
		if i > 0 {
			w.put(",")
		}
		w.term(head[i], depth+1)
	}
	w.more(len(head) - shown)
	w.put("|")
	w.term(v[len(v)-1], depth+1)
	w.put("]")
}

// etfMap prints #{K => V,...}. Ranging over a Go map reads only as many
// entries as the loop takes, so a huge map costs MaxItems entries.
func (w *writer) etfMap(m etf.Map, depth int) {
	w.put("#{")
	if len(m) > 0 && depth >= w.lim.MaxDepth {
		w.put(ellipsis + "}")
		return
	}
	i := 0
	for k, v := range m {
		if i == w.lim.MaxItems || w.full {
			break
		}
		if i > 0 {
			w.put(",")
		}
		w.term(k, depth+1)
		w.put(" => ")
		w.term(v, depth+1)
		i++
	}
	w.more(len(m) - i)
	w.put("}")
}

// atom prints an atom bare when Erlang would ('ok', node@host), else in
// single quotes with escapes ('Elixir.Nx', 'a b').
func (w *writer) atom(a string) {
	if plainAtom(a, w.lim.MaxString) {
		w.escaped(a, w.lim.MaxString, 0)
		return
	}
	w.escaped(a, w.lim.MaxString, '\'')
}

// plainAtom looks at no more than MaxString bytes: a longer atom is cut
// anyway, and quoting it costs nothing more.
func plainAtom(a string, limit int) bool {
	if a == "" || a[0] < 'a' || a[0] > 'z' {
		return false
	}
	for i := 0; i < len(a) && i < limit; i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '@' || c == '.') {
			return false
		}
	}
	return true
}

// quoted prints a Go string (an Erlang charlist) in double quotes.
func (w *writer) quoted(s string) { w.escaped(s, w.lim.MaxString, '"') }

// escaped prints at most limit bytes of s, escaping quote, backslash,
// control characters and invalid UTF-8, between quote characters unless
// quote is 0, then notes how many bytes were left out.
func (w *writer) escaped(s string, limit int, quote byte) {
	w.cut(w.escapedBody(s, limit, quote))
}

// escapedBody is escaped without the note; it returns how many bytes of s
// it left out.
func (w *writer) escapedBody(s string, limit int, quote byte) (left int) {
	if quote != 0 {
		w.put(string(quote))
	}
	n := min(len(s), limit)
	for n < len(s) && n > 0 && !utf8.RuneStart(s[n]) {
		n-- // cut between runes
	}
	for i := 0; i < n && !w.full; {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			w.put(`\x` + hex2(s[i]))
		case r == '\\' || (quote != 0 && r == rune(quote)):
			w.put(`\` + string(r))
		case r == '\n':
			w.put(`\n`)
		case r == '\r':
			w.put(`\r`)
		case r == '\t':
			w.put(`\t`)
		case r < 0x20 || r == 0x7f:
			w.put(`\x` + hex2(byte(r)))
		case r >= 0x80 && !strconv.IsPrint(r):
			q := strconv.QuoteRuneToASCII(r) // '\u2028'
			w.put(q[1 : len(q)-1])
		default:
			w.put(s[i : i+size])
		}
		i += size
	}
	if quote != 0 {
		w.put(string(quote))
	}
	return len(s) - n
}

// cut notes n bytes left out of a string or binary.
func (w *writer) cut(n int) {
	if n > 0 {
		w.put(ellipsis + "(+")
		w.int(int64(n))
		w.put(" bytes)")
	}
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

// binary prints <<"text">> when the first MaxString bytes are printable
// ASCII, else <<1,2,3>>, then how many bytes were left out.
func (w *writer) binary(b []byte) {
	n := min(len(b), w.lim.MaxString)
	if printable(b[:n]) {
		w.put(`<<`)
		w.escapedBody(string(b[:n]), n, '"')
		w.put(`>>`)
	} else {
		w.put("<<")
		for i, c := range b[:n] {
			if w.full {
				return
			}
			if i > 0 {
				w.put(",")
			}
			w.uint(uint64(c))
		}
		w.put(">>")
	}
	w.cut(len(b) - n)
}

// binaryText prints an etf.String, which travels as a binary.
func (w *writer) binaryText(s string) {
	w.put("<<")
	left := w.escapedBody(s, w.lim.MaxString, '"')
	w.put(">>")
	w.cut(left)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// value prints a value of a type the formatter does not know, through
// reflection and under the same limits. It never calls the value's
// methods.
func (w *writer) value(rv reflect.Value, depth int) {
	if w.full {
		return
	}
	switch rv.Kind() {
	case reflect.Invalid:
		w.put("nil")
	case reflect.Bool:
		w.put(strconv.FormatBool(rv.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.int(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		w.uint(rv.Uint())
	case reflect.Float32, reflect.Float64:
		w.put(strconv.FormatFloat(rv.Float(), 'g', -1, rv.Type().Bits()))
	case reflect.Complex64, reflect.Complex128:
		w.put(strconv.FormatComplex(rv.Complex(), 'g', -1, rv.Type().Bits()))
	case reflect.String:
		w.quoted(rv.String())
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			w.binary(rv.Bytes())
			return
		}
		w.seq("[", "]", rv.Len(), depth, func(i int) { w.elem(rv.Index(i), depth+1) })
	case reflect.Array:
		w.seq("[", "]", rv.Len(), depth, func(i int) { w.elem(rv.Index(i), depth+1) })
	case reflect.Map:
		w.reflectMap(rv, depth)
	case reflect.Struct:
		w.escaped(rv.Type().String(), w.lim.MaxString, 0)
		t := rv.Type()
		w.seq("{", "}", rv.NumField(), depth, func(i int) {
			w.escaped(t.Field(i).Name, w.lim.MaxString, 0)
			w.put(": ")
			w.elem(rv.Field(i), depth+1)
		})
	case reflect.Pointer:
		if rv.IsNil() {
			w.put("nil")
			return
		}
		// A pointer counts as a level, so that a cycle ends at MaxDepth.
		if depth >= w.lim.MaxDepth {
			w.put("&" + ellipsis)
			return
		}
		w.put("&")
		w.elem(rv.Elem(), depth+1)
	case reflect.Interface:
		if rv.IsNil() {
			w.put("nil")
			return
		}
		w.elem(rv.Elem(), depth)
	default: // chan, func, unsafe pointer
		w.put("<" + rv.Kind().String() + ">")
	}
}

// elem prints a value reached through reflection: through term when it
// may be turned back into an interface (so that known types print their
// usual way), else through value (an unexported field).
func (w *writer) elem(rv reflect.Value, depth int) {
	if rv.IsValid() && rv.CanInterface() {
		w.term(rv.Interface(), depth)
		return
	}
	w.value(rv, depth)
}

func (w *writer) reflectMap(rv reflect.Value, depth int) {
	w.put("#{")
	n := rv.Len()
	if n > 0 && depth >= w.lim.MaxDepth {
		w.put(ellipsis + "}")
		return
	}
	i := 0
	for it := rv.MapRange(); i < w.lim.MaxItems && !w.full && it.Next(); i++ {
		if i > 0 {
			w.put(",")
		}
		w.elem(it.Key(), depth+1)
		w.put(" => ")
		w.elem(it.Value(), depth+1)
	}
	w.more(n - i)
	w.put("}")
}

// Value is a value to be printed within limits when, and only if, a log
// line is written: it implements fmt.Formatter (every verb prints the same
// bounded text), fmt.Stringer and slog.LogValuer.
type Value struct {
	v   any
	lim Limits
}

// T wraps v for a log call: slog.Warn("...", "message", safelog.T(msg)) or
// lib.Warning("... %v", safelog.T(msg)). Nothing is formatted unless the
// line is written.
func T(v any) Value { return Value{v: v} }

// T wraps v for a log call, printed within l.
func (l Limits) T(v any) Value { return Value{v: v, lim: l} }

// String returns the value printed within its limits.
func (v Value) String() string { return v.lim.Format(v.v) }

// Format implements fmt.Formatter: any verb prints String.
func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write(v.lim.Append(nil, v.v)) }

// LogValue implements slog.LogValuer.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

var (
	_ fmt.Formatter  = Value{}
	_ fmt.Stringer   = Value{}
	_ slog.LogValuer = Value{}
)

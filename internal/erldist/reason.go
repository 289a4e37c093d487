package erldist

import (
	"strings"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"

	"github.com/ergonx/ergonx/actors/wire"
)

// ergo carries exit reasons as Go strings (Process.Exit, a behaviour's
// stop reason, gen.MessageDown.Reason, gen.MessageExit.Reason). This
// layer gives them back their Erlang meaning:
//
//   - a plain string is the atom of that name ("normal", "noproc",
//     "shutdown"...), as ergo has always meant it; one that cannot be an
//     atom (over 255 characters, or not UTF-8) travels as a binary;
//   - a term reason is a string made by TermReason or RawTermReason: the
//     marker byte 0xFF (which no UTF-8 text starts with) followed by the
//     term in the external term format. It travels as that term, of any
//     size.
//
// Incoming reasons follow the same rule: an atom arrives as its plain
// string (ergo's "noproc"/"normal"/"noconnection" checks keep working),
// any other term as a term reason string, whole. Local processes that
// watch a process which stopped with a term reason get the same string,
// so ReasonTerm reads a gen.MessageDown.Reason the same way wherever it
// came from.

// reasonMarker starts a term reason string; the ETF bytes (131...) follow.
const reasonMarker = "\xff"

// TermReason returns an exit reason (for Process.Exit, a behaviour's stop
// reason, ...) that erldist sends on the wire as the term t (any term, any
// size) in EXIT and MONITOR_P_EXIT. An atom gives its plain string. The
// error is the encoder's (a value that is no Erlang term).
func TermReason(t etf.Term) (string, error) {
	switch v := t.(type) {
	case etf.Atom:
		if atomReason(string(v)) {
			return string(v), nil
		}
	case bool:
		if v {
			return "true", nil
		}
		return "false", nil
	}
	b, err := wire.EncodeTerm(t)
	if err != nil {
		return "", err
	}
	return reasonMarker + string(b), nil
}

// RawTermReason is TermReason for a term already in the external term
// format (the bytes term_to_binary gives, starting with 131), spliced into
// the control message as is. The bytes are checked, not decoded.
func RawTermReason(etfBytes []byte) (string, error) {
	body, err := wire.RawTerm(etfBytes).Check()
	if err != nil {
		return "", err
	}
	if isAtomTag(body[0]) {
		if t, err := wire.DecodeTerm(append([]byte{131}, body...)); err == nil {
			if a, ok := t.(etf.Atom); ok && atomReason(string(a)) {
				return string(a), nil
			}
		}
	}
	return reasonMarker + "\x83" + string(body), nil
}

// ReasonTerm returns the term a reason stands for: the term of a
// TermReason or RawTermReason string, else the atom of a plain string
// ("normal", "noproc", "noconnection", "killed"...). A plain string that
// cannot be an atom is the binary it travels as.
func ReasonTerm(reason string) etf.Term {
	if strings.HasPrefix(reason, reasonMarker+"\x83") {
		if t, err := wire.DecodeTerm([]byte(reason[1:])); err == nil {
			return t
		}
	}
	if !atomReason(reason) {
		return []byte(reason)
	}
	switch reason {
	case "true":
		return true
	case "false":
		return false
	}
	return etf.Atom(reason)
}

// atomReason reports whether a plain reason string can be an atom.
func atomReason(s string) bool {
	return utf8.ValidString(s) && (len(s) <= wire.MaxAtomRunes || utf8.RuneCountInString(s) <= wire.MaxAtomRunes)
}

// appendReason appends the term of reason (no version byte).
func appendReason(b []byte, reason string) []byte {
	if strings.HasPrefix(reason, reasonMarker+"\x83") && len(reason) > 2 {
		// Made by TermReason or RawTermReason, or received: checked then.
		return append(b, reason[2:]...)
	}
	if atomReason(reason) {
		b, _ = wire.AppendTerm(b, etf.Atom(reason))
		return b
	}
	b, _ = wire.AppendTerm(b, []byte(reason))
	return b
}

// reasonFromBody turns a received reason (the bytes of one term, no
// version byte, maybe with atom cache references) into ergo's reason
// string: an atom's name, else a term reason. Only atoms are decoded;
// other terms are checked and kept as they came, re-encoded only when
// they refer to the header's atom cache.
func reasonFromBody(body []byte, d wire.TermDecoder) (string, []byte, error) {
	if len(body) > 0 && isAtomTag(body[0]) {
		t, rest, err := d.Decode(body)
		if err != nil {
			return "", nil, err
		}
		switch v := t.(type) {
		case etf.Atom:
			return string(v), rest, nil
		case bool:
			if v {
				return "true", rest, nil
			}
			return "false", rest, nil
		}
	}
	rest, cached, err := d.Skip(body)
	if err != nil {
		return "", nil, err
	}
	span := body[:len(body)-len(rest)]
	if cached {
		t, _, err := d.Decode(span)
		if err != nil {
			return "", nil, err
		}
		r, err := TermReason(t)
		return r, rest, err
	}
	var sb strings.Builder
	sb.Grow(2 + len(span))
	sb.WriteString(reasonMarker + "\x83")
	sb.Write(span)
	return sb.String(), rest, nil
}

// reasonFromTerm is reasonFromBody for a reason already decoded (the
// non-payload EXIT and MONITOR_P_EXIT forms carry it in the control
// message).
func reasonFromTerm(t etf.Term) string {
	switch v := t.(type) {
	case etf.Atom:
		return string(v)
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	r, err := TermReason(t)
	if err != nil {
		return "malformed_reason"
	}
	return r
}

func isAtomTag(tag byte) bool {
	switch tag {
	case 82, 100, 115, 118, 119: // ATOM_CACHE_REF, ATOM_EXT, SMALL_ATOM_EXT, ATOM_UTF8_EXT, SMALL_ATOM_UTF8_EXT
		return true
	}
	return false
}

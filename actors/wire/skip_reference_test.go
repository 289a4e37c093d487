package wire

import (
	"encoding/binary"
	"testing"
)

// Nesting at and past the depth bound, which fuzzing seldom reaches.
func TestSkipTermNestsAsTheReference(t *testing.T) {
	for depth := 250; depth < 262; depth++ {
		for _, open := range [][]byte{{104, 1}, {108, 0, 0, 0, 1}, {116, 0, 0, 0, 1, 97, 0}} {
			var b []byte
			for range depth {
				b = append(b, open...)
			}
			b = append(b, 106)
			for range depth {
				if open[0] == 108 {
					b = append(b, 106) // the tail
				}
			}
			rest, ok := skipTerm(b, 0)
			wantRest, wantOK := skipTermReference(b, 0)
			if ok != wantOK || len(rest) != len(wantRest) {
				t.Fatalf("depth %d, tag %d: %v %d, the reference %v %d", depth, open[0], ok, len(rest), wantOK, len(wantRest))
			}
		}
	}
}

// FuzzSkipTerm checks skipTerm (now skipAt) against the implementation
// it replaced, kept below as skipTermReference: the structure check that
// the former Unmarshal and the tests (ergoCanDecode) rely on must accept
// and refuse the same bytes, and find the same end.
func FuzzSkipTerm(f *testing.F) {
	for _, seed := range [][]byte{
		{97, 1}, {106}, {108, 0, 0, 0, 1, 97, 1, 106}, {108, 0, 0, 0, 0, 106}, {104, 2, 97, 1, 119, 1, 'a'},
		{116, 0, 0, 0, 1, 119, 1, 'a', 109, 0, 0, 0, 2, 1, 2}, {110, 2, 1, 5, 6}, {111, 0, 0, 0, 1, 0, 7},
		{105, 0, 0, 0, 2, 70, 0, 0, 0, 0, 0, 0, 0, 0, 107, 0, 1, 'x'}, {100, 0, 2, 'o', 'k'}, {115, 1, 'a'}, {88},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rest, ok := skipTerm(b, 0)
		wantRest, wantOK := skipTermReference(b, 0)
		if ok != wantOK || ok && len(rest) != len(wantRest) {
			t.Fatalf("skipTerm: %v, %d bytes left; the reference: %v, %d bytes left", ok, len(rest), wantOK, len(wantRest))
		}
	})
}

func skipTermReference(b []byte, depth int) ([]byte, bool) {
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
			if rest, ok = skipTermReference(rest, depth+1); !ok {
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

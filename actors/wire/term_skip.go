package wire

import (
	"encoding/binary"
	"strconv"
)

// termSkipper walks terms without building them: TermDecoder.Skip, the
// check of a RawTerm before the encoder splices it, and (wireOnly) the
// structure check of the wire codec's terms (skipAt).
type termSkipper struct {
	b        []byte
	p        int
	maxDepth int
	atoms    int // atom cache references allowed: 0..atoms-1
	cached   bool
	// wireOnly admits only the kinds the wire codec writes and reads
	// (wireTags), and no empty LIST_EXT (the codec writes NIL_EXT).
	wireOnly bool
}

// wireTags are the term kinds of the wire codec: what skipAt admits.
var wireTags = func() (t [256]bool) {
	for _, tag := range []byte{tagSmallAtomUTF8, tagSmallAtom, tagSmallInteger, tagInteger, tagNewFloat, tagNil,
		tagBinary, tagAtom, tagAtomUTF8, tagString, tagSmallBig, tagLargeBig, tagSmallTuple, tagLargeTuple, tagMap, tagList} {
		t[tag] = true
	}
	return t
}()

func (s *termSkipper) malformed(what string) error {
	return errorf(ErrMalformed, "%s at byte %d", what, s.p)
}

// advance moves past n bytes, which must be there.
func (s *termSkipper) advance(n uint64) error {
	if n > uint64(len(s.b)-s.p) {
		return s.malformed("truncated term")
	}
	s.p += int(n)
	return nil
}

func (s *termSkipper) u8() (uint64, error) {
	if s.p >= len(s.b) {
		return 0, s.malformed("truncated term")
	}
	v := s.b[s.p]
	s.p++
	return uint64(v), nil
}

func (s *termSkipper) u16() (uint64, error) {
	if len(s.b)-s.p < 2 {
		return 0, s.malformed("truncated term")
	}
	v := binary.BigEndian.Uint16(s.b[s.p:])
	s.p += 2
	return uint64(v), nil
}

func (s *termSkipper) u32() (uint64, error) {
	if len(s.b)-s.p < 4 {
		return 0, s.malformed("truncated term")
	}
	v := binary.BigEndian.Uint32(s.b[s.p:])
	s.p += 4
	return uint64(v), nil
}

// skip moves past count terms, each depth deep. Siblings are skipped in a
// loop, nested terms recursively (at most maxDepth deep).
func (s *termSkipper) skip(count uint64, depth int) error {
	for ; count > 0; count-- {
		tag, err := s.u8()
		if err != nil {
			return err
		}
		if s.wireOnly && !wireTags[tag] {
			s.p--
			return s.malformed("term tag " + strconv.Itoa(int(tag)) + " is not one of the wire codec's")
		}
		var n, elems uint64
		switch byte(tag) {
		case tagSmallInteger:
			n = 1
		case tagInteger:
			n = 4
		case tagNewFloat:
			n = 8
		case tagFloat:
			n = 31
		case tagNil:
		case tagAtomCacheRef:
			i, err := s.u8()
			if err != nil {
				return err
			}
			if int(i) >= s.atoms {
				return s.malformed("atom cache reference " + strconv.Itoa(int(i)) + " not in the header")
			}
			s.cached = true
		case tagSmallAtom, tagSmallAtomUTF8:
			if n, err = s.u8(); err != nil {
				return err
			}
		case tagAtom, tagAtomUTF8, tagString:
			if n, err = s.u16(); err != nil {
				return err
			}
		case tagBinary:
			if n, err = s.u32(); err != nil {
				return err
			}
		case tagBitBinary:
			if n, err = s.u32(); err != nil {
				return err
			}
			n++ // the bits byte
		case tagSmallBig:
			if n, err = s.u8(); err != nil {
				return err
			}
			n++ // sign
		case tagLargeBig:
			if n, err = s.u32(); err != nil {
				return err
			}
			n++
		case tagSmallTuple:
			if elems, err = s.u8(); err != nil {
				return err
			}
		case tagLargeTuple:
			if elems, err = s.u32(); err != nil {
				return err
			}
		case tagMap:
			if elems, err = s.u32(); err != nil {
				return err
			}
			elems *= 2
		case tagList:
			if elems, err = s.u32(); err != nil {
				return err
			}
			if elems == 0 && s.wireOnly {
				return s.malformed("an empty LIST_EXT (the wire codec writes [] as NIL_EXT)")
			}
			elems++ // the tail
		case tagPid, tagNewPid, tagPort, tagNewPort, tagV4Port, tagRef:
			// A node atom, then fixed fields.
			if depth >= s.maxDepth {
				return s.tooDeep()
			}
			if err := s.skip(1, depth+1); err != nil {
				return err
			}
			switch byte(tag) {
			case tagPid: // id, serial, 1-byte creation
				n = 9
			case tagNewPid, tagV4Port:
				n = 12
			case tagPort, tagRef: // id, 1-byte creation
				n = 5
			case tagNewPort:
				n = 8
			}
		case tagNewRef, tagNewerRef:
			words, err := s.u16()
			if err != nil {
				return err
			}
			if words < 1 || words > 5 {
				return s.malformed("reference with " + strconv.Itoa(int(words)) + " id words")
			}
			if depth >= s.maxDepth {
				return s.tooDeep()
			}
			if err := s.skip(1, depth+1); err != nil {
				return err
			}
			n = 4 * words
			if byte(tag) == tagNewerRef {
				n += 4
			} else {
				n++
			}
		case tagExport:
			elems = 3
		case tagNewFun:
			start := s.p
			size, err := s.u32()
			if err != nil {
				return err
			}
			if size < 29 || size > uint64(len(s.b)-start) {
				return s.malformed("fun size")
			}
			if err := s.advance(1 + 16 + 4); err != nil {
				return err
			}
			free, err := s.u32()
			if err != nil {
				return err
			}
			// Module, OldIndex, OldUniq, Pid, free variables.
			if depth >= s.maxDepth {
				return s.tooDeep()
			}
			if err := s.skip(4+free, depth+1); err != nil {
				return err
			}
			if uint64(s.p-start) != size {
				return s.malformed("fun size does not match its contents")
			}
			continue
		default:
			s.p--
			return s.malformed("unknown term tag " + strconv.Itoa(int(tag)))
		}
		if elems == 0 {
			if err := s.advance(n); err != nil {
				return err
			}
			continue
		}
		if elems > uint64(len(s.b)-s.p) { // each element takes a byte at least
			return s.malformed("count of " + strconv.FormatUint(elems, 10) + " elements longer than the term")
		}
		if depth >= s.maxDepth {
			return s.tooDeep()
		}
		if err := s.skip(elems, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (s *termSkipper) tooDeep() error {
	return errorf(ErrTooLarge, "term nests deeper than %d at byte %d", s.maxDepth, s.p)
}

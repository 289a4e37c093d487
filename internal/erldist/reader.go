package erldist

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/ergo-services/ergo/etf"
)

// readerState is the reading side's own state, touched by Serve's
// goroutine only.
type readerState struct {
	// The peer's atom cache: 8 segments of 256 entries, filled by the
	// distribution headers' new entries.
	cache  [2048]etf.Atom
	cached [2048]bool
	refs   []etf.Atom // the current message's atom cache references

	frags     map[uint64]*assembly // fragmented messages being received, by sequence id
	fragBytes int                  // bytes held in frags
}

// assembly is a fragmented message being put together.
type assembly struct {
	atoms []etf.Atom
	buf   []byte
	next  uint64 // the fragment id expected next
}

var errHeader = errors.New("malformed distribution header")

// readLoop reads packets until the connection fails. Ticks (empty
// packets) only count as a sign of life. A packet over the size limit is
// skipped unread.
func (c *conn) readLoop() error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var hdr [4]byte
	c.rd.frags = make(map[uint64]*assembly)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		c.packets.Add(1)
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		if n == 0 {
			continue
		}
		c.bytesIn.Add(uint64(n) + 4)
		if n > int64(c.opts.MaxMessageSize)+64 {
			c.log.warn("packet-too-large", "erldist: a packet over the message size limit is dropped",
				"local", c.local, "peer", c.peer, "bytes", n, "limit", c.opts.MaxMessageSize)
			if _, err := io.CopyN(io.Discard, br, n); err != nil {
				return err
			}
			continue
		}
		// Every packet is read into memory of its own: the binaries of
		// small ones are decoded as slices of it (see conn.decoder),
		// one allocation per packet instead of one per binary.
		pkt := make([]byte, n)
		if _, err := io.ReadFull(br, pkt); err != nil {
			return err
		}
		c.packet(pkt)
	}
}

// packet handles one packet: a message with the normal distribution
// header, a fragment, or a pass-through message.
func (c *conn) packet(p []byte) {
	switch {
	case len(p) >= 3 && p[0] == 131 && p[1] == 68:
		refs, rest, err := c.atomRefs(p[2:])
		if err != nil {
			c.malformed("header", p, err)
			return
		}
		c.dispatch(rest, refs)
	case len(p) >= 19 && p[0] == 131 && p[1] == 69:
		seq, frag := binary.BigEndian.Uint64(p[2:]), binary.BigEndian.Uint64(p[10:])
		refs, rest, err := c.atomRefs(p[18:])
		if err != nil {
			c.malformed("header", p, err)
			return
		}
		c.firstFragment(seq, frag, refs, rest)
	case len(p) >= 18 && p[0] == 131 && p[1] == 70:
		c.nextFragment(binary.BigEndian.Uint64(p[2:]), binary.BigEndian.Uint64(p[10:]), p[18:])
	case len(p) >= 2 && p[0] == 112:
		c.dispatchPassThrough(p[1:])
	default:
		c.malformed("packet", p, errHeader)
	}
}

// atomRefs reads the atom cache references of a distribution header
// (NumberOfAtomCacheRefs, Flags, AtomCacheRefs), updating the cache with
// the new entries, and returns the references and the bytes after them.
func (c *conn) atomRefs(b []byte) ([]etf.Atom, []byte, error) {
	n := int(b[0])
	if n == 0 {
		return nil, b[1:], nil
	}
	flagBytes := n/2 + 1
	if len(b) < 1+flagBytes {
		return nil, nil, errHeader
	}
	fl := b[1 : 1+flagBytes]
	half := func(i int) byte { return fl[i/2] >> (4 * (i % 2)) & 0xF }
	long := half(n)&1 == 1
	p := 1 + flagBytes
	refs := c.rd.refs[:0]
	for i := range n {
		h := half(i)
		if p >= len(b) {
			return nil, nil, errHeader
		}
		idx := int(h&7)*256 + int(b[p])
		p++
		if h&8 == 0 {
			if !c.rd.cached[idx] {
				return nil, nil, errHeader
			}
			refs = append(refs, c.rd.cache[idx])
			continue
		}
		var l int
		if long {
			if p+2 > len(b) {
				return nil, nil, errHeader
			}
			l = int(binary.BigEndian.Uint16(b[p:]))
			p += 2
		} else {
			if p >= len(b) {
				return nil, nil, errHeader
			}
			l = int(b[p])
			p++
		}
		if p+l > len(b) {
			return nil, nil, errHeader
		}
		text := b[p : p+l]
		p += l
		if !utf8.Valid(text) || utf8.RuneCount(text) > 255 {
			return nil, nil, errHeader
		}
		a := etf.Atom(text)
		c.rd.cache[idx], c.rd.cached[idx] = a, true
		refs = append(refs, a)
	}
	c.rd.refs = refs
	return refs, b[p:], nil
}

func (c *conn) firstFragment(seq, frag uint64, refs []etf.Atom, rest []byte) {
	if old := c.rd.frags[seq]; old != nil {
		// A new message with the sequence id of one never finished.
		c.rd.fragBytes -= len(old.buf)
		delete(c.rd.frags, seq)
	}
	if frag <= 1 {
		c.dispatch(rest, refs)
		return
	}
	if c.rd.fragBytes+len(rest) > c.opts.MaxFragmentBytes {
		c.log.warn("fragments-over-limit", "erldist: a fragmented message is dropped: the fragments held would pass the limit",
			"local", c.local, "peer", c.peer, "limit", c.opts.MaxFragmentBytes)
		return
	}
	size := int(min(frag, 1024)) * max(len(rest), 1024)
	a := &assembly{atoms: append([]etf.Atom(nil), refs...), buf: make([]byte, 0, min(size, 64<<20)), next: frag - 1}
	a.buf = append(a.buf, rest...)
	c.rd.frags[seq] = a
	c.rd.fragBytes += len(rest)
}

func (c *conn) nextFragment(seq, frag uint64, data []byte) {
	a := c.rd.frags[seq]
	if a == nil {
		return // a dropped message's remaining fragments
	}
	drop := func(msg string) {
		c.rd.fragBytes -= len(a.buf)
		delete(c.rd.frags, seq)
		c.log.warn("fragment-"+msg, "erldist: a fragmented message is dropped: "+msg, "local", c.local, "peer", c.peer)
	}
	if frag != a.next {
		drop("fragments out of order")
		return
	}
	if c.rd.fragBytes+len(data) > c.opts.MaxFragmentBytes || len(a.buf)+len(data) > c.opts.MaxMessageSize {
		drop("over the size limit")
		return
	}
	a.buf = append(a.buf, data...)
	c.rd.fragBytes += len(data)
	if frag > 1 {
		a.next--
		return
	}
	c.rd.fragBytes -= len(a.buf)
	delete(c.rd.frags, seq)
	c.dispatch(a.buf, a.atoms)
}

// malformed logs (rate-limited, with at most a short prefix of the
// packet) a packet or message that cannot be read, which is dropped: the
// connection stays.
func (c *conn) malformed(what string, p []byte, err error) {
	c.log.warn("malformed-"+what, "erldist: a malformed "+what+" from the peer is dropped; the connection stays",
		"local", c.local, "peer", c.peer, "error", err, "bytes", len(p), "prefix", prefix(p))
}

package erldist

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
)

// outMsg is one encoded distribution message waiting for the writer:
// a 4-byte length placeholder, the distribution header (131, 68, 0: no
// atom cache references), the control message and the payload.
type outMsg struct {
	b       []byte
	ctrlEnd int     // where the payload starts: a fragment boundary may only fall after it
	key     etf.Pid // the sender: its messages leave in the order it sent them
	pooled  bool    // b came from bufPool
}

// headerLen is the length prefix and the normal distribution header.
const headerLen = 4 + 3

// flatLimit: messages up to this size are copied together into one buffer
// per write; larger ones are written from their own memory.
const flatLimit = 16 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// newOutMsg returns a message buffer holding the length placeholder and
// the header: the normal distribution header, or the pass-through type
// byte for a peer without DFLAG_DIST_HDR_ATOM_CACHE.
func newOutMsg(key etf.Pid, passThrough bool) *outMsg {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	if passThrough {
		b = append(b, 0, 0, 0, 0, 112, 131)
	} else {
		b = append(b, 0, 0, 0, 0, 131, 68, 0)
	}
	return &outMsg{b: b, key: key, pooled: true}
}

func (m *outMsg) recycle() {
	if !m.pooled || cap(m.b) > 64<<10 {
		return
	}
	b := m.b[:0]
	bufPool.Put(&b)
	m.b = nil
}

// writer owns the writing side of a connection: one goroutine writes
// every message, in the order senders queued them, so that the messages
// of one sender to one receiver arrive in order (ergo's round-robin over
// several sender goroutines, and its flusher writing large packets ahead
// of buffered small ones, broke that). Senders encode in their own
// goroutines and only queue bytes. The writer takes everything queued,
// writes it with one writev, and comes back for what was queued meanwhile:
// it batches when busy and writes at once when idle, with no timer.
//
// A message larger than the fragment size (to a peer that accepts
// fragments) is sent one fragment per round, between other senders'
// messages, so a 10 MB tensor does not hold up small messages for the
// time it takes to send; the sender's own later messages wait for it, as
// the protocol requires (a process finishes a fragmented message before
// it sends another on the channel).
type writer struct {
	nc        io.Writer
	fragSize  int
	fragments bool // the peer accepts fragmented messages

	mu     sync.Mutex // guards queue and closed
	queue  []*outMsg
	closed bool
	wake   chan struct{} // a token: something was queued or closed

	// Owned by the writer goroutine.
	spare   []*outMsg
	streams map[etf.Pid]*stream // senders with a fragmented message in progress
	active  []*stream
	out     net.Buffers
	flat    []byte
	flatAt  int // start of flat's part not yet in out
	done    []*outMsg
	seq     uint64

	wrote atomic.Bool // something was written since the last tick

	bytesOut atomic.Uint64
	msgsOut  atomic.Uint64
}

// stream is a sender with a fragmented message in progress and the
// messages it queued after it.
type stream struct {
	key     etf.Pid
	cur     *outMsg
	seq     uint64
	total   uint64 // fragments of cur
	next    uint64 // fragment id to send next (total down to 1)
	off     int    // payload bytes of cur sent
	pending []*outMsg
}

func newWriter(nc io.Writer, fragSize int, fragments bool) *writer {
	return &writer{
		nc: nc, fragSize: fragSize, fragments: fragments,
		wake: make(chan struct{}, 1), streams: make(map[etf.Pid]*stream),
	}
}

// enqueue queues m; false when the connection is closed (m is dropped).
func (w *writer) enqueue(m *outMsg) bool {
	binary.BigEndian.PutUint32(m.b, uint32(len(m.b)-4))
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		m.recycle()
		return false
	}
	w.queue = append(w.queue, m)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// close stops the writer; what is queued is dropped.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes until the writer is closed (nil) or a write fails.
func (w *writer) run() error {
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && len(w.active) == 0 && !w.closed {
			w.mu.Unlock()
			<-w.wake
			w.mu.Lock()
		}
		if w.closed {
			w.mu.Unlock()
			return nil
		}
		batch := w.queue
		w.queue = w.spare[:0]
		w.mu.Unlock()

		for _, m := range batch {
			w.route(m)
		}
		clear(batch)
		w.spare = batch[:0]
		w.round()
		if err := w.flush(); err != nil {
			return err
		}
		w.wrote.Store(true)
	}
}

// tick queues a tick (an empty packet) unless something was written since
// the last call: what keeps an idle connection alive in the peer's eyes.
func (w *writer) tick() {
	if !w.wrote.Swap(false) {
		w.enqueue(&outMsg{b: make([]byte, 4)})
	}
}

// route places m: behind its sender's fragmented message if one is in
// progress, else out now (whole, or its first fragment).
func (w *writer) route(m *outMsg) {
	if s := w.streams[m.key]; s != nil {
		s.pending = append(s.pending, m)
		return
	}
	w.start(m, nil)
}

// start sends m whole, or starts it as a fragmented message (of stream
// s, or of a new stream) and sends its first fragment.
func (w *writer) start(m *outMsg, s *stream) bool {
	if !w.fragments || len(m.b)-4 <= w.fragSize {
		w.emitWhole(m)
		return false
	}
	if s == nil {
		s = &stream{key: m.key}
		w.streams[m.key] = s
		w.active = append(w.active, s)
	}
	w.seq++
	payload := len(m.b) - m.ctrlEnd
	rest := max(payload-w.fragSize, 0)
	s.cur, s.seq, s.off = m, w.seq, 0
	s.total = 1 + uint64((rest+w.fragSize-1)/w.fragSize)
	s.next = s.total
	w.emitFragment(s)
	return true
}

// round sends the next fragment of every stream (one per stream per
// round, so that streams and small messages take turns), and moves
// finished streams on to their queued messages.
func (w *writer) round() {
	live := w.active[:0]
	for _, s := range w.active {
		if s.cur != nil && s.next < s.total {
			w.emitFragment(s)
		}
		for s.cur == nil && len(s.pending) > 0 {
			m := s.pending[0]
			s.pending = s.pending[1:]
			w.start(m, s)
		}
		if s.cur != nil {
			live = append(live, s)
		} else {
			delete(w.streams, s.key)
		}
	}
	clear(w.active[len(live):])
	w.active = live
}

func (w *writer) emitWhole(m *outMsg) {
	w.msgsOut.Add(1)
	if len(m.b) <= flatLimit {
		w.flat = append(w.flat, m.b...)
		m.recycle()
		return
	}
	w.cutFlat()
	w.out = append(w.out, m.b)
	w.done = append(w.done, m)
}

// cutFlat moves the copied bytes so far into out, before a piece written
// from its own memory.
func (w *writer) cutFlat() {
	if len(w.flat) > w.flatAt {
		w.out = append(w.out, w.flat[w.flatAt:])
		w.flatAt = len(w.flat)
	}
}

// emitFragment sends fragment s.next of s.cur: the first carries the
// header with the sequence and fragment ids, the control message and the
// start of the payload; the others carry the next part of the payload.
func (w *writer) emitFragment(s *stream) {
	m := s.cur
	payload := m.b[m.ctrlEnd:]
	var part []byte
	var hdr []byte
	if s.next == s.total {
		part = payload[:min(w.fragSize, len(payload))]
		ctrl := m.b[headerLen:m.ctrlEnd]
		hdr = make([]byte, 23, 23+len(ctrl))
		binary.BigEndian.PutUint32(hdr, uint32(19+len(ctrl)+len(part)))
		hdr[4], hdr[5] = 131, 69
		binary.BigEndian.PutUint64(hdr[6:], s.seq)
		binary.BigEndian.PutUint64(hdr[14:], s.next)
		hdr[22] = 0 // no atom cache references
		hdr = append(hdr, ctrl...)
	} else {
		part = payload[s.off:min(s.off+w.fragSize, len(payload))]
		hdr = make([]byte, 22)
		binary.BigEndian.PutUint32(hdr, uint32(18+len(part)))
		hdr[4], hdr[5] = 131, 70
		binary.BigEndian.PutUint64(hdr[6:], s.seq)
		binary.BigEndian.PutUint64(hdr[14:], s.next)
	}
	s.off += len(part)
	w.flat = append(w.flat, hdr...)
	w.cutFlat()
	if len(part) > 0 {
		w.out = append(w.out, part)
	}
	if s.next--; s.next == 0 {
		w.msgsOut.Add(1)
		w.done = append(w.done, m)
		s.cur = nil
	}
}

// flush writes what this round produced.
func (w *writer) flush() error {
	w.cutFlat()
	var n int64
	var err error
	if len(w.out) == 1 {
		var k int
		k, err = w.nc.Write(w.out[0])
		n = int64(k)
	} else if len(w.out) > 1 {
		bufs := w.out // WriteTo consumes its receiver; keep w.out's array
		n, err = bufs.WriteTo(w.nc)
	}
	w.bytesOut.Add(uint64(n))
	clear(w.out[:cap(w.out)])
	w.out = w.out[:0]
	w.flat, w.flatAt = w.flat[:0], 0
	if cap(w.flat) > 1<<20 {
		w.flat = nil // do not keep a large buffer for an idle connection
	}
	for _, m := range w.done {
		m.recycle()
	}
	clear(w.done)
	w.done = w.done[:0]
	return err
}

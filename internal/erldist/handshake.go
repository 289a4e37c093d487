package erldist

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
)

// Handshake is the connection setup of the Erlang distribution, version 6
// (OTP 23+; the only one OTP 25 speaks), as a node.HandshakeInterface.
// It dials with the new send_name ('N') and accepts both the new one and
// the old 'n' of nodes that do not know the peer's version (stock ergo
// nodes dial that way), reading their complement message.
//
// One Handshake serves one node: Init binds it to the node's name. Use
// NewHandshake (or New) for every node.
type Handshake struct {
	opts Options

	mu       sync.Mutex // guards the fields below
	nodename string
	creation uint32
	hints    map[string]string // listening address → node name, from the registrar
}

var _ node.HandshakeInterface = (*Handshake)(nil)

// ErrHandshake is matched (errors.Is) by every handshake failure.
var ErrHandshake = errors.New("erldist: handshake failed")

// NewHandshake returns a Handshake with opts.
func NewHandshake(opts Options) *Handshake {
	return &Handshake{opts: opts.withDefaults(), hints: make(map[string]string)}
}

// Init binds the handshake to the local node. ergo calls it for every
// listener and static route that uses it; a second node is refused.
func (h *Handshake) Init(nodename string, creation uint32, _ node.Flags) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nodename != "" && h.nodename != nodename {
		return fmt.Errorf("erldist: this Handshake serves node %s; create one per node (NewHandshake) for %s", h.nodename, nodename)
	}
	h.nodename, h.creation = nodename, creation
	return nil
}

// Version is 6: what EPMD registration advertises.
func (h *Handshake) Version() node.HandshakeVersion { return 6 }

func (h *Handshake) local() (string, uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodename, h.creation
}

// hint records that the node name listens on addr, as the registrar
// resolved it just before ergo dials: Start learns whom it dials before
// the peer says its name.
func (h *Handshake) hint(addr, name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hints[addr] = name
}

func (h *Handshake) hintFor(remote net.Addr) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hints[remote.String()]
}

// handshakeResult travels from the handshake to Proto.Init in
// node.HandshakeDetails.Custom.
type handshakeResult struct {
	peerFlags flags
	dialed    string // the address dialed ("" for accepted connections)
	release   func() // releases the dial lock and the pending mark
	reuse     *conn  // a live connection to hand to ergo instead of a new one
}

// hsConn reads and writes handshake messages (2-byte length prefix).
type hsConn struct {
	rw  lib.NetReadWriter
	buf [2]byte
}

func (c *hsConn) send(parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+n), uint16(n))
	for _, p := range parts {
		msg = append(msg, p...)
	}
	_, err := c.rw.Write(msg)
	return err
}

func (c *hsConn) recv() ([]byte, error) {
	if _, err := io.ReadFull(c.rw, c.buf[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(c.buf[:])
	if n == 0 {
		return nil, fmt.Errorf("%w: empty handshake message", ErrHandshake)
	}
	msg := make([]byte, n)
	_, err := io.ReadFull(c.rw, msg)
	return msg, err
}

// deadline bounds the handshake; the returned func lifts the bound.
func deadline(rw lib.NetReadWriter, d time.Duration) func() {
	t := time.Now().Add(d)
	_ = rw.SetReadDeadline(t)
	_ = rw.SetWriteDeadline(t)
	return func() {
		_ = rw.SetReadDeadline(time.Time{})
		_ = rw.SetWriteDeadline(time.Time{})
	}
}

func newChallenge() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// digest is MD5(cookie ++ decimal challenge).
func digest(challenge uint32, cookie string) []byte {
	d := md5.Sum([]byte(cookie + strconv.FormatUint(uint64(challenge), 10)))
	return d[:]
}

func hsError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrHandshake}, args...)...)
}

// Start dials: send_name, status, challenge, challenge_reply,
// challenge_ack. Concurrent dials of one peer are serialised; a dial that
// finds the peer already connected (another goroutine's dial got there
// first) hands ergo that connection instead of making a second.
func (h *Handshake) Start(remote net.Addr, rw lib.NetReadWriter, _ bool, cookie string) (node.HandshakeDetails, error) {
	name, creation := h.local()
	st := stateOf(name)
	hint := h.hintFor(remote)
	key := hint
	if key == "" {
		key = "addr " + remote.String()
	}
	release, err := st.acquireDial(key, 2*h.opts.HandshakeTimeout)
	if err != nil {
		return node.HandshakeDetails{}, err
	}
	unmark := func() {}
	if hint != "" {
		unmark = st.markPending(hint)
	}
	done := func() { unmark(); release() }
	// Released by the connection once ergo serves it, or when it does not
	// (a failed registration): at the latest after this.
	time.AfterFunc(4*h.opts.HandshakeTimeout, done)

	existing := st.lookupAddr(remote.String())
	if hint != "" {
		existing = st.lookup(hint)
	}
	if existing != nil {
		return reuseDetails(existing, done), nil
	}

	details, reuse, err := h.dial(rw, name, creation, hint, cookie, st)
	if err != nil {
		done()
		return details, err
	}
	if reuse != nil {
		return reuseDetails(reuse, done), nil
	}
	details.Custom = &handshakeResult{peerFlags: details.Custom.(flags), dialed: remote.String(), release: done}
	return details, nil
}

func reuseDetails(c *conn, release func()) node.HandshakeDetails {
	return node.HandshakeDetails{
		Name: c.peer, Flags: c.peerFlags.ergoFlags(), Creation: c.peerCreation, Version: 6,
		Custom: &handshakeResult{peerFlags: c.peerFlags, release: release, reuse: c},
	}
}

func (h *Handshake) dial(rw lib.NetReadWriter, name string, creation uint32, hint, cookie string,
	st *nodeState) (node.HandshakeDetails, *conn, error) {
	var details node.HandshakeDetails
	defer deadline(rw, h.opts.HandshakeTimeout)()
	c := &hsConn{rw: rw}

	var head [15]byte
	head[0] = 'N'
	binary.BigEndian.PutUint64(head[1:], uint64(ourFlags))
	binary.BigEndian.PutUint32(head[9:], creation)
	binary.BigEndian.PutUint16(head[13:], uint16(len(name)))
	if err := c.send(head[:], []byte(name)); err != nil {
		return details, nil, err
	}

	msg, err := c.recv()
	if err != nil {
		return details, nil, err
	}
	if msg[0] != 's' {
		return details, nil, hsError("expected a status, got message %q", msg[0])
	}
	switch status := string(msg[1:]); status {
	case "ok", "ok_simultaneous":
	case "alive":
		// The peer still has a connection from this node's name that this
		// node no longer has (else Start would have reused it): the old
		// one is dead, the peer is to drop it.
		if err := c.send([]byte("strue")); err != nil {
			return details, nil, err
		}
	case "nok":
		// Simultaneous connect and the peer's own dial wins: use its
		// connection once it is up.
		if hint != "" {
			ctx, cancel := contextWithTimeout(h.opts.HandshakeTimeout)
			defer cancel()
			if existing, err := st.await(ctx, hint); err == nil {
				return details, existing, nil
			}
		}
		return details, nil, hsError("%s is connecting to this node at the same time and won (status nok)", hint)
	default:
		return details, nil, hsError("the peer refused the connection (status %q)", status)
	}

	msg, err = c.recv()
	if err != nil {
		return details, nil, err
	}
	if msg[0] != 'N' || len(msg) < 19 {
		return details, nil, hsError("expected a version 6 challenge ('N'), got %d bytes starting %q", len(msg), msg[0])
	}
	peerFlags := flags(binary.BigEndian.Uint64(msg[1:]))
	challenge := binary.BigEndian.Uint32(msg[9:])
	details.Creation = binary.BigEndian.Uint32(msg[13:])
	nlen := int(binary.BigEndian.Uint16(msg[17:]))
	if 19+nlen > len(msg) {
		return details, nil, hsError("challenge name longer than the message")
	}
	details.Name = string(msg[19 : 19+nlen])
	if hint != "" && details.Name != hint {
		return details, nil, hsError("dialed %s, %s answered", hint, details.Name)
	}
	if !peerFlags.has(requiredFlags) {
		return details, nil, hsError("%s lacks %s", details.Name, peerFlags.missing())
	}

	ours := newChallenge()
	var reply [5]byte
	reply[0] = 'r'
	binary.BigEndian.PutUint32(reply[1:], ours)
	if err := c.send(reply[:], digest(challenge, cookie)); err != nil {
		return details, nil, err
	}
	msg, err = c.recv()
	if err != nil {
		return details, nil, fmt.Errorf("%w: no challenge ack from %s (a wrong cookie?): %v", ErrHandshake, details.Name, err)
	}
	if msg[0] != 'a' || len(msg) < 17 || !bytes.Equal(msg[1:17], digest(ours, cookie)) {
		return details, nil, hsError("%s answered the challenge wrongly (a different cookie)", details.Name)
	}
	details.Flags = peerFlags.ergoFlags()
	details.Version = 6
	details.Custom = peerFlags
	return details, nil, nil
}

// Accept answers a dial: recv_name ('N', or the old 'n' with
// DFLAG_HANDSHAKE_23), send_status, challenge, [complement],
// challenge_reply, challenge_ack. The status follows OTP: "alive" when a
// connection from that node is live here (the dialer says whether to
// replace it), "nok" or "ok_simultaneous" when this node is dialing it at
// the same time (the greater name wins), else "ok".
func (h *Handshake) Accept(_ net.Addr, rw lib.NetReadWriter, _ bool, cookie string) (node.HandshakeDetails, error) {
	var details node.HandshakeDetails
	name, creation := h.local()
	st := stateOf(name)
	defer deadline(rw, h.opts.HandshakeTimeout)()
	c := &hsConn{rw: rw}

	msg, err := c.recv()
	if err != nil {
		return details, err
	}
	var peerFlags flags
	old := false
	switch {
	case msg[0] == 'N' && len(msg) >= 15:
		peerFlags = flags(binary.BigEndian.Uint64(msg[1:]))
		details.Creation = binary.BigEndian.Uint32(msg[9:])
		nlen := int(binary.BigEndian.Uint16(msg[13:]))
		if 15+nlen > len(msg) {
			return details, hsError("send_name: name longer than the message")
		}
		details.Name = string(msg[15 : 15+nlen])
	case msg[0] == 'n' && len(msg) >= 7:
		if v := binary.BigEndian.Uint16(msg[1:]); v != 5 {
			return details, hsError("send_name 'n' with version %d", v)
		}
		peerFlags = flags(binary.BigEndian.Uint32(msg[3:]))
		details.Name = string(msg[7:])
		old = true
	default:
		return details, hsError("expected send_name, got %d bytes starting %q", len(msg), msg[0])
	}
	if details.Name == "" || len(details.Name) > 1023 {
		return details, hsError("node name of %d bytes", len(details.Name))
	}
	if !peerFlags.has(flagHandshake23) {
		_ = c.send([]byte("snot_allowed"))
		return details, hsError("%s speaks only handshake version 5 (no DFLAG_HANDSHAKE_23); OTP 23 or later is needed", details.Name)
	}

	var replaced *conn
	switch existing := st.lookup(details.Name); {
	case existing != nil:
		if err := c.send([]byte("salive")); err != nil {
			return details, err
		}
		msg, err := c.recv()
		if err != nil {
			return details, err
		}
		if string(msg) != "strue" {
			return details, hsError("%s keeps its existing connection", details.Name)
		}
		replaced = existing
	case st.isPending(details.Name) && name > details.Name:
		_ = c.send([]byte("snok"))
		return details, hsError("simultaneous connect with %s: this node's dial wins", details.Name)
	case st.isPending(details.Name):
		if err := c.send([]byte("sok_simultaneous")); err != nil {
			return details, err
		}
	default:
		if err := c.send([]byte("sok")); err != nil {
			return details, err
		}
	}

	ours := newChallenge()
	var head [19]byte
	head[0] = 'N'
	binary.BigEndian.PutUint64(head[1:], uint64(ourFlags))
	binary.BigEndian.PutUint32(head[9:], ours)
	binary.BigEndian.PutUint32(head[13:], creation)
	binary.BigEndian.PutUint16(head[17:], uint16(len(name)))
	if err := c.send(head[:], []byte(name)); err != nil {
		return details, err
	}

	if msg, err = c.recv(); err != nil {
		return details, err
	}
	if old {
		if msg[0] != 'c' || len(msg) < 9 {
			return details, hsError("expected the complement ('c') of %s's old send_name", details.Name)
		}
		peerFlags |= flags(binary.BigEndian.Uint32(msg[1:])) << 32
		details.Creation = binary.BigEndian.Uint32(msg[5:])
		if msg, err = c.recv(); err != nil {
			return details, err
		}
	}
	if msg[0] != 'r' || len(msg) < 21 {
		return details, hsError("expected a challenge reply ('r') from %s", details.Name)
	}
	if !bytes.Equal(msg[5:21], digest(ours, cookie)) {
		return details, hsError("%s answered the challenge wrongly (a different cookie)", details.Name)
	}
	if !peerFlags.has(requiredFlags) {
		return details, hsError("%s lacks %s", details.Name, peerFlags.missing())
	}
	var ack [1]byte
	ack[0] = 'a'
	if err := c.send(ack[:], digest(binary.BigEndian.Uint32(msg[1:]), cookie)); err != nil {
		return details, err
	}

	if replaced != nil {
		// The old connection must be gone (unregistered by ergo) before
		// ergo registers this one.
		replaced.abort("replaced by a new connection from the same node")
		select {
		case <-replaced.done:
		case <-time.After(h.opts.HandshakeTimeout):
			return details, hsError("the old connection to %s did not close", details.Name)
		}
	}
	details.Flags = peerFlags.ergoFlags()
	details.Version = 6
	details.Custom = &handshakeResult{peerFlags: peerFlags, release: func() {}}
	return details, nil
}

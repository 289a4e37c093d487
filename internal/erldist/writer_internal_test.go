package erldist

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/wire"
)

// testMsg is a SEND_SENDER-like message from key with payload.
func testMsg(t *testing.T, key etf.Pid, payload []byte) *outMsg {
	m := newOutMsg(key, false)
	var err error
	m.b, err = wire.AppendTerm(m.b, etf.Tuple{opSendSender, key, key})
	require.NoError(t, err)
	m.ctrlEnd = len(m.b)
	m.b, err = wire.AppendTerm(m.b, payload)
	require.NoError(t, err)
	return m
}

type frame struct {
	kind    byte // 68, 69, 70
	seq, id uint64
	body    []byte
}

func readFrame(t *testing.T, r io.Reader) frame {
	var hdr [4]byte
	_, err := io.ReadFull(r, hdr[:])
	require.NoError(t, err)
	p := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	_, err = io.ReadFull(r, p)
	require.NoError(t, err)
	require.Equal(t, byte(131), p[0])
	f := frame{kind: p[1]}
	switch f.kind {
	case 68:
		f.body = p[3:]
	case 69:
		f.seq, f.id, f.body = binary.BigEndian.Uint64(p[2:]), binary.BigEndian.Uint64(p[10:]), p[19:]
	case 70:
		f.seq, f.id, f.body = binary.BigEndian.Uint64(p[2:]), binary.BigEndian.Uint64(p[10:]), p[18:]
	}
	return f
}

// A large message goes out in fragments between other senders' messages;
// its sender's next message waits for its last fragment; the fragments
// put together are the message.
func TestWriterInterleavesFragmentsAndKeepsPerSenderOrder(t *testing.T) {
	local, remote := net.Pipe()
	defer local.Close()
	defer remote.Close()
	w := newWriter(local, 64<<10, true)
	done := make(chan error, 1)
	go func() { done <- w.run() }()

	a := etf.Pid{Node: "n@h", ID: 1}
	b := etf.Pid{Node: "n@h", ID: 2}
	big := bytes.Repeat([]byte{7}, 1<<20)
	bigMsg := testMsg(t, a, big)
	whole := append([]byte(nil), bigMsg.b[7:]...) // control and payload, as the peer reassembles them
	require.True(t, w.enqueue(bigMsg))
	require.True(t, w.enqueue(testMsg(t, b, []byte("b small"))))
	require.True(t, w.enqueue(testMsg(t, a, []byte("a small"))))

	r := bufio.NewReader(remote)
	var order []string
	var assembled []byte
	for len(order) < 3 {
		f := readFrame(t, r)
		assert.LessOrEqual(t, len(f.body), 64<<10+64, "a fragment is at most the fragment size (plus the control message)")
		switch f.kind {
		case 69:
			assert.Equal(t, uint64(17), f.id, "1 MiB in 64 KiB fragments, and the control message")
			assembled = append(assembled, f.body...)
		case 70:
			assembled = append(assembled, f.body...)
			if f.id == 1 {
				order = append(order, "a big")
			}
		case 68:
			switch {
			case bytes.HasSuffix(f.body, []byte("b small")):
				order = append(order, "b small")
			case bytes.HasSuffix(f.body, []byte("a small")):
				order = append(order, "a small")
			}
		}
	}
	assert.Equal(t, []string{"b small", "a big", "a small"}, order)
	assert.True(t, bytes.Equal(whole, assembled), "the fragments make up the message")
	w.close()
	assert.NoError(t, <-done)
}

// Nothing queued, nothing written; a tick goes out when nothing else did.
func TestWriterTicksWhenIdle(t *testing.T) {
	local, remote := net.Pipe()
	defer local.Close()
	defer remote.Close()
	w := newWriter(local, 64<<10, true)
	done := make(chan error, 1)
	go func() { done <- w.run() }()
	w.tick()
	var hdr [4]byte
	_, err := io.ReadFull(remote, hdr[:])
	require.NoError(t, err)
	assert.Equal(t, [4]byte{}, hdr, "an empty packet")
	w.close()
	assert.NoError(t, <-done)
}

package erldist

import "fmt"

// SendRawForTest queues packet (a distribution packet without its length
// prefix) on the connection of node local to peer, as if it were a
// message: the tests' way to make a peer receive what no correct node
// sends.
func SendRawForTest(local, peer string, packet []byte) error {
	ctx, cancel := contextWithTimeout(DefaultHandshakeTimeout)
	defer cancel()
	c, err := stateOf(local).await(ctx, peer)
	if err != nil {
		return fmt.Errorf("no connection from %s to %s: %w", local, peer, err)
	}
	m := &outMsg{b: append(make([]byte, 4), packet...)}
	m.ctrlEnd = len(m.b)
	if !c.w.enqueue(m) {
		return ErrClosed
	}
	return nil
}

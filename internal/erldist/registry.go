package erldist

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// nodeState is what this process knows about one local node's
// connections: the live ones (so that SpawnMonitor, the handshake's
// status answers and concurrent dials can find them) and the dials in
// progress. Keyed by the local node's name: a node restarted under the
// same name finds its predecessor's connections gone (each removes itself
// when it ends).
type nodeState struct {
	name string

	mu      sync.Mutex               // guards the fields below
	conns   map[string]*conn         // peer name → serving connection
	changed chan struct{}            // closed (and replaced) when conns changes
	dials   map[string]chan struct{} // dial key → held; closed on release
	pending map[string]int           // peer names being dialed (known from the registrar)
}

var registry struct {
	mu    sync.Mutex
	nodes map[string]*nodeState
}

// stateOf returns the state of the local node named local.
func stateOf(local string) *nodeState {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.nodes == nil {
		registry.nodes = make(map[string]*nodeState)
	}
	s := registry.nodes[local]
	if s == nil {
		s = &nodeState{
			name:    local,
			conns:   make(map[string]*conn),
			changed: make(chan struct{}),
			dials:   make(map[string]chan struct{}),
			pending: make(map[string]int),
		}
		registry.nodes[local] = s
	}
	return s
}

// lookup returns the live connection to peer, or nil.
func (s *nodeState) lookup(peer string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[peer]
}

// lookupAddr returns the live connection this node dialed to addr.
func (s *nodeState) lookupAddr(addr string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if c.dialedAddr == addr {
			return c
		}
	}
	return nil
}

// add records c as the live connection to its peer (replacing nothing:
// ergo registers one connection per peer, so an older one has removed
// itself first).
func (s *nodeState) add(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c.peer] = c
	close(s.changed)
	s.changed = make(chan struct{})
}

// remove forgets c if it is the live connection to its peer.
func (s *nodeState) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[c.peer] == c {
		delete(s.conns, c.peer)
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

// await returns the live connection to peer, waiting for one until ctx
// ends.
func (s *nodeState) await(ctx context.Context, peer string) (*conn, error) {
	for {
		s.mu.Lock()
		c, changed := s.conns[peer], s.changed
		s.mu.Unlock()
		if c != nil {
			return c, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// acquireDial takes the dial lock of key (a peer name, or an address when
// the name is unknown), waiting at most timeout for another dial of the
// same key to finish. The returned release is idempotent.
func (s *nodeState) acquireDial(key string, timeout time.Duration) (release func(), err error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		held, busy := s.dials[key]
		if !busy {
			ch := make(chan struct{})
			s.dials[key] = ch
			s.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					s.mu.Lock()
					delete(s.dials, key)
					s.mu.Unlock()
					close(ch)
				})
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-held:
		case <-deadline.C:
			return nil, fmt.Errorf("erldist: another connection attempt to %s did not finish within %v", key, timeout)
		}
	}
}

// markPending records that peer is being dialed; the returned func undoes
// it.
func (s *nodeState) markPending(peer string) func() {
	s.mu.Lock()
	s.pending[peer]++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.pending[peer]--; s.pending[peer] <= 0 {
				delete(s.pending, peer)
			}
			s.mu.Unlock()
		})
	}
}

func (s *nodeState) isPending(peer string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[peer] > 0
}

package erldist

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/actors/wire"
)

// ErrNoConnection is matched (errors.Is) by SpawnReply.Err when the
// connection to the peer went down before the reply came, and by
// SpawnMonitor's error when no connection could be made.
var ErrNoConnection = errors.New("erldist: noconnection")

// SpawnError is a spawn request the peer refused: Reason is its error atom
// (badarg, system_limit, 'unknown behavior' from ergo nodes...).
type SpawnError struct {
	Reason etf.Atom
}

func (e *SpawnError) Error() string { return "erldist: spawn request refused: " + string(e.Reason) }

// SpawnReply is the answer to a SpawnMonitor request: the new process, or
// why there is none (a *SpawnError, or an error matching ErrNoConnection).
type SpawnReply struct {
	Pid etf.Pid
	Err error
}

// Spawn is a process spawned on another node with a monitor, by
// SpawnMonitor: Erlang's spawn_monitor(Node, Module, Function, Args) for
// Go code that is not a process (the DOWN is delivered here, not to a
// mailbox).
//
// Reply delivers exactly one SpawnReply. Down delivers exactly one reason
// term, unless Cancel comes first: the process's exit reason (any term,
// any size; atoms such as normal or noproc as etf.Atom) when the spawn
// succeeded; the error atom when the peer refused it (as spawn_monitor's
// DOWN would); noconnection when the connection went down first. Both
// channels are buffered: a Spawn nobody reads does not block the
// connection. A Spawn is safe for concurrent use.
type Spawn struct {
	c    *conn
	ref  etf.Ref
	from etf.Pid

	reply chan SpawnReply
	down  chan etf.Term

	mu        sync.Mutex // guards the fields below
	pid       etf.Pid
	replied   bool
	cancelled bool
	finished  bool
	raw       wire.RawTerm
}

// Ref is the request id, which is also the monitor's reference.
func (s *Spawn) Ref() etf.Ref { return s.ref }

// Reply delivers the spawn's outcome once.
func (s *Spawn) Reply() <-chan SpawnReply { return s.reply }

// Down delivers the process's exit reason once (see Spawn).
func (s *Spawn) Down() <-chan etf.Term { return s.down }

// Pid returns the spawned process once the reply came.
func (s *Spawn) Pid() (etf.Pid, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid, s.replied && s.pid != (etf.Pid{})
}

// DownRaw returns the exit reason as it came over the wire, in the
// external term format (131 first), once Down has delivered; nil before.
// wire.Unmarshal and friends can read it without building the term.
func (s *Spawn) DownRaw() wire.RawTerm {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw
}

// Cancel gives up on the spawn: the monitor is removed (DEMONITOR_P with
// the request id; if the reply has not come yet, as soon as it does) and
// nothing more is delivered. The process itself goes on, as after
// erlang:demonitor/1.
func (s *Spawn) Cancel() {
	s.mu.Lock()
	if s.finished || s.cancelled {
		s.mu.Unlock()
		return
	}
	s.cancelled = true
	replied, pid := s.replied, s.pid
	s.mu.Unlock()
	if !replied {
		return // spawnReply demonitors when the reply comes
	}
	if s.c.takeSpawn(s.ref, true) != nil && pid != (etf.Pid{}) {
		_ = s.c.queue(s.from, etf.Tuple{opDemonitorP, s.from, pid, s.ref}, nil, false)
	}
	s.mu.Lock()
	s.finished = true
	s.mu.Unlock()
}

func (s *Spawn) deliverReply(r SpawnReply) (cancelled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replied {
		return s.cancelled
	}
	s.replied, s.pid = true, r.Pid
	if !s.cancelled {
		s.reply <- r
	}
	return s.cancelled
}

func (s *Spawn) deliverDown(reason string) {
	term := ReasonTerm(reason)
	var raw wire.RawTerm
	if len(reason) > 1 && reason[:2] == reasonMarker+"\x83" {
		raw = wire.RawTerm(reason[1:])
	} else {
		raw, _ = wire.RawTermOf(term)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return
	}
	s.finished = true
	s.raw = raw
	if !s.cancelled {
		s.down <- term
	}
}

// refs made here: a counter in the first two words, a per-process random
// third word with the top bit set. ergo's own references always have a
// zero third word (and repeat every 2^18, node/core.go MakeRef), so these
// never meet one.
var (
	refCounter atomic.Uint64
	refSalt    = func() uint32 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		return binary.BigEndian.Uint32(b[:]) | 1<<31
	}()
)

func newRef(node etf.Atom, creation uint32) etf.Ref {
	n := refCounter.Add(1)
	return etf.Ref{Node: node, Creation: creation, ID: [5]uint32{uint32(n & (1<<18 - 1)), uint32(n >> 18), refSalt}}
}

// SpawnMonitor sends SPAWN_REQUEST {Module, Function, len(args)} with the
// option list [monitor] from the process from to node peer (connecting if
// needed: ctx bounds the wait) and returns once the request is queued on
// the connection. The Spawn delivers the reply and then the DOWN reason
// (see Spawn); Cancel demonitors and frees everything. The monitor is
// made by the peer together with the process (its reference is the
// request id), so a process that exits at once still reports its own
// reason, never noproc: what ergo's RemoteSpawn, which monitors in a
// separate message after the reply, cannot promise.
//
// args may hold wire.RawTerm values (pre-encoded terms, 131 first): they
// are written as they are, so a large value is encoded once, in the
// caller. from is the process the peer sees as the requester (and group
// leader); it must be a process of a node that uses this package.
func SpawnMonitor(ctx context.Context, from gen.Process, peer, module, function string, args []etf.Term) (*Spawn, error) {
	self := from.Self()
	if peer == string(self.Node) {
		return nil, fmt.Errorf("erldist: SpawnMonitor to the node itself (%s)", peer)
	}
	st := stateOf(from.NodeName())
	c := st.lookup(peer)
	if c == nil {
		if cn, ok := from.(interface{ Connect(string) error }); ok {
			if err := cn.Connect(peer); err != nil {
				return nil, fmt.Errorf("%w: cannot connect to %s: %v", ErrNoConnection, peer, err)
			}
		}
		var err error
		if c, err = st.await(ctx, peer); err != nil {
			return nil, fmt.Errorf("%w: no erldist connection to %s: %v", ErrNoConnection, peer, err)
		}
	}
	if !c.peerFlags.has(flagSpawn) {
		return nil, fmt.Errorf("erldist: %s does not accept spawn requests (no DFLAG_SPAWN)", peer)
	}
	s := &Spawn{
		c: c, ref: newRef(self.Node, self.Creation), from: self,
		reply: make(chan SpawnReply, 1), down: make(chan etf.Term, 1),
	}
	c.mu.Lock()
	closed := c.spawnOut == nil
	if !closed {
		c.spawnOut[s.ref] = s
	}
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: the connection to %s is closing", ErrNoConnection, peer)
	}
	mfa := etf.Tuple{etf.Atom(module), etf.Atom(function), len(args)}
	ctrl := etf.Tuple{opSpawnRequest, s.ref, self, self, mfa, etf.List{etf.Atom("monitor")}}
	if err := c.queue(self, ctrl, etf.List(args), true); err != nil {
		c.takeSpawn(s.ref, true)
		return nil, err
	}
	return s, nil
}

// takeSpawn returns the SpawnMonitor request ref, removing it when final.
func (c *conn) takeSpawn(ref etf.Ref, final bool) *Spawn {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.spawnOut[ref]
	if s != nil && final {
		delete(c.spawnOut, ref)
	}
	return s
}

// spawnReply handles SPAWN_REPLY: a SpawnMonitor's, else ergo's
// RemoteSpawn's (through the core).
func (c *conn) spawnReply(ref etf.Ref, to etf.Pid, result etf.Term) {
	s := c.takeSpawn(ref, false)
	if s == nil {
		_ = c.router.RouteSpawnReply(to, ref, result)
		return
	}
	switch r := result.(type) {
	case etf.Pid:
		if s.deliverReply(SpawnReply{Pid: r}) {
			// Cancelled before the reply: demonitor now.
			c.takeSpawn(ref, true)
			_ = c.queue(s.from, etf.Tuple{opDemonitorP, s.from, r, ref}, nil, false)
		}
	default:
		a, _ := result.(etf.Atom)
		if a == "" {
			a = "badarg"
		}
		c.takeSpawn(ref, true)
		s.deliverReply(SpawnReply{Err: &SpawnError{Reason: a}})
		s.deliverDown(string(a))
	}
}

// failSpawns ends every SpawnMonitor request of a closing connection with
// noconnection; later ones are refused.
func (c *conn) failSpawns() {
	c.mu.Lock()
	out := c.spawnOut
	c.spawnOut = nil
	c.mu.Unlock()
	for _, s := range out {
		s.deliverReply(SpawnReply{Err: fmt.Errorf("%w: the connection to %s went down", ErrNoConnection, c.peer)})
		s.deliverDown("noconnection")
	}
}

package erldist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/wire"
)

// Control message operations (erts "Distribution Protocol", Protocol
// between Connected Nodes).
const (
	opLink                = 1
	opSend                = 2
	opExit                = 3
	opUnlink              = 4
	opNodeLink            = 5
	opRegSend             = 6
	opGroupLeader         = 7
	opExit2               = 8
	opSendTT              = 12
	opExitTT              = 13
	opRegSendTT           = 16
	opExit2TT             = 18
	opMonitorP            = 19
	opDemonitorP          = 20
	opMonitorPExit        = 21
	opSendSender          = 22
	opSendSenderTT        = 23
	opPayloadExit         = 24
	opPayloadExitTT       = 25
	opPayloadExit2        = 26
	opPayloadExit2TT      = 27
	opPayloadMonitorPExit = 28
	opSpawnRequest        = 29
	opSpawnRequestTT      = 30
	opSpawnReply          = 31
	opSpawnReplyTT        = 32
	opAliasSend           = 33
	opAliasSendTT         = 34
	opUnlinkID            = 35
	opUnlinkIDAck         = 36
	spawnReplyFlagLink    = 1
	spawnReplyFlagMonitor = 2
	emptyAtom             = etf.Atom("")
)

// ErrClosed is returned (wrapped, with lib.ErrNoRoute) by a connection's
// send methods once it has closed.
var ErrClosed = errors.New("erldist: connection closed")

// conn is one distribution connection: a node.ConnectionInterface for
// ergo's core. Its send methods encode in the caller's goroutine and
// queue bytes for the writer; Serve's goroutine reads and routes.
type conn struct {
	opts  Options
	log   *logLimiter
	local string
	peer  string
	st    *nodeState
	gate  routeGate // shut by Quiesce (quiesce.go)

	peerFlags    flags
	peerCreation uint32
	passThrough  bool   // the peer has no distribution header: pass-through packets
	dialedAddr   string // for connections this node dialed

	nc      lib.NetReadWriter
	w       *writer
	ctx     context.Context
	cancel  context.CancelFunc
	release func() // the dial lock, released once ergo serves the connection

	// coreRelease releases coreLock, held while ergo registers or
	// unregisters the connection. Set and called by ergo's calls of
	// Init, Serve and Terminate, which come one after the other.
	coreRelease func()

	serving   atomic.Bool
	abortOnce sync.Once
	doneOnce  sync.Once
	done      chan struct{} // closed by Terminate

	router node.CoreRouter
	procs  processFinder

	// Reader state (Serve's goroutine).
	rd readerState

	mu        sync.Mutex               // guards the maps below
	spawnIn   map[etf.Ref]spawnInbound // received SPAWN_REQUESTs awaiting ergo's SpawnReply
	spawnOut  map[etf.Ref]*Spawn       // SpawnMonitor requests
	noUnlink  map[[2]etf.Pid]int       // Unlink calls not to send (an incoming unlink)
	unlinkIDs atomic.Uint64

	bytesIn atomic.Uint64
	msgsIn  atomic.Uint64
	packets atomic.Uint64 // packets read, ticks included: the watchdog's pulse
}

// processFinder is what ergo's core offers beyond node.CoreRouter and this
// layer uses for exit signals.
type processFinder interface {
	ProcessByPid(pid etf.Pid) gen.Process
}

var _ node.ConnectionInterface = (*conn)(nil)

func (c *conn) closedErr() error {
	return fmt.Errorf("%w: %w to %s", lib.ErrNoRoute, ErrClosed, c.peer)
}

// abort closes the socket: the reader fails and Serve ends.
func (c *conn) abort(why string) {
	c.abortOnce.Do(func() {
		c.log.log.Debug("erldist: closing connection", "local", c.local, "peer", c.peer, "why", why)
		if cl, ok := c.nc.(io.Closer); ok {
			_ = cl.Close()
		}
		c.cancel()
	})
}

// queue encodes control and payload (if hasPayload) as one message of
// sender key and queues it.
func (c *conn) queue(key etf.Pid, control etf.Tuple, payload etf.Term, hasPayload bool) error {
	m := newOutMsg(key, c.passThrough)
	var err error
	if m.b, err = wire.AppendTerm(m.b, control); err != nil {
		m.recycle()
		return c.encodeFailed(control, err)
	}
	m.ctrlEnd = len(m.b)
	if hasPayload {
		if c.passThrough {
			m.b = append(m.b, 131)
		}
		if m.b, err = wire.AppendTerm(m.b, payload); err != nil {
			m.recycle()
			return c.encodeFailed(control, err)
		}
	}
	if !c.w.enqueue(m) {
		return c.closedErr()
	}
	return nil
}

// queueReason is queue for signals whose payload (or last control
// element) is an exit reason string. Once the local node is stopping (the
// connection's context, derived from the node's, is done), exit signals
// are not sent: ergo kills every process as it stops, and the peer is to
// see what Erlang shows for a node that goes away, noconnection, not the
// "kill" of each process.
func (c *conn) queueReason(key etf.Pid, control etf.Tuple, reason string, payload bool) error {
	if c.ctx.Err() != nil {
		return nil
	}
	m := newOutMsg(key, c.passThrough)
	var err error
	if !payload {
		// The reason is the control tuple's last element: write the
		// other elements, count one more in the arity byte of the
		// SMALL_TUPLE_EXT, then write the reason's term.
		if m.b, err = wire.AppendTerm(m.b, control); err != nil {
			m.recycle()
			return c.encodeFailed(control, err)
		}
		m.b[headerLenFor(c.passThrough)+1]++
		m.b = appendReason(m.b, reason)
		m.ctrlEnd = len(m.b)
	} else {
		if m.b, err = wire.AppendTerm(m.b, control); err != nil {
			m.recycle()
			return c.encodeFailed(control, err)
		}
		m.ctrlEnd = len(m.b)
		if c.passThrough {
			m.b = append(m.b, 131)
		}
		m.b = appendReason(m.b, reason)
	}
	if !c.w.enqueue(m) {
		return c.closedErr()
	}
	return nil
}

func headerLenFor(passThrough bool) int {
	if passThrough {
		return 6
	}
	return headerLen
}

func (c *conn) encodeFailed(control etf.Tuple, err error) error {
	op := -1
	if len(control) > 0 {
		if v, ok := control[0].(int); ok {
			op = v
		}
	}
	c.log.warn(fmt.Sprintf("encode:%d", op), "erldist: a message to another node cannot be encoded; it is dropped",
		"local", c.local, "peer", c.peer, "op", op, "error", err)
	return fmt.Errorf("erldist: message to %s not sent: %w", c.peer, err)
}

// Send sends message to the remote pid to (SEND_SENDER, or SEND to peers
// without DFLAG_SEND_SENDER).
func (c *conn) Send(from gen.Process, to etf.Pid, message etf.Term) error {
	self := from.Self()
	if c.peerFlags.has(flagSendSender) {
		return c.queue(self, etf.Tuple{opSendSender, self, to}, message, true)
	}
	return c.queue(self, etf.Tuple{opSend, emptyAtom, to}, message, true)
}

// SendReg sends message to a process registered on the peer (REG_SEND).
func (c *conn) SendReg(from gen.Process, to gen.ProcessID, message etf.Term) error {
	self := from.Self()
	return c.queue(self, etf.Tuple{opRegSend, self, emptyAtom, etf.Atom(to.Name)}, message, true)
}

// SendAlias sends message to a process alias on the peer (ALIAS_SEND).
func (c *conn) SendAlias(from gen.Process, to etf.Alias, message etf.Term) error {
	if !c.peerFlags.has(flagAlias) {
		return lib.ErrPeerUnsupported
	}
	self := from.Self()
	return c.queue(self, etf.Tuple{opAliasSend, self, etf.Ref(to)}, message, true)
}

// Link sends LINK.
func (c *conn) Link(local, remote etf.Pid) error {
	return c.queue(local, etf.Tuple{opLink, local, remote}, nil, false)
}

// Unlink sends UNLINK_ID (the new link protocol), or UNLINK to peers
// without it. An unlink that ergo's core makes because the peer unlinked
// (see unlinkSilently) is not sent back.
func (c *conn) Unlink(local, remote etf.Pid) error {
	key := [2]etf.Pid{local, remote}
	c.mu.Lock()
	if c.noUnlink[key] > 0 {
		if c.noUnlink[key]--; c.noUnlink[key] == 0 {
			delete(c.noUnlink, key)
		}
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if c.peerFlags.has(flagUnlinkID) {
		id := c.unlinkIDs.Add(1)
		return c.queue(local, etf.Tuple{opUnlinkID, id, local, remote}, nil, false)
	}
	return c.queue(local, etf.Tuple{opUnlink, local, remote}, nil, false)
}

// LinkExit sends the exit signal of a link (PAYLOAD_EXIT or EXIT) with
// reason as its term.
func (c *conn) LinkExit(to, terminated etf.Pid, reason string) error {
	if c.peerFlags.has(flagExitPayload) {
		return c.queueReason(terminated, etf.Tuple{opPayloadExit, terminated, to}, reason, true)
	}
	return c.queueReason(terminated, etf.Tuple{opExit, terminated, to}, reason, false)
}

// Monitor sends MONITOR_P.
func (c *conn) Monitor(local, remote etf.Pid, ref etf.Ref) error {
	return c.queue(local, etf.Tuple{opMonitorP, local, remote, ref}, nil, false)
}

// Demonitor sends DEMONITOR_P.
func (c *conn) Demonitor(local, remote etf.Pid, ref etf.Ref) error {
	return c.queue(local, etf.Tuple{opDemonitorP, local, remote, ref}, nil, false)
}

// MonitorExit sends the DOWN of a local process to its remote watcher
// (PAYLOAD_MONITOR_P_EXIT or MONITOR_P_EXIT) with reason as its term.
func (c *conn) MonitorExit(to, terminated etf.Pid, reason string, ref etf.Ref) error {
	if c.peerFlags.has(flagExitPayload) {
		return c.queueReason(terminated, etf.Tuple{opPayloadMonitorPExit, terminated, to, ref}, reason, true)
	}
	return c.queueReason(terminated, etf.Tuple{opMonitorPExit, terminated, to, ref}, reason, false)
}

// MonitorReg sends MONITOR_P of a registered name.
func (c *conn) MonitorReg(local etf.Pid, remote gen.ProcessID, ref etf.Ref) error {
	return c.queue(local, etf.Tuple{opMonitorP, local, etf.Atom(remote.Name), ref}, nil, false)
}

// DemonitorReg sends DEMONITOR_P of a registered name.
func (c *conn) DemonitorReg(local etf.Pid, remote gen.ProcessID, ref etf.Ref) error {
	return c.queue(local, etf.Tuple{opDemonitorP, local, etf.Atom(remote.Name), ref}, nil, false)
}

// MonitorExitReg sends the DOWN of a local registered name.
func (c *conn) MonitorExitReg(to etf.Pid, terminated gen.ProcessID, reason string, ref etf.Ref) error {
	name := etf.Atom(terminated.Name)
	if c.peerFlags.has(flagExitPayload) {
		return c.queueReason(to, etf.Tuple{opPayloadMonitorPExit, name, to, ref}, reason, true)
	}
	return c.queueReason(to, etf.Tuple{opMonitorPExit, name, to, ref}, reason, false)
}

// SpawnRequest sends SPAWN_REQUEST for ergo's RemoteSpawn: module is the
// behaviour name, Function the function, the option list holds only
// {name, Name} (ergo's RemoteSpawn sets up a monitor or link itself once
// the reply came; SpawnMonitor asks the peer to).
func (c *conn) SpawnRequest(_ string, behaviorName string, request gen.RemoteSpawnRequest, args ...etf.Term) error {
	if !c.peerFlags.has(flagSpawn) {
		return lib.ErrPeerUnsupported
	}
	opts := etf.List{}
	if request.Options.Name != "" {
		opts = etf.List{etf.Tuple{etf.Atom("name"), etf.Atom(request.Options.Name)}}
	}
	mfa := etf.Tuple{etf.Atom(behaviorName), etf.Atom(request.Options.Function), len(args)}
	return c.queue(request.From, etf.Tuple{opSpawnRequest, request.Ref, request.From, request.From, mfa, opts},
		etf.List(args), true)
}

// Proxies are ergo's own extension: not supported.

// ProxyConnectRequest is not supported.
func (c *conn) ProxyConnectRequest(node.ProxyConnectRequest) error { return lib.ErrUnsupported }

// ProxyConnectReply is not supported.
func (c *conn) ProxyConnectReply(node.ProxyConnectReply) error { return lib.ErrUnsupported }

// ProxyConnectCancel is not supported.
func (c *conn) ProxyConnectCancel(node.ProxyConnectCancel) error { return lib.ErrUnsupported }

// ProxyDisconnect is not supported.
func (c *conn) ProxyDisconnect(node.ProxyDisconnect) error { return lib.ErrUnsupported }

// ProxyRegisterSession is not supported.
func (c *conn) ProxyRegisterSession(node.ProxySession) error { return lib.ErrUnsupported }

// ProxyUnregisterSession is not supported.
func (c *conn) ProxyUnregisterSession(string) error { return lib.ErrUnsupported }

// ProxyPacket is not supported.
func (c *conn) ProxyPacket(*lib.Buffer) error { return lib.ErrUnsupported }

// Creation is the peer's creation.
func (c *conn) Creation() uint32 { return c.peerCreation }

// Stats counts the connection's traffic.
func (c *conn) Stats() node.NetworkStats {
	return node.NetworkStats{
		NodeName:    c.peer,
		BytesIn:     c.bytesIn.Load(),
		BytesOut:    c.w.bytesOut.Load(),
		MessagesIn:  c.msgsIn.Load(),
		MessagesOut: c.w.msgsOut.Load(),
	}
}

package erldist

import (
	"fmt"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/wire"
)

// Incoming SPAWN_REQUEST (spawn_request/5, spawn_monitor/4, erpc, Nx's
// Node.spawn_monitor): the process is spawned through ergo's core
// (RouteSpawnRequest: the behaviour registered with ProvideRemoteSpawn
// under the module's name, Function in the process environment as ergo
// keeps it), and SpawnReply answers with the flags of what was set up: a
// monitor whose reference is the request id, a link. ergo starts the
// process before it calls SpawnReply, so a process that ends at once would
// end before the monitor exists (and the requester would get noproc):
// AwaitSpawnReply holds it back until the reply is on its way and the
// monitor and link are in place.

// spawnInbound is what a received SPAWN_REQUEST asked for.
type spawnInbound struct {
	from          etf.Pid
	monitor, link bool
}

// AwaitSpawnReplyTimeout bounds AwaitSpawnReply.
const AwaitSpawnReplyTimeout = 10 * time.Second

// gates hold back the processes of remote spawn requests until their
// reply is written: (local node, request id) → closed when it is.
var gates struct {
	mu sync.Mutex
	m  map[gateKey]chan struct{}
}

type gateKey struct {
	node string
	ref  etf.Ref
}

func openGate(local string, ref etf.Ref) {
	gates.mu.Lock()
	defer gates.mu.Unlock()
	if gates.m == nil {
		gates.m = make(map[gateKey]chan struct{})
	}
	gates.m[gateKey{local, ref}] = make(chan struct{})
}

func closeGate(local string, ref etf.Ref) {
	gates.mu.Lock()
	defer gates.mu.Unlock()
	k := gateKey{local, ref}
	if ch := gates.m[k]; ch != nil {
		close(ch)
		delete(gates.m, k)
	}
}

func gateOf(local string, ref etf.Ref) chan struct{} {
	gates.mu.Lock()
	defer gates.mu.Unlock()
	return gates.m[gateKey{local, ref}]
}

// AwaitSpawnReply blocks (at most AwaitSpawnReplyTimeout) until the
// SPAWN_REPLY for the calling process has been written and the
// requester's monitor and link are in place. A behaviour started by a
// remote spawn request calls it at the start of its ProcessLoop, after
// signalling started (ergo waits for that before it replies); for any
// other process it returns at once. actors.Actor calls it for every
// behaviour it runs.
//
// Such a process finds the request id in its environment:
// p.Env(node.EnvKeyRemoteSpawn).(gen.RemoteSpawnOptions).Monitor is the
// request id (the requester's monitor reference, if it asked for one),
// Link says whether it asked for a link, Function is the function of the
// request's {Module, Function, Arity}.
func AwaitSpawnReply(p gen.Process) {
	opts, ok := p.Env(node.EnvKeyRemoteSpawn).(gen.RemoteSpawnOptions)
	if !ok {
		return
	}
	ch := gateOf(p.NodeName(), opts.Monitor)
	if ch == nil {
		return
	}
	t := time.NewTimer(AwaitSpawnReplyTimeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-p.Context().Done():
	}
}

// spawnRequest handles SPAWN_REQUEST(_TT): {29, ReqId, From, GroupLeader,
// {Module, Function, Arity}, OptList[, Token]} followed by ArgList. Every
// option list is accepted: monitor and link (bare or as {monitor, _} and
// {link, _}) are honoured, {name, Atom} registers the process, anything
// else is ignored.
func (c *conn) spawnRequest(op int, ctrl etf.Tuple, rest []byte, d wire.TermDecoder) error {
	n := 6
	if op == opSpawnRequestTT {
		n = 7
	}
	if len(ctrl) != n {
		return fmt.Errorf("%w: %d elements", errShape, len(ctrl))
	}
	if err := shape(ctrl[:6], "", "ref", "pid", "", "", ""); err != nil {
		return err
	}
	reqID, from := ctrl[1].(etf.Ref), ctrl[2].(etf.Pid)
	mfa, ok := ctrl[4].(etf.Tuple)
	if !ok || len(mfa) != 3 {
		return fmt.Errorf("%w: {Module, Function, Arity} is not a 3-tuple", errShape)
	}
	module, ok1 := mfa[0].(etf.Atom)
	function, ok2 := mfa[1].(etf.Atom)
	if !ok1 || !ok2 {
		return fmt.Errorf("%w: module or function is not an atom", errShape)
	}
	argTerm, _, err := d.Decode(rest)
	if err != nil {
		return fmt.Errorf("the argument list: %w", err)
	}
	args, ok := argTerm.(etf.List)
	if !ok {
		return fmt.Errorf("%w: the argument list is a %T", errShape, argTerm)
	}
	in := spawnInbound{from: from}
	name := ""
	if opts, ok := ctrl[5].(etf.List); ok {
		for _, o := range opts {
			switch v := o.(type) {
			case etf.Atom:
				in.monitor = in.monitor || v == "monitor"
				in.link = in.link || v == "link"
			case etf.Tuple:
				if len(v) != 2 {
					continue
				}
				switch v[0] {
				case etf.Atom("monitor"):
					in.monitor = true
				case etf.Atom("link"):
					in.link = true
				case etf.Atom("name"):
					if a, ok := v[1].(etf.Atom); ok {
						name = string(a)
					}
				}
			}
		}
	}
	c.mu.Lock()
	c.spawnIn[reqID] = in
	c.mu.Unlock()
	openGate(c.local, reqID)
	request := gen.RemoteSpawnRequest{From: from, Ref: reqID, Options: gen.RemoteSpawnOptions{
		Name: name, Monitor: reqID, Link: in.link, Function: string(function),
	}}
	// Off the reader: the behaviour's Init runs inside RouteSpawnRequest,
	// and it may talk to the network.
	go func() {
		err := c.router.RouteSpawnRequest(c.local, string(module), request, args...)
		c.mu.Lock()
		_, unanswered := c.spawnIn[reqID]
		delete(c.spawnIn, reqID)
		c.mu.Unlock()
		if unanswered {
			// The core neither spawned nor refused (it found no
			// connection back, say): answer for it.
			if err == nil {
				err = fmt.Errorf("spawn failed")
			}
			_ = c.SpawnReplyError(from, reqID, err)
		}
		closeGate(c.local, reqID)
	}()
	return nil
}

// SpawnReply answers a spawn request with the new process: SPAWN_REPLY
// with the flags of the monitor (reference: the request id) and link it
// asked for, which are then set up in the core, and the process's gate
// opens. The reply is queued as the spawned process's first signal, so it
// reaches the requester before anything the process sends.
func (c *conn) SpawnReply(to etf.Pid, ref etf.Ref, spawned etf.Pid) error {
	c.mu.Lock()
	in, ok := c.spawnIn[ref]
	delete(c.spawnIn, ref)
	c.mu.Unlock()
	defer closeGate(c.local, ref)
	fl := 0
	if ok && in.link {
		fl |= spawnReplyFlagLink
	}
	if ok && in.monitor {
		fl |= spawnReplyFlagMonitor
	}
	if err := c.queue(spawned, etf.Tuple{opSpawnReply, ref, to, fl, spawned}, nil, false); err != nil {
		return err
	}
	if ok && in.monitor {
		_ = c.router.RouteMonitor(to, spawned, ref)
	}
	if ok && in.link {
		_ = c.router.RouteLink(to, spawned)
	}
	return nil
}

// SpawnReplyError answers a spawn request that failed with the error's
// text as an atom: 'unknown behavior' when no behaviour is registered
// under the module's name (OTP would spawn and crash with undef), ergo's
// error text otherwise ('resource is taken' for a taken {name, _}).
func (c *conn) SpawnReplyError(to etf.Pid, ref etf.Ref, err error) error {
	c.mu.Lock()
	delete(c.spawnIn, ref)
	c.mu.Unlock()
	defer closeGate(c.local, ref)
	text := err.Error()
	if !atomReason(text) {
		text = "badarg"
	}
	return c.queue(to, etf.Tuple{opSpawnReply, ref, to, 0, etf.Atom(text)}, nil, false)
}

package pg

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/safelog"
)

// server is the thin actor adapter around state: it decodes what arrives
// in the mailbox, calls the state, and carries out its sends and
// monitors. It never makes a synchronous call (Call, Direct) itself. It
// runs on actors.Actor rather than ergo's gen.Server, whose loop any peer
// can kill by sending an empty tuple: a scope that died that way would
// take every membership of its node out of the cluster.
type server struct {
	nd       node.Node
	name     string
	interval time.Duration // between scans of the connected nodes
	maxPeer  int           // Options.MaxPeerMembers
	// logs rate-limits the scope's warnings about peers' messages
	// (safelog.Default; tests give the running scope their own).
	logs *safelog.Limiter
	// scope is the running incarnation's handle, published at the end of
	// Init. Lookup reads it from other goroutines, and ergo registers the
	// name before Init runs, so it is atomic.
	scope atomic.Pointer[Scope]

	// Owned by the scope's process (callbacks run one at a time); reset
	// by each Init.
	sp    gen.Process
	state *state
	self  *Scope
	scan  *scanTimer
}

var (
	_ actors.Behavior = (*server)(nil)
	_ outbox          = (*server)(nil)
)

func newServer(nd node.Node, name string, opts Options) *server {
	return &server{nd: nd, name: name, interval: opts.interval(), maxPeer: opts.maxPeer(), logs: safelog.Default}
}

// Requests from the API. They travel through the scope's mailbox as Go
// values (local sends are not encoded) and are answered on a channel of
// capacity 1, so the scope never blocks on a caller that went away.
type (
	joinRequest struct {
		group string
		pids  []etf.Pid
		reply chan error
	}
	leaveRequest struct {
		group string
		pids  []etf.Pid
		reply chan error
	}
	suspectRequest struct {
		pid   etf.Pid
		reply chan error
	}
	// stopRequest asks the scope to stop. Stop uses it rather than
	// Process.Exit: in ergo v1.999.224, Exit from another goroutine can
	// dereference a nil function when the process terminates at once (it
	// queues the exit, the process handles it and is cleaned up, and only
	// then does Exit call the kill function that cleanup set to nil).
	stopRequest struct{}
	// scanTick triggers a scan of the connected nodes.
	scanTick struct{}
	// hook runs a function on the scope's process; tests use it to hold
	// the scope still or to wait until it has handled earlier messages.
	hook func()
)

// Init sets up one incarnation of the scope: a fresh table and state, the
// network watch, and discovery of the nodes already connected.
func (s *server) Init(sp gen.Process, _ ...etf.Term) error {
	s.sp = sp
	t := newTable()
	s.state = newState(sp.Self(), t, s, s.maxPeer)
	// Watch the network before listing the connected nodes, so that a
	// node that connects in between is discovered at least once (twice
	// is harmless: a second discover only repeats the sync).
	if err := sp.MonitorEvent(node.EventNetwork); err != nil {
		return err
	}
	s.state.rescan(s.nd.Nodes())
	s.scan = startScanTimer(s.interval, func() { sp.Send(sp.Self(), scanTick{}) })
	s.self = &Scope{
		name:  s.name,
		node:  s.nd.Name(),
		pid:   sp.Self(),
		proc:  sp,
		table: t,
		stats: s.state.stats,
		done:  make(chan struct{}),
	}
	s.scope.Store(s.self)
	return nil
}

// HandleMessage handles API requests, DOWNs, node-up events and the
// messages of the pg protocol (discover, join, leave, and sync, which
// arrives as a gen_server cast).
func (s *server) HandleMessage(_ gen.Process, _ etf.Pid, message etf.Term) string {
	switch m := message.(type) {
	case joinRequest:
		s.state.join(m.group, m.pids)
		m.reply <- nil
	case leaveRequest:
		m.reply <- s.state.leave(m.group, m.pids)
	case suspectRequest:
		s.state.suspect(m.pid)
		m.reply <- nil
	case gen.MessageDown:
		s.state.down(m.Pid)
	case node.MessageEventNetwork:
		// Members are not dropped on node-down: the peer scope's monitor
		// fires with noconnection, as pg waits for 'DOWN', not nodedown.
		switch {
		case m.Proxy:
		case m.Online:
			s.state.nodeUp(m.PeerName)
		default:
			s.state.nodeDown(m.PeerName)
		}
	case scanTick:
		s.state.rescan(s.nd.Nodes())
	case stopRequest:
		return "normal"
	case hook:
		m()
	case etf.Tuple:
		if len(m) == 2 && m[0] == etf.Atom("$gen_cast") {
			s.handleCast(m[1])
			return ""
		}
		s.handlePlain(message)
	default:
		s.handlePlain(message)
	}
	return ""
}

// handlePlain handles discover, join and leave.
func (s *server) handlePlain(message etf.Term) {
	in, err := parseInfo(message, s.maxPeer)
	if err != nil {
		s.logs.Warn("pg.message", "pg scope: ignored a message", "scope", s.name, "error", err, "message", safelog.T(message))
		return
	}
	switch in := in.(type) {
	case discoverIn:
		s.state.discover(in.peer)
	case joinIn:
		s.state.remoteJoin(in.peer, in.group, in.pids, in.over)
	case leaveIn:
		s.state.remoteLeave(in.peer, in.pids, in.groups)
	}
}

// handleCast handles sync, the only cast of the pg protocol
// ({'$gen_cast', Msg}).
func (s *server) handleCast(message etf.Term) {
	in, err := parseSync(message, s.maxPeer)
	if err != nil && in.groups == nil {
		s.logs.Warn("pg.message", "pg scope: ignored a cast", "scope", s.name, "error", err, "message", safelog.T(message))
		return
	}
	if err != nil {
		s.logs.Warn("pg.sync", "pg scope: took part of a sync", "scope", s.name, "error", err)
	}
	s.state.sync(in.peer, in.groups, in.over)
}

// refused implements outbox: one rate-limited line per kind of refusal,
// whatever the number of peers and entries.
func (s *server) refused(why string, peer etf.Pid, n int, example etf.Pid) {
	s.logs.Warn("pg.refused."+why, "pg scope: refused entries a peer announced",
		"scope", s.name, "why", why, "peer", safelog.T(peer), "entries", n, "example", safelog.T(example))
}

// Terminate empties the table and closes every Monitor channel: the
// membership view dies with its scope, as pg's ETS table does. Peers see
// this scope's DOWN and drop its members.
func (s *server) Terminate(_ gen.Process, _ string) {
	// No send from this package may reach the process once ergo starts
	// cleaning it up (see scanTimer); Terminate runs before that.
	s.scan.stop()
	s.self.closeGate()
	s.scope.CompareAndSwap(s.self, nil)
	s.self.table.close()
	close(s.self.done)
}

// scanTimer sends scanTick to the scope every interval. It stands in for
// Process.SendAfter, whose timer goroutine may send while ergo cleans the
// stopped process up: ergo's RouteSend reads the mailbox field without the
// lock that cleanup writes it under, a data race. stop, called from
// Terminate (which ergo runs before cleanup), waits for a send in progress
// and prevents later ones.
type scanTimer struct {
	interval time.Duration
	send     func() // never blocks; a tick that finds the mailbox full is lost, the next one comes anyway

	mu      sync.Mutex
	timer   *time.Timer // guarded by mu
	stopped bool        // guarded by mu
}

func startScanTimer(interval time.Duration, send func()) *scanTimer {
	st := &scanTimer{interval: interval, send: send}
	st.mu.Lock()
	st.timer = time.AfterFunc(interval, st.fire)
	st.mu.Unlock()
	return st
}

func (st *scanTimer) fire() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stopped {
		return
	}
	st.send()
	st.timer = time.AfterFunc(st.interval, st.fire)
}

func (st *scanTimer) stop() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stopped = true
	st.timer.Stop()
}

// send implements outbox.
func (s *server) send(to etf.Pid, msg etf.Term) {
	if !s.connected(string(to.Node)) {
		return
	}
	s.deliver(to, msg, s.sp.Send)
}

// cast implements outbox.
func (s *server) cast(to etf.Pid, msg etf.Term) {
	if !s.connected(string(to.Node)) {
		return
	}
	s.deliver(to, msg, func(to any, msg etf.Term) error {
		return s.sp.Send(to, etf.Tuple{etf.Atom("$gen_cast"), msg})
	})
}

// sendScope implements outbox.
func (s *server) sendScope(nodeName string, msg etf.Term) {
	if !s.connected(nodeName) {
		return
	}
	s.deliver(gen.ProcessID{Name: s.name, Node: nodeName}, msg, s.sp.Send)
}

func (s *server) deliver(to any, msg etf.Term, how func(any, etf.Term) error) {
	if err := checkWire(msg); err != nil {
		s.logs.Error("pg.wire", "pg scope: not sending a message", "scope", s.name,
			"to", safelog.T(to), "message", safelog.T(msg), "error", err)
		return
	}
	// A failed remote send is not fatal: the peer's DOWN (noconnection)
	// follows and cleans up, as with Erlang's asynchronous sends.
	if err := how(to, msg); err != nil {
		lib.Log("pg scope %q: send to %v: %v", s.name, safelog.T(to), err)
	}
}

// monitor implements outbox.
func (s *server) monitor(pid etf.Pid) {
	s.sp.MonitorProcess(pid)
}

// connected implements outbox. ergo has no [noconnect] send: sending to
// or monitoring a pid of a node that is not connected makes ergo dial it,
// which can block the scope for a connection timeout and would reconnect
// a node that was just disconnected on purpose. Erlang's pg sends with
// [noconnect] for the same reason.
func (s *server) connected(nodeName string) bool {
	return slices.Contains(s.nd.Nodes(), nodeName)
}

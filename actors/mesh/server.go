package mesh

import (
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/internal/safelog"
)

// atomNodes tags a peer's list of its connected nodes.
var atomNodes = etf.Atom("ergonx_mesh_nodes")

// server is the mesh's ergo process behaviour. It has its own loop rather
// than a gen.Server or actors.Actor: besides the mailbox it waits on a
// ticker, on the results of connection attempts (which run on goroutines
// of their own, since ergo's Connect blocks) and on API requests, all Go
// channels, so that nothing but the peers ever sends to its mailbox (ergo
// v1.999.224 races when a message is routed to a process it is cleaning
// up, see actors/pg).
type server struct {
	nd   node.Node
	opts Options // defaults filled in
	// handle is the running incarnation's, published by ProcessInit for
	// Start and Lookup.
	handle atomic.Pointer[Mesh]
}

var _ gen.ProcessBehavior = (*server)(nil)

// result is the end of one connection attempt.
type result struct {
	node string
	err  error
}

// ProcessInit prepares the handle and watches the network. It never
// fails: ergo v1.999.224 leaves a process whose init fails registered
// for good.
func (s *server) ProcessInit(p gen.Process, _ ...etf.Term) (gen.ProcessState, error) {
	m := &Mesh{
		name:     s.opts.Name,
		proc:     p,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		requests: make(chan func(*book)),
	}
	// Node-up events speed things up where ergo delivers them; the scan
	// does not depend on them.
	if err := p.MonitorEvent(node.EventNetwork); err != nil {
		safelog.Warn("mesh.events", "mesh: no node events; relying on scans", "error", err)
	}
	s.handle.Store(m)
	return gen.ProcessState{Process: p, State: m}, nil
}

// ProcessLoop runs the mesh until it is stopped, killed, or told to exit.
func (s *server) ProcessLoop(ps gen.ProcessState, started chan<- bool) string {
	m := ps.State.(*Mesh)
	defer s.handle.CompareAndSwap(m, nil)
	defer close(m.done)
	l := &loop{
		nd:      s.nd,
		opts:    s.opts,
		proc:    ps.Process,
		mesh:    m,
		book:    newBook(s.nd.Name(), s.opts),
		results: make(chan result),
	}
	started <- true
	l.scan(time.Now())
	return l.run(ps)
}

// loop is the state of one mesh process, owned by its loop goroutine.
type loop struct {
	nd      node.Node
	opts    Options
	proc    gen.Process
	mesh    *Mesh
	book    *book
	results chan result // from connection attempts; unbuffered, see dial
}

func (l *loop) run(ps gen.ProcessState) string {
	chs := ps.ProcessChannels()
	ctxDone := ps.Context().Done()
	tick := time.NewTicker(l.opts.ScanInterval)
	defer tick.Stop()
	for {
		select {
		case m := <-chs.Mailbox:
			l.handle(time.Now(), m.Message)
		case ex := <-chs.GracefulExit:
			return ex.Reason
		case d := <-chs.Direct:
			ps.PutSyncReply(d.Ref, nil, lib.ErrUnsupportedRequest)
		case <-ctxDone:
			return "kill"
		case <-l.mesh.stop:
			return "normal"
		case now := <-tick.C:
			l.scan(now)
		case r := <-l.results:
			if l.book.result(time.Now(), r.node, r.err) {
				l.tell(r.node)
			}
			l.publish()
		case f := <-l.mesh.requests:
			f(l.book)
			l.publish()
		}
	}
}

// scan brings the book up to date with the connected nodes and the
// process groups' nodes, and starts the attempts that are due.
func (l *loop) scan(now time.Time) {
	for _, n := range l.book.observe(now, l.nd.Nodes()) {
		l.tell(n)
	}
	if scope := pg.Lookup(l.nd, l.opts.Scope); scope != nil {
		l.learn(now, scope.Nodes())
	}
	l.attempt(now)
	l.publish()
}

// handle takes a message of the mailbox: a node event or a peer's list.
// Anything else is logged (bounded) and dropped.
func (l *loop) handle(now time.Time, msg etf.Term) {
	switch m := msg.(type) {
	case node.MessageEventNetwork:
		switch {
		case m.Proxy:
		case m.Online:
			if l.book.markUp(m.PeerName) {
				l.tell(m.PeerName)
			}
		default:
			l.book.markDown(now, m.PeerName)
		}
	case etf.Tuple:
		if caller, ref, ok := genCall(m); ok {
			// Answer a gen_server call, as OTP servers answer one they do
			// not know, so that the caller does not wait for its timeout.
			_ = l.proc.Send(caller, etf.Tuple{ref, etf.Atom("badarg")})
			return
		}
		names, ok := parseNodes(m, l.opts.MaxNodes)
		if !ok {
			l.ignore(msg)
			return
		}
		l.learn(now, names)
		l.attempt(now)
	default:
		l.ignore(msg)
	}
	l.publish()
}

func (l *loop) ignore(msg etf.Term) {
	safelog.Warn("mesh.message", "mesh: ignored a message", "mesh", l.opts.Name, "message", safelog.T(msg))
}

func (l *loop) learn(now time.Time, names []string) {
	if _, dropped := l.book.learn(now, names); dropped > 0 {
		safelog.Warn("mesh.dropped", "mesh: dropped nodes a peer or group named (not node names, or more than MaxNodes)",
			"mesh", l.opts.Name, "dropped", dropped, "max_nodes", l.opts.MaxNodes)
	}
}

// attempt starts the connection attempts that are due.
func (l *loop) attempt(now time.Time) {
	connect, forgotten := l.book.due(now)
	for _, n := range forgotten {
		safelog.Info("mesh.forgot", "mesh: forgot a node that did not come back", "mesh", l.opts.Name,
			"node", safelog.T(n), "after", l.opts.ForgetAfter)
	}
	for _, n := range connect {
		l.dial(n)
	}
}

// dial tries to connect to n on a goroutine of its own: ergo's Connect
// blocks up to its dial and handshake timeouts. The result goes back to
// the loop, or nowhere once the loop has returned.
func (l *loop) dial(n string) {
	results, done := l.results, l.mesh.done
	go func() {
		err := l.nd.Connect(n)
		select {
		case results <- result{node: n, err: err}:
		case <-done:
		}
	}()
}

// tell sends n, which just connected, the list of the other connected
// nodes, and tells each of them of n, so that each pair learns of the
// other at once (and the one that dials first does, see firstAttempt).
func (l *loop) tell(n string) {
	others := l.book.others(n)
	if len(others) == 0 {
		return
	}
	list := make(etf.List, len(others))
	for i, o := range others {
		list[i] = etf.Atom(o)
	}
	// A failed send is not fatal: the next connection tells again.
	_ = l.proc.Send(gen.ProcessID{Name: l.opts.Name, Node: n}, etf.Tuple{atomNodes, list})
	newcomer := etf.Tuple{atomNodes, etf.List{etf.Atom(n)}}
	for _, o := range others {
		_ = l.proc.Send(gen.ProcessID{Name: l.opts.Name, Node: o}, newcomer)
	}
}

func (l *loop) publish() { l.mesh.publish(l.book.peers()) }

// genCall reads {'$gen_call', {Pid, Ref}, Request}.
func genCall(t etf.Tuple) (etf.Pid, etf.Ref, bool) {
	if len(t) != 3 || t[0] != etf.Atom("$gen_call") {
		return etf.Pid{}, etf.Ref{}, false
	}
	from, ok := t[1].(etf.Tuple)
	if !ok || len(from) != 2 {
		return etf.Pid{}, etf.Ref{}, false
	}
	pid, ok1 := from[0].(etf.Pid)
	ref, ok2 := from[1].(etf.Ref)
	return pid, ref, ok1 && ok2
}

// parseNodes reads {ergonx_mesh_nodes, [Node]}: at most limit atoms, the
// rest unread. Entries that are not atoms are skipped (learn refuses
// what is not a node name).
func parseNodes(t etf.Tuple, limit int) ([]string, bool) {
	if len(t) != 2 || t[0] != atomNodes {
		return nil, false
	}
	list, ok := t[1].(etf.List)
	if !ok {
		return nil, false
	}
	names := make([]string, 0, min(len(list), limit))
	for _, e := range list[:min(len(list), limit)] {
		if a, ok := e.(etf.Atom); ok {
			names = append(names, string(a))
		}
	}
	return names, true
}

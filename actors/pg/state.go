package pg

import (
	"github.com/ergo-services/ergo/etf"
)

// outbox is what the membership state needs from the scope's process. The
// ergo adapter (server.go) implements it; tests use a recorder.
type outbox interface {
	// send sends a plain message to a peer scope's pid, only if its node
	// is connected (Erlang's [noconnect]).
	send(to etf.Pid, msg etf.Term)
	// cast sends {'$gen_cast', msg} to a peer scope's pid, only if its
	// node is connected.
	cast(to etf.Pid, msg etf.Term)
	// sendScope sends a plain message to the scope's registered name on
	// node, only if node is connected.
	sendScope(node string, msg etf.Term)
	// monitor starts watching pid; its death arrives as down(pid).
	monitor(pid etf.Pid)
	// connected reports whether node has a live connection.
	connected(node string) bool
	// refused reports n entries of a peer's message that were not taken
	// (why is one of the refuse* constants; example is one of them), for
	// a rate-limited log line.
	refused(why string, peer etf.Pid, n int, example etf.Pid)
}

// state is the scope's membership logic, the port of pg.erl's state
// record. It runs only on the scope's process (one callback at a time),
// so it needs no lock; the table it writes has its own for readers.
//
// Monitors are keyed by pid, never by reference, and are never removed:
// ergo v1.999.224's references repeat every 262,144 (node.MakeRef keeps 18
// bits of its counter), and DemonitorProcess with a reference that has
// been reused removes whichever monitor holds it now. So a local pid
// stays watched after it leaves all its groups, until it dies (one
// monitor per pid however often it joins), and a DOWN for a pid the state
// no longer needs is ignored.
type state struct {
	self  etf.Pid // the scope's own pid
	node  string  // the scope's node
	table *table
	out   outbox
	stats *counters
	// maxPeer is the most entries one peer scope may hold in the table
	// (Options.MaxPeerMembers).
	maxPeer int

	// local maps every watched local pid to the groups it is in, one
	// entry per join. An empty list means watched but in no group.
	local map[etf.Pid][]string
	// peers maps each known peer scope (monitored) to what it announced;
	// at most one per node (see acceptPeer).
	peers map[etf.Pid]*peerView
	// probed holds the remote members watched since a Suspect, so that
	// their DOWN finds their peer scope.
	probed map[etf.Pid]*probe
	// discovered holds the connected nodes we sent discover to since they
	// connected; see rescan.
	discovered map[string]struct{}
}

func newState(self etf.Pid, t *table, out outbox, maxPeer int) *state {
	return &state{
		self:    self,
		node:    string(self.Node),
		table:   t,
		out:     out,
		stats:   &counters{},
		maxPeer: maxPeer,
		local:   make(map[etf.Pid][]string),
		peers:   make(map[etf.Pid]*peerView),
		probed:  make(map[etf.Pid]*probe),

		discovered: make(map[string]struct{}),
	}
}

// rescan discovers the scopes of connected nodes we have not discovered
// yet, and forgets the nodes that are gone so that a reconnection is
// discovered again. It runs at start and then periodically, besides the
// node-up events: ergo v1.999.224 keeps the owner of its network event in
// a package-level variable (node.corePID) that each node start overwrites,
// so with several nodes in one OS process only the node started last
// receives node-up events. Scanning makes discovery independent of that.
func (s *state) rescan(nodes []string) {
	connected := make(map[string]struct{}, len(nodes))
	for _, n := range nodes {
		connected[n] = struct{}{}
		if _, done := s.discovered[n]; !done {
			s.nodeUp(n)
		}
	}
	for n := range s.discovered {
		if _, ok := connected[n]; !ok {
			delete(s.discovered, n)
		}
	}
}

// nodeDown forgets that node was discovered. Its members are dropped when
// its scope's DOWN arrives, not here (as in pg, which ignores nodedown).
func (s *state) nodeDown(node string) {
	delete(s.discovered, node)
}

// join adds local pids to group (duplicates allowed), watches the new ones
// and tells every peer.
func (s *state) join(group string, pids []etf.Pid) {
	for _, p := range pids {
		if _, watched := s.local[p]; !watched {
			s.out.monitor(p)
		}
		s.local[p] = append(s.local[p], group)
	}
	s.table.add(group, pids, true)
	s.broadcast(joinMsg(s.self, group, pids))
}

// leave removes one membership of group per listed pid; pids not in the
// group are skipped. It returns ErrNotJoined when nothing was removed.
func (s *state) leave(group string, pids []etf.Pid) error {
	left := make([]etf.Pid, 0, len(pids))
	for _, p := range pids {
		groups := s.local[p]
		i := indexOf(groups, group)
		if i < 0 {
			continue
		}
		// Keep the entry even when empty: the pid stays watched (see state).
		s.local[p] = append(groups[:i], groups[i+1:]...)
		left = append(left, p)
	}
	if len(left) == 0 {
		return ErrNotJoined
	}
	s.table.remove(group, left, true)
	s.broadcast(leaveMsg(s.self, left, []string{group}))
	return nil
}

// down handles the DOWN of a monitored pid: a local member that died, a
// peer scope that stopped or whose node went away (noconnection), or a
// remote member probed since a Suspect.
func (s *state) down(pid etf.Pid) {
	if pr, ok := s.probed[pid]; ok {
		// Later DOWNs of the same pid (it may be watched more than once)
		// find no probe and are ignored.
		delete(s.probed, pid)
		if v, ok := s.peers[pr.peer]; ok {
			s.dead(v, pid)
		}
	}
	if groups, ok := s.local[pid]; ok {
		delete(s.local, pid)
		if len(groups) == 0 {
			return
		}
		for _, g := range distinct(groups) {
			s.table.remove(g, repeat(pid, count(groups, g)), true)
		}
		s.broadcast(leaveMsg(s.self, []etf.Pid{pid}, groups))
		return
	}
	if _, ok := s.peers[pid]; ok {
		s.forgetPeer(pid)
		// If the node is still connected (only its scope went away, or
		// the connection flapped between two scans), discover it again at
		// the next scan: a new scope there would find us anyway, but a
		// reconnection that no scan saw would not.
		delete(s.discovered, string(pid.Node))
	}
}

// nodeUp discovers the scope of the same name on node, if there is one.
// Discovering twice is harmless: the answer is the same sync.
func (s *state) nodeUp(node string) {
	if node == s.node {
		return
	}
	s.discovered[node] = struct{}{}
	s.out.sendScope(node, discoverMsg(s.self))
}

// discover answers a peer that looks for us: it gets our members (sync),
// and if we did not know it we watch it and discover it in return, so
// that both sides end up with each other's full view.
func (s *state) discover(peer etf.Pid) {
	if !s.acceptPeer(peer) {
		return
	}
	s.out.cast(peer, syncMsg(s.self, s.localGroups()))
	if _, known := s.peers[peer]; !known {
		s.addPeer(peer)
		s.out.send(peer, discoverMsg(s.self))
	}
}

// broadcast sends msg to every known peer scope.
func (s *state) broadcast(msg etf.Term) {
	for peer := range s.peers {
		s.out.send(peer, msg)
	}
}

// localGroups lists this node's memberships for a sync.
func (s *state) localGroups() []groupPids {
	m := make(map[string][]etf.Pid)
	for p, groups := range s.local {
		for _, g := range groups {
			m[g] = append(m[g], p)
		}
	}
	return sortedGroups(m)
}

// multisetDiff returns what to add to and remove from old to get new,
// counting duplicates.
func multisetDiff(old, new []etf.Pid) (added, removed []etf.Pid) {
	n := make(map[etf.Pid]int, len(old))
	for _, p := range old {
		n[p]++
	}
	for _, p := range new {
		if n[p] > 0 {
			n[p]--
			continue
		}
		added = append(added, p)
	}
	for _, p := range old {
		if n[p] > 0 {
			n[p]--
			removed = append(removed, p)
		}
	}
	return added, removed
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

func distinct(list []string) []string {
	seen := make(map[string]struct{}, len(list))
	out := make([]string, 0, len(list))
	for _, v := range list {
		if _, ok := seen[v]; !ok {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	return out
}

func repeat(p etf.Pid, n int) []etf.Pid {
	out := make([]etf.Pid, n)
	for i := range out {
		out[i] = p
	}
	return out
}

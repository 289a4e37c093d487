package pg

import (
	"slices"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
)

// This file holds what the scope knows of its peers: their announcements,
// checked before they reach the table, and the members hidden by Suspect.

// Why entries of a peer's message were refused (outbox.refused).
const (
	refuseForged    = "forged"     // a pid of another node or incarnation
	refuseOverLimit = "over_limit" // beyond Options.MaxPeerMembers
	refuseDead      = "dead"       // a pid a probe found dead
)

// maxMonitorsPerPid bounds the monitors placed on one probed pid. ergo
// v1.999.224 sends a remote monitor request before it registers the
// monitor locally (node/monitor.go, RouteMonitor), so the immediate noproc
// answer for a pid that is already dead is now and then dropped (9 of
// 2,000 on a loaded 2-core machine): the scope places a second monitor
// when the peer's answer to the probe arrives, and a third on a later
// suspicion, never more, as it never demonitors (see state).
const maxMonitorsPerPid = 3

// probe is a remote pid watched since a Suspect.
type probe struct {
	peer     etf.Pid // its peer scope
	monitors int     // placed so far
}

// maxDeadPerPeer bounds the pids remembered as dead for one peer scope:
// past it the oldest are forgotten, so a peer that announces dead pids
// without end costs bounded memory (a forgotten one that is announced
// again is merely hidden again by the next Suspect).
const maxDeadPerPeer = 1024

// peerView is what one peer scope announced, as this scope took it.
type peerView struct {
	// groups maps group → the peer's pids, one entry per join, never an
	// empty list. Suspected pids stay here while hidden from the table.
	groups  map[string][]etf.Pid
	entries int // sum of len(groups[g]), at most state.maxPeer
	// suspect holds the pids hidden from the table by Suspect until the
	// peer announces them again or answers a probe.
	suspect map[etf.Pid]struct{}
	// dead holds pids a probe found dead: never taken again from this
	// peer scope (pids are not reused within a node's incarnation).
	dead deadSet
	// probing is set while a discover sent for Suspect waits for the
	// peer's sync, so that many suspicions cost one round trip.
	probing bool
	// probes counts the pids of this peer in state.probed; at most
	// state.maxPeer, so that a peer churning through pids that callers
	// suspect cannot make this node hold monitors without end.
	probes int
}

func newPeerView() *peerView {
	return &peerView{groups: make(map[string][]etf.Pid), suspect: make(map[etf.Pid]struct{})}
}

// visible returns the pids of list that the table shows (not suspected).
// It returns list itself when nothing is suspected.
func (v *peerView) visible(list []etf.Pid) []etf.Pid {
	if len(v.suspect) == 0 {
		return list
	}
	out := make([]etf.Pid, 0, len(list))
	for _, p := range list {
		if _, hidden := v.suspect[p]; !hidden {
			out = append(out, p)
		}
	}
	return out
}

// has reports whether p has an entry in any group.
func (v *peerView) has(p etf.Pid) bool { return listed(v.groups, p) }

// deadSet is a set of pids that forgets its oldest beyond maxDeadPerPeer.
type deadSet struct {
	set   map[etf.Pid]struct{}
	order []etf.Pid // oldest first
}

func (d *deadSet) has(p etf.Pid) bool {
	_, ok := d.set[p]
	return ok
}

func (d *deadSet) add(p etf.Pid) {
	if d.has(p) {
		return
	}
	if d.set == nil {
		d.set = make(map[etf.Pid]struct{})
	}
	if len(d.order) == maxDeadPerPeer {
		delete(d.set, d.order[0])
		d.order = slices.Delete(d.order, 0, 1)
	}
	d.set[p] = struct{}{}
	d.order = append(d.order, p)
}

// counters are the scope's Stats, written by its process and read by any
// goroutine.
type counters struct {
	forged, overLimit, deadRefused atomic.Uint64
	suspected, restored, dead      atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Forged:      c.forged.Load(),
		OverLimit:   c.overLimit.Load(),
		DeadRefused: c.deadRefused.Load(),
		Suspected:   c.suspected.Load(),
		Restored:    c.restored.Load(),
		Dead:        c.dead.Load(),
	}
}

// acceptPeer filters messages that claim to come from a peer scope: not
// from our own node, and not from a node we are no longer connected to (a
// late message from a peer whose DOWN we already handled; watching it
// again would make ergo reconnect to that node).
func (s *state) acceptPeer(peer etf.Pid) bool {
	node := string(peer.Node)
	return node != s.node && s.out.connected(node)
}

// addPeer watches peer and gives it an empty view. A node runs one scope
// of a name, so a known scope of the same node is forgotten first: it
// stopped (its DOWN is on its way) or never existed, and either way a
// node cannot multiply its share of the table (MaxPeerMembers) by
// announcing several scope pids.
func (s *state) addPeer(peer etf.Pid) *peerView {
	for other := range s.peers {
		if other.Node == peer.Node && other != peer {
			s.forgetPeer(other)
		}
	}
	s.out.monitor(peer)
	v := newPeerView()
	s.peers[peer] = v
	return v
}

// forgetPeer drops everything peer announced. Its monitor stays (see
// state): a later DOWN finds no peer and is ignored.
func (s *state) forgetPeer(peer etf.Pid) {
	v := s.peers[peer]
	delete(s.peers, peer)
	for g, pids := range v.groups {
		s.table.remove(g, v.visible(pids), false)
	}
	for p, pr := range s.probed {
		if pr.peer == peer {
			delete(s.probed, p)
		}
	}
}

// admit returns the entries of pids that peer may add, at most room of
// them, and reports the others: a peer announces only its own processes
// (Erlang's pg:join refuses any other), so a pid of another node, or of
// another incarnation of the peer's node (a dead pid of a node that
// restarted), is forged; a pid a probe found dead is refused; and a peer
// holds at most MaxPeerMembers entries. It reuses pids' array.
func (s *state) admit(peer etf.Pid, v *peerView, pids []etf.Pid, room int) []etf.Pid {
	kept := pids[:0]
	var forged, dead, over int
	var exForged, exDead, exOver etf.Pid
	for _, p := range pids {
		switch {
		case p.Node != peer.Node || p.Creation != peer.Creation:
			forged, exForged = forged+1, p
		case v.dead.has(p):
			dead, exDead = dead+1, p
		case len(kept) >= room:
			over, exOver = over+1, p
		default:
			kept = append(kept, p)
		}
	}
	s.refuse(refuseForged, peer, forged, exForged)
	s.refuse(refuseDead, peer, dead, exDead)
	s.refuse(refuseOverLimit, peer, over, exOver)
	return kept
}

// refuse counts n refused entries and reports them for the log.
func (s *state) refuse(why string, peer etf.Pid, n int, example etf.Pid) {
	if n <= 0 {
		return
	}
	switch why {
	case refuseForged:
		s.stats.forged.Add(uint64(n))
	case refuseDead:
		s.stats.deadRefused.Add(uint64(n))
	case refuseOverLimit:
		s.stats.overLimit.Add(uint64(n))
	}
	s.out.refused(why, peer, n, example)
}

// sync replaces everything we knew of peer's members with what it sent
// (over: the pids the parser did not even keep). Every member it lists is
// visible again: a sync is the peer announcing its members anew, and the
// answer to the probe of a Suspect.
func (s *state) sync(peer etf.Pid, groups map[string][]etf.Pid, over int) {
	if !s.acceptPeer(peer) {
		return
	}
	v, known := s.peers[peer]
	if !known {
		v = s.addPeer(peer)
	}
	s.refuse(refuseOverLimit, peer, over, etf.Pid{})
	// Sorted, so that which entries a sync over the limit loses does not
	// depend on map order.
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	slices.Sort(names)
	next := make(map[string][]etf.Pid, len(names))
	room := s.maxPeer
	for _, g := range names {
		if kept := s.admit(peer, v, groups[g], room); len(kept) > 0 {
			next[g] = kept
			room -= len(kept)
		}
	}

	// Counters move before the table, so that whoever sees the change
	// (a Monitor event) sees them counted.
	for p := range v.suspect {
		if listed(next, p) {
			s.stats.restored.Add(1)
		}
		// The answer to a probe: watch the pid once more, in case ergo
		// dropped the first monitor's DOWN (see maxMonitorsPerPid).
		s.watch(p)
	}
	for g, pids := range next {
		added, removed := multisetDiff(v.visible(v.groups[g]), pids)
		s.table.remove(g, removed, false)
		s.table.add(g, added, false)
	}
	for g, pids := range v.groups {
		if _, still := next[g]; !still {
			s.table.remove(g, v.visible(pids), false)
		}
	}
	v.groups, v.entries = next, s.maxPeer-room
	clear(v.suspect)
	v.probing = false
}

// listed reports whether p has an entry in groups.
func listed(groups map[string][]etf.Pid, p etf.Pid) bool {
	for _, members := range groups {
		if slices.Contains(members, p) {
			return true
		}
	}
	return false
}

// remoteJoin applies a peer's join (over: the pids the parser did not
// keep). Joins from a scope we do not know (it went down, or is not part
// of our overlay yet) are ignored, as in pg: the sync that follows
// discovery carries them. A suspected pid that the join lists is visible
// again, with all its entries.
func (s *state) remoteJoin(peer etf.Pid, group string, pids []etf.Pid, over int) {
	v, ok := s.peers[peer]
	if !ok {
		return
	}
	s.refuse(refuseOverLimit, peer, over, etf.Pid{})
	kept := s.admit(peer, v, pids, s.maxPeer-v.entries)
	if len(kept) == 0 {
		return
	}
	s.restore(v, kept)
	v.groups[group] = append(v.groups[group], kept...)
	v.entries += len(kept)
	s.table.add(group, kept, false)
}

// remoteLeave applies a peer's leave: one occurrence of each pid out of
// each listed group (a group listed twice removes two). Its cost is linear
// in the entries of the groups it names, however many pids it lists.
func (s *state) remoteLeave(peer etf.Pid, pids []etf.Pid, groups []string) {
	v, ok := s.peers[peer]
	if !ok || len(pids) == 0 {
		return
	}
	want := make(map[etf.Pid]int, len(pids))
	for _, p := range pids {
		want[p]++
	}
	// A group listed n times removes n occurrences of each pid; one table
	// change (one Left event) per group, as for a local member's death.
	for _, g := range distinct(groups) {
		members, ok := v.groups[g]
		if !ok {
			continue
		}
		rest, removed := removeCounted(members, want, count(groups, g))
		if len(rest) == 0 {
			delete(v.groups, g)
		} else {
			v.groups[g] = rest
		}
		v.entries -= len(removed)
		s.table.remove(g, v.visible(removed), false)
	}
	// A suspected pid that has left every group is no longer hidden: it
	// is gone. (Its probe stays until its DOWN, which marks it dead should
	// the peer announce it again.)
	for p := range want {
		if _, suspected := v.suspect[p]; suspected && !v.has(p) {
			delete(v.suspect, p)
		}
	}
}

// removeCounted removes from members up to n×want[p] occurrences of each
// pid p, in one pass, reusing members' array for the rest.
func removeCounted(members []etf.Pid, want map[etf.Pid]int, n int) (rest, removed []etf.Pid) {
	var used map[etf.Pid]int
	rest = members[:0]
	for _, p := range members {
		if c := want[p]; c > 0 && used[p] < c*n {
			if used == nil {
				used = make(map[etf.Pid]int)
			}
			used[p]++
			removed = append(removed, p)
			continue
		}
		rest = append(rest, p)
	}
	clear(members[len(rest):]) // no stale pids past the end
	return rest, removed
}

// suspect hides pid, a member announced by a peer, from the table (see
// Scope.Suspect) and probes it. It reports whether pid is hidden now.
func (s *state) suspect(pid etf.Pid) bool {
	if string(pid.Node) == s.node {
		return false
	}
	for peer, v := range s.peers {
		if peer.Node != pid.Node {
			continue
		}
		if _, already := v.suspect[pid]; already {
			return true
		}
		if !v.has(pid) {
			return false
		}
		s.stats.suspected.Add(1) // before the table: see sync
		for g, members := range v.groups {
			if n := countPid(members, pid); n > 0 {
				s.table.remove(g, repeat(pid, n), false)
			}
		}
		v.suspect[pid] = struct{}{}
		s.probe(peer, v, pid)
		return true
	}
	return false
}

// probe asks whether pid is alive, two ways at once: a monitor, whose DOWN
// (noproc at once from a live node) proves it dead, and a discover to its
// peer scope, whose sync, if it still lists pid, shows the peer alive and
// standing by it. A frozen node answers neither, and pid stays hidden
// until its connection drops.
//
// The monitor stays until its DOWN (or the peer's), even if the peer
// stops listing pid, so that a DOWN that comes after the peer's answer
// still marks pid dead.
func (s *state) probe(peer etf.Pid, v *peerView, pid etf.Pid) {
	if _, watched := s.probed[pid]; !watched && v.probes < s.maxPeer {
		s.probed[pid] = &probe{peer: peer}
		v.probes++
	}
	s.watch(pid)
	if !v.probing {
		v.probing = true
		s.out.send(peer, discoverMsg(s.self))
	}
}

// watch places one more monitor on a probed pid, up to
// maxMonitorsPerPid, if its node is connected.
func (s *state) watch(pid etf.Pid) {
	pr, ok := s.probed[pid]
	if !ok || pr.monitors >= maxMonitorsPerPid || !s.out.connected(string(pid.Node)) {
		return
	}
	pr.monitors++
	s.out.monitor(pid)
}

// restore shows again, with all their entries, the suspected pids among
// pids: their peer announced them again.
func (s *state) restore(v *peerView, pids []etf.Pid) {
	if len(v.suspect) == 0 {
		return
	}
	for _, p := range pids {
		if _, hidden := v.suspect[p]; !hidden {
			continue
		}
		delete(v.suspect, p)
		s.stats.restored.Add(1)
		for g, members := range v.groups {
			if n := countPid(members, p); n > 0 {
				s.table.add(g, repeat(p, n), false)
			}
		}
	}
}

// dead drops every entry of pid, which a probe found dead, and refuses it
// from now on.
func (s *state) dead(v *peerView, pid etf.Pid) {
	v.probes--
	s.stats.dead.Add(1) // before the table: see sync
	_, hidden := v.suspect[pid]
	for g, members := range v.groups {
		rest, removed := removeCounted(members, map[etf.Pid]int{pid: len(members)}, 1)
		if len(removed) == 0 {
			continue
		}
		if len(rest) == 0 {
			delete(v.groups, g)
		} else {
			v.groups[g] = rest
		}
		v.entries -= len(removed)
		if !hidden {
			s.table.remove(g, removed, false)
		}
	}
	delete(v.suspect, pid)
	v.dead.add(pid)
}

func countPid(list []etf.Pid, p etf.Pid) int {
	n := 0
	for _, q := range list {
		if q == p {
			n++
		}
	}
	return n
}

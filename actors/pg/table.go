package pg

import (
	"math/rand/v2"
	"slices"
	"sort"
	"sync"

	"github.com/ergo-services/ergo/etf"
)

// table is the scope's membership table, the Go counterpart of pg's ETS
// table {Group, AllPids, LocalPids}: only the scope's process writes it,
// any goroutine reads it. Readers never go through the scope's mailbox,
// so picking a member costs a read lock and no message.
//
// Readers get copies (or a single pid), never the table's slices, because
// writers change those slices in place.
type table struct {
	mu     sync.RWMutex
	rows   map[string]*row            // guarded by mu; a group without members has no row
	subs   map[string][]*subscription // guarded by mu; Monitor callers per group
	nodes  map[etf.Atom]int           // guarded by mu; entries per node, for Scope.Nodes
	closed bool                       // guarded by mu; set once by close, after which the table stays empty
}

// row is one group. Duplicates are kept: a pid that joined n times
// appears n times, so a uniformly random pick is weighted by multiplicity.
// The order is not meaningful.
type row struct {
	all   []etf.Pid // every member in the cluster as far as this node knows
	local []etf.Pid // the members that live on this node
}

func newTable() *table {
	return &table{
		rows:  make(map[string]*row),
		subs:  make(map[string][]*subscription),
		nodes: make(map[etf.Atom]int),
	}
}

// members returns a copy of the group's members, cluster-wide.
func (t *table) members(group string) []etf.Pid {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if r, ok := t.rows[group]; ok {
		return slices.Clone(r.all)
	}
	return nil
}

func (t *table) appendMembers(dst []etf.Pid, group string) []etf.Pid {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if r, ok := t.rows[group]; ok {
		return append(dst, r.all...)
	}
	return dst
}

// localMembers returns a copy of the group's members on this node.
func (t *table) localMembers(group string) []etf.Pid {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if r, ok := t.rows[group]; ok && len(r.local) > 0 {
		return slices.Clone(r.local)
	}
	return nil
}

// random returns a uniformly chosen entry of the group, which weights each
// pid by how many times it joined. It allocates nothing.
func (t *table) random(group string) (etf.Pid, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok := t.rows[group]
	if !ok {
		return etf.Pid{}, false
	}
	return r.all[rand.IntN(len(r.all))], true
}

// hasMemberOn reports whether the group has a member on node. It
// allocates nothing.
func (t *table) hasMemberOn(group string, node etf.Atom) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if r, ok := t.rows[group]; ok {
		for _, p := range r.all {
			if p.Node == node {
				return true
			}
		}
	}
	return false
}

// count returns how many entries the group has (with duplicates).
func (t *table) count(group string) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if r, ok := t.rows[group]; ok {
		return len(r.all)
	}
	return 0
}

// groups returns the names of the groups with at least one member, sorted.
func (t *table) groups(localOnly bool) []string {
	t.mu.RLock()
	names := make([]string, 0, len(t.rows))
	for g, r := range t.rows {
		if !localOnly || len(r.local) > 0 {
			names = append(names, g)
		}
	}
	t.mu.RUnlock()
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	return names
}

// add appends pids to the group (to its local column too when local) and
// tells the group's subscribers. Runs on the scope's process.
func (t *table) add(group string, pids []etf.Pid, local bool) {
	if len(pids) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	r, ok := t.rows[group]
	if !ok {
		r = &row{}
		t.rows[group] = r
	}
	r.all = append(r.all, pids...)
	if local {
		r.local = append(r.local, pids...)
	}
	for _, p := range pids {
		t.nodes[p.Node]++
	}
	t.publishLocked(Joined, group, pids)
}

// remove takes one occurrence of each of pids out of the group (out of its
// local column too when local), like Erlang's All -- Pids, and tells the
// group's subscribers what was actually removed. Runs on the scope's
// process.
func (t *table) remove(group string, pids []etf.Pid, local bool) {
	if len(pids) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rows[group]
	if !ok {
		return
	}
	var removed []etf.Pid
	if len(pids) <= fewPids {
		removed = make([]etf.Pid, 0, len(pids))
		for _, p := range pids {
			var found bool
			if r.all, found = removeOne(r.all, p); !found {
				continue
			}
			removed = append(removed, p)
			if local {
				r.local, _ = removeOne(r.local, p)
			}
		}
	} else {
		// One pass over the row, not one per pid: a peer's leave or sync
		// may list thousands of pids of a group of thousands.
		want := make(map[etf.Pid]int, len(pids))
		for _, p := range pids {
			want[p]++
		}
		r.all, removed = removeCounted(r.all, want, 1)
		if local {
			r.local, _ = removeCounted(r.local, countPids(removed), 1)
		}
	}
	for _, p := range removed {
		if t.nodes[p.Node]--; t.nodes[p.Node] == 0 {
			delete(t.nodes, p.Node)
		}
	}
	if len(r.all) == 0 {
		delete(t.rows, group)
	}
	t.publishLocked(Left, group, removed)
}

// fewPids is the size up to which remove searches the row once per pid.
const fewPids = 8

func countPids(pids []etf.Pid) map[etf.Pid]int {
	m := make(map[etf.Pid]int, len(pids))
	for _, p := range pids {
		m[p]++
	}
	return m
}

// nodeNames returns the nodes that have members, this one included.
func (t *table) nodeNames() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.nodes) == 0 {
		return nil
	}
	out := make([]string, 0, len(t.nodes))
	for n := range t.nodes {
		out = append(out, string(n))
	}
	sort.Strings(out)
	return out
}

// removeOne deletes one occurrence of p, moving the last entry into its
// place (order does not matter, and this keeps removal O(1) after the
// search).
func removeOne(s []etf.Pid, p etf.Pid) ([]etf.Pid, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == p {
			last := len(s) - 1
			s[i] = s[last]
			s[last] = etf.Pid{}
			return s[:last], true
		}
	}
	return s, false
}

// subscribe registers a subscriber of group and returns the members at
// that instant. Both happen under the write lock, so the subscriber sees
// every change after the snapshot and none before it: no gap, no overlap.
// On a closed table the subscription is returned already stopped.
func (t *table) subscribe(group string) ([]etf.Pid, *subscription) {
	sub := newSubscription(group)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		sub.stop()
		return nil, sub
	}
	var current []etf.Pid
	if r, ok := t.rows[group]; ok {
		current = slices.Clone(r.all)
	}
	t.subs[group] = append(t.subs[group], sub)
	t.mu.Unlock()
	return current, sub
}

// unsubscribe forgets sub and stops it.
func (t *table) unsubscribe(sub *subscription) {
	t.mu.Lock()
	subs := t.subs[sub.group]
	if i := slices.Index(subs, sub); i >= 0 {
		subs = slices.Delete(subs, i, i+1)
		if len(subs) == 0 {
			delete(t.subs, sub.group)
		} else {
			t.subs[sub.group] = subs
		}
	}
	t.mu.Unlock()
	sub.stop()
}

// close empties the table for good and stops every subscription (their
// channels close). Runs when the scope's process terminates: like pg's
// ETS table, the membership view dies with its scope.
func (t *table) close() {
	t.mu.Lock()
	t.closed = true
	t.rows = make(map[string]*row)
	t.nodes = make(map[etf.Atom]int)
	subs := t.subs
	t.subs = make(map[string][]*subscription)
	t.mu.Unlock()
	for _, list := range subs {
		for _, s := range list {
			s.stop()
		}
	}
}

// publishLocked sends an event to the group's subscribers. Each gets its
// own copy of pids. Requires t.mu held for writing.
func (t *table) publishLocked(kind EventKind, group string, pids []etf.Pid) {
	if len(pids) == 0 {
		return
	}
	for _, s := range t.subs[group] {
		s.publish(Event{Kind: kind, Group: group, Pids: slices.Clone(pids)})
	}
}

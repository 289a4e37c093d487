package serving

import (
	"math/rand/v2"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/actors/pg"
)

// Member choice for distributed calls. Nx picks a random member of the
// group, so a member that is slow, or frozen, keeps getting its share
// and its callers pile up behind it. Here a call picks two random
// entries of the group (an entry per partition × weight, so the draw is
// weighted as Nx's is) and takes the one whose node has fewer calls
// waiting on it per entry it holds — the power of two choices, which
// evens load out with two reads and no coordination. Nodes that failed a
// liveness probe (endpoint_liveness.go) and members already tried by this
// call are passed over while others remain.

// pickMember chooses a member for one attempt of a call to serving name.
// Members of the serving's own group come first; if it has none, Nx v0.5
// to v0.9's shared group on nodes without an ergonx endpoint (ergonx
// servings are always in their own group, so shared-group members on
// ergonx nodes cannot be this serving).
func (ep *endpoint) pickMember(scope *pg.Scope, name string, tried []etf.Pid) (etf.Pid, bool) {
	var room [16]etf.Pid // most groups fit: no allocation per call
	members := scope.AppendMembers(room[:0], name)
	if len(members) == 0 {
		for _, m := range scope.Members(NxSharedGroup) {
			if !scope.HasMemberOn(EndpointGroup, string(m.Node)) {
				members = append(members, m)
			}
		}
	}
	if len(members) == 0 {
		return etf.Pid{}, false
	}
	if entries(members, members[0]) == len(members) {
		return members[0], true // one member (one entry per partition): nothing to choose
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	candidates := ep.preferredLocked(members, tried)
	a := candidates[rand.IntN(len(candidates))]
	// The second choice is an entry of another member when there is one:
	// two entries of one member compare nothing.
	others := len(candidates) - entries(candidates, a)
	if others == 0 {
		return a, true
	}
	var b etf.Pid
	k := rand.IntN(others)
	for _, c := range candidates {
		if c == a {
			continue
		}
		if k == 0 {
			b = c
			break
		}
		k--
	}
	// Fewer waiting calls per entry wins: compare la/wa with lb/wb.
	la, lb := ep.outstanding[string(a.Node)], ep.outstanding[string(b.Node)]
	wa, wb := entries(members, a), entries(members, b)
	switch {
	case la*wb < lb*wa:
		return a, true
	case lb*wa < la*wb:
		return b, true
	}
	// A tie (an idle cluster: nothing waits anywhere) goes by weight, so
	// that each member's share is its weight's, as with Nx's random pick:
	// a is drawn by weight, b is the other, and each wins in proportion
	// to its entries.
	if rand.IntN(wa+wb) < wa {
		return a, true
	}
	return b, true
}

// preferredLocked returns the entries of members not tried yet on
// healthy nodes; failing that, the untried ones; failing that, all.
// ep.mu must be held.
func (ep *endpoint) preferredLocked(members, tried []etf.Pid) []etf.Pid {
	if ep.allPreferredLocked(members, tried) {
		return members // the usual case, without copying
	}
	var untried, healthy []etf.Pid
	for _, m := range members {
		if contains(tried, m) {
			continue
		}
		untried = append(untried, m)
		if !ep.ejectedLocked(string(m.Node)) {
			healthy = append(healthy, m)
		}
	}
	switch {
	case len(healthy) > 0:
		return healthy
	case len(untried) > 0:
		return untried
	}
	return members
}

// allPreferredLocked reports whether every member is untried and on a
// healthy node. ep.mu must be held.
func (ep *endpoint) allPreferredLocked(members, tried []etf.Pid) bool {
	for _, m := range members {
		if contains(tried, m) || ep.ejectedLocked(string(m.Node)) {
			return false
		}
	}
	return true
}

// entries counts p's entries in members (its partitions × weight).
func entries(members []etf.Pid, p etf.Pid) int {
	n := 0
	for _, m := range members {
		if m == p {
			n++
		}
	}
	return n
}

func contains(pids []etf.Pid, p etf.Pid) bool {
	for _, q := range pids {
		if q == p {
			return true
		}
	}
	return false
}

// lookupScope returns the process-group scope called name on the
// endpoint's node. The last one found is kept while it runs: looking a scope up by
// name takes the node's registry lock, which every call would otherwise
// take (measured: 3.5 % of the cluster path's CPU at 256 callers).
func (ep *endpoint) lookupScope(nd gen.Core, name string) *pg.Scope {
	if s := ep.scope.Load(); s != nil && s.Name() == name && !scopeEnded(s) {
		return s
	}
	s := pg.Lookup(nd, name)
	if s != nil {
		ep.scope.Store(s)
	}
	return s
}

func scopeEnded(s *pg.Scope) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

package mesh

import (
	"slices"
	"strings"
	"time"
)

// book is the mesh's address book: which nodes it knows, which are
// connected, and when to try the others next. It is pure logic with an
// explicit clock, owned by the mesh process (no lock).
type book struct {
	self  string
	opts  Options // defaults filled in
	nodes map[string]*entry
}

// entry is one known node.
type entry struct {
	connected bool
	learned   bool          // never seen connected: learned from a peer's list or a group
	since     time.Time     // went down, or was learned: retries end at since+ForgetAfter
	next      time.Time     // the next attempt, when not connected
	backoff   time.Duration // the wait after the next failure
	attempts  int           // since it went down or was learned
	inFlight  bool          // an attempt is running
}

func newBook(self string, opts Options) *book {
	return &book{self: self, opts: opts, nodes: make(map[string]*entry)}
}

// observe takes the list of connected nodes at now. It returns the nodes
// that were not connected before (to send them our list), and marks down
// the connected ones that are gone.
func (b *book) observe(now time.Time, connected []string) (up []string) {
	seen := make(map[string]struct{}, len(connected))
	for _, n := range connected {
		if n == b.self {
			continue
		}
		seen[n] = struct{}{}
		if b.markUp(n) {
			up = append(up, n)
		}
	}
	for n, e := range b.nodes {
		if _, ok := seen[n]; !ok && e.connected {
			b.markDown(now, n)
		}
	}
	slices.Sort(up)
	return up
}

// markUp records that n is connected; it reports whether it was not
// before. A node beyond MaxNodes is connected all the same, and
// remembered once there is room.
func (b *book) markUp(n string) bool {
	e, ok := b.nodes[n]
	if !ok {
		if len(b.nodes) >= b.opts.MaxNodes {
			return true
		}
		e = &entry{}
		b.nodes[n] = e
	}
	if e.connected {
		return false
	}
	*e = entry{connected: true, inFlight: e.inFlight}
	return true
}

// markDown records that n, connected until now, is not: it is tried
// MinBackoff from now (after Grace if n dials first, see firstAttempt),
// then with growing backoff.
func (b *book) markDown(now time.Time, n string) {
	e, ok := b.nodes[n]
	if !ok || !e.connected {
		return
	}
	*e = entry{
		since:    now,
		next:     b.firstAttempt(now, n, b.opts.MinBackoff),
		backoff:  min(2*b.opts.MinBackoff, b.opts.MaxBackoff),
		inFlight: e.inFlight,
	}
}

// firstAttempt is when to try n first, wait after now: of two nodes, the
// one whose name sorts first dials, and the other only once it has
// waited Grace. ergo v1.999.224 leaks the goroutines of a connection when
// two nodes dial each other at once (the loser of its registration race
// is closed without being terminated), and both would, after a dropped
// connection or when a peer tells both of each other. The node that sorts
// first makes its first attempts within Grace; the other dials only if
// that one does not (it restarted, and knows nothing of it).
func (b *book) firstAttempt(now time.Time, n string, wait time.Duration) time.Time {
	if n < b.self {
		wait = max(wait, b.opts.Grace)
	}
	return now.Add(wait)
}

// learn adds the nodes of names it does not know, to be tried at once,
// as long as there is room. It returns how many it added and how many it
// dropped for want of room or because they are not node names.
func (b *book) learn(now time.Time, names []string) (added, dropped int) {
	for _, n := range names {
		if n == b.self {
			continue
		}
		if _, known := b.nodes[n]; known {
			continue
		}
		if !validNodeName(n) || len(b.nodes) >= b.opts.MaxNodes {
			dropped++
			continue
		}
		b.nodes[n] = &entry{learned: true, since: now, backoff: b.opts.MinBackoff, next: b.firstAttempt(now, n, 0)}
		added++
	}
	return added, dropped
}

// due returns the nodes to try now (marking them in flight), and forgets
// those that have failed for ForgetAfter.
func (b *book) due(now time.Time) (connect, forgotten []string) {
	for n, e := range b.nodes {
		if e.connected || e.inFlight {
			continue
		}
		if now.Sub(e.since) >= b.opts.ForgetAfter {
			delete(b.nodes, n)
			forgotten = append(forgotten, n)
			continue
		}
		if !now.Before(e.next) {
			e.inFlight = true
			e.attempts++
			connect = append(connect, n)
		}
	}
	slices.Sort(connect)
	slices.Sort(forgotten)
	return connect, forgotten
}

// result records the end of an attempt to connect to n. A success marks n
// up (reported so that it gets our list); a failure schedules the next
// attempt, the backoff doubled up to MaxBackoff.
func (b *book) result(now time.Time, n string, err error) (up bool) {
	e, ok := b.nodes[n]
	if !ok {
		return false // forgotten meanwhile
	}
	e.inFlight = false
	if err == nil {
		return b.markUp(n)
	}
	if e.connected {
		return false // connected meanwhile, from the other side
	}
	e.next = now.Add(e.backoff)
	e.backoff = min(2*e.backoff, b.opts.MaxBackoff)
	return false
}

// forget drops n.
func (b *book) forget(n string) { delete(b.nodes, n) }

// others returns the connected nodes but n, sorted: what n is told.
func (b *book) others(n string) []string {
	var out []string
	for m, e := range b.nodes {
		if e.connected && m != n {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// peers returns the book as Peers, sorted by node.
func (b *book) peers() []Peer {
	out := make([]Peer, 0, len(b.nodes))
	for n, e := range b.nodes {
		p := Peer{Node: n, Connected: e.connected, Learned: e.learned, Attempts: e.attempts, Dialing: e.inFlight}
		if !e.connected {
			p.Since, p.Next = e.since, e.next
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y Peer) int { return strings.Compare(x.Node, y.Node) })
	return out
}

// validNodeName accepts name@host, at most 255 bytes, no control
// characters: what a peer's list may name.
func validNodeName(n string) bool {
	if len(n) > 255 {
		return false
	}
	at := strings.IndexByte(n, '@')
	if at <= 0 || at == len(n)-1 || strings.Count(n, "@") != 1 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] <= ' ' || n[i] == 0x7f {
			return false
		}
	}
	return true
}

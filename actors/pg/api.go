package pg

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
)

// DefaultScope is the registered name of the scope every ergonx node runs,
// the same as Nx's Nx.Serving.PG, so that Elixir nodes running Nx can
// share it.
const DefaultScope = "Elixir.Nx.Serving.PG"

// MailboxSize is the scope's mailbox capacity, ergo's maximum. ergo's
// default of 100 drops whatever arrives when full, DOWN messages included:
// a burst of member deaths, or of a peer's joins and leaves, would leave
// dead pids in the groups forever. The size has a cost: ergo allocates the
// mailbox and the exit queue at this capacity, several MB per scope.
const MailboxSize = 65535

// Options configures Start and ChildSpec. The zero value starts
// DefaultScope.
type Options struct {
	// Name is the scope's registered name on its node. Scopes of the same
	// name on connected nodes share their members; scopes of different
	// names are independent. "" means DefaultScope. It must be a valid
	// atom (at most 255 characters).
	Name string

	// DiscoveryInterval is how often the scope lists the connected nodes
	// and discovers the scopes of those it has not met since they
	// connected. Node-up events do this at once when ergo delivers them,
	// but ergo v1.999.224 delivers them only on the node started last in
	// an OS process (see the package doc), so the scan is what finds peers
	// on the others. Zero means DefaultDiscoveryInterval.
	DiscoveryInterval time.Duration

	// MaxPeerMembers is the most entries (group memberships, one per
	// join) that one peer node may hold in this scope's table. Entries a
	// peer announces beyond it are refused, counted in Stats.OverLimit
	// and logged (rate-limited), so that a peer announcing millions of
	// members costs this node a bounded amount of memory. Zero means
	// DefaultMaxPeerMembers.
	MaxPeerMembers int
}

// DefaultDiscoveryInterval is the DiscoveryInterval used when it is zero.
const DefaultDiscoveryInterval = time.Second

// DefaultMaxPeerMembers is the MaxPeerMembers used when it is zero. A
// serving joins once per partition times its weight, so a node with 100
// servings of 8 partitions at weight 4 holds 3,200 entries: 10,000 leaves
// room for three times that, and bounds what one peer can make this node
// keep to about 1 MB (an entry costs some 64 bytes here, in the peer's
// view and in the table).
const DefaultMaxPeerMembers = 10_000

func (o Options) maxPeer() int {
	if o.MaxPeerMembers <= 0 {
		return DefaultMaxPeerMembers
	}
	return o.MaxPeerMembers
}

func (o Options) interval() time.Duration {
	if o.DiscoveryInterval <= 0 {
		return DefaultDiscoveryInterval
	}
	return o.DiscoveryInterval
}

func (o Options) name() (string, error) {
	if o.Name == "" {
		return DefaultScope, nil
	}
	if err := checkGroup(o.Name); err != nil {
		return "", fmt.Errorf("pg: scope name: %w", err)
	}
	return o.Name, nil
}

// Scope is a handle on a running process-group scope, the equivalent of
// an Erlang pg scope: processes of this node join named groups, and every
// node whose scope has the same name sees them.
//
// A Scope is safe for concurrent use. Reads (Members, LocalMembers,
// RandomMember, Count, Groups, LocalGroups) take a read lock on the
// scope's table and never wait for its process. Join and Leave go through
// the scope's process and return once the local table reflects them;
// other nodes see them shortly after (eventual consistency, as in pg).
type Scope struct {
	name  string
	node  string
	pid   etf.Pid
	proc  gen.Process
	table *table
	stats *counters
	done  chan struct{} // closed when the scope's process has terminated

	// gate orders the API's sends to the scope's process before its
	// termination: ergo v1.999.224's RouteSend reads the mailbox without
	// the lock under which process cleanup clears it, so a send during
	// cleanup is a data race. Terminate (which runs before cleanup) closes
	// the gate under the write lock; senders hold the read lock.
	gate   sync.RWMutex
	closed bool // guarded by gate
}

// send queues msg in the scope's mailbox unless the scope has terminated.
func (s *Scope) send(msg etf.Term) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed {
		return lib.ErrProcessTerminated
	}
	return s.proc.Send(s.pid, msg)
}

// closeGate makes every later send fail; it runs on the scope's process
// in Terminate.
func (s *Scope) closeGate() {
	s.gate.Lock()
	s.closed = true
	s.gate.Unlock()
}

// Start starts a scope registered as opts.Name on nd and returns its
// handle. It fails with lib.ErrTaken if the name is in use.
//
// The scope watches the network: when a node connects, it sends discover
// to the scope of the same name there, and the two exchange their members.
// Stop it with Stop (or by stopping the node).
func Start(nd node.Node, opts Options) (*Scope, error) {
	name, err := opts.name()
	if err != nil {
		return nil, err
	}
	srv := newServer(nd, name, opts)
	if _, err := nd.Spawn(name, processOptions(), actors.NewActor(srv)); err != nil {
		return nil, fmt.Errorf("pg: start scope %q on %s: %w", name, nd.Name(), err)
	}
	return srv.scope.Load(), nil
}

// ChildSpec returns a supervisor child spec that runs the scope on nd
// under opts.Name, for a place in a supervision tree. Find the running
// incarnation with Lookup; a restarted scope starts empty and
// re-discovers its peers, and handles on the old one return ErrStopped.
func ChildSpec(nd node.Node, opts Options) (gen.SupervisorChildSpec, error) {
	name, err := opts.name()
	if err != nil {
		return gen.SupervisorChildSpec{}, err
	}
	return gen.SupervisorChildSpec{
		Name:    name,
		Child:   actors.NewActor(newServer(nd, name, opts)),
		Options: processOptions(),
	}, nil
}

func processOptions() gen.ProcessOptions {
	return gen.ProcessOptions{MailboxSize: MailboxSize}
}

// Lookup returns the handle of the scope registered as name on the node of
// c (a node.Node or any of its processes), or nil if there is none. ""
// means DefaultScope.
func Lookup(c gen.Core, name string) *Scope {
	if name == "" {
		name = DefaultScope
	}
	p := c.ProcessByName(name)
	if p == nil {
		return nil
	}
	a, ok := p.Behavior().(*actors.Actor)
	if !ok {
		return nil
	}
	srv, ok := a.Behavior().(*server)
	if !ok {
		return nil
	}
	return srv.scope.Load()
}

// Name returns the scope's registered name.
func (s *Scope) Name() string { return s.name }

// Pid returns the scope's process.
func (s *Scope) Pid() etf.Pid { return s.pid }

// Done returns a channel closed when the scope's process has terminated
// and its table has been emptied.
func (s *Scope) Done() <-chan struct{} { return s.done }

// Stop stops the scope's process and waits until it has terminated and
// its name is free again. Requests queued before Stop are handled first;
// later ones get ErrStopped. The table empties, Monitor channels close,
// and peers forget this node's members (they watch the scope). Stopping a
// stopped scope does nothing; a scope under a supervisor is restarted
// by it.
func (s *Scope) Stop() {
	select {
	case <-s.done:
	default:
		if err := s.send(stopRequest{}); errors.Is(err, lib.ErrProcessMailboxFull) {
			// The request cannot queue behind 65,535 messages; kill the
			// scope instead (Kill is not subject to the Exit race, see
			// stopRequest).
			s.proc.Kill()
		}
		<-s.done
	}
	// Terminate has run, but ergo releases the registered name only after
	// it, just before cancelling the process's context: wait for that too,
	// so that a new scope can take the name as soon as Stop returns.
	<-s.proc.Context().Done()
}

// Join adds each of pids to group once per occurrence: Join(g, p, p) makes
// p a member twice, so a random pick finds it twice as often and it must
// leave twice. The group is created on first join. pids must live on the
// scope's node (else ErrNotLocal); a pid that is already dead is dropped
// as soon as the scope learns it (its monitor fires with noproc).
//
// Join returns when the scope has recorded the membership and sent it to
// its peers, or ErrStopped, ErrOverloaded, ErrGroupName. It may be called
// from any goroutine, including an actor's callback; it does not use
// ergo's Direct, whose queue of 10 fails concurrent callers with "process
// is busy". Joining no pids does nothing.
func (s *Scope) Join(group string, pids ...etf.Pid) error {
	if err := s.checkArgs(group, pids); err != nil || len(pids) == 0 {
		return err
	}
	reply := make(chan error, 1)
	return s.request(joinRequest{group: group, pids: slices.Clone(pids), reply: reply}, reply)
}

// Leave removes one membership of group for each of pids (list a pid n
// times to remove n memberships). Pids that are not members are skipped;
// if none was, Leave returns ErrNotJoined and nothing changes. A pid that
// leaves all its groups stays watched by the scope until it exits (see
// the package doc on monitors). Same calling rules and errors as Join.
func (s *Scope) Leave(group string, pids ...etf.Pid) error {
	if err := s.checkArgs(group, pids); err != nil {
		return err
	}
	if len(pids) == 0 {
		return ErrNotJoined
	}
	reply := make(chan error, 1)
	return s.request(leaveRequest{group: group, pids: slices.Clone(pids), reply: reply}, reply)
}

func (s *Scope) checkArgs(group string, pids []etf.Pid) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	for _, p := range pids {
		if string(p.Node) != s.node {
			return fmt.Errorf("%w: %s is on %s, the scope on %s", ErrNotLocal, p, p.Node, s.node)
		}
	}
	return nil
}

// Suspect reports that pid, a member of a group announced by another
// node, failed a caller: it answered noproc, or nothing within the
// caller's deadline. The scope hides pid on this node at once (Members,
// RandomMember and Count no longer list it; Monitor subscribers get a
// Left event) and probes it: it watches pid (a DOWN proves it dead) and
// asks its node's scope for its members again (a discover, answered by a
// sync). pid is shown again, with all its entries, when its node announces
// it again (a later join or sync that lists it, such as the answer to the
// probe: the peer is alive and stands by pid); if instead the DOWN comes,
// pid is dropped for good and never taken from that peer again. A peer
// that does not answer (a frozen node) leaves pid hidden until its
// connection drops and all its members go.
//
// This is how a caller keeps a ghost member (a pid the peer announces but
// that does not exist, or that died without the peer saying so) from
// being picked again, without trusting the caller's error for long: a
// live peer has the last word.
//
// Suspect returns once pid is hidden, or nil at once if pid is not a
// member announced by a peer: local members need no suspicion (the scope
// watches them and drops them when they die). It fails with ErrStopped or
// ErrOverloaded as Join does. It may be called from any goroutine,
// repeatedly: a pid already suspected costs nothing more.
func (s *Scope) Suspect(pid etf.Pid) error {
	if string(pid.Node) == s.node {
		return nil
	}
	reply := make(chan error, 1)
	return s.request(suspectRequest{pid: pid, reply: reply}, reply)
}

// Stats counts what the scope refused from its peers and what Suspect
// did, since the scope started. Each count only grows, and moves before
// the table changes it counts: a Monitor subscriber that sees a suspected
// member leave, or come back, sees it counted.
type Stats struct {
	// Forged is the number of entries peers announced for pids that are
	// not theirs: of another node (a node that does not exist included),
	// or of another incarnation of their own node. A peer may announce
	// only its own processes, as Erlang's pg:join enforces.
	Forged uint64
	// OverLimit is the number of entries refused because their peer held
	// Options.MaxPeerMembers entries already.
	OverLimit uint64
	// DeadRefused is the number of entries refused because a probe had
	// found their pid dead.
	DeadRefused uint64
	// Suspected is the number of members Suspect hid.
	Suspected uint64
	// Restored is the number of suspected members shown again, because
	// their peer announced them again.
	Restored uint64
	// Dead is the number of suspected members a probe found dead, and
	// dropped.
	Dead uint64
}

// Stats returns the scope's counters. It never waits for the scope.
func (s *Scope) Stats() Stats { return s.stats.snapshot() }

// Nodes returns the nodes that have members in any group, as this scope
// sees them (its own node included when it has local members), sorted.
// It never waits for the scope.
func (s *Scope) Nodes() []string { return s.table.nodeNames() }

// request queues req in the scope's mailbox and waits for its answer or
// the scope's end. The send never blocks: a full mailbox is an error.
func (s *Scope) request(req etf.Term, reply <-chan error) error {
	if err := s.send(req); err != nil {
		if errors.Is(err, lib.ErrProcessMailboxFull) {
			return fmt.Errorf("%w (%d messages)", ErrOverloaded, MailboxSize)
		}
		return fmt.Errorf("%w: %v", ErrStopped, err)
	}
	select {
	case err := <-reply:
		return err
	case <-s.done:
		// The scope may have answered just before it stopped.
		select {
		case err := <-reply:
			return err
		default:
			return ErrStopped
		}
	}
}

// Members returns the members of group on every node this scope knows of,
// one entry per join, in no particular order; nil if the group is empty.
// The slice is the caller's.
func (s *Scope) Members(group string) []etf.Pid { return s.table.members(group) }

// AppendMembers appends the members of group to dst and returns the
// extended slice: Members without an allocation when dst has room, for
// callers that look a group up per request.
func (s *Scope) AppendMembers(dst []etf.Pid, group string) []etf.Pid {
	return s.table.appendMembers(dst, group)
}

// LocalMembers returns the members of group that live on this node, one
// entry per join; nil if none. The slice is the caller's.
func (s *Scope) LocalMembers(group string) []etf.Pid { return s.table.localMembers(group) }

// RandomMember picks one entry of group uniformly at random, so each pid
// is chosen in proportion to how many times it joined; false if the group
// is empty. It allocates nothing, for callers that pick a member per
// request.
func (s *Scope) RandomMember(group string) (etf.Pid, bool) { return s.table.random(group) }

// HasMemberOn reports whether group has a member on node (a node name,
// "name@host"). Like the other reads it sends no message and allocates
// nothing.
func (s *Scope) HasMemberOn(group, node string) bool {
	return s.table.hasMemberOn(group, etf.Atom(node))
}

// Count returns the number of entries of group (with duplicates).
func (s *Scope) Count(group string) int { return s.table.count(group) }

// Groups returns the groups that have members anywhere, sorted.
func (s *Scope) Groups() []string { return s.table.groups(false) }

// LocalGroups returns the groups that have members on this node, sorted.
func (s *Scope) LocalGroups() []string { return s.table.groups(true) }

// Monitor watches group, like Erlang's pg:monitor/2: it returns the
// group's members at this instant and a channel that then receives every
// change of the group, local or remote, in the order the scope applied
// them, with no gap or overlap with members. The scope never waits for
// the reader: events queue without bound until read, so read them
// promptly or cancel.
//
// cancel stops the watch and closes events (undelivered events are
// dropped); it may be called more than once and from any goroutine. The
// channel also closes when the scope stops. A group name that cannot be
// an atom can have no members, and its channel never receives.
func (s *Scope) Monitor(group string) (members []etf.Pid, events <-chan Event, cancel func()) {
	members, sub := s.table.subscribe(group)
	return members, sub.out, func() { s.table.unsubscribe(sub) }
}

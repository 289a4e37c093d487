// Package pg implements process groups with the semantics and the wire
// protocol of Erlang's pg (OTP 25), on ergo v1.999.224.
//
// A Scope is a registered process on a node. Processes of that node join
// named groups through it; every connected node running a scope of the
// same name sees them. ergonx nodes run DefaultScope
// ("Elixir.Nx.Serving.PG", the name Nx uses), and a serving joins the
// group of its own name once per partition times its weight, so that a
// caller anywhere in the cluster picks a member with RandomMember and
// lands on a serving in proportion to its capacity.
//
// # Semantics
//
// Membership is a multiset: Join(g, p, p) makes p a member twice, Members
// lists it twice, and Leave(g, p) removes one of the two. Groups exist
// while they have members. Only local processes may join or leave
// (ErrNotLocal); each node announces its own members.
//
// Reads (Members, LocalMembers, RandomMember, Count, Groups) read the
// scope's table under a read lock, like pg's ETS table: they never send
// a message, and RandomMember allocates nothing. Join and Leave are
// serialised through the scope's process and return once the local table
// shows them; other nodes see them a little later. Views are eventually
// consistent, as in pg.
//
// The scope watches every local member (a monitor) and drops a member
// that dies from all its groups, here and, by a leave message, on every
// peer. It watches every peer scope too: when one stops, or its node
// disconnects (DOWN with noconnection), all of that peer's members are
// forgotten.
//
// Monitor (Erlang's pg:monitor/2) returns a group's members and a channel
// of every later Joined/Left Event for it, with no gap between the two.
//
// # Wire protocol
//
// Scopes exchange exactly what OTP 25's pg.erl sends, so that an Erlang
// or Elixir pg scope of the same name can join the overlay:
//
//	{discover, ScopePid}                               to {Scope, Node} on node-up, or to a pid in reply
//	{'$gen_cast', {sync, ScopePid, [{Group, [Pid]}]}}  answer to every discover: all local members
//	{join, ScopePid, Group, PidOrPids}                 after a local join
//	{leave, ScopePid, PidOrPids, [Group]}              after a local leave, or a member's death
//
// A sync replaces everything known of that peer. Join and leave messages
// from a scope that is not (or no longer) a known peer are ignored. A
// scope sends only to nodes that are connected, like pg's [noconnect].
//
// Group names are Go strings and travel as atoms, so they are valid UTF-8
// of at most 255 characters (ErrGroupName). An Erlang peer may use groups
// of any term type; groups that are not atoms are ignored, with a logged
// warning, and never reach Go callers. (ergo decodes the atoms true and
// false as Go bools; they are read back as the groups "true" and
// "false".)
//
// # What a peer may announce
//
// A pg scope trusts its peers in Erlang; this one checks them, so that a
// broken or hostile node cannot make callers fail or hang on members that
// do not exist:
//
//   - A peer adds only pids of its own node and incarnation (the node and
//     creation of the scope pid its join or sync names), as Erlang's
//     pg:join allows only local pids. Entries for another node's pids, a
//     node that does not exist included, for this node's, or for an
//     earlier incarnation of the peer's node are refused, counted in
//     Stats.Forged and logged (rate-limited). A well-behaved Erlang or ergonx
//     peer never sends any.
//   - A peer node holds at most Options.MaxPeerMembers entries
//     (DefaultMaxPeerMembers, 10,000); more are refused and counted in
//     Stats.OverLimit. A join or sync listing millions of pids is read
//     without copying more than that bound, and a leave costs one pass over
//     the groups it names, however many pids it lists. A node has one peer
//     scope: a second scope pid of the same node replaces the first, so
//     that announcing under many scope pids gains nothing.
//   - A peer can still announce its own pids that do not exist or have
//     died (a ghost). Callers report a member that answered noproc or
//     nothing with Suspect: the member is hidden on this node at once, and
//     probed (a monitor, and a discover that the peer answers with a sync).
//     It comes back when the peer announces it again; it is dropped for
//     good when the monitor's DOWN comes, and the peer may not announce it
//     again (Stats.DeadRefused). A peer that does not answer at all (a
//     frozen node) leaves it hidden until the connection drops.
//   - The scope cannot know which node really sent a message: ergo's
//     distribution gives no sender for a pid-to-pid send. A node that
//     names another node's scope pid as the sender can announce that
//     node's pids (not its own), a ghost that Suspect then catches, or
//     replace that node's view until its scope answers the next probe.
//   - Whatever a peer sends, the scope logs at most a short, bounded
//     rendering of it (internal/safelog), and at most ten lines a second
//     of each kind.
//
// # Monitors are never removed
//
// ergo v1.999.224's references repeat every 262,144 (it keeps 18 bits of
// its counter), so DemonitorProcess with an old reference can remove a
// newer monitor that reuses it. The scope therefore keys everything by pid
// and never demonitors: a local pid stays watched after it leaves its last
// group, until it dies (one monitor per pid, however often it rejoins),
// and a DOWN that no longer matters is ignored. Peer scopes are watched
// until their DOWN, as in pg.
//
// # ergo traps designed around
//
//   - Mailboxes hold 100 messages by default and drop what does not fit,
//     DOWN included; a burst of member deaths would leave dead members in
//     the groups. The scope's mailbox has MailboxSize (65,535, ergo's
//     maximum) entries. A burst beyond that still loses messages: ergo
//     offers no back-pressure.
//   - Direct requests share a queue of 10 and fail with "process is busy"
//     beyond it. Join and Leave send a request to the mailbox and wait on
//     a channel of capacity 1 instead, so a thousand concurrent callers
//     all succeed, from goroutines or from actors.
//   - The ETF encoder never returns on a top-level empty list. No scope
//     message is a list (sync's list of groups, possibly empty, is inside
//     a tuple), and every send is checked first.
//   - Map keys that are tuples or lists are dropped on decode. pg's
//     protocol has no maps, and the check refuses any.
//   - ergo's own distribution reorders messages between two nodes (it
//     spreads a connection over several handlers); ergonx nodes run their
//     own (internal/erldist, through actors.NodeOptions), which keeps the
//     order. A leave that overtook its join would leave a ghost member on
//     the peer.
//   - Node-up events (node.EventNetwork) reach only the node started last
//     in an OS process: ergo keeps the event's owner in a package-level
//     variable that every node start overwrites. In production there is
//     one node per process, but the scope does not rely on it: it also
//     scans the connected nodes every DiscoveryInterval and discovers the
//     ones it has not met since they connected. (The same variable is a
//     data race between a node start and another node's connection
//     events; tests start all their nodes first.)
//   - Process.Exit from another goroutine can dereference a nil function
//     when the process terminates at once. Stop asks the scope to stop
//     through its mailbox, and waits until its name is free, which ergo
//     releases only after Terminate.
//   - ergo makes a connection on demand for any send or monitor to a node
//     that is not connected, which can block for a connection timeout and
//     reconnect a node that was disconnected on purpose. The scope never
//     sends to, or watches, a node that is not connected. (ergo itself
//     still does it once: a disconnect leaves the peer's monitor of this
//     scope in place, and when this scope later stops, ergo dials the
//     peer to deliver that DOWN.)
//   - ergo sends a remote monitor request before it registers the
//     monitor, so the immediate noproc answer for a pid that is already
//     dead is dropped now and then under load (9 of 2,000 measured). A
//     Suspect probe watches its pid again when the peer answers, and once
//     more on a later suspicion (three monitors at most: the scope never
//     demonitors).
//   - A message routed to a process while ergo cleans it up is a data race
//     inside ergo (it reads the mailbox without the lock that cleanup
//     takes): harmless in production, reported by -race. The scope's own
//     sends to itself (API requests, the discovery timer, which replaces
//     ergo's SendAfter for this reason) stop before its Terminate returns;
//     what peers send cannot be held back, so tests let the scopes settle
//     before stopping one.
//
// The scope never makes a synchronous call itself, so ergo's deferred
// queue (which drops messages while a callback waits for a reply) is never
// used.
//
// # Starting
//
// Start runs a scope on a node; ChildSpec places one under a supervisor
// (a restarted scope starts empty and discovers its peers again), and
// Lookup finds the running incarnation by name. Stop ends it: its table
// empties and peers forget its members.
package pg

// Package erldist is ergonx's own Erlang distribution layer: the
// connection handshake (node.HandshakeInterface) and the connections
// (node.ProtoInterface, node.ConnectionInterface) that ergo's core uses
// to talk to other nodes, written from the erts User's Guide ("Distribution
// Protocol", "External Term Format") for OTP 25 peers, stock ergo nodes
// and other ergonx nodes. actors.NodeOptions (and so actors.StartNode)
// sets it on every ergonx node.
//
// # Why not ergo's proto/dist
//
// ergo v1.999.224's proto/dist cannot serve as the wire to OTP 25 or
// carry Nx's distributed protocol. What it does, and what this layer does
// instead:
//
//   - It dials with handshake version 5, which OTP 25 refuses. Handshake
//     here is version 6 both ways (the new send_name 'N'), and also accepts
//     the old 'n' of nodes that dial without knowing the peer's version
//     (stock ergo nodes), reading their complement message. It answers the
//     status as OTP does: alive when that node's connection is still here
//     (the dialer says whether to replace it), nok / ok_simultaneous for
//     simultaneous dials (the greater node name wins). Concurrent dials of
//     one node from this node are serialised and share one connection (ergo
//     dials once per sender that finds no connection; OTP refuses the extra
//     handshakes).
//   - It calls a SPAWN_REQUEST whose option list holds the bare atoms
//     monitor or link malformed and stops reading the connection; it never
//     sets up the monitor or link a spawn request asks for. Here any option
//     list is accepted (unknown options are ignored), the monitor (whose
//     reference is the request id) and the link are set up by this node
//     with the reply, whose flags say so, and AwaitSpawnReply holds the new
//     process back until then: a handler that exits at once still reports
//     its own reason, never noproc.
//   - It sends exit reasons only as atoms of at most 255 characters
//     (longer ones are dropped with the DOWN), turns incoming non-atom
//     reasons into fmt.Sprint strings and ignores the payload forms of
//     EXIT, EXIT2 and MONITOR_P_EXIT. Here exit reasons are terms of any
//     size, both ways, in the payload forms where the peer has
//     DFLAG_EXIT_PAYLOAD: see TermReason, RawTermReason and ReasonTerm.
//   - It spreads one connection's messages over a handler per CPU, so the
//     messages of one process to another overtake each other, and its
//     flusher writes packets over 64,000 bytes ahead of buffered smaller
//     ones, corrupting the stream. Here one writer per connection writes
//     everything in the order it was queued (senders encode in their own
//     goroutines), batching what queues up while it writes and writing at
//     once when idle; a message larger than Options.FragmentSize goes in
//     fragments, one per round, between other senders' messages, so a large
//     tensor does not hold up small messages, while its sender's next
//     messages wait for it, as the protocol requires. One reader per
//     connection routes everything in order.
//   - Its encoder loops forever on a top-level empty list and its decoder
//     allocates whatever a length claims, recurses without bound and panics
//     on tuple map keys. Here terms go through actors/wire's term codec,
//     which checks every claim before allocating, bounds nesting and the
//     decoded size, and never panics; a malformed or unknown control
//     message, or one that cannot be decoded, is logged (rate-limited, with
//     at most a 64-byte prefix of the packet) and dropped, and the
//     connection goes on.
//   - After a malformed packet it stops reading but keeps sending
//     keepalives, so the peer believes the link is up. Here the watchdog
//     sends a tick every TickTime/4 when nothing else was sent and closes a
//     connection on which nothing arrived for TickTime (OTP's
//     net_ticktime), so a peer that is gone gets noconnection.
//   - It has no UNLINK_ID (mandatory from OTP 26). Here the new link
//     protocol is spoken with peers that have it (UNLINK_ID is
//     acknowledged before anything else is sent back), UNLINK with others.
//   - ergo writes a package-level variable (node.corePID) on every node
//     start and reads it as connections register and unregister: a data
//     race whenever a node starts while another's connections come and go.
//     StartNode (which actors.StartNode uses) keeps the two apart.
//
// A normal exit signal over a link does not stop a process that does not
// trap exits (ergo's core would stop it), and exit/2 with kill cannot be
// trapped. Once the local node is stopping, no exit signals are sent: the
// peer sees noconnection, as for any node that goes away, rather than the
// kill that ergo gives each process.
//
// Advertised flags: every one OTP 25 makes mandatory
// (DFLAG_MANDATORY_25_DIGEST), plus DIST_HDR_ATOM_CACHE, FRAGMENTS, SPAWN,
// ALIAS, EXIT_PAYLOAD, SEND_SENDER, UNLINK_ID and V4_NC; never ergo's
// private compression and proxy flags (ergo's proxies are not supported:
// the Proxy methods return lib.ErrUnsupported). Messages are sent with the
// normal distribution header without atom cache references (valid for
// every peer); received ones may use the atom cache, which each
// connection keeps.
//
// # Using it
//
//   - New(Options) returns a node's Handshake and Proto; wrap the node's
//     registrar with Handshake.Registrar. actors.NodeOptions does all
//     three.
//   - TermReason / RawTermReason make exit reasons that travel as terms;
//     ReasonTerm reads any reason string (gen.MessageDown.Reason,
//     gen.MessageExit.Reason) back as its term.
//   - A behaviour provided for remote spawn (nd.ProvideRemoteSpawn) calls
//     AwaitSpawnReply at the start of its ProcessLoop (actors.Actor does).
//     A spawn request for a module nobody provides is answered with the
//     error atom 'unknown behavior' (ergo's text; OTP would spawn and
//     crash with undef), so erlang:spawn_monitor/4 raises it on the
//     requesting node.
//   - SpawnMonitor spawns a process on another node with a monitor for Go
//     code that is not a process, and delivers the reply and the DOWN
//     reason on channels (Erlang's spawn_monitor/4).
//
// Nothing here is a gen.Process: it only routes through the
// node.CoreRouter ergo hands to Serve.
package erldist

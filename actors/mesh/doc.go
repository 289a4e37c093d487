// Package mesh keeps an ergonx node connected to the nodes of its
// cluster: it remembers every node it has been connected to, reconnects
// to one that went away with capped exponential backoff, and connects to
// every node it learns of, so that the cluster is a full mesh (as Erlang's
// global makes it) and a node restarted after a crash receives traffic
// again within seconds, without anyone restarting or reconnecting by hand.
//
// ergo v1.999.224 connects only on demand and never reconnects: a node
// killed and restarted under the same name was never called again by the
// nodes that had it, because nothing sends to a node that has no members
// in any process group, and it has none until its peers' scopes discover
// it, which they do only when connected.
//
// # What it does
//
// A Mesh is a process registered as Options.Name (DefaultName) that every
// ScanInterval (100 ms):
//
//   - lists the connected nodes: a node seen connected is remembered; one
//     that was connected and no longer is goes down;
//   - lists the nodes that have members in the process-group scope
//     Options.Scope (the pids a scope takes are its peers' own, see
//     actors/pg) and learns those it did not know;
//   - tries to connect to the down and learned nodes that are due, one
//     connection attempt per node at a time, off the process (ergo's
//     Connect blocks up to its dial and handshake timeouts, 3 s and 5 s).
//
// A node that went down is tried first MinBackoff (100 ms) after it went,
// then after each failure twice as long as the last time, up to
// MaxBackoff (2 s). After ForgetAfter (10 minutes) of failures the node
// is forgotten. A node learned but never connected is tried at once, then
// the same way.
//
// Of two nodes, the one whose name sorts first dials; the other waits
// Grace (MaxBackoff) before its first attempt, and dials only if the
// connection is still missing then (the first one restarted and knows
// nothing of it). Two nodes that dial each other at the same instant make
// ergo v1.999.224 leak the goroutines of the connection that loses its
// registration race (node/network.go closes it without terminating it),
// and after a dropped connection both sides would.
//
// So a restarted node is connected again by the nodes that had it within
// about MaxBackoff + ScanInterval of listening again, or, if its name sorts
// before theirs and it restarted within Grace of its crash, Grace +
// MinBackoff after the crash; its process-group members are seen once the
// scopes have exchanged them (a discovery interval more).
//
// When a node connects (whoever dialled), the Mesh sends the Mesh of that
// node the list of the other nodes it is connected to, and tells each of
// those of the newcomer: a node joining one member of the cluster, or
// restarted and reconnected by one, is connected to all. Node-up events
// (node.EventNetwork) speed this up where ergo delivers them (see
// actors/pg on why it does not always); without them, a connection that
// lasts less than a scan may go unnoticed.
//
// The mesh reconnects nodes that were disconnected on purpose: to take a
// node out of the cluster, stop it (it is forgotten after ForgetAfter), or
// call Forget on every node.
//
// # Bounds
//
// At most MaxNodes (1,024) nodes are remembered; what a peer's list adds
// beyond that, and any entry that is not a node name, is dropped and
// logged at a bounded rate (internal/safelog). A list names at most
// MaxNodes nodes; the rest is not read. A gen_server call is answered
// badarg (no caller waits for its timeout); messages of other shapes are
// ignored. The process never makes a synchronous call and never blocks on
// a connection attempt.
//
// # Wire protocol
//
// One message, sent to {Name, Node} on connection:
//
//	{ergonx_mesh_nodes, [Node]}   the sender's other connected nodes, as atoms
//
// Erlang nodes run no such process and drop it; they are connected to
// and reconnected like any other node.
package mesh

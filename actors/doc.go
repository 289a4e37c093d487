// Package actors holds the ergo building blocks that ergonx is made of and
// that know nothing of servings: StartNode and safe node options (ergonx's
// own Erlang distribution, internal/erldist, and the Erlang-facing
// processes that make Erlang nodes' ping, rpc and erpc answer at once),
// EPMD and static registrars, Actor (a message loop that survives any
// message), a task supervisor, and, in sub-packages, process-group scopes
// compatible with Erlang's pg (actors/pg), the mesh that keeps a cluster
// connected (actors/mesh) and the wire codecs that carry tensors and
// terms between nodes (actors/wire). Plain goroutines need no bridge to
// call servings: package serving reaches its engines directly (see its
// package doc).
//
// Everything here targets github.com/ergo-services/ergo v1.999.224 (ergo
// v2.2.4) and designs around its known traps: references that repeat every
// 262,144 calls, bounded mailboxes that drop messages silently, remote
// messages reordered across connection handlers, and string exit reasons.
package actors

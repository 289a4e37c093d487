package pg

import "errors"

var (
	// ErrStopped is returned by Join and Leave when the scope's process is
	// not running: it was stopped, it crashed, or its node stopped. A
	// stopped scope's table is empty; start a new scope to go on.
	ErrStopped = errors.New("pg: scope is not running")

	// ErrOverloaded is returned by Join and Leave when the scope's mailbox
	// is full, so that the request could not even be queued. The request
	// had no effect. With a mailbox of MailboxSize messages this means the
	// scope is far behind; callers may retry.
	ErrOverloaded = errors.New("pg: scope mailbox is full")

	// ErrNotLocal is returned by Join and Leave for a pid of another node:
	// as in Erlang's pg, only processes of the scope's own node can join
	// or leave through it (each node announces its own members).
	ErrNotLocal = errors.New("pg: process is not on the scope's node")

	// ErrGroupName is returned by Join and Leave for a group name, and by
	// Start and ChildSpec for a scope name, that cannot travel as an
	// Erlang atom: not valid UTF-8, or longer than 255 characters. Names
	// are atoms on the wire, and ergo's encoder refuses longer atoms.
	ErrGroupName = errors.New("pg: group name is not a valid atom")

	// ErrNotJoined is returned by Leave when none of the given pids was a
	// member of the group (Erlang's pg returns not_joined). Nothing
	// changed.
	ErrNotJoined = errors.New("pg: not joined")
)

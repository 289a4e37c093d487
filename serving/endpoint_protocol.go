package serving

import (
	"context"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/etf"
)

// The endpoint protocol. Every message is a 3-tuple {Tag, FromEndpoint,
// Items} whose items are a list (never a bare top-level list: ergo's
// encoder loops forever on a top-level empty one):
//
//	{ergonx_run,    From, [{Id, ServingName, Input}]}   caller → serving node
//	{ergonx_stream, From, [{Id, ServingName, Input}]}   caller → serving node
//	{ergonx_cancel, From, [Id]}                          caller → serving node
//	{ergonx_reply,  From, [{Id, ok, Result} |            serving node → caller
//	                       {Id, batch, Value, Metadata} |
//	                       {Id, hook, HookName, Value} |
//	                       {Id, error, Kind, Message, Details} |
//	                       {Id, error, overloaded, Message,
//	                        {Waiting, Rows, MaxQueue, RetryAfterNanos}}]}
//
// A stream request (Stream) is answered with its events as they are
// produced — batch and hook items, in order, Value and Metadata as wire
// binaries like results — then {Id, ok, Count}, Count being the number of
// events sent, so that the caller knows none was lost (ergo drops what
// reaches a full mailbox), or an error item. Items of one request travel
// in order: they leave through one outbox per destination node, and ergo
// keeps the order of messages between two processes.
//
// A run item's input may hold the rows of several callers of the sending
// node (row combining, endpoint_combine.go): the serving node runs it as
// any other request; the caller's node cuts the result into their rows.
//
// Ids are the caller endpoint's own 64-bit counter; names travel as atoms;
// inputs and results as binaries holding the wire codec's Nx term shape in
// external term format (wire.Marshal: term_to_binary of the Nx term), so
// that the costly encoding runs in the callers' goroutines rather than on
// ergo's one encoder goroutine per connection;
// Kind is an atom naming the error (see errorKind), Message a binary,
// Details a map that lets the caller's node rebuild the error's types and
// sentinels (endpoint_errors.go); {Id, error, Kind, Message} without it
// is still read.
// Results travel as messages, never as exit reasons: ergo sends reasons as
// atoms of at most 255 characters and silently drops longer ones.
const (
	tagRun    = etf.Atom("ergonx_run")
	tagStream = etf.Atom("ergonx_stream")
	tagCancel = etf.Atom("ergonx_cancel")
	tagReply  = etf.Atom("ergonx_reply")
	atomOK    = etf.Atom("ok")
	atomError = etf.Atom("error")
	atomBatch = etf.Atom("batch")
	atomHook  = etf.Atom("hook")
)

// outbox queues items for one tag and destination node. The first item

// handle dispatches one protocol message.
func (ep *endpoint) handle(m etf.Tuple) error {
	if len(m) != 3 {
		return fmt.Errorf("a %d-tuple is not an endpoint message", len(m))
	}
	tag, _ := m[0].(etf.Atom)
	from, ok := m[1].(etf.Pid)
	if !ok {
		return fmt.Errorf("%s: sender is %T, not a pid", tag, m[1])
	}
	items, ok := m[2].(etf.List)
	if !ok {
		return fmt.Errorf("%s: items are %T, not a list", tag, m[2])
	}
	ep.mu.Lock()
	ep.heardLocked(string(from.Node), time.Now())
	ep.mu.Unlock()
	switch tag {
	case tagRun, tagStream:
		for _, it := range items {
			if err := ep.startRun(from, it, tag == tagStream); err != nil {
				return err
			}
		}
	case tagCancel:
		for _, it := range items {
			id, ok := toUint64(it)
			if !ok {
				return fmt.Errorf("cancel: id is %T", it)
			}
			ep.runMu.Lock()
			cancel := ep.running[runKey{from, id}]
			ep.runMu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	case tagReply:
		for _, it := range items {
			id, r, err := parseReply(it, string(from.Node))
			if err != nil {
				return err
			}
			ep.answer(id, string(from.Node), r)
		}
	default:
		return fmt.Errorf("unknown tag %s", describeTerm(m[0], logTermBytes))
	}
	return nil
}

// startRun starts serving one request from another node (streamed to
// the caller with stream).
func (ep *endpoint) startRun(from etf.Pid, it etf.Term, stream bool) error {
	t, ok := it.(etf.Tuple)
	if !ok || len(t) != 3 {
		return fmt.Errorf("run: item is %T, not {Id, Name, Input}", it)
	}
	id, ok := toUint64(t[0])
	if !ok {
		return fmt.Errorf("run: id is %T", t[0])
	}
	name, ok := t[1].(etf.Atom)
	if !ok {
		return fmt.Errorf("run: serving name is %T, not an atom", t[1])
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := runKey{from, id}
	ep.runMu.Lock()
	if ep.running == nil { // stopped
		ep.runMu.Unlock()
		cancel()
		return nil
	}
	ep.running[k] = cancel
	ep.runMu.Unlock()
	go func() {
		local := from.Node == etf.Atom(ep.node)
		var reply etf.Tuple
		if stream {
			out := ep.outboxFor(string(from.Node), tagReply)
			reply = ep.serveStream(ctx, string(name), t[2], local, func(item etf.Tuple) {
				out.put(append(etf.Tuple{int64(id)}, item...))
			})
		} else {
			reply = ep.serve(ctx, string(name), t[2], local)
		}
		ep.runMu.Lock()
		delete(ep.running, k)
		ep.runMu.Unlock()
		cancel()
		ep.outboxFor(string(from.Node), tagReply).put(append(etf.Tuple{int64(id)}, reply...))
	}()
	return nil
}

// toUint64 reads an id: ergo decodes small integers as int, larger as
// int64 (or *big.Int, which no id of ours reaches).
func toUint64(t etf.Term) (uint64, bool) {
	switch v := t.(type) {
	case int:
		return uint64(v), v >= 0
	case int64:
		return uint64(v), v >= 0
	case uint64:
		return v, true
	case int32:
		return uint64(v), v >= 0
	case uint32:
		return uint64(v), true
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	}
	return 0, false
}

// parseReply reads one reply item.
func parseReply(it etf.Term, node string) (uint64, remoteReply, error) {
	t, ok := it.(etf.Tuple)
	if !ok || len(t) < 3 {
		return 0, remoteReply{}, fmt.Errorf("reply: item is %T, not {Id, ok|error, ...}", it)
	}
	id, ok := toUint64(t[0])
	if !ok {
		return 0, remoteReply{}, fmt.Errorf("reply: id is %T", t[0])
	}
	switch t[1] {
	case atomOK:
		return id, remoteReply{result: t[2]}, nil
	case atomBatch, atomHook:
		if len(t) != 4 {
			return 0, remoteReply{}, fmt.Errorf("reply: %s event is a %d-tuple", t[1], len(t))
		}
		ev := &wireEvent{}
		if t[1] == atomHook {
			name, ok := t[2].(etf.Atom)
			value, ok2 := t[3].([]byte)
			if !ok || !ok2 || name == "" {
				return 0, remoteReply{}, fmt.Errorf("reply: hook event is not {Id, hook, Name, Value}")
			}
			ev.hook, ev.value = string(name), value
		} else {
			value, ok := t[2].([]byte)
			meta, ok2 := t[3].([]byte)
			if !ok || !ok2 {
				return 0, remoteReply{}, fmt.Errorf("reply: batch event is not {Id, batch, Value, Metadata}")
			}
			ev.value, ev.meta = value, meta
		}
		return id, remoteReply{event: ev}, nil
	case atomError:
		kind, _ := t[2].(etf.Atom)
		var details etf.Term
		switch {
		case len(t) == 5 && kind == "overloaded":
			if over, ok := overloadedFromReply(node, t[4]); ok {
				return id, remoteReply{err: over}, nil
			}
		case len(t) == 5:
			details = t[4]
		case len(t) != 4: // the 4-tuple: a peer without details
			return 0, remoteReply{}, fmt.Errorf("reply: error is a %d-tuple", len(t))
		}
		return id, remoteReply{err: remoteErr(node, kind, termString(t[3]), details)}, nil
	}
	return 0, remoteReply{}, fmt.Errorf("reply: status is %s", describeTerm(t[1], logTermBytes))
}

// termString reads a message that arrived as a binary or a charlist.
func termString(t etf.Term) string {
	switch v := t.(type) {
	case []byte:
		return string(v)
	case string:
		return v
	}
	return fmt.Sprint(t)
}

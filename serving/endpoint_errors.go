package serving

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/etf"
)

// Errors cross nodes so that the caller's errors.Is and errors.As see
// what they would see if the serving ran on the caller's node. An error
// reply carries, besides its kind and text, a map of details:
//
//	#{sentinels => [Kind],        % every sentinel the error matches (wireSentinels)
//	  module => Binary,           % for a *CallbackError: its Module,
//	  callback => Binary,         %   its Callback,
//	  cause => Binary,            %   the text of its Err,
//	  cause_kind => Kind,         %   the kind of its Err,
//	  panic => Binary}            %   and, when Err is a *PanicError, its value's text
//
// (a key without a value is left out). The caller's node rebuilds a
// *DownError for kind down, wrapping a *CallbackError when the details
// name a callback, whose Err is a *PanicError for a panic (Value: the
// panic value's text, or an error with that text that matches the
// sentinels the value matched; Stack: nil) or else a *RemoteError; a
// *RemoteError matches (errors.Is) every sentinel the error matched on
// its node. ErrOverloaded crosses as an *OverloadedError with its
// figures.
// Errors of the caller's own code on its node (a user's error value) do
// not cross: their text does, in the *RemoteError.

// wireSentinels are the errors a RemoteError can match, by kind, in the
// order errorKind tries them.
var wireSentinels = []struct {
	kind etf.Atom
	err  error
}{
	{"noproc", ErrNoProc},
	{"shutdown_timeout", ErrShutdownTimeout},
	{"not_batch", ErrNotBatch},
	{"empty_batch", ErrEmptyBatch},
	{"batch_key", ErrBatchKey},
	{"input_stream", ErrInputStream},
	{"batch_too_large", ErrBatchTooLarge},
	{"streaming_hooks", ErrStreamingHooks},
	{"wire", ErrWire},
	{"canceled", context.Canceled},
	{"deadline_exceeded", context.DeadlineExceeded},
	{"overloaded", ErrOverloaded},
	{"bad_callback", ErrBadCallback},
	{"output_rows", ErrOutputRows},
	{"node_down", ErrNodeDown},
	{"no_endpoint", ErrNoEndpoint},
	{"invalid_options", ErrInvalidOptions},
	{"row_type", ErrRowType},
}

// kindSentinels maps wire error kinds to the errors they stand for.
var kindSentinels = func() map[etf.Atom]error {
	m := make(map[etf.Atom]error, len(wireSentinels))
	for _, s := range wireSentinels {
		m[s.kind] = s.err
	}
	return m
}()

// errorKind names err on the wire: down for a failed batch (whatever
// its cause: the details carry the cause's sentinels, ErrNoProc
// included, which distributed callers retry on), the kind of the first
// sentinel it matches, callback for other failures of user code, else
// error.
func errorKind(err error) etf.Atom {
	var down *DownError
	if errors.As(err, &down) {
		return "down"
	}
	for _, s := range wireSentinels {
		if errors.Is(err, s.err) {
			return s.kind
		}
	}
	var ce *CallbackError
	if errors.As(err, &ce) {
		return "callback"
	}
	return "error"
}

// sentinelKinds lists the kinds of every sentinel err matches.
func sentinelKinds(err error) []string {
	var kinds []string
	for _, s := range wireSentinels {
		if errors.Is(err, s.err) {
			kinds = append(kinds, string(s.kind))
		}
	}
	return kinds
}

// replyError is the tail of an error reply: {error, Kind, Message,
// Details}, or, for an *OverloadedError, {error, overloaded, Message,
// Figures}.
func replyError(err error) etf.Tuple {
	reply := etf.Tuple{atomError, errorKind(err), []byte(err.Error())}
	var over *OverloadedError
	if errors.As(err, &over) {
		// The caller's node rebuilds the *OverloadedError, back-off
		// included (parseReply).
		return append(reply, etf.Tuple{int64(over.Waiting), int64(over.Rows), int64(over.MaxQueue), int64(over.RetryAfter)})
	}
	return append(reply, errorDetails(err))
}

// errorDetails is the Details map of err.
func errorDetails(err error) etf.Map {
	d := etf.Map{}
	if kinds := sentinelKinds(err); len(kinds) > 0 {
		l := make(etf.List, len(kinds))
		for i, k := range kinds {
			l[i] = etf.Atom(k)
		}
		d[etf.Atom("sentinels")] = l
	}
	var ce *CallbackError
	if errors.As(err, &ce) {
		d[etf.Atom("module")] = []byte(ce.Module)
		d[etf.Atom("callback")] = []byte(ce.Callback)
		if ce.Err != nil {
			d[etf.Atom("cause")] = []byte(ce.Err.Error())
			d[etf.Atom("cause_kind")] = errorKind(ce.Err)
			var pe *PanicError
			if errors.As(ce.Err, &pe) {
				d[etf.Atom("panic")] = []byte(fmt.Sprint(pe.Value))
			}
		}
	}
	return d
}

// remoteDetails is a Details map as read.
type remoteDetails struct {
	sentinels                        []string
	module, callback, cause, panicky string
	causeKind                        string
	panicked                         bool
}

// readDetails reads a Details map; what it does not understand it leaves
// out (a newer peer may send more).
func readDetails(t etf.Term) remoteDetails {
	var d remoteDetails
	m, ok := t.(etf.Map)
	if !ok {
		return d
	}
	if l, ok := m[etf.Atom("sentinels")].(etf.List); ok {
		for _, k := range l {
			if a, ok := k.(etf.Atom); ok {
				d.sentinels = append(d.sentinels, string(a))
			}
		}
	}
	str := func(key string) (string, bool) {
		v, ok := m[etf.Atom(key)]
		if !ok {
			return "", false
		}
		return termString(v), true
	}
	d.module, _ = str("module")
	d.callback, _ = str("callback")
	d.cause, _ = str("cause")
	d.causeKind, _ = str("cause_kind")
	d.panicky, d.panicked = str("panic")
	return d
}

// remoteErr rebuilds a caller-side error from an error reply of node:
// its kind, its text and its details (nil from peers that send none).
func remoteErr(node string, kind etf.Atom, msg string, details etf.Term) error {
	d := readDetails(details)
	var reason error = &RemoteError{Node: node, Kind: string(kind), Message: msg, Sentinels: d.sentinels}
	if d.callback != "" {
		causeKind := d.causeKind
		if causeKind == "" {
			causeKind = "error"
		}
		cause := &RemoteError{Node: node, Kind: causeKind, Message: d.cause, Sentinels: d.sentinels}
		var err error = cause
		if d.panicked {
			// The panic's value as text; an error with that text when the
			// value was an error that matched sentinels, so that they still
			// match.
			var v any = d.panicky
			if len(d.sentinels) > 0 {
				v = &panicValue{text: d.panicky, kinds: &RemoteError{Sentinels: d.sentinels}}
			}
			err = &PanicError{Value: v}
		}
		reason = &CallbackError{Module: d.module, Callback: d.callback, Err: err}
	}
	if kind == "down" {
		return &DownError{Reason: reason}
	}
	return reason
}

// panicValue is the value of a remote panic whose value was an error
// that matched sentinels: its text, matching them.
type panicValue struct {
	text  string
	kinds *RemoteError
}

func (p *panicValue) Error() string        { return p.text }
func (p *panicValue) Is(target error) bool { return p.kinds.Is(target) }

// overloadedFromReply rebuilds a remote serving's *OverloadedError.
func overloadedFromReply(node string, t etf.Term) (*OverloadedError, bool) {
	f, ok := t.(etf.Tuple)
	if !ok || len(f) != 4 {
		return nil, false
	}
	var n [4]uint64
	for i := range n {
		if n[i], ok = toUint64(f[i]); !ok {
			return nil, false
		}
	}
	return &OverloadedError{Node: node, Waiting: int(n[0]), Rows: int(n[1]), MaxQueue: int(n[2]),
		RetryAfter: time.Duration(n[3])}, true
}

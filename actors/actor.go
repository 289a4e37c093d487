package actors

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
)

// Behavior is what an Actor runs: a process that handles messages one at
// a time.
//
// Init runs inside Spawn; an error fails the spawn. HandleMessage gets
// every message of the mailbox as it arrived — plain terms, gen.MessageDown,
// and, when the process traps exits (call p.SetTrapExit(true) in Init),
// exit signals as gen.MessageExit — and returns a non-empty reason to
// stop. Terminate runs once, however the process ends (stopped by
// HandleMessage, an exit signal it does not trap, a kill, its node
// stopping, or a panic in HandleMessage, reason "panic").
type Behavior interface {
	Init(p gen.Process, args ...etf.Term) error
	HandleMessage(p gen.Process, from etf.Pid, msg etf.Term) (stop string)
	Terminate(p gen.Process, reason string)
}

// Actor runs a Behavior as an ergo process (a gen.ProcessBehavior for
// Spawn and supervisor child specs).
//
// ergo v1.999.224's gen.Server cannot be trusted with messages from other
// nodes: its loop reads the first element of every tuple it receives
// without checking the tuple's length, so a peer that sends the empty
// tuple {} to a registered gen.Server kills it on the spot, without its
// Terminate (tests.TestErgoGenServerDiesOnAnEmptyTuple). The actors ergonx
// registers under well-known names (servings, serving endpoints, process
// group scopes, task supervisors) run on this loop instead, which hands
// every message to the behaviour as it is and survives a panicking
// handler only by ending the process cleanly.
//
// A well-formed gen_server call ({'$gen_call', {Pid, Ref}, Request}, as
// Erlang nodes and ergo's Call send them) is answered, so that no caller
// waits for its timeout: by the behaviour's HandleCall when it implements
// CallHandler, else with the atom badarg (what OTP servers such as pg
// answer to a call they do not know). Direct requests are refused with
// lib.ErrUnsupportedRequest.
type Actor struct {
	b Behavior
}

var _ gen.ProcessBehavior = (*Actor)(nil)

// CallHandler is implemented by behaviours that answer gen_server calls.
type CallHandler interface {
	HandleCall(p gen.Process, from etf.Pid, request etf.Term) (reply etf.Term)
}

// NewActor returns an Actor running b. Spawn a new one for every process.
func NewActor(b Behavior) *Actor { return &Actor{b: b} }

// Behavior returns the behaviour the actor runs.
func (a *Actor) Behavior() Behavior { return a.b }

// ProcessInit runs the behaviour's Init.
func (a *Actor) ProcessInit(p gen.Process, args ...etf.Term) (gen.ProcessState, error) {
	if err := a.b.Init(p, args...); err != nil {
		return gen.ProcessState{}, err
	}
	return gen.ProcessState{Process: p}, nil
}

// ProcessLoop handles messages until the behaviour stops or the process
// is told to, then runs Terminate.
func (a *Actor) ProcessLoop(ps gen.ProcessState, started chan<- bool) string {
	started <- true
	chs := ps.ProcessChannels()
	ctxDone := ps.Context().Done()
	for {
		var reason string
		select {
		case m := <-chs.Mailbox:
			reason = a.handle(ps.Process, m.From, m.Message)
		case ex := <-chs.GracefulExit:
			if ps.TrapExit() {
				reason = a.handle(ps.Process, ex.From, gen.MessageExit{Pid: ex.From, Reason: ex.Reason})
			} else {
				reason = ex.Reason
			}
		case d := <-chs.Direct:
			ps.PutSyncReply(d.Ref, nil, lib.ErrUnsupportedRequest)
		case <-ctxDone:
			reason = "kill"
		}
		if reason != "" {
			a.b.Terminate(ps.Process, reason)
			return reason
		}
	}
}

// handle runs HandleMessage (or answers a call); a panic stops the
// process with "panic".
func (a *Actor) handle(p gen.Process, from etf.Pid, msg etf.Term) (reason string) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("actors: a message handler panicked; stopping the process",
				"process", p.Self().String(), "name", p.Name(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			reason = "panic"
		}
	}()
	if caller, ref, request, ok := genCall(msg); ok {
		var reply etf.Term = etf.Atom("badarg")
		if ch, ok := a.b.(CallHandler); ok {
			reply = ch.HandleCall(p, caller, request)
		}
		_ = p.Send(caller, etf.Tuple{ref, reply})
		return ""
	}
	return a.b.HandleMessage(p, from, msg)
}

// genCall reads {'$gen_call', {Pid, Ref}, Request}.
func genCall(msg etf.Term) (etf.Pid, etf.Ref, etf.Term, bool) {
	t, ok := msg.(etf.Tuple)
	if !ok || len(t) != 3 || t[0] != etf.Atom("$gen_call") {
		return etf.Pid{}, etf.Ref{}, nil, false
	}
	from, ok := t[1].(etf.Tuple)
	if !ok || len(from) != 2 {
		return etf.Pid{}, etf.Ref{}, nil, false
	}
	pid, ok1 := from[0].(etf.Pid)
	ref, ok2 := from[1].(etf.Ref)
	return pid, ref, t[2], ok1 && ok2
}

package actors

import (
	"runtime/debug"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"

	"github.com/ergonx/ergonx/internal/safelog"

	"github.com/ergonx/ergonx/internal/erldist"
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
// A well-formed gen_server call is answered, so that no caller waits for
// its timeout: by the behaviour's HandleCall when it implements
// CallHandler, else with the atom badarg (what OTP servers such as pg
// answer to a call they do not know). Both forms are answered:
// {'$gen_call', {Pid, Ref}, Request} (ergo's Call, OTP before 24), with
// {Ref, Reply} sent to Pid, and OTP 24+'s {'$gen_call', {Pid, [alias |
// Ref]}, Request} (gen_server:call, GenServer.call), with
// {[alias | Ref], Reply} sent to the alias Ref. Direct requests are
// refused with lib.ErrUnsupportedRequest.
//
// A behaviour spawned by a remote spawn request (ProvideRemoteSpawn) starts
// handling messages only once the reply to the request is on its way and
// the requester's monitor or link is in place (erldist.AwaitSpawnReply),
// so that even a process that stops on its first message reports its own
// reason to the requester, never noproc.
type Actor struct {
	b Behavior
	// stops carries the reason of StopLoop (capacity 1: the first stays).
	stops chan string
}

var _ gen.ProcessBehavior = (*Actor)(nil)

// CallHandler is implemented by behaviours that answer gen_server calls.
type CallHandler interface {
	HandleCall(p gen.Process, from etf.Pid, request etf.Term) (reply etf.Term)
}

// NewActor returns an Actor running b. Spawn a new one for every process.
func NewActor(b Behavior) *Actor { return &Actor{b: b, stops: make(chan string, 1)} }

// StopLoop ends the process as an exit signal with reason from its
// parent would (a behaviour that traps exits gets gen.MessageExit with
// its own pid and decides; another ends with reason), without touching
// ergo's process: ergo's Process.Exit and Kill read the process's fields
// without the lock its cleanup clears them under, a data race when the
// process ends on its own at that instant. Supervisors (package
// supervisor) stop their children this way. Only the first call counts.
func (a *Actor) StopLoop(reason string) {
	select {
	case a.stops <- reason:
	default:
	}
}

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
	erldist.AwaitSpawnReply(ps.Process)
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
		case why := <-a.stops:
			if ps.TrapExit() {
				reason = a.handle(ps.Process, ps.Self(), gen.MessageExit{Pid: ps.Self(), Reason: why})
			} else {
				reason = why
			}
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
			safelog.Error("actors.panic", "actors: a message handler panicked; stopping the process",
				"process", p.Self().String(), "name", p.Name(), "panic", safelog.T(r), "stack", string(debug.Stack()))
			reason = "panic"
		}
	}()
	if call, ok := genCall(msg); ok {
		var reply etf.Term = etf.Atom("badarg")
		if ch, ok := a.b.(CallHandler); ok {
			reply = ch.HandleCall(p, call.caller, call.request)
		}
		call.reply(p, reply)
		return ""
	}
	return a.b.HandleMessage(p, from, msg)
}

// gencall is a gen_server call: who called, with which tag, asking what.
type gencall struct {
	caller  etf.Pid
	ref     etf.Ref
	alias   bool // the tag was [alias | Ref]: reply to the alias
	request etf.Term
}

// reply sends {Tag, Reply} where the caller waits for it.
func (c gencall) reply(p gen.Process, reply etf.Term) {
	if c.alias {
		_ = p.Send(etf.Alias(c.ref), etf.Tuple{etf.ListImproper{atomAlias, c.ref}, reply})
		return
	}
	_ = p.Send(c.caller, etf.Tuple{c.ref, reply})
}

var atomAlias = etf.Atom("alias")

// genCall reads {'$gen_call', {Pid, Tag}, Request}, Tag being a
// reference or [alias | Ref] (which arrives from other nodes as the
// two-element etf.List ergo's decoding makes of an improper list).
func genCall(msg etf.Term) (gencall, bool) {
	t, ok := msg.(etf.Tuple)
	if !ok || len(t) != 3 || t[0] != etf.Atom("$gen_call") {
		return gencall{}, false
	}
	from, ok := t[1].(etf.Tuple)
	if !ok || len(from) != 2 {
		return gencall{}, false
	}
	pid, ok := from[0].(etf.Pid)
	if !ok {
		return gencall{}, false
	}
	c := gencall{caller: pid, request: t[2]}
	var tag []etf.Term
	switch v := from[1].(type) {
	case etf.Ref:
		c.ref = v
		return c, true
	case etf.List:
		tag = v
	case etf.ListImproper:
		tag = v
	default:
		return gencall{}, false
	}
	if len(tag) != 2 || tag[0] != atomAlias {
		return gencall{}, false
	}
	c.ref, ok = tag[1].(etf.Ref)
	c.alias = true
	return c, ok
}

package supervisor

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"

	"github.com/ergonx/ergonx/internal/safelog"
)

// This file starts and stops children; all of it runs on the supervisor's
// loop goroutine.

// child is one entry of Spec.Children and its current process.
type child struct {
	index    int
	spec     ChildSpec
	proc     gen.Process         // nil unless alive
	behavior gen.ProcessBehavior // of the last start
	pid      etf.Pid             // of the last start; zero before the first
	alive    bool                // started, and no DOWN seen yet
	removed  bool                // a temporary child that will not start again
}

// startChildren starts, in order, every child that should run and does
// not. If one fails, every running child is stopped in reverse order and
// the failure is returned as a *StartError.
func (r *run) startChildren() error {
	for _, c := range r.children {
		if c.alive || c.removed {
			continue
		}
		if err := r.startChild(c); err != nil {
			r.terminateAll()
			return err
		}
	}
	return nil
}

// startChild spawns c and watches it.
func (r *run) startChild(c *child) error {
	fail := func(err error) error {
		return &StartError{Child: c.spec.Name, Index: c.index, Err: err}
	}
	b, err := newBehaviour(c.spec.Start)
	if err != nil {
		return fail(err)
	}
	opts := c.spec.Options
	if opts.GroupLeader == nil {
		opts.GroupLeader = r.groupLeader
	}
	// opts.Context is nil (validate): the child's context derives from the
	// node's, so nothing but this supervisor decides when it ends.
	p, err := r.proc.Spawn(c.spec.Name, opts, b, c.spec.Args...)
	if err != nil {
		r.reapFailedInit(b)
		if errors.Is(err, lib.ErrTaken) {
			err = ErrNameTaken
		}
		return fail(err)
	}
	c.proc, c.pid, c.alive, c.behavior = p, p.Self(), true, b
	// A monitor, not a link. Its DOWN arrives even after this process's
	// context is cancelled (ergo then stops delivering exit signals to
	// it), and after the child's name has been released. A link would
	// also make ergo write into this process's exit channel from the
	// child's goroutine while this process may be clearing it in its own
	// cleanup: a data race inside ergo. What a link would add, ending the
	// children should this loop die without its ordered shutdown, is done
	// by ProcessLoop's panic guard. A child already gone by now gives a
	// DOWN "noproc".
	r.proc.MonitorProcess(c.pid)
	r.publish()
	r.observe(event{kind: evStarted, child: c.spec.Name, index: c.index})
	return nil
}

// newBehaviour calls a ChildSpec.Start, turning a panic or a nil result
// into an error.
func newBehaviour(start func() gen.ProcessBehavior) (b gen.ProcessBehavior, err error) {
	defer func() {
		if v := recover(); v != nil {
			b, err = nil, fmt.Errorf("supervisor: ChildSpec.Start panicked: %v", v)
		}
	}()
	if b = start(); b == nil {
		return nil, errors.New("supervisor: ChildSpec.Start returned nil")
	}
	return b, nil
}

// reapFailedInit frees what ergo keeps of a child whose Spawn failed.
// ergo v1.999.224 cleans up after a panic in Init, but a process whose
// Init returns an error stays in the node's process table, alive, holding
// its registered name for good: nothing could ever take the name again.
// The leftover is found by its behaviour value (fresh for every start) and
// its parent (this process); its name is released and its context
// cancelled. ergo offers no way to drop the table entry itself, so a few
// hundred bytes stay behind per failed Init.
func (r *run) reapFailedInit(b gen.ProcessBehavior) {
	// Comparing interface values panics for a non-comparable dynamic type.
	if !reflect.TypeOf(b).Comparable() {
		return
	}
	for _, p := range r.proc.ProcessList() {
		if p.Behavior() != b || !p.IsAlive() || r.isChild(p.Self()) {
			continue
		}
		if parent := p.Parent(); parent == nil || parent.Self() != r.self {
			continue
		}
		if name := p.Name(); name != "" {
			p.UnregisterName(name)
		}
		p.Kill()
	}
}

func (r *run) isChild(pid etf.Pid) bool {
	for _, c := range r.children {
		if c.alive && c.pid == pid {
			return true
		}
	}
	return false
}

// terminateAll stops every running child, in reverse start order.
func (r *run) terminateAll() {
	for i := len(r.children) - 1; i >= 0; i-- {
		r.terminate(r.children[i])
	}
}

// terminate stops c as OTP does: exit signal "shutdown", then its Shutdown
// time to end, then a kill. It returns once c is gone, or given up on.
func (r *run) terminate(c *child) {
	if !c.alive {
		return
	}
	// A cancelled context means the child is ending already (killed, or
	// its node stopping): it gets neither exit signal nor kill, only the
	// wait. Touching a process that ergo is cleaning up races with that
	// cleanup, so the check narrows the window to the instant between it
	// and the call.
	ending := c.proc.Context()
	if ending.Err() == nil {
		if st, ok := c.behavior.(LoopStopper); ok {
			// Ends it as the exit signal below would, without reading
			// ergo's process fields as they are cleared.
			st.StopLoop(ReasonShutdown)
		} else if c.proc.TrapExit() {
			// ergo's Process.Exit sends the exit signal from the child
			// itself, so the child sees gen.MessageExit{Pid: its own
			// pid}. A child whose exit channel is full misses it and is
			// killed after Shutdown.
			survive(func() { c.proc.Exit(ReasonShutdown) })
		} else {
			// On a child that does not trap exits, ergo's Exit queues the
			// signal and cancels the context, then reads the child's
			// fields while the child, ending, clears them: a data race in
			// ergo (and a nil call, now and then). Kill ends such a child
			// the same way without it; ergo would have given its
			// Terminate "shutdown" or "kill" at random anyway.
			survive(c.proc.Kill)
		}
	}
	r.observe(event{kind: evExitSent, child: c.spec.Name, index: c.index})
	if c.spec.Shutdown == Infinity {
		r.await(c, Infinity)
		return
	}
	if r.await(c, c.spec.Shutdown) {
		return
	}
	if ending.Err() == nil {
		safelog.Warn("supervisor.kill", "supervisor: a child did not stop in time; killing it",
			"supervisor", r.self.String(), "child", childID(c.spec.Name, c.index), "shutdown", c.spec.Shutdown)
		survive(c.proc.Kill)
		r.observe(event{kind: evKilled, child: c.spec.Name, index: c.index})
	}
	// Kill cancels the child's context at once, but a callback that is
	// running goes on until it returns; the child ends after that.
	if r.await(c, r.spec.KillWait) {
		return
	}
	safelog.Warn("supervisor.abandon", "supervisor: a killed child is still inside a callback; giving up on it",
		"supervisor", r.self.String(), "child", childID(c.spec.Name, c.index), "waited", r.spec.KillWait)
	c.alive, c.proc = false, nil
	r.publish()
	r.observe(event{kind: evAbandoned, child: c.spec.Name, index: c.index})
}

// killChildren kills every live child without waiting. ProcessLoop calls
// it when the loop panics, in place of the links OTP would rely on.
func (r *run) killChildren() {
	for _, c := range r.children {
		if c.alive {
			survive(c.proc.Kill)
		}
	}
}

// LoopStopper is a child behaviour that ends its own process loop on
// request, as an exit signal with reason from the supervisor would:
// actors.Actor is one. The supervisor stops such children through it
// instead of ergo's Process.Exit or Kill, which read the process's
// fields without the lock its cleanup clears them under (a data race
// inside ergo when the child ends on its own at that instant).
type LoopStopper interface {
	StopLoop(reason string)
}

// survive runs f, an Exit or Kill of a child, and swallows its panic.
// ergo reads a process's fields in Exit and Kill without the lock its
// cleanup takes to clear them; on a child that ends at that very instant,
// Kill can call a nil function. The child is ending either way, and its
// DOWN is on its way.
func survive(f func()) {
	defer func() { _ = recover() }()
	f()
}

// await handles events until c is gone (true) or d has passed (false).
// Infinity waits as long as it takes.
func (r *run) await(c *child, d time.Duration) bool {
	var deadline <-chan time.Time
	if d != Infinity {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	for c.alive {
		// Other children may exit meanwhile; next marks them, and as they
		// are being stopped anyway their exits need no plan.
		if _, _, timedOut := r.next(deadline); timedOut {
			return false
		}
	}
	return true
}

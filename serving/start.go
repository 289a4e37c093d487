package serving

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/supervisor"
)

// supervisorName and taskSupervisorName name a serving's processes as Nx
// does (Module.concat(name, "Supervisor")...).
func supervisorName(name string) string     { return name + ".Supervisor" }
func taskSupervisorName(name string) string { return name + ".TaskSupervisor" }

// mailboxSize is the serving actor's mailbox. Only exit signals and stray
// messages reach it (callers do not use it), but ergo drops messages sent
// to a full mailbox, the shutdown signal included.
const mailboxSize = 1024

// spec builds the serving's supervision: one-for-all, no restarts, a task
// supervisor then the serving actor.
func (c *config) spec() supervisor.Spec {
	ref := &taskSupRef{}
	// The task supervisor waits for tasks the serving gave up on a little
	// longer than the serving did, then abandons them (goroutines cannot
	// be killed); its child Shutdown leaves room for that.
	taskWait, taskShutdown := supervisor.Infinity, supervisor.Infinity
	if c.shutdown >= 0 {
		taskWait = c.shutdown + time.Second
		taskShutdown = taskWait + 5*time.Second
	}
	serveShutdown := supervisor.Infinity
	if c.shutdown >= 0 {
		// The serving bounds its own wait by c.shutdown; the supervisor
		// kills it only if that bound did not work.
		serveShutdown = c.shutdown + 5*time.Second
	}
	return supervisor.Spec{
		Strategy:    supervisor.OneForAll,
		MaxRestarts: 0,
		Children: []supervisor.ChildSpec{
			{
				Name: taskSupervisorName(c.name),
				Start: func() gen.ProcessBehavior {
					ts := actors.NewTaskSupervisor(taskWait)
					ref.ts.Store(ts)
					return actors.NewActor(ts)
				},
				Shutdown: taskShutdown,
				Options:  gen.ProcessOptions{MailboxSize: mailboxSize},
			},
			{
				Name:     c.name,
				Start:    func() gen.ProcessBehavior { return actors.NewActor(&server{cfg: c, tasks: ref}) },
				Shutdown: serveShutdown,
				Options:  gen.ProcessOptions{MailboxSize: mailboxSize},
			},
		},
	}
}

// Start starts a serving process on nd (Nx's start_link/1): a supervisor
// registered as Name+".Supervisor" (one-for-all, no restarts) with a task
// supervisor (Name+".TaskSupervisor") and the serving actor registered as
// Name. It returns the supervisor once the module's Init has run for
// Process; a failing Init (or compiler) makes Start return its error with
// nothing left running.
//
// When the node runs the runtime application (its process-group scope),
// the serving joins the group named Name once per partition times
// DistributionWeight, so that callers on other nodes find it (as Nx v0.10
// does: one group per serving name), and leaves it when it starts to stop.
//
// Stop it with Stop; callers whose rows are stacked or queued then get
// ErrNoProc at once and running batches finish (see Options.Shutdown). If
// either child dies, both stop and so does the supervisor.
func Start(nd node.Node, opts Options) (gen.Process, error) {
	c, err := opts.resolve(nd)
	if err != nil {
		return nil, err
	}
	sup, err := supervisor.Start(nd, supervisorName(c.name), c.spec())
	if err != nil {
		return nil, startError(nd, c.name, err)
	}
	return sup, nil
}

// startError explains a failed start.
func startError(nd node.Node, name string, err error) error {
	if errors.Is(err, lib.ErrTaken) || errors.Is(err, supervisor.ErrNameTaken) {
		return fmt.Errorf("%w: cannot start serving %q on node %s: the name (or %q) is taken; "+
			"stop the running serving first or choose another name: %v",
			ErrAlreadyStarted, name, nd.Name(), supervisorName(name), err)
	}
	return fmt.Errorf("serving: start %q: %w", name, err)
}

// ChildSpec returns a child spec that places a serving on nd under your
// own ergo supervisor (Nx's child_spec/1). The child is the serving's
// supervisor, registered as Name+".Supervisor"; it keeps the OTP
// semantics described at Start even though ergo's gen.Supervisor does not
// have them (see package supervisor).
func ChildSpec(nd node.Node, opts Options) (gen.SupervisorChildSpec, error) {
	c, err := opts.resolve(nd)
	if err != nil {
		return gen.SupervisorChildSpec{}, err
	}
	return c.spec().ChildSpec(supervisorName(c.name)), nil
}

// Stop stops the serving named name on nd and waits until it is gone or
// ctx ends: stacked and queued callers get ErrNoProc at once, running
// batches finish first (bounded by Options.Shutdown). Stopping a serving
// that does not run returns ErrNoProc.
func Stop(ctx context.Context, nd node.Node, name string) error {
	sup := nd.ProcessByName(supervisorName(name))
	if sup == nil {
		return fmt.Errorf("%w: no serving named %q on node %s", ErrNoProc, name, nd.Name())
	}
	return supervisor.Stop(ctx, sup)
}

// GetStats returns a snapshot of the serving named name on nd.
func GetStats(nd node.Node, name string) (Stats, error) {
	e, err := lookup(nd, name)
	if err != nil {
		return Stats{}, err
	}
	return e.stats(), nil
}

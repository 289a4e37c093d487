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
// supervisor then the serving actor. The serving actor stores its engine
// in the returned startRef when it has initialised.
func (c *config) spec() (supervisor.Spec, *startRef) {
	ref := &startRef{}
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
				Start:    func() gen.ProcessBehavior { return actors.NewActor(&server{cfg: c, ref: ref}) },
				Shutdown: serveShutdown,
				Options:  gen.ProcessOptions{MailboxSize: mailboxSize},
			},
		},
	}, ref
}

// Start starts a serving and returns its handle.
//
// With a node, it starts a serving process on nd (Nx's start_link/1): a
// supervisor registered as Name+".Supervisor" (one-for-all, no restarts)
// with a task supervisor (Name+".TaskSupervisor") and the serving actor
// registered as Name. When the node runs the cluster application
// (apps/cluster: its process-group scope), the serving joins the group
// named Name once per partition times DistributionWeight, so that callers
// on other nodes find it (as Nx v0.10 does: one group per serving name),
// and leaves it when it starts to stop. If either child dies, both stop
// and so does the supervisor.
//
// With a nil node, it starts a serving without a node, for a program that
// serves within its own process: no ergo node, no EPMD, no listener, no
// cookie; batches run on plain goroutines. Callers reach it by Name with
// BatchedRun(ctx, nil, Name, input) (or the handle, or a Client); names
// are unique among the process's servings without a node. Everything
// about batching, partitions, queue bounds, telemetry and shutdown is the
// same; only what needs a node is missing (supervision, process groups,
// callers on other nodes).
//
// Start returns once the module's Init has run for Process; a failing
// Init (or compiler) makes Start return its error with nothing left
// running. Stop the serving with the handle's Stop (or the package's
// Stop): callers whose rows are stacked or queued then get ErrNoProc at
// once and running batches finish (see Options.Shutdown).
func Start(nd node.Node, opts Options) (*Handle, error) {
	c, err := opts.resolve(nd)
	if err != nil {
		return nil, err
	}
	if nd == nil {
		return startLocal(c)
	}
	spec, ref := c.spec()
	sup, err := supervisor.Start(nd, supervisorName(c.name), spec)
	if err != nil {
		return nil, startError(nd, c.name, err)
	}
	// The serving actor's Init ran inside supervisor.Start.
	return &Handle{name: c.name, nd: nd, sup: sup, e: ref.engine.Load()}, nil
}

// startLocal starts a serving without a node: its engine alone, with
// tasks on plain goroutines, registered under the name for the process.
func startLocal(c *config) (*Handle, error) {
	if registered("", c.name) != nil || locals.Get(c.name) != nil {
		return nil, localTaken(c.name)
	}
	e, err := c.build("", goRunner{})
	if err != nil {
		return nil, err
	}
	h := &Handle{name: c.name, e: e, done: make(chan struct{})}
	// Two Starts of one name may both pass the check above: the handle
	// is published first, and only by one of them.
	if !locals.PutNew(c.name, h) {
		e.shutdown()
		return nil, localTaken(c.name)
	}
	register("", c.name, e)
	return h, nil
}

func localTaken(name string) error {
	return fmt.Errorf("%w: cannot start serving %q without a node: a serving without a node runs (or is stopping) "+
		"under that name in this process; stop it first or choose another name", ErrAlreadyStarted, name)
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
	if nd == nil {
		return gen.SupervisorChildSpec{}, fmt.Errorf("%w: ChildSpec needs a node (serving %q); start a serving without "+
			"a node with Start(nil, opts)", ErrInvalidOptions, opts.Name)
	}
	c, err := opts.resolve(nd)
	if err != nil {
		return gen.SupervisorChildSpec{}, err
	}
	spec, _ := c.spec()
	return spec.ChildSpec(supervisorName(c.name)), nil
}

// Stop stops the serving named name on nd (nil: the serving without a
// node of that name) and waits until it is gone or ctx ends: stacked and
// queued callers get ErrNoProc at once, running batches finish first
// (bounded by Options.Shutdown). Stopping a serving that does not run
// returns ErrNoProc. Handle.Stop does the same for a handle.
func Stop(ctx context.Context, nd node.Node, name string) error {
	if nd == nil {
		h := locals.Get(name)
		if h == nil {
			return fmt.Errorf("%w: no serving without a node named %q in this process", ErrNoProc, name)
		}
		return h.Stop(ctx)
	}
	sup := nd.ProcessByName(supervisorName(name))
	if sup == nil {
		return fmt.Errorf("%w: no serving named %q on node %s", ErrNoProc, name, nd.Name())
	}
	return supervisor.Stop(ctx, sup)
}

// GetStats returns a snapshot of the serving named name on nd (nil: the
// serving without a node of that name). Handle.Stats does the same for a
// handle.
func GetStats(nd node.Node, name string) (Stats, error) {
	e, err := lookup(nd, name)
	if err != nil {
		return Stats{}, err
	}
	return e.stats(), nil
}

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
)

// Spawner is what Start spawns the supervisor with: a node.Node (the
// supervisor has no parent) or a gen.Process (it becomes the parent; an
// exit signal from it stops the supervisor, as in OTP).
type Spawner interface {
	Spawn(name string, opts gen.ProcessOptions, object gen.ProcessBehavior, args ...etf.Term) (gen.Process, error)
}

// Child is one entry of Which.
type Child struct {
	// Name is the child's registered name ("" when it has none).
	Name string
	// Pid is the child's process of the last start; zero if it never
	// started.
	Pid etf.Pid
	// Alive reports whether the supervisor considers that process
	// running: started, and no DOWN or exit signal seen yet.
	Alive bool
	// Process is the child's process while Alive, else nil.
	Process gen.Process
}

// Start spawns a supervisor with spec through parent, registered as name
// ("" for none), and returns once every child has started, in order.
//
// If spec is invalid, the error wraps ErrInvalidSpec and nothing is
// spawned. If name is taken, the error wraps ErrNameTaken. If a child fails
// to start, the children started before it are stopped in reverse order
// (each with its Shutdown), the supervisor exits with ReasonStartFailed,
// and Start returns a *StartError once the process is gone: its name is
// free again and nothing of it is running.
//
// Start blocks while the children start; call it from any goroutine.
func Start(parent Spawner, name string, spec Spec) (gen.Process, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	report := make(chan error, 1)
	p, err := parent.Spawn(name, gen.ProcessOptions{MailboxSize: mailboxSize}, New(spec), startReport(report))
	if err != nil {
		if errors.Is(err, lib.ErrTaken) {
			return nil, fmt.Errorf("%w: %q", ErrNameTaken, name)
		}
		return nil, fmt.Errorf("supervisor: spawn %q: %w", name, err)
	}
	// The loop sends its result before it lets Spawn return.
	if err := <-report; err != nil {
		// The children are stopped; the loop is returning. Wait until
		// ergo has removed the process, so that its name is free.
		_ = awaitRemoved(context.Background(), p)
		return nil, err
	}
	return p, nil
}

// Stop shuts the supervisor sup down the OTP way and waits until it is
// gone: its children are stopped in reverse start order, each sent the
// exit signal "shutdown" and given its Shutdown before it is killed, then
// the supervisor exits with ReasonShutdown (or with the reason of a
// shutdown that was already under way).
//
// "Gone" means ergo has removed the process: its registered name is free
// and its watchers have been told. If ctx ends first, Stop returns
// ctx.Err() and the shutdown goes on without it. Stopping a supervisor
// that is already gone returns nil. sup must run this package's behaviour,
// else Stop returns ErrNotSupervisor. Safe to call from any goroutine, any
// number of times, but not from one of sup's children (nor a process whose
// end they wait for): Stop would wait for itself until ctx ends.
//
// Under ergo's gen.Supervisor, Stop ends this process only: a permanent
// child spec makes ergo start it again.
func Stop(ctx context.Context, sup gen.Process) error {
	b := sup.Behavior()
	if b == nil {
		return nil // ergo has removed it already
	}
	s, ok := b.(*Supervisor)
	if !ok {
		return ErrNotSupervisor
	}
	if r := s.lookup(sup.Self()); r != nil {
		r.requestStop()
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return awaitRemoved(ctx, sup)
}

// Which returns the supervisor's children in start order (OTP's
// which_children), or nil once sup has stopped or if it does not run this
// package's behaviour. It reads a snapshot the supervisor keeps: it never
// blocks on the supervisor and is safe from any goroutine.
func Which(sup gen.Process) []Child {
	s, ok := sup.Behavior().(*Supervisor)
	if !ok {
		return nil
	}
	r := s.lookup(sup.Self())
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.view)
}

// awaitRemoved waits, after p's loop has returned, until ergo has finished
// removing p: ergo then releases its name, tells its watchers, and clears
// its behaviour last. ergo has no signal for that moment (Process.Wait
// returns when the context is cancelled, which for a killed process is
// long before), but it follows the loop's return within microseconds, so
// a short backoff on Behavior is enough.
func awaitRemoved(ctx context.Context, p gen.Process) error {
	delay := 10 * time.Microsecond
	for p.Behavior() != nil {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
	return nil
}

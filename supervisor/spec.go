package supervisor

import (
	"fmt"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// Restart says which exits of a child make its supervisor act (restart it,
// or stop everything when no restart is left). The zero value is Permanent.
type Restart int

const (
	// Permanent children are restarted whatever their exit reason.
	Permanent Restart = iota
	// Transient children are restarted only after an abnormal exit: any
	// reason other than "normal" or "shutdown".
	Transient
	// Temporary children are never restarted, and their exit never affects
	// their siblings. A one-for-all restart that stops a temporary child
	// does not start it again.
	Temporary
)

// String returns OTP's name for r.
func (r Restart) String() string {
	switch r {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	case Temporary:
		return "temporary"
	}
	return fmt.Sprintf("Restart(%d)", int(r))
}

// Strategy says which children a supervisor restarts when one of them
// exits. The zero value is OneForAll.
type Strategy int

const (
	// OneForAll: when a child exits, the other children are stopped in
	// reverse start order, then all are started again in order. Use it when
	// the children cannot work without each other, as a serving's task
	// supervisor and serving actor.
	OneForAll Strategy = iota
	// OneForOne: only the child that exited is started again.
	OneForOne
)

// String returns OTP's name for s.
func (s Strategy) String() string {
	switch s {
	case OneForAll:
		return "one_for_all"
	case OneForOne:
		return "one_for_one"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

const (
	// Infinity as a ChildSpec.Shutdown means: wait for the child to stop
	// however long it takes; never kill it. OTP gives it to children that
	// are supervisors themselves, so that their own children get their
	// full shutdown times.
	Infinity time.Duration = -1

	// DefaultShutdown is the shutdown time of a child whose
	// ChildSpec.Shutdown is zero (OTP's default for workers).
	DefaultShutdown = 5 * time.Second

	// DefaultPeriod is the restart window of a Spec whose Period is zero.
	DefaultPeriod = 5 * time.Second

	// DefaultKillWait is Spec.KillWait when it is zero.
	DefaultKillWait = 5 * time.Second

	// ReasonShutdown is the exit reason a supervisor sends its children
	// when it stops them, and its own exit reason when it stops because
	// its restart intensity was exceeded (as OTP's).
	ReasonShutdown = "shutdown"

	// ReasonStartFailed is the exit reason of a supervisor whose initial
	// start of its children failed (OTP's
	// {shutdown, {failed_to_start_child, ...}}, shortened: ergo exit
	// reasons longer than 255 characters never reach remote watchers).
	ReasonStartFailed = "failed_to_start_child"

	// ReasonKill is a supervisor's exit reason when its context was
	// cancelled (ergo's Kill, or a parent that derived the context, as
	// ergo's gen.Supervisor does). The children still get their ordered
	// shutdown first.
	ReasonKill = "kill"
)

// mailboxSize is the mailbox the supervisor asks for when Start or
// Spec.ChildSpec spawns it. ergo drops a message sent to a full mailbox,
// DOWN messages included; the supervisor's loop drains its mailbox even
// while it waits for a child, so only a flood from outside could fill
// this many slots.
const mailboxSize = 4096

// ChildSpec describes one child of a supervisor. Fill it before Start;
// the supervisor keeps its own copy.
type ChildSpec struct {
	// Name is the name the child is registered under while it runs; ""
	// registers none. Names must be unique within a Spec. Errors and
	// Which refer to unnamed children by their index.
	Name string

	// Start returns the behaviour to spawn; it is called for every start
	// and restart, so it must return a fresh value each time (ergo keeps
	// per-process state in some behaviours). Required. A panic in Start
	// fails that start.
	Start func() gen.ProcessBehavior

	// Args are passed to the behaviour's Init on every start.
	Args []etf.Term

	// Options are the child's process options (mailbox sizes, env...).
	// Context must be nil: a child whose context derives from another
	// process is cancelled when that process ends, which is exactly how
	// ergo's gen.Supervisor kills busy children before their shutdown
	// time. GroupLeader defaults to the supervisor's group leader, or to
	// the supervisor when it has none (ergo's and OTP's rule).
	Options gen.ProcessOptions

	// Shutdown is how long the supervisor waits for the child to end
	// after telling it to (the exit signal "shutdown" to a child that
	// traps exits, a kill to one that does not), before it kills it. Give
	// a child that finishes running work on shutdown the time that takes.
	// 0 means DefaultShutdown; Infinity waits forever, never killing.
	// Other negative values are invalid.
	Shutdown time.Duration

	// Restart says which exits of this child make the supervisor act.
	Restart Restart
}

// Spec describes a supervisor. The zero value is a one-for-all supervisor
// with no children and no restarts. New and Start copy it (Children
// included): changing a Spec later does not affect a supervisor.
type Spec struct {
	// Strategy is the restart strategy; the zero value is OneForAll.
	Strategy Strategy

	// MaxRestarts is how many restarts the supervisor may make within
	// Period. When one more would be needed, it stops all children and
	// exits with ReasonShutdown. 0 (the default) means no restarts: the
	// first child exit that counts stops everything. Negative is invalid.
	MaxRestarts int

	// Period is the sliding window for MaxRestarts; 0 means DefaultPeriod.
	// Negative is invalid.
	Period time.Duration

	// KillWait bounds how long the supervisor waits for a child to end
	// after killing it; 0 means DefaultKillWait. ergo's Kill cannot
	// interrupt a running callback: a killed child ends only when its
	// current callback returns. After KillWait the supervisor gives the
	// child up: it no longer waits, the child is dead to ergo (its context
	// is cancelled) but its goroutine runs until the callback returns, and
	// its registered name stays taken until then. Negative is invalid.
	KillWait time.Duration

	// Children are started in this order and stopped in the reverse one.
	Children []ChildSpec

	// observe, when set (by this package's tests), is told of each step
	// the supervisor takes. It runs on the supervisor's goroutine and must
	// not block.
	observe func(event)
}

// ChildSpec returns a child spec that places a supervisor with this spec
// under ergo's gen.Supervisor, registered as name ("" for none).
//
// ergo's supervisor derives its children's contexts from its own and
// cancels them when it stops; this supervisor treats that cancellation as
// a shutdown request and still stops its own children in reverse order,
// each with its Shutdown, before it exits. ergo's supervisor does not wait
// for that: use Stop or Wait on this process when you need to.
//
// The same behaviour value is reused by ergo for restarts, which this
// package supports. A spec that Start would reject makes every start of
// the child fail with ReasonStartFailed.
func (s Spec) ChildSpec(name string) gen.SupervisorChildSpec {
	return gen.SupervisorChildSpec{
		Name:    name,
		Child:   New(s),
		Options: gen.ProcessOptions{MailboxSize: mailboxSize},
	}
}

// validate reports the first problem that would make s unusable.
func (s Spec) validate() error {
	switch {
	case s.Strategy != OneForAll && s.Strategy != OneForOne:
		return fmt.Errorf("%w: unknown strategy %v", ErrInvalidSpec, s.Strategy)
	case s.MaxRestarts < 0:
		return fmt.Errorf("%w: MaxRestarts %d is negative", ErrInvalidSpec, s.MaxRestarts)
	case s.Period < 0:
		return fmt.Errorf("%w: Period %v is negative", ErrInvalidSpec, s.Period)
	case s.KillWait < 0:
		return fmt.Errorf("%w: KillWait %v is negative", ErrInvalidSpec, s.KillWait)
	}
	names := make(map[string]int, len(s.Children))
	for i, c := range s.Children {
		id := childID(c.Name, i)
		switch {
		case c.Start == nil:
			return fmt.Errorf("%w: child %s has no Start", ErrInvalidSpec, id)
		case c.Options.Context != nil:
			return fmt.Errorf("%w: child %s sets Options.Context; the supervisor must own its lifetime", ErrInvalidSpec, id)
		case c.Shutdown < 0 && c.Shutdown != Infinity:
			return fmt.Errorf("%w: child %s has negative Shutdown %v (use Infinity)", ErrInvalidSpec, id, c.Shutdown)
		case c.Restart < Permanent || c.Restart > Temporary:
			return fmt.Errorf("%w: child %s has unknown restart %v", ErrInvalidSpec, id, c.Restart)
		}
		if c.Name == "" {
			continue
		}
		if j, dup := names[c.Name]; dup {
			return fmt.Errorf("%w: children #%d and #%d share the name %q", ErrInvalidSpec, j, i, c.Name)
		}
		names[c.Name] = i
	}
	return nil
}

// withDefaults returns s with zero durations replaced by their defaults.
func (s Spec) withDefaults() Spec {
	if s.Period == 0 {
		s.Period = DefaultPeriod
	}
	if s.KillWait == 0 {
		s.KillWait = DefaultKillWait
	}
	// Copy the children so that a caller reusing its slice cannot change a
	// running supervisor.
	children := make([]ChildSpec, len(s.Children))
	copy(children, s.Children)
	for i := range children {
		if children[i].Shutdown == 0 {
			children[i].Shutdown = DefaultShutdown
		}
	}
	s.Children = children
	return s
}

// childID names a child in messages: its registered name, or its index.
func childID(name string, index int) string {
	if name != "" {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("#%d", index)
}

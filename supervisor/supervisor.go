package supervisor

import (
	"sync"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// Supervisor is the ergo process behaviour of a supervisor: spawn it with
// Start, with any node.Node or gen.Process Spawn (then a failed start shows
// only as the exit reason ReasonStartFailed and a warning in ergo's log),
// or under ergo's gen.Supervisor through Spec.ChildSpec.
//
// A Supervisor holds only its Spec; the state of each process running it
// lives in that process, so one value may be spawned any number of times,
// one after the other or at once (ergo's gen.Supervisor reuses the value
// of a child spec for every restart). Its methods are called by ergo;
// use Start, Stop and Which to drive it. Safe for concurrent use.
type Supervisor struct {
	spec    Spec  // with defaults filled in; never changed after New
	specErr error // why spec is unusable, or nil

	mu   sync.Mutex
	runs map[etf.Pid]*run // guarded by mu: processes of this value now in their loop
}

var _ gen.ProcessBehavior = (*Supervisor)(nil)

// New returns the behaviour of a supervisor with spec. New never fails: an
// invalid spec makes every start fail (Start checks the spec first and
// returns the error instead of spawning).
func New(spec Spec) *Supervisor {
	return &Supervisor{
		spec:    spec.withDefaults(),
		specErr: spec.validate(),
		runs:    make(map[etf.Pid]*run),
	}
}

// startReport carries Start's channel to the new process as a spawn
// argument (a local Go value; ergo passes it through untouched). The
// process sends the result of its initial start on it, before ergo lets
// Spawn return.
type startReport chan<- error

// ProcessInit implements gen.ProcessBehavior. It only prepares the state:
// the children are started in ProcessLoop, before ergo lets Spawn return,
// because an error returned from ProcessInit leaves the process registered
// in ergo v1.999.224 (alive, holding its name, forever).
func (s *Supervisor) ProcessInit(p gen.Process, args ...etf.Term) (gen.ProcessState, error) {
	var report startReport
	for _, a := range args {
		if r, ok := a.(startReport); ok {
			report = r
		}
	}
	// Exit signals must reach the loop as messages: without the trap,
	// ergo cancels the context of a process that gets one, and the
	// children would never get their ordered shutdown.
	p.SetTrapExit(true)
	r := newRun(s.spec, s.specErr, p, report)
	s.mu.Lock()
	s.runs[p.Self()] = r
	s.mu.Unlock()
	return gen.ProcessState{Process: p, State: r}, nil
}

// ProcessLoop implements gen.ProcessBehavior: it starts the children in
// order, supervises them, and on shutdown stops them in reverse order. It
// returns (and the process exits) only once every child is gone.
func (s *Supervisor) ProcessLoop(ps gen.ProcessState, started chan<- bool) string {
	r := ps.State.(*run)
	defer s.forget(r)
	defer close(r.done)
	// If anything below panics, ergo recovers it and ends the process,
	// but Spawn would wait for started forever (as it does for ergo's
	// own gen.Supervisor when a child fails to start).
	defer r.signalStarted(started, errLoopPanicked)
	// Children are monitored, not linked: if the loop panics, end them
	// here, as the links of an OTP supervisor would.
	returned := false
	defer func() {
		if !returned {
			r.killChildren()
		}
	}()

	reason := ReasonStartFailed
	if err := r.startup(); err != nil {
		r.signalStarted(started, err)
	} else {
		r.signalStarted(started, nil)
		reason = r.loop()
	}
	returned = true
	return reason
}

// lookup returns the state of the process pid running s, or nil once its
// loop has returned.
func (s *Supervisor) lookup(pid etf.Pid) *run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[pid]
}

func (s *Supervisor) forget(r *run) {
	s.mu.Lock()
	delete(s.runs, r.self)
	s.mu.Unlock()
}

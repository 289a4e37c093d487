package supervisor

import "time"

// observe reports e to Spec.observe, when a test has set one. It runs on
// the supervisor's loop goroutine, like every step it reports.
func (r *run) observe(e event) {
	if r.spec.observe != nil {
		e.at = time.Now()
		r.spec.observe(e)
	}
}

// event is one step of a supervisor, reported to Spec.observe in tests.
type event struct {
	kind   eventKind
	child  string
	index  int
	reason string
	plan   plan
	at     time.Time
}

type eventKind int

const (
	evStarted   eventKind = iota // child started
	evExited                     // child's DOWN or exit signal seen
	evPlan                       // decision taken on a child's exit
	evExitSent                   // child told to stop (or found ending already)
	evKilled                     // child killed after its Shutdown
	evAbandoned                  // killed child given up after KillWait
	evShutdown                   // the supervisor is shutting down
)

package supervisor

import "time"

// This file decides; supervisor.go and run.go act. Nothing here touches
// ergo, so the rules are tested without a node (strategy_test.go).

// plan is what a supervisor does about one child exit.
type plan int

const (
	// planNothing: the exit does not count (a temporary child, or a
	// transient one that ended normally); the siblings keep running.
	planNothing plan = iota
	// planRestartAll: stop the other children in reverse order, then start
	// all again in order (one-for-all).
	planRestartAll
	// planRestartOne: start the exited child again (one-for-one).
	planRestartOne
	// planShutdown: the restart intensity is exceeded; stop every child in
	// reverse order and exit with ReasonShutdown.
	planShutdown
)

func (p plan) String() string {
	switch p {
	case planNothing:
		return "nothing"
	case planRestartAll:
		return "restart all"
	case planRestartOne:
		return "restart one"
	case planShutdown:
		return "shutdown"
	}
	return "unknown plan"
}

// decide returns the plan for a child with restart type r that exited with
// reason, and records the restart in w when the plan is one.
func decide(s Strategy, r Restart, reason string, w *restartWindow, now time.Time) plan {
	if !exitCounts(r, reason) {
		return planNothing
	}
	// OTP checks the intensity before it touches the siblings; the
	// siblings are stopped either way (by the restart or by the shutdown).
	if !w.allow(now) {
		return planShutdown
	}
	if s == OneForOne {
		return planRestartOne
	}
	return planRestartAll
}

// exitCounts reports whether an exit with reason of a child with restart
// type r makes its supervisor act.
func exitCounts(r Restart, reason string) bool {
	switch r {
	case Permanent:
		return true
	case Transient:
		return !isNormalExit(reason)
	}
	return false
}

// isNormalExit reports whether reason is one of the exit reasons OTP does
// not treat as a failure.
func isNormalExit(reason string) bool {
	return reason == "normal" || reason == ReasonShutdown
}

// restartWindow is OTP's restart intensity: at most max restarts within
// any period. The zero max allows none.
type restartWindow struct {
	max    int
	period time.Duration
	times  []time.Time // restarts within the last period, oldest first
}

// allow records a restart at now and reports whether it stays within the
// intensity. Restarts older than period are forgotten first, so the slice
// never holds more than max+1 entries.
func (w *restartWindow) allow(now time.Time) bool {
	kept := w.times[:0]
	for _, t := range w.times {
		if now.Sub(t) <= w.period {
			kept = append(kept, t)
		}
	}
	w.times = append(kept, now)
	return len(w.times) <= w.max
}

package actors

import (
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/internal/safelog"
)

// ErrTaskSupervisorStopped is returned by TaskSupervisor.Go once the task
// supervisor is stopping: it starts no new task.
var ErrTaskSupervisorStopped = errors.New("actors: task supervisor is stopped")

// TaskSupervisor is an actor Behavior that runs functions as tasks,
// Nx's Task.Supervisor with async_nolink: each task runs on a goroutine
// the supervisor tracks, a panicking task is recovered and logged instead
// of taking the program down, and the process does not exit before every
// running task has returned.
//
// Tasks are goroutines, not ergo processes: a process spawn costs 10-12 us
// and ~18 KB in ergo v1.999.224, a goroutine well under a microsecond, and
// a serving starts a task per batch. Whoever starts a task learns of its
// end from the task itself (it is a closure); nothing goes through the
// task supervisor's mailbox.
//
// Go is safe for concurrent use. The zero value is not usable; use
// NewTaskSupervisor. A TaskSupervisor value serves one process: spawn a
// new one for every start.
type TaskSupervisor struct {
	shutdown time.Duration // how long stopping waits for tasks; < 0: forever

	mu      sync.Mutex // guards stopped and the Add side of running
	stopped bool
	running sync.WaitGroup
	count   int // guarded by mu: tasks running
}

var _ Behavior = (*TaskSupervisor)(nil)

// NewTaskSupervisor returns a task supervisor; spawn it with NewActor. Stopping it waits
// up to shutdown for the running tasks (a negative shutdown waits
// forever); tasks still running then are abandoned with a logged warning
// (a goroutine cannot be killed), so that a stuck task never keeps the
// process, and its registered name, alive.
func NewTaskSupervisor(shutdown time.Duration) *TaskSupervisor {
	return &TaskSupervisor{shutdown: shutdown}
}

// Go runs fn as a task. It never blocks; it fails with
// ErrTaskSupervisorStopped once the task supervisor is stopping.
func (ts *TaskSupervisor) Go(fn func()) error {
	ts.mu.Lock()
	if ts.stopped {
		ts.mu.Unlock()
		return ErrTaskSupervisorStopped
	}
	ts.running.Add(1)
	ts.count++
	ts.mu.Unlock()
	go ts.run(fn)
	return nil
}

func (ts *TaskSupervisor) run(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			// The panic value may hold anything (a request's data): a
			// bounded rendering of it, and a bounded rate of such lines.
			safelog.Error("actors.task.panic", "actors: task panicked", "panic", safelog.T(r), "stack", string(debug.Stack()))
		}
		ts.mu.Lock()
		ts.count--
		ts.mu.Unlock()
		ts.running.Done()
	}()
	fn()
}

// Running returns the number of tasks running.
func (ts *TaskSupervisor) Running() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.count
}

// Init traps exits, so that a shutdown arrives as a message and the
// running tasks can finish.
func (ts *TaskSupervisor) Init(p gen.Process, _ ...etf.Term) error {
	p.SetTrapExit(true)
	return nil
}

// HandleMessage stops on an exit signal, after the running tasks.
func (ts *TaskSupervisor) HandleMessage(_ gen.Process, _ etf.Pid, msg etf.Term) string {
	if m, ok := msg.(gen.MessageExit); ok {
		ts.stopAndWait()
		return m.Reason
	}
	// Any node can send to a registered task supervisor: log a bounded
	// rendering of what it sent, at a bounded rate.
	safelog.Warn("actors.tasksup.message", "actors: task supervisor got an unexpected message", "message", safelog.T(msg))
	return ""
}

// Terminate waits for the running tasks, however the process ends.
func (ts *TaskSupervisor) Terminate(gen.Process, string) { ts.stopAndWait() }

// stopAndWait refuses new tasks and waits for the running ones, at most
// ts.shutdown.
func (ts *TaskSupervisor) stopAndWait() {
	ts.mu.Lock()
	ts.stopped = true
	ts.mu.Unlock()
	done := make(chan struct{})
	go func() { ts.running.Wait(); close(done) }()
	if ts.shutdown < 0 {
		<-done
		return
	}
	timer := time.NewTimer(ts.shutdown)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		safelog.Warn("actors.tasksup.abandon", "actors: task supervisor stopping with tasks still running; abandoning them",
			"running", ts.Running(), "waited", ts.shutdown)
	}
}

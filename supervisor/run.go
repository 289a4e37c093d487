package supervisor

import (
	"errors"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"

	"github.com/ergonx/ergonx/internal/safelog"
)

var errLoopPanicked = errors.New("supervisor: panicked while starting its children")

// run is the state of one supervisor process. Every field but view, stop
// and done is owned by the process's loop goroutine (ProcessLoop and the
// methods it calls); nothing else may touch them.
//
// The loop never blocks on anything but the select in next, so it always
// drains its mailbox (ergo drops what does not fit, DOWN messages
// included), its exit-signal channel and its direct requests, even while
// it waits for a child to stop.
type run struct {
	spec        Spec
	specErr     error
	proc        gen.Process
	self        etf.Pid
	parent      etf.Pid // zero when spawned by a node
	hasParent   bool
	groupLeader gen.Process // given to children that name none
	chs         gen.ProcessChannels
	report      startReport // nil unless spawned by Start
	signalled   bool        // started (and report) have been sent

	children []*child
	window   restartWindow

	// reason is non-empty once a shutdown has been requested; the loop
	// then stops every child and exits with it.
	reason  string
	stopC   <-chan struct{} // = stop; nil once seen, as a closed channel is always ready
	ctxDone <-chan struct{} // the process's context; nil once seen

	stop     chan struct{} // closed by requestStop, from any goroutine
	stopOnce sync.Once
	done     chan struct{} // closed when the loop has returned

	mu   sync.Mutex
	view []Child // guarded by mu: what Which returns
}

func newRun(spec Spec, specErr error, p gen.Process, report startReport) *run {
	r := &run{
		spec:        spec,
		specErr:     specErr,
		proc:        p,
		self:        p.Self(),
		groupLeader: p.GroupLeader(),
		chs:         p.ProcessChannels(),
		report:      report,
		window:      restartWindow{max: spec.MaxRestarts, period: spec.Period},
		ctxDone:     p.Context().Done(),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	r.stopC = r.stop
	if r.groupLeader == nil {
		r.groupLeader = p
	}
	if parent := p.Parent(); parent != nil {
		r.parent, r.hasParent = parent.Self(), true
	}
	r.children = make([]*child, len(spec.Children))
	for i, cs := range spec.Children {
		r.children[i] = &child{index: i, spec: cs}
	}
	r.publish()
	return r
}

// signalStarted lets ergo's Spawn (and Start) return, with the result of
// the initial start. Only the first call counts.
func (r *run) signalStarted(started chan<- bool, err error) {
	if r.signalled {
		return
	}
	r.signalled = true
	if r.report != nil {
		r.report <- err // buffered: Start reads it after Spawn returns
	}
	started <- true
}

// requestStop asks the loop to shut down with ReasonShutdown. Any
// goroutine may call it, any number of times. A Go channel rather than
// ergo's Exit: it cannot be dropped, and it still works once the
// process's context is cancelled (ergo then refuses exit signals).
func (r *run) requestStop() {
	r.stopOnce.Do(func() { close(r.stop) })
}

// startup starts the children in order. On failure, the children already
// started have been stopped in reverse order when it returns.
func (r *run) startup() error {
	if r.specErr != nil {
		safelog.Warn("supervisor.spec", "supervisor: invalid spec", "supervisor", r.self.String(), "error", safelog.T(r.specErr))
		return r.specErr
	}
	if err := r.startChildren(); err != nil {
		safelog.Warn("supervisor.start", "supervisor: a child failed to start", "supervisor", r.self.String(), "error", safelog.T(err))
		return err
	}
	return nil
}

// loop supervises the children until a shutdown is requested, then stops
// them all and returns the exit reason.
func (r *run) loop() string {
	for r.reason == "" {
		if c, reason, _ := r.next(nil); c != nil {
			r.childExited(c, reason)
		}
	}
	r.observe(event{kind: evShutdown, reason: r.reason})
	r.terminateAll()
	return r.reason
}

// childExited acts on the exit of c, as decide says.
func (r *run) childExited(c *child, reason string) {
	p := decide(r.spec.Strategy, c.spec.Restart, reason, &r.window, time.Now())
	r.observe(event{kind: evPlan, child: c.spec.Name, index: c.index, reason: reason, plan: p})
	switch p {
	case planNothing:
		if c.spec.Restart == Temporary {
			c.removed = true
			r.publish()
		}
	case planShutdown:
		safelog.Warn("supervisor.intensity", "supervisor: restart intensity reached, shutting down",
			"supervisor", r.self.String(), "child", childID(c.spec.Name, c.index), "reason", reasonValue(reason),
			"max_restarts", r.spec.MaxRestarts, "period", r.spec.Period)
		r.requestShutdown(ReasonShutdown)
	case planRestartAll:
		r.restartAll()
	case planRestartOne:
		r.restartOne(c)
	}
}

// restartAll is one-for-all: stop every running child in reverse order,
// then start them all in order. A failed start stops the started ones
// again and counts as one more restart, as in OTP.
func (r *run) restartAll() {
	r.terminateAll()
	for _, c := range r.children {
		// OTP drops temporary children when a restart stops them.
		if c.spec.Restart == Temporary {
			c.removed = true
		}
	}
	r.publish()
	for r.reason == "" {
		err := r.startChildren()
		if err == nil {
			return
		}
		safelog.Warn("supervisor.restart", "supervisor: restart failed", "supervisor", r.self.String(), "error", safelog.T(err))
		if !r.window.allow(time.Now()) {
			r.requestShutdown(ReasonShutdown)
		}
	}
}

// restartOne is one-for-one: start c again; each failure counts as one
// more restart.
func (r *run) restartOne(c *child) {
	for r.reason == "" {
		err := r.startChild(c)
		if err == nil {
			return
		}
		safelog.Warn("supervisor.restart", "supervisor: restart failed", "supervisor", r.self.String(), "error", safelog.T(err))
		if !r.window.allow(time.Now()) {
			r.requestShutdown(ReasonShutdown)
		}
	}
}

// reasonValue prints an exit reason for a log line: reasons are strings of
// any length (a stop reason, or a peer's term flattened by ergo), so at
// most a bounded prefix of one is written.
func reasonValue(reason string) safelog.Value {
	return safelog.Limits{MaxString: 256}.T(reason)
}

// requestShutdown records the first shutdown reason; later ones are
// ignored, as the shutdown is already under way.
func (r *run) requestShutdown(reason string) {
	if r.reason == "" {
		r.reason = reason
	}
}

// next waits for one event and handles it. It returns the child that has
// exited, with its reason, when the event was a child's exit (c is then
// already marked dead), and timedOut when deadline fired first. A nil
// deadline never fires.
func (r *run) next(deadline <-chan time.Time) (c *child, reason string, timedOut bool) {
	select {
	case m := <-r.chs.Mailbox:
		// Children are matched by pid, never by monitor reference: ergo's
		// references repeat every 262,144, while pids never do.
		if down, ok := m.Message.(gen.MessageDown); ok {
			c, reason = r.exited(down.Pid, down.Reason)
		}
		// Anything else is not for a supervisor; reading it keeps the
		// mailbox from filling up.
	case ex := <-r.chs.GracefulExit:
		switch {
		case ex.From == r.self:
			// Process.Exit on this process (ergo's gen.Supervisor stops
			// its children this way, so does anyone holding the process).
			r.requestShutdown(ex.Reason)
		case r.hasParent && ex.From == r.parent:
			r.requestShutdown(ex.Reason)
		}
		// Children are not linked (see startChild); exits of other linked
		// processes are ignored, as OTP's supervisor does.
	case d := <-r.chs.Direct:
		r.answer(d)
	case <-r.stopC:
		r.stopC = nil
		r.requestShutdown(ReasonShutdown)
	case <-r.ctxDone:
		// Kill, node stop, or a parent that derived our context (ergo's
		// gen.Supervisor) cancelling it. The loop goroutine is not
		// interrupted by that, so the children still get their ordered,
		// timed shutdown.
		r.ctxDone = nil
		r.requestShutdown(ReasonKill)
	case <-deadline:
		return nil, "", true
	}
	return c, reason, false
}

// exited marks the live child with pid as gone and returns it, or nil when
// pid is no live child (the late DOWN of a child given up on).
func (r *run) exited(pid etf.Pid, reason string) (*child, string) {
	for _, c := range r.children {
		if !c.alive || c.pid != pid {
			continue
		}
		c.alive, c.proc = false, nil
		r.publish()
		r.observe(event{kind: evExited, child: c.spec.Name, index: c.index, reason: reason})
		return c, reason
	}
	return nil, ""
}

// answer replies to a Direct request. gen.MessageDirectChildren makes
// ergo's Process.Children work on a supervisor.
func (r *run) answer(d gen.ProcessDirectMessage) {
	switch d.Message.(type) {
	case gen.MessageDirectChildren:
		pids := []etf.Pid{}
		for _, c := range r.children {
			if c.alive {
				pids = append(pids, c.pid)
			}
		}
		r.proc.PutSyncReply(d.Ref, pids, nil)
	default:
		r.proc.PutSyncReply(d.Ref, nil, lib.ErrUnsupportedRequest)
	}
}

// publish copies the children's state for Which.
func (r *run) publish() {
	view := make([]Child, len(r.children))
	for i, c := range r.children {
		view[i] = Child{Name: c.spec.Name, Pid: c.pid, Alive: c.alive, Process: c.proc}
	}
	r.mu.Lock()
	r.view = view
	r.mu.Unlock()
}

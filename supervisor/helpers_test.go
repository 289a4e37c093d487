package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/testnode"
)

// waitLimit bounds every wait of these tests. The machines they run on are
// small and noisy; a wait that reaches it is a failure, never a pass.
const waitLimit = 20 * time.Second

// block is sent to a probe to keep it inside a callback until its release
// channel is closed.
type block struct{}

// stopWith makes a probe stop with reason.
type stopWith struct{ reason string }

// probe is a test child: a gen.Server that reports what happens to it on
// a channel shared by a test's children, as "start a", "busy a",
// "exit a shutdown" (a trapped exit signal), "terminate a kill".
type probe struct {
	gen.Server
	name      string
	trap      bool
	initErr   error
	initPanic bool
	report    chan<- string
	release   <-chan struct{} // a block waits for it to close
}

func (p *probe) Init(sp *gen.ServerProcess, _ ...etf.Term) error {
	if p.initPanic {
		panic("probe " + p.name + " panics in Init")
	}
	if p.initErr != nil {
		return p.initErr
	}
	sp.SetTrapExit(p.trap)
	p.report <- "start " + p.name
	return nil
}

func (p *probe) HandleInfo(_ *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	switch m := m.(type) {
	case block:
		p.report <- "busy " + p.name
		<-p.release
		return gen.ServerStatusOK
	case stopWith:
		return gen.ServerStatusStopWithReason(m.reason)
	case gen.MessageExit:
		p.report <- "exit " + p.name + " " + m.Reason
		return gen.ServerStatusStopWithReason(m.Reason)
	}
	return gen.ServerStatusOK
}

func (p *probe) Terminate(_ *gen.ServerProcess, reason string) {
	p.report <- "terminate " + p.name + " " + reason
}

// fixture holds what the children of one test report.
type fixture struct {
	t       *testing.T
	nd      node.Node
	reports chan string
	events  chan event
	release chan struct{}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		t:       t,
		nd:      testnode.Start(t, testnode.Options{}),
		reports: make(chan string, 1000),
		events:  make(chan event, 1000),
		release: make(chan struct{}),
	}
	// Blocked probes must end before the node stops (goleak); closing
	// twice is guarded by releaseAll.
	t.Cleanup(f.releaseAll)
	return f
}

func (f *fixture) releaseAll() {
	select {
	case <-f.release:
	default:
		close(f.release)
	}
}

// child returns a ChildSpec of a probe named name.
func (f *fixture) child(name string, trap bool) ChildSpec {
	return ChildSpec{
		Name:  name,
		Start: func() gen.ProcessBehavior { return f.probe(name, trap) },
	}
}

func (f *fixture) probe(name string, trap bool) *probe {
	return &probe{name: name, trap: trap, report: f.reports, release: f.release}
}

// observe is a Spec.observe that hands events to the test. It never
// blocks the supervisor; the buffer is far larger than any test needs.
func (f *fixture) observe(e event) {
	select {
	case f.events <- e:
	default:
	}
}

// expectReports reads the next reports and requires them to be want, in
// this order.
func (f *fixture) expectReports(want ...string) {
	f.t.Helper()
	got := make([]string, 0, len(want))
	for range want {
		got = append(got, recv(f.t, f.reports, fmt.Sprintf("report %d of %q (got %q)", len(got), want, got)))
	}
	require.Equal(f.t, want, got)
}

// awaitTerminate skips name's reports until its Terminate and returns the
// reason Terminate got.
func (f *fixture) awaitTerminate(name string) string {
	f.t.Helper()
	prefix := "terminate " + name + " "
	for {
		r := recv(f.t, f.reports, "the Terminate of "+name)
		if strings.HasPrefix(r, prefix) {
			return strings.TrimPrefix(r, prefix)
		}
	}
}

// noReport requires that no report is pending now.
func (f *fixture) noReport() {
	f.t.Helper()
	select {
	case r := <-f.reports:
		f.t.Fatalf("unexpected report %q", r)
	default:
	}
}

// awaitEvent skips events until one of kind about child comes.
func (f *fixture) awaitEvent(kind eventKind, child string) event {
	f.t.Helper()
	for {
		e := recv(f.t, f.events, fmt.Sprintf("event %d for %q", kind, child))
		if e.kind == kind && e.child == child {
			return e
		}
	}
}

// start starts a supervisor and registers its stop with the test.
func (f *fixture) start(name string, spec Spec) gen.Process {
	f.t.Helper()
	spec.observe = f.observe
	sup, err := Start(f.nd, name, spec)
	require.NoError(f.t, err)
	f.t.Cleanup(func() {
		f.releaseAll()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := Stop(ctx, sup); err != nil {
			f.t.Errorf("stop supervisor in cleanup: %v", err)
		}
	})
	return sup
}

// watch monitors pid from a helper process and returns the channel its
// DOWN reason will arrive on.
func (f *fixture) watch(pid etf.Pid) <-chan string {
	f.t.Helper()
	w := &watcher{down: make(chan string, 1)}
	_, err := f.nd.Spawn("", gen.ProcessOptions{}, w, pid)
	require.NoError(f.t, err)
	return w.down
}

type watcher struct {
	gen.Server
	down chan string
}

func (w *watcher) Init(sp *gen.ServerProcess, args ...etf.Term) error {
	sp.MonitorProcess(args[0].(etf.Pid))
	return nil
}

func (w *watcher) HandleInfo(_ *gen.ServerProcess, m etf.Term) gen.ServerStatus {
	if d, ok := m.(gen.MessageDown); ok {
		w.down <- d.Reason
		return gen.ServerStatusStop
	}
	return gen.ServerStatusOK
}

// send delivers m to p's HandleInfo. ergo lets any goroutine send through
// a process handle; the sender is p itself.
func send(t *testing.T, p gen.Process, m etf.Term) {
	t.Helper()
	require.NoError(t, p.Send(p.Self(), m))
}

// childProcess returns the running process of the supervisor's child name.
func childProcess(t *testing.T, sup gen.Process, name string) gen.Process {
	t.Helper()
	for _, c := range Which(sup) {
		if c.Name == name && c.Alive {
			return c.Process
		}
	}
	t.Fatalf("no live child %q in %+v", name, Which(sup))
	return nil
}

// recv receives from ch, failing the test after waitLimit.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
	}
	panic("unreachable")
}

// closed waits until ch is closed (or yields), failing the test after
// waitLimit.
func closed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	recv(t, ch, what)
}

// stop stops sup, requiring it to be gone within waitLimit.
func stop(t *testing.T, sup gen.Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(t, Stop(ctx, sup))
}

// stopAsync stops sup in a goroutine; the error arrives on the channel.
func stopAsync(sup gen.Process) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		done <- Stop(ctx, sup)
	}()
	return done
}

var errBoom = errors.New("boom")

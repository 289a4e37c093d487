package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestStartsChildrenInOrderAndStopsThemInReverse(t *testing.T) {
	f := newFixture(t)
	sup := f.start("sup", Spec{Children: []ChildSpec{
		f.child("a", true), f.child("b", true), f.child("c", true),
	}})
	// Init runs inside Spawn, so every child has started when Start returns.
	f.expectReports("start a", "start b", "start c")

	children := Which(sup)
	require.Len(t, children, 3)
	for i, name := range []string{"a", "b", "c"} {
		assert.Equal(t, name, children[i].Name)
		assert.True(t, children[i].Alive)
		assert.Equal(t, children[i].Pid, f.nd.ProcessByName(name).Self())
	}
	pids, err := sup.Children()
	require.NoError(t, err, "ergo's Process.Children works on the supervisor")
	assert.Equal(t, []etf.Pid{children[0].Pid, children[1].Pid, children[2].Pid}, pids)

	down := f.watch(sup.Self())
	stop(t, sup)
	f.expectReports(
		"exit c shutdown", "terminate c shutdown",
		"exit b shutdown", "terminate b shutdown",
		"exit a shutdown", "terminate a shutdown",
	)
	assert.Equal(t, ReasonShutdown, recv(t, down, "the supervisor's DOWN"))
	for _, name := range []string{"sup", "a", "b", "c"} {
		assert.Nil(t, f.nd.ProcessByName(name), "%s is gone", name)
	}
	assert.Nil(t, Which(sup))
	assert.NoError(t, Stop(context.Background(), sup), "stopping again is a no-op")
}

func TestBusyTrappingChildGetsItsFullShutdownTime(t *testing.T) {
	f := newFixture(t)
	busy := f.child("busy", true)
	busy.Shutdown = 10 * time.Second
	sup := f.start("sup", Spec{Children: []ChildSpec{busy}})
	f.expectReports("start busy")
	p := childProcess(t, sup, "busy")

	send(t, p, block{})
	f.expectReports("busy busy")
	stopped := stopAsync(sup)
	f.awaitEvent(evExitSent, "busy")

	// The exit signal waits while the callback runs. ergo's gen.Supervisor
	// would have cancelled the child's context by now
	// (TestErgoSupervisorKillsBusyTrappingChildAtShutdown); ours must not,
	// not for the child's whole shutdown time. This window only looks for
	// an early kill; nothing waits on it.
	select {
	case <-p.Context().Done():
		t.Fatal("the busy child was killed before its shutdown time")
	case e := <-f.events:
		t.Fatalf("unexpected supervisor step %+v", e)
	case <-time.After(300 * time.Millisecond):
	}

	f.releaseAll() // the work finishes...
	f.expectReports("exit busy shutdown", "terminate busy shutdown")
	require.NoError(t, recv(t, stopped, "Stop"))
	for len(f.events) > 0 {
		assert.NotEqual(t, evKilled, (<-f.events).kind, "the child was killed")
	}
}

func TestChildExceedingItsShutdownIsKilled(t *testing.T) {
	f := newFixture(t)
	slow := f.child("slow", true)
	slow.Shutdown = 200 * time.Millisecond
	sup := f.start("sup", Spec{Children: []ChildSpec{slow}})
	f.expectReports("start slow")
	p := childProcess(t, sup, "slow")

	send(t, p, block{})
	f.expectReports("busy slow")
	stopped := stopAsync(sup)
	sent := f.awaitEvent(evExitSent, "slow")
	killed := f.awaitEvent(evKilled, "slow")
	assert.GreaterOrEqual(t, killed.at.Sub(sent.at), slow.Shutdown, "killed before its shutdown time")
	closed(t, p.Context().Done(), "the kill to cancel the child's context")

	// ergo cannot interrupt the running callback: the child ends after it
	// returns. Its loop then picks at random between the cancelled context
	// (Terminate gets "kill") and the exit signal queued before the kill,
	// which it may still handle.
	f.releaseAll()
	assert.Contains(t, []string{ReasonKill, ReasonShutdown}, f.awaitTerminate("slow"))
	require.NoError(t, recv(t, stopped, "Stop"))
}

func TestKilledChildStuckInACallbackIsGivenUpAfterKillWait(t *testing.T) {
	f := newFixture(t)
	stuck := f.child("stuck", true)
	stuck.Shutdown = 100 * time.Millisecond
	sup := f.start("sup", Spec{KillWait: 200 * time.Millisecond, Children: []ChildSpec{stuck}})
	f.expectReports("start stuck")
	p := childProcess(t, sup, "stuck")

	send(t, p, block{})
	f.expectReports("busy stuck")
	stop(t, sup) // returns although the child is still inside its callback
	f.noReport()
	assert.False(t, p.IsAlive(), "the given-up child is dead to ergo")

	f.releaseAll()
	assert.Contains(t, []string{ReasonKill, ReasonShutdown}, f.awaitTerminate("stuck"))
}

func TestOneForAllWithoutRestartsStopsTheSiblingAndExitsWithShutdown(t *testing.T) {
	f := newFixture(t)
	sup := f.start("sup", Spec{Children: []ChildSpec{f.child("tasks", true), f.child("serving", true)}})
	f.expectReports("start tasks", "start serving")
	down := f.watch(sup.Self())

	send(t, childProcess(t, sup, "serving"), stopWith{"crash"})
	f.expectReports("terminate serving crash", "exit tasks shutdown", "terminate tasks shutdown")
	assert.Equal(t, ReasonShutdown, recv(t, down, "the supervisor's DOWN"))
	assert.Nil(t, f.nd.ProcessByName("tasks"))
	assert.Nil(t, f.nd.ProcessByName("sup"))
}

func TestOneForAllRestartsAllChildrenInOrderUntilMaxRestarts(t *testing.T) {
	f := newFixture(t)
	sup := f.start("sup", Spec{MaxRestarts: 1, Period: time.Hour, Children: []ChildSpec{
		f.child("a", true), f.child("b", false), f.child("c", true),
	}})
	f.expectReports("start a", "start b", "start c")
	before := Which(sup)
	down := f.watch(sup.Self())

	send(t, childProcess(t, sup, "b"), stopWith{"crash"})
	f.expectReports(
		"terminate b crash",
		"exit c shutdown", "terminate c shutdown",
		"exit a shutdown", "terminate a shutdown",
		"start a", "start b", "start c",
	)
	// The restart is over once its last start is recorded.
	f.awaitEvent(evPlan, "b")
	f.awaitEvent(evStarted, "c")
	after := Which(sup)
	for i := range after {
		assert.True(t, after[i].Alive, after[i].Name)
		assert.NotEqual(t, before[i].Pid, after[i].Pid, "%s is a new process", after[i].Name)
	}

	// A second restart within the hour exceeds MaxRestarts.
	send(t, childProcess(t, sup, "a"), stopWith{"crash"})
	f.expectReports(
		"terminate a crash",
		"exit c shutdown", "terminate c shutdown",
	)
	f.expectReports("terminate b kill") // b does not trap exits
	assert.Equal(t, ReasonShutdown, recv(t, down, "the supervisor's DOWN"))
}

func TestOneForOneRestartsOnlyTheExitedChild(t *testing.T) {
	f := newFixture(t)
	sup := f.start("sup", Spec{Strategy: OneForOne, MaxRestarts: 3, Period: time.Hour, Children: []ChildSpec{
		f.child("a", true), f.child("b", true),
	}})
	f.expectReports("start a", "start b")
	a := Which(sup)[0].Pid

	send(t, childProcess(t, sup, "b"), stopWith{"crash"})
	f.expectReports("terminate b crash", "start b")
	f.awaitEvent(evPlan, "b")
	f.awaitEvent(evStarted, "b") // the restart's
	children := Which(sup)
	assert.Equal(t, a, children[0].Pid, "a was not restarted")
	assert.True(t, children[1].Alive)
}

func TestTransientNormalExitAndTemporaryExitLeaveSiblingsRunning(t *testing.T) {
	f := newFixture(t)
	transient := f.child("transient", true)
	transient.Restart = Transient
	temporary := f.child("temporary", true)
	temporary.Restart = Temporary
	sup := f.start("sup", Spec{Children: []ChildSpec{f.child("a", true), transient, temporary}})
	f.expectReports("start a", "start transient", "start temporary")

	send(t, childProcess(t, sup, "transient"), stopWith{"normal"})
	f.expectReports("terminate transient normal")
	assert.Equal(t, planNothing, f.awaitEvent(evPlan, "transient").plan)

	send(t, childProcess(t, sup, "temporary"), stopWith{"crash"})
	f.expectReports("terminate temporary crash")
	assert.Equal(t, planNothing, f.awaitEvent(evPlan, "temporary").plan)

	children := Which(sup)
	assert.True(t, children[0].Alive, "a keeps running")
	assert.False(t, children[1].Alive)
	assert.False(t, children[2].Alive)
	stop(t, sup)
	f.expectReports("exit a shutdown", "terminate a shutdown")
}

func TestStartFailsWithStartErrorAndLeavesNothingRunning(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failing func(f *fixture) ChildSpec
		want    func(t *testing.T, err error)
	}{
		{"Init returns an error", func(f *fixture) ChildSpec {
			return ChildSpec{Name: "b", Start: func() gen.ProcessBehavior {
				p := f.probe("b", true)
				p.initErr = errBoom
				return p
			}}
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, errBoom) }},
		{"Init panics", func(f *fixture) ChildSpec {
			return ChildSpec{Name: "b", Start: func() gen.ProcessBehavior {
				p := f.probe("b", true)
				p.initPanic = true
				return p
			}}
		}, func(t *testing.T, err error) { assert.ErrorContains(t, err, "panic") }},
		{"Start panics", func(f *fixture) ChildSpec {
			return ChildSpec{Name: "b", Start: func() gen.ProcessBehavior { panic("no behaviour") }}
		}, func(t *testing.T, err error) { assert.ErrorContains(t, err, "no behaviour") }},
		{"Start returns nil", func(f *fixture) ChildSpec {
			return ChildSpec{Name: "b", Start: func() gen.ProcessBehavior { return nil }}
		}, func(t *testing.T, err error) { assert.ErrorContains(t, err, "returned nil") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ignore := goleak.IgnoreCurrent()
			spec := Spec{Children: []ChildSpec{f.child("a", true), tc.failing(f), f.child("c", true)}}

			sup, err := Start(f.nd, "sup", spec)
			require.Error(t, err)
			assert.Nil(t, sup)
			var se *StartError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, "b", se.Child)
			assert.Equal(t, 1, se.Index)
			assert.ErrorContains(t, err, `start child "b"`)
			tc.want(t, err)
			f.expectReports("start a", "exit a shutdown", "terminate a shutdown")
			f.noReport() // c never started

			// Nothing is left: no process holds the names (ergo would leave
			// a failed Init's process holding its name forever), no
			// goroutine runs.
			for _, name := range []string{"sup", "a", "b", "c"} {
				assert.Nil(t, f.nd.ProcessByName(name), "%s is gone", name)
			}
			goleak.VerifyNone(t, ignore)
			f.start("sup", Spec{Children: []ChildSpec{f.child("a", true), f.child("b", true)}})
			f.expectReports("start a", "start b")
		})
	}
}

func TestNameTakenIsErrNameTaken(t *testing.T) {
	f := newFixture(t)
	_, err := f.nd.Spawn("taken", gen.ProcessOptions{}, &gen.Server{})
	require.NoError(t, err)

	_, err = Start(f.nd, "taken", Spec{Children: []ChildSpec{f.child("a", true)}})
	assert.ErrorIs(t, err, ErrNameTaken)
	assert.ErrorIs(t, err, lib.ErrTaken)
	f.noReport() // nothing was started

	_, err = Start(f.nd, "sup", Spec{Children: []ChildSpec{f.child("a", true), f.child("taken", true)}})
	var se *StartError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "taken", se.Child)
	assert.ErrorIs(t, err, ErrNameTaken)
	f.expectReports("start a", "exit a shutdown", "terminate a shutdown")
}

func TestInvalidSpecIsRejectedBeforeSpawning(t *testing.T) {
	f := newFixture(t)
	_, err := Start(f.nd, "sup", Spec{Children: []ChildSpec{{Name: "a"}}})
	assert.ErrorIs(t, err, ErrInvalidSpec)
	assert.Nil(t, f.nd.ProcessByName("sup"))

	// Spawned directly, the supervisor reports the same through its exit.
	p, err := f.nd.Spawn("", gen.ProcessOptions{}, New(Spec{Children: []ChildSpec{{Name: "a"}}}))
	require.NoError(t, err)
	stop(t, p)
}

func TestCancelledContextStillStopsChildrenInReverseOrder(t *testing.T) {
	f := newFixture(t)
	b := f.child("b", true)
	b.Shutdown = 10 * time.Second
	sup := f.start("sup", Spec{Children: []ChildSpec{f.child("a", true), b}})
	f.expectReports("start a", "start b")
	down := f.watch(sup.Self())
	send(t, childProcess(t, sup, "b"), block{})
	f.expectReports("busy b")

	sup.Kill() // cancels the supervisor's context; ergo's Wait returns now
	f.awaitEvent(evExitSent, "b")
	f.releaseAll()
	f.expectReports("exit b shutdown", "terminate b shutdown", "exit a shutdown", "terminate a shutdown")
	assert.Equal(t, ReasonKill, recv(t, down, "the supervisor's DOWN"))
}

func TestExitSignalFromTheParentStopsTheSupervisor(t *testing.T) {
	f := newFixture(t)
	other := f.start("other", Spec{Children: []ChildSpec{f.child("a", true)}})
	f.expectReports("start a")
	parent, err := f.nd.Spawn("", gen.ProcessOptions{}, f.probe("parent", false))
	require.NoError(t, err)
	f.expectReports("start parent")

	// Start through the parent, linked as OTP's start_link would be.
	sup, err := Start(parent, "sup", Spec{Children: []ChildSpec{f.child("b", true)}})
	require.NoError(t, err)
	t.Cleanup(func() { stop(t, sup) })
	f.expectReports("start b")
	require.NoError(t, parent.Link(sup.Self()))
	down := f.watch(sup.Self())

	send(t, parent, stopWith{"shutdown"})
	f.expectReports("terminate parent shutdown", "exit b shutdown", "terminate b shutdown")
	assert.Equal(t, "shutdown", recv(t, down, "the supervisor's DOWN"))
	assert.True(t, Which(other)[0].Alive, "an unrelated supervisor is untouched")
}

func TestChildOptionsAreKept(t *testing.T) {
	f := newFixture(t)
	c := f.child("a", true)
	c.Options = gen.ProcessOptions{MailboxSize: 7, Env: map[gen.EnvKey]any{"k": "v"}}
	sup := f.start("sup", Spec{Children: []ChildSpec{c}})
	f.expectReports("start a")
	p := childProcess(t, sup, "a")
	assert.Equal(t, 7, cap(p.ProcessChannels().Mailbox))
	assert.Equal(t, "v", p.Env("k"))
	assert.Equal(t, sup.Self(), p.Parent().Self())
	assert.Equal(t, sup.Self(), p.GroupLeader().Self(), "the supervisor leads a group of its own")
}

func TestStopOfAnotherBehaviourIsErrNotSupervisor(t *testing.T) {
	f := newFixture(t)
	p, err := f.nd.Spawn("", gen.ProcessOptions{}, &gen.Server{})
	require.NoError(t, err)
	assert.True(t, errors.Is(Stop(context.Background(), p), ErrNotSupervisor))
	assert.Nil(t, Which(p))
}

func TestPanicInTheLoopKillsTheChildren(t *testing.T) {
	f := newFixture(t)
	spec := Spec{Children: []ChildSpec{f.child("a", true), f.child("b", true)}}
	spec.observe = func(e event) {
		if e.kind == evPlan {
			panic("supervisor bug")
		}
	}
	sup, err := Start(f.nd, "sup", spec)
	require.NoError(t, err)
	f.expectReports("start a", "start b")
	down := f.watch(sup.Self())

	// Children are not linked to the supervisor; its panic guard ends them.
	send(t, childProcess(t, sup, "b"), stopWith{"crash"})
	f.expectReports("terminate b crash", "terminate a kill")
	assert.Equal(t, "panic", recv(t, down, "the supervisor's DOWN"))
	stop(t, sup)
}

// A restart whose start fails counts as one more restart, as in OTP, until
// the intensity is exceeded.
func TestFailedRestartsCountAgainstMaxRestarts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		strategy Strategy
		max      int
		want     []string
	}{
		{"one-for-all", OneForAll, 2, []string{
			"terminate b crash",
			"exit a shutdown", "terminate a shutdown", // the restart stops a
			"start a", "exit a shutdown", "terminate a shutdown", // b fails: 2nd restart
			"start a", "exit a shutdown", "terminate a shutdown", // b fails: 3rd > 2
		}},
		{"one-for-one", OneForOne, 1, []string{
			"terminate b crash",
			"exit a shutdown", "terminate a shutdown", // b fails: 2nd > 1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			starts := 0
			b := ChildSpec{Name: "b", Start: func() gen.ProcessBehavior {
				// Called on the supervisor's goroutine only.
				starts++
				p := f.probe("b", true)
				if starts > 1 {
					p.initErr = errBoom
				}
				return p
			}}
			sup := f.start("sup", Spec{Strategy: tc.strategy, MaxRestarts: tc.max, Period: time.Hour,
				Children: []ChildSpec{f.child("a", true), b}})
			f.expectReports("start a", "start b")
			down := f.watch(sup.Self())

			send(t, childProcess(t, sup, "b"), stopWith{"crash"})
			f.expectReports(tc.want...)
			assert.Equal(t, ReasonShutdown, recv(t, down, "the supervisor's DOWN"))
			f.noReport()
		})
	}
}

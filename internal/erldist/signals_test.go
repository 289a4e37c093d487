package erldist_test

import (
	"context"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/erldist"
)

// evalAsync evaluates expr on the Erlang node in the background.
func evalAsync(t *testing.T, erl interface {
	Eval(context.Context, string) (etf.Term, error)
}, expr string) <-chan etf.Term {
	ch := make(chan etf.Term, 1)
	go func() {
		v, err := erl.Eval(context.Background(), expr)
		if err != nil {
			v = err.Error()
		}
		ch <- v
	}()
	return ch
}

// An Erlang process waits for go, then exits with the term of expr.
func erlExiter(t *testing.T, erl interface {
	MustEval(testing.TB, string) etf.Term
}, expr string) etf.Pid {
	return erl.MustEval(t, "spawn(fun() -> receive go -> exit("+expr+") end end)").(etf.Pid)
}

// Monitors both ways, with DOWN reasons that are 100 KB non-atom terms:
// they arrive whole, in both directions.
func TestMonitorsBothWaysWithLongTermReasons(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	gn := atom(g.Name())

	// Go watches an Erlang process.
	watcher, got := spawnRecorder(t, g, "", false)
	want := erl.MustEval(t, "erldist_peer:big_tuple(100000)")
	pid := erlExiter(t, erl, "erldist_peer:big_tuple(100000)")
	ref := watcher.MonitorProcess(pid)
	// MONITOR_P and then the message, from one process: in order.
	require.NoError(t, watcher.Send(pid, etf.Atom("go")))
	down := within(t, got, "the DOWN").(gen.MessageDown)
	assert.Equal(t, ref, down.Ref)
	assert.Equal(t, pid, down.Pid)
	assert.Equal(t, want, erldist.ReasonTerm(down.Reason))

	// An atom reason arrives as ergo's plain string.
	pid = erlExiter(t, erl, "my_reason")
	watcher.MonitorProcess(pid)
	require.NoError(t, watcher.Send(pid, etf.Atom("go")))
	assert.Equal(t, "my_reason", within(t, got, "the DOWN").(gen.MessageDown).Reason)

	// Erlang watches a Go process, by name and by pid.
	big := bigTerm(100_000)
	for _, target := range []string{"{victim, " + gn + "}", "gen_server:call({victim, " + gn + "}, whoami)"} {
		victim, vgot := spawnRecorder(t, g, "victim", false)
		res := evalAsync(t, erl, "Ref = erlang:monitor(process, "+target+"), {victim, "+gn+"} ! monitoring, "+
			"erldist_peer:wait_down(Ref, 10000)")
		// The monitor is set before "monitoring" arrives (one Erlang
		// process, in order): wait for it, then stop.
		assert.Equal(t, etf.Atom("monitoring"), within(t, vgot, "monitoring"))
		require.NoError(t, victim.Send(victim.Self(), reasonMsg{mustReason(big)}))
		assert.Equal(t, etf.Tuple{etf.Atom("down"), big}, within(t, res, "Erlang's DOWN"), target)
	}

	// A plain string reason longer than an atom arrives as a binary.
	victim, vgot := spawnRecorder(t, g, "victim", false)
	res := evalAsync(t, erl, "Ref = erlang:monitor(process, {victim, "+gn+"}), {victim, "+gn+"} ! monitoring, "+
		"erldist_peer:wait_down(Ref, 10000)")
	assert.Equal(t, etf.Atom("monitoring"), within(t, vgot, "monitoring"))
	long := string(make([]byte, 300))
	require.NoError(t, victim.Send(victim.Self(), reasonMsg{long}))
	assert.Equal(t, etf.Tuple{etf.Atom("down"), []byte(long)}, within(t, res, "Erlang's DOWN"))
}

// Exit signals over links with term reasons, both ways, in the payload
// forms OTP 25 uses; exit/2 (EXIT2) too.
func TestLinksCarryTermReasons(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	gn := atom(g.Name())
	big := bigTerm(50_000)

	// Go (trapping) linked to an Erlang process that exits.
	trapper, got := spawnRecorder(t, g, "trapper", true)
	want := erl.MustEval(t, "erldist_peer:big_tuple(60000)")
	pid := erlExiter(t, erl, "erldist_peer:big_tuple(60000)")
	require.NoError(t, trapper.Link(pid))
	require.NoError(t, trapper.Send(pid, etf.Atom("go")))
	ex := within(t, got, "the exit signal").(gen.MessageExit)
	assert.Equal(t, pid, ex.Pid)
	assert.Equal(t, want, erldist.ReasonTerm(ex.Reason))

	// Erlang (trapping) linked to a Go process that stops.
	victim, vgot := spawnRecorder(t, g, "victim", false)
	res := evalAsync(t, erl, "process_flag(trap_exit, true), P = gen_server:call({victim, "+gn+"}, whoami), "+
		"link(P), P ! linked, erldist_peer:wait_exit(P, 10000)")
	assert.Equal(t, etf.Atom("linked"), within(t, vgot, "linked"))
	require.NoError(t, victim.Send(victim.Self(), reasonMsg{mustReason(big)}))
	assert.Equal(t, etf.Tuple{etf.Atom("exit"), big}, within(t, res, "Erlang's exit signal"))

	// exit/2 from Erlang to a trapping Go process, then kill.
	erl.MustEval(t, "P = gen_server:call({trapper, "+gn+"}, whoami), exit(P, {custom, <<\"term\">>, [one]})")
	ex = within(t, got, "the exit/2 signal").(gen.MessageExit)
	assert.Equal(t, etf.Tuple{etf.Atom("custom"), []byte("term"), etf.List{etf.Atom("one")}}, erldist.ReasonTerm(ex.Reason))
	// normal from exit/2 does not stop a process that does not trap.
	plain, pgot := spawnRecorder(t, g, "plain", false)
	erl.MustEval(t, "P = gen_server:call({plain, "+gn+"}, whoami), exit(P, normal), P ! still_here")
	assert.Equal(t, etf.Atom("still_here"), within(t, pgot, "the message after exit(P, normal)"))
	assert.True(t, plain.IsAlive())
	erl.MustEval(t, "P = gen_server:call({trapper, "+gn+"}, whoami), exit(P, kill)")
	within(t, trapper.Context().Done(), "the killed process to end")
}

// The new link protocol both ways: an unlink (UNLINK_ID, acknowledged)
// removes the link on both sides.
func TestUnlinkBothWays(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	gn := atom(g.Name())
	gp, got := spawnRecorder(t, g, "linked", true)

	// Go links an Erlang process, then unlinks it.
	e := erl.MustEval(t, "spawn(erldist_peer, sleep_forever, [])").(etf.Pid)
	require.NoError(t, gp.Link(e))
	eText := "list_to_pid(\"" + erlPidText(t, erl, e) + "\")"
	waitEval(t, erl, "element(2, erlang:process_info("+eText+", links))", etf.List{gp.Self()})
	require.NoError(t, gp.Unlink(e))
	waitEval(t, erl, "element(2, erlang:process_info("+eText+", links))", etf.List{})
	assert.Empty(t, g.Links(gp.Self()))

	// Erlang links the Go process, then unlinks it; its exit then
	// reaches nobody.
	res := evalAsync(t, erl, "process_flag(trap_exit, true), P = gen_server:call({linked, "+gn+"}, whoami), "+
		"link(P), P ! linked, receive unlink -> unlink(P), P ! unlinked end, erldist_peer:wait_exit(P, 1000)")
	assert.Equal(t, etf.Atom("linked"), within(t, got, "linked"))
	require.Len(t, g.Links(gp.Self()), 1)
	from := g.Links(gp.Self())[0]
	require.NoError(t, gp.Send(from, etf.Atom("unlink")))
	assert.Equal(t, etf.Atom("unlinked"), within(t, got, "unlinked"))
	assert.Empty(t, g.Links(gp.Self()), "the UNLINK_ID removed the link here")
	require.NoError(t, gp.Send(gp.Self(), reasonMsg{"gone"}))
	assert.Equal(t, etf.Atom("timeout"), within(t, res, "no exit signal"))
}

// waitEval evaluates expr until it gives want (or fails the test).
func waitEval(t *testing.T, erl interface {
	MustEval(testing.TB, string) etf.Term
}, expr string, want etf.Term) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		v := erl.MustEval(t, expr)
		if assert.ObjectsAreEqual(want, v) {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s is %v, want %v", expr, v, want)
		time.Sleep(5 * time.Millisecond)
	}
}

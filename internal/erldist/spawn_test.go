package erldist_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/internal/erldist"
)

// spawn_request from Erlang with every kind of option list: the reply
// comes, and the monitor and link asked for report the handler's own exit
// reason although it exits at once (never noproc).
func TestSpawnRequestFromErlang(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	require.NoError(t, g.ProvideRemoteSpawn("gworker", worker{}))
	gn := atom(g.Name())
	arg := etf.Tuple{etf.Atom("arg"), []byte("bin")}
	reason := etf.Tuple{etf.Atom("run"), etf.List{arg}} // the worker exits with {Function, Args}
	down := etf.Tuple{etf.Atom("down"), reason}
	exit := etf.Tuple{etf.Atom("exit"), reason}

	for _, tc := range []struct {
		opts   string
		events etf.List
	}{
		{"[monitor]", etf.List{down}},
		{"[link]", etf.List{exit}},
		{"[monitor, link, some_unknown_opt, {another, 1}]", etf.List{down, exit}},
		{"[{monitor, [{tag, my_tag}]}]", etf.List{}}, // the BIF turns {monitor, Opts} into monitor... with a tag
		{"[]", etf.List{}},
	} {
		got := erl.MustEval(t, "erldist_peer:spawn_req("+gn+", gworker, run, [{arg, <<\"bin\">>}], "+tc.opts+")")
		res, ok := got.(etf.Tuple)
		require.True(t, ok, "%s: %v", tc.opts, got)
		require.Equal(t, etf.Atom("ok"), res[0], "%s: %v", tc.opts, got)
		assert.Equal(t, etf.Atom(g.Name()), res[1].(etf.Pid).Node)
		if tc.opts == "[{monitor, [{tag, my_tag}]}]" {
			continue // the tagged DOWN is checked below
		}
		events := res[2].(etf.List)
		assert.ElementsMatch(t, tc.events, events, "%s", tc.opts)
	}

	// A tagged monitor: the DOWN comes with the tag.
	assert.Equal(t, etf.Tuple{etf.Atom("my_tag"), reason},
		erl.MustEval(t, "Ref = spawn_request("+gn+", gworker, run, [{arg, <<\"bin\">>}], [{monitor, [{tag, my_tag}]}]), "+
			"receive {spawn_reply, Ref, ok, P} -> receive {my_tag, Ref, process, P, R} -> {my_tag, R} "+
			"after 5000 -> timeout end after 5000 -> timeout end"))

	// erlang:spawn_monitor/4 (what Nx's Node.spawn_monitor calls).
	assert.Equal(t, reason, erl.MustEval(t, "{P, Ref} = spawn_monitor("+gn+", gworker, run, [{arg, <<\"bin\">>}]), "+
		"receive {'DOWN', Ref, process, P, R} -> R after 5000 -> timeout end"))

	// {name, Atom} registers the process: stop it by name.
	assert.Equal(t, etf.Atom("stopped_by_name"), erl.MustEval(t, "Ref = spawn_request("+gn+", gworker, run, [wait], [{name, xname}, monitor]), "+
		"receive {spawn_reply, Ref, ok, P} -> {xname, "+gn+"} ! stopped_by_name, "+
		"receive {'DOWN', Ref, process, P, R} -> R after 5000 -> timeout end after 5000 -> timeout end"))

	// An unknown module is refused with ergo's error text.
	assert.Equal(t, etf.Tuple{etf.Atom("error"), etf.Atom("unknown behavior")},
		erl.MustEval(t, "erldist_peer:spawn_req("+gn+", no_such_module, run, [], [monitor])"))
	// spawn_monitor/4 raises it, as OTP does for a refused spawn.
	assert.Equal(t, etf.Tuple{etf.Atom("caught"), etf.Atom("unknown behavior")},
		erl.MustEval(t, "try spawn_monitor("+gn+", no_such_module, run, []) catch error:E -> {caught, E} end"))
}

// SpawnMonitor from Go: the DOWN reason is the term the Erlang function
// exits with ({Ref, big_term}, as Nx's __distributed_batched_run__ does),
// arguments may be RawTerm, a failing function reports Erlang's reason,
// and Cancel demonitors.
func TestSpawnMonitorFromGo(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	from, _ := spawnRecorder(t, g, "", false)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	ref := g.MakeRef()
	big := bigTerm(200_000)
	raw, err := wire.RawTermOf(etf.Tuple{ref, big})
	require.NoError(t, err)
	for _, arg := range []etf.Term{etf.Tuple{ref, big}, raw} {
		s, err := erldist.SpawnMonitor(ctx, from, erl.Name, "erldist_peer", "exit_with", []etf.Term{arg})
		require.NoError(t, err)
		r := within(t, s.Reply(), "the spawn reply")
		require.NoError(t, r.Err)
		assert.Equal(t, etf.Atom(erl.Name), r.Pid.Node)
		pid, ok := s.Pid()
		assert.True(t, ok)
		assert.Equal(t, r.Pid, pid)
		assert.Equal(t, etf.Tuple{ref, big}, within(t, s.Down(), "the DOWN"))
		back, err := wire.DecodeTerm(s.DownRaw())
		require.NoError(t, err)
		assert.Equal(t, etf.Tuple{ref, big}, back)
	}

	// A function that does not exist: the process crashes with undef.
	s, err := erldist.SpawnMonitor(ctx, from, erl.Name, "erldist_peer", "no_such_function", []etf.Term{1})
	require.NoError(t, err)
	require.NoError(t, within(t, s.Reply(), "the spawn reply").Err)
	d := within(t, s.Down(), "the DOWN").(etf.Tuple)
	assert.Equal(t, etf.Atom("undef"), d[0])

	// normal and atom reasons come as atoms.
	s, err = erldist.SpawnMonitor(ctx, from, erl.Name, "erldist_peer", "exit_with", []etf.Term{etf.Atom("normal")})
	require.NoError(t, err)
	assert.Equal(t, etf.Atom("normal"), within(t, s.Down(), "the DOWN"))

	// Cancel: the Erlang process is no longer monitored.
	s, err = erldist.SpawnMonitor(ctx, from, erl.Name, "erldist_peer", "sleep_forever", nil)
	require.NoError(t, err)
	r := within(t, s.Reply(), "the spawn reply")
	require.NoError(t, r.Err)
	pidText := "list_to_pid(\"" + erlPidText(t, erl, r.Pid) + "\")"
	assert.Equal(t, etf.Tuple{etf.Atom("monitored_by"), etf.List{from.Self()}},
		erl.MustEval(t, "erlang:process_info("+pidText+", monitored_by)"))
	s.Cancel()
	deadline := time.Now().Add(waitLimit)
	for {
		v := erl.MustEval(t, "erlang:process_info("+pidText+", monitored_by)")
		if assert.ObjectsAreEqual(etf.Tuple{etf.Atom("monitored_by"), etf.List{}}, v) {
			break
		}
		require.True(t, time.Now().Before(deadline), "still monitored: %v", v)
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case v := <-s.Down():
		t.Fatalf("a cancelled spawn delivered %v", v)
	default:
	}
	erl.MustEval(t, "exit("+pidText+", kill)")
}

// erlPidText renders a pid of the Erlang node as pid_to_list does there.
func erlPidText(t *testing.T, erl interface {
	MustEval(testing.TB, string) etf.Term
}, p etf.Pid) string {
	t.Helper()
	// <0.ID.Serial> on its own node.
	return "<0." + itoa(p.ID&0xffffffff) + "." + itoa(p.ID>>32) + ">"
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

// SpawnMonitor to a node that cannot be reached fails with
// ErrNoConnection.
func TestSpawnMonitorUnreachable(t *testing.T) {
	epmd, _ := erlang(t)
	g := goNode(t, epmd)
	from, _ := spawnRecorder(t, g, "", false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := erldist.SpawnMonitor(ctx, from, "nobody@localhost", "m", "f", nil)
	assert.True(t, errors.Is(err, erldist.ErrNoConnection), "%v", err)
}

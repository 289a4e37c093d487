package erldist_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/erldist"
	"github.com/ergonx/ergonx/internal/erltest"
)

// A 10 MB binary each way, fragmented, while small messages from other
// processes keep arriving.
func TestFragmentsBothWaysWithSmallMessages(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	p, got := spawnRecorder(t, g, "rec", false)
	small, _ := spawnRecorder(t, g, "", false)
	erl.MustEval(t, "erldist_peer:start_echo(), erldist_peer:start_collector(coll)")

	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
	require.NoError(t, p.Send(gen.ProcessID{Name: "echo", Node: erl.Name}, etf.Tuple{p.Self(), big}))
	for i := range 100 {
		require.NoError(t, small.Send(gen.ProcessID{Name: "coll", Node: erl.Name}, i))
	}
	echoed := within(t, got, "the 10 MB echo").(etf.Tuple)
	assert.Equal(t, etf.Atom("echo"), echoed[0])
	assert.True(t, bytes.Equal(big, echoed[1].([]byte)), "the 10 MB binary came back intact")
	l := collected(t, erl, "coll", 100)
	require.Len(t, l, 100, erl.Output())
	for i, v := range l {
		assert.Equal(t, i, v)
	}

	// Erlang → Go: a 10 MB binary made there, with small ones around it.
	erl.MustEval(t, "G = {rec, "+atom(g.Name())+"}, G ! before, G ! {big, erldist_peer:big(10485760)}, G ! 'after'")
	assert.Equal(t, etf.Atom("before"), within(t, got, "before"))
	m := within(t, got, "the big one").(etf.Tuple)
	b := m[1].([]byte)
	require.Len(t, b, 10485760)
	for _, i := range []int{0, 1, 250, 251, 10485759} {
		assert.Equal(t, byte((i+1)%251), b[i], "byte %d", i)
	}
	assert.Equal(t, etf.Atom("after"), within(t, got, "after"))
}

// kill -9 of the Erlang node mid-call: the Go side learns noconnection at
// once (monitors, links, SpawnMonitor); and a Go node that stops is
// noconnection for the Erlang side.
func TestNodeLossBothWays(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	watcher, got := spawnRecorder(t, g, "", true)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s, err := erldist.SpawnMonitor(ctx, watcher, erl.Name, "erldist_peer", "sleep_forever", nil)
	require.NoError(t, err)
	pid := within(t, s.Reply(), "the spawn reply").Pid
	ref := watcher.MonitorProcess(pid)
	require.NoError(t, watcher.Link(pid))

	// And an Erlang process watching a Go node that stops.
	other := goNode(t, epmd)
	_, vgot := spawnRecorder(t, other, "victim", false)
	on := atom(other.Name())
	res := evalAsync(t, erl, "Ref = erlang:monitor(process, {victim, "+on+"}), {victim, "+on+"} ! monitoring, "+
		"erldist_peer:wait_down(Ref, 10000)")
	// The monitor is in place once the message that followed it came.
	assert.Equal(t, etf.Atom("monitoring"), within(t, vgot, "monitoring"))
	// OTP's rpc asks every new node's rex for its features: let that
	// exchange end first (ergo's core races with a message that arrives
	// while its process is being cleaned up, which -race reports).
	waitEval(t, erl, "ets:lookup(persistent_term:get(rex_nodes_observer), "+on+")",
		etf.List{etf.Tuple{etf.Atom(other.Name()), true}})
	stopNode(other)
	assert.Equal(t, etf.Tuple{etf.Atom("down"), etf.Atom("noconnection")}, within(t, res, "Erlang's DOWN"))

	start := time.Now()
	erl.Kill()
	assert.Equal(t, etf.Atom("noconnection"), within(t, s.Down(), "the SpawnMonitor DOWN"))
	seen := map[string]bool{}
	for len(seen) < 2 {
		switch m := within(t, got, "the monitor's DOWN and the link's exit").(type) {
		case gen.MessageDown:
			assert.Equal(t, ref, m.Ref)
			assert.Equal(t, "noconnection", m.Reason)
			seen["down"] = true
		case gen.MessageExit:
			assert.Equal(t, pid, m.Pid)
			assert.Equal(t, "noconnection", m.Reason)
			seen["exit"] = true
		}
	}
	assert.Less(t, time.Since(start), 5*time.Second, "noconnection came promptly")
	_, err = erldist.SpawnMonitor(ctx, watcher, erl.Name, "erldist_peer", "sleep_forever", nil)
	assert.True(t, errors.Is(err, erldist.ErrNoConnection), "%v", err)
}

// rpc:call and erpc:call to a Go node answer at once: the allow-list
// runs, anything else fails as an undefined function does.
func TestRPCFailsFast(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	gn := atom(g.Name())
	start := time.Now()
	assert.Equal(t, etf.Atom(g.Name()), erl.MustEval(t, "rpc:call("+gn+", erlang, node, [])"))
	assert.Equal(t, etf.List{etf.Atom(erl.Name)}, erl.MustEval(t, "rpc:call("+gn+", erlang, nodes, [], 5000)"))
	assert.Equal(t, true, erl.MustEval(t, "erpc:call("+gn+", erlang, is_alive, [])"))
	undef := etf.Tuple{etf.Atom("undef"), etf.List{etf.Tuple{etf.Atom("os"), etf.Atom("cmd"), etf.List{"ls"}, etf.List{}}}}
	assert.Equal(t, etf.Tuple{etf.Atom("badrpc"), etf.Tuple{etf.Atom("EXIT"), undef}},
		erl.MustEval(t, "rpc:call("+gn+", os, cmd, [\"ls\"])"))
	assert.Equal(t, etf.Tuple{etf.Atom("error"), etf.Tuple{etf.Atom("exception"), undef[0], undef[1]}},
		erl.MustEval(t, "try erpc:call("+gn+", os, cmd, [\"ls\"]) catch C:R -> {C, R} end"))
	// The old rex protocol too (what OTP before 23 sends).
	assert.Equal(t, etf.Tuple{etf.Atom("badrpc"), etf.Tuple{etf.Atom("EXIT"), undef}},
		erl.MustEval(t, "gen_server:call({rex, "+gn+"}, {call, os, cmd, [\"ls\"], group_leader()}, 5000)"))
	assert.Less(t, time.Since(start), 5*time.Second)
}

// A malformed or unknown control message is logged and dropped; the link
// keeps being read (shown between two ergonx nodes: OTP never sends one).
func TestMalformedControlMessagesKeepTheLink(t *testing.T) {
	epmd, _ := erlang(t)
	a, b := goNode(t, epmd), goNode(t, epmd)
	_, got := spawnRecorder(t, b, "rec", false)
	sender, _ := spawnRecorder(t, a, "", false)
	require.NoError(t, a.Connect(b.Name()))
	for name, packet := range map[string][]byte{
		"unknown operation":   {131, 68, 0, 104, 1, 97, 99},
		"control not a tuple": {131, 68, 0, 97, 1},
		"truncated term":      {131, 68, 0, 104, 3, 97, 2},
		"huge list claim":     {131, 68, 0, 108, 255, 255, 255, 255, 106},
		"bad atom cache ref":  {131, 68, 0, 104, 1, 82, 7},
		"SEND without pid":    {131, 68, 0, 104, 3, 97, 2, 106, 97, 1, 97, 1},
		"bad header":          {131, 68, 3, 0},
		"unknown packet type": {7, 7, 7},
		"fragment of nothing": append([]byte{131, 70}, make([]byte, 20)...),
		"deep nesting":        append(append([]byte{131, 68, 0}, bytes.Repeat([]byte{104, 1}, 5000)...), 97, 1),
	} {
		require.NoError(t, erldist.SendRawForTest(a.Name(), b.Name(), packet), name)
		require.NoError(t, sender.Send(gen.ProcessID{Name: "rec", Node: b.Name()}, etf.Atom(name)))
		assert.Equal(t, etf.Atom(name), within(t, got, "the message after: "+name))
	}
	assert.Contains(t, b.Nodes(), a.Name())
}

// net_ticktime both ways: an idle connection stays up because ticks go
// out (the Erlang node runs with a 2-second tick time), and a peer that
// sends nothing any more (its OS process stopped) is disconnected after
// the tick time, its processes' watchers get noconnection.
func TestTicksKeepIdleLinksAndSilentPeersAreDropped(t *testing.T) {
	epmd := erltest.StartEPMD(t)
	dir := t.TempDir()
	erltest.Compile(t, dir, "testdata/erldist_peer.erl")
	erl := erltest.Start(t, erltest.Options{Cookie: cookie, EPMD: epmd, CodePath: []string{dir},
		Args: []string{"-kernel", "net_ticktime", "2"}})
	hs, proto := erldist.New(erldist.Options{TickTime: 2 * time.Second})
	nd, err := actors.StartNode(fmt.Sprintf("gotick%d@localhost", os.Getpid()), cookie, node.Options{
		Registrar: epmd.Registrar(), Handshake: hs, Proto: proto,
		Listeners: []node.Listener{{ListenBegin: 20000, ListenEnd: 60000}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { stopNode(nd) })
	watcher, got := spawnRecorder(t, nd, "", false)
	pid := erl.MustEval(t, "spawn(erldist_peer, sleep_forever, [])").(etf.Pid)
	ref := watcher.MonitorProcess(pid)

	// Idle for twice the tick time: still connected, both sides.
	idle := time.NewTimer(4 * time.Second)
	<-idle.C
	assert.Contains(t, nd.Nodes(), erl.Name)
	assert.Equal(t, true, erl.MustEval(t, "lists:member("+atom(nd.Name())+", nodes())"))

	erl.Pause()
	start := time.Now()
	down := within(t, got, "noconnection").(gen.MessageDown)
	assert.Equal(t, ref, down.Ref)
	assert.Equal(t, "noconnection", down.Reason)
	elapsed := time.Since(start)
	assert.Greater(t, elapsed, time.Second, "not before the tick time")
	assert.Less(t, elapsed, 6*time.Second, "soon after the tick time")
	erl.Resume()
}

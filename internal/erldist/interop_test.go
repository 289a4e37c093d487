package erldist_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests against a real OTP 25 node (erl from PATH): each starts an EPMD
// of its own, an Erlang node with testdata/erldist_peer.erl, and ergonx
// nodes registered there.

// An Erlang node dials one Go node (net_adm:ping gets pong), another Go
// node dials it, and messages cross both connections.
func TestHandshakeBothWaysAndPing(t *testing.T) {
	epmd, erl := erlang(t)
	a := goNode(t, epmd)
	assert.Equal(t, etf.Atom("pong"), erl.MustEval(t, "net_adm:ping("+atom(a.Name())+")"))
	assert.Contains(t, a.Nodes(), erl.Name)
	assert.Equal(t, true, erl.MustEval(t, "lists:member("+atom(a.Name())+", nodes())"), "the link stays up after the ping")

	b := goNode(t, epmd)
	require.NoError(t, b.Connect(erl.Name))
	assert.Equal(t, true, erl.MustEval(t, "lists:member("+atom(b.Name())+", nodes())"))

	erl.MustEval(t, "erldist_peer:start_echo()")
	for _, nd := range []interface{ Name() string }{a, b} {
		p, got := spawnRecorder(t, a, "", false)
		if nd.Name() == b.Name() {
			p, got = spawnRecorder(t, b, "rec", false)
		}
		require.NoError(t, p.Send(gen.ProcessID{Name: "echo", Node: erl.Name}, etf.Tuple{p.Self(), etf.Atom("hi")}))
		assert.Equal(t, etf.Tuple{etf.Atom("echo"), etf.Atom("hi")}, within(t, got, "the echo"))
	}
	_, got := spawnRecorder(t, a, "rec", false)
	erl.MustEval(t, "{rec, "+atom(a.Name())+"} ! {hello, <<\"from erlang\">>, [1, 2.5]}")
	assert.Equal(t, etf.Tuple{etf.Atom("hello"), []byte("from erlang"), etf.List{1, 2.5}}, within(t, got, "Erlang's message"))
}

// gen_server:call in both forms: OTP 25's [alias | Ref] tag (ALIAS_SEND
// back) and the {Pid, Ref} tag of older nodes; and to an ergo gen.Server,
// which reads the alias tag as ergo's decoding gives it.
func TestGenServerCallBothForms(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	spawnRecorder(t, g, "calc", false)
	_, err := g.Spawn("gs", gen.ProcessOptions{}, &echoServer{})
	require.NoError(t, err)
	gn := atom(g.Name())

	assert.Equal(t, etf.Tuple{etf.Atom("reply"), etf.Tuple{etf.Atom("add"), 1, 2}},
		erl.MustEval(t, "gen_server:call({calc, "+gn+"}, {add, 1, 2}, 5000)"))
	assert.Equal(t, etf.Tuple{etf.Atom("reply"), etf.Atom("old")},
		erl.MustEval(t, "Ref = make_ref(), {calc, "+gn+"} ! {'$gen_call', {self(), Ref}, old}, "+
			"receive {Ref, R} -> R after 5000 -> timeout end"))
	assert.Equal(t, etf.Tuple{etf.Atom("gen_server"), etf.Atom("ping")},
		erl.MustEval(t, "gen_server:call({gs, "+gn+"}, ping, 5000)"))
	// Elixir's GenServer.call is gen:call too; a pid target works the same.
	pid := erl.MustEval(t, "gen_server:call({calc, "+gn+"}, whoami, 5000)")
	assert.Equal(t, etf.Atom(g.Name()), pid.(etf.Pid).Node)
}

// echoServer is an ergo gen.Server that answers {gen_server, Request}.
type echoServer struct{ gen.Server }

func (*echoServer) HandleCall(_ *gen.ServerProcess, _ gen.ServerFrom, m etf.Term) (etf.Term, gen.ServerStatus) {
	return etf.Tuple{etf.Atom("gen_server"), m}, gen.ServerStatusOK
}

// SEND (SEND_SENDER) and REG_SEND both ways, ALIAS_SEND from Go to an
// Erlang alias.
func TestSendRegSendAliasSend(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	p, got := spawnRecorder(t, g, "rec", false)
	gn := atom(g.Name())

	// Erlang → Go by name and by pid.
	goPid := erl.MustEval(t, "gen_server:call({rec, "+gn+"}, whoami)").(etf.Pid)
	assert.Equal(t, p.Self(), goPid)
	erl.MustEval(t, "{rec, "+gn+"} ! by_name")
	assert.Equal(t, etf.Atom("by_name"), within(t, got, "by name"))
	erl.MustEval(t, "P = gen_server:call({rec, "+gn+"}, whoami), P ! {by_pid, self()}")
	m := within(t, got, "by pid").(etf.Tuple)
	assert.Equal(t, etf.Atom("by_pid"), m[0])
	erlPid := m[1].(etf.Pid)

	// Go → Erlang by pid (a process of the eval) and by name.
	erl.MustEval(t, "erldist_peer:start_collector(coll)")
	require.NoError(t, p.Send(gen.ProcessID{Name: "coll", Node: erl.Name}, etf.Atom("reg_send")))
	collPid := erl.MustEval(t, "whereis(coll)").(etf.Pid)
	require.NoError(t, p.Send(collPid, etf.Tuple{etf.Atom("send"), p.Self()}))
	assert.Equal(t, etf.List{etf.Atom("reg_send"), etf.Tuple{etf.Atom("send"), p.Self()}}, collected(t, erl, "coll", 2))
	_ = erlPid

	// ALIAS_SEND: an Erlang process hands Go an alias and waits on it.
	done := make(chan etf.Term, 1)
	go func() {
		v, err := erl.Eval(context.Background(), "A = alias(), {rec, "+gn+"} ! {alias, A}, "+
			"receive {via_alias, X} -> X after 10000 -> timeout end")
		if err != nil {
			v = err.Error()
		}
		done <- v
	}()
	am := within(t, got, "the alias").(etf.Tuple)
	require.Equal(t, etf.Atom("alias"), am[0])
	require.NoError(t, p.Send(etf.Alias(am[1].(etf.Ref)), etf.Tuple{etf.Atom("via_alias"), 42}))
	assert.Equal(t, 42, within(t, done, "the alias message"))

	// ALIAS_SEND from Erlang to a Go process's alias.
	alias, err := p.CreateAlias()
	require.NoError(t, err)
	require.NoError(t, p.Send(collPid, etf.Tuple{etf.Atom("alias"), alias}))
	require.Len(t, collected(t, erl, "coll", 3), 3)
	erl.MustEval(t, "[_, _, {alias, A}] = erldist_peer:collected(coll), A ! to_go_alias")
	assert.Equal(t, etf.Atom("to_go_alias"), within(t, got, "the message to the Go alias"))
}

// Many distinct atoms: OTP sends them through the atom cache (new
// entries the first time, references to cached ones after).
func TestAtomCache(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	_, got := spawnRecorder(t, g, "rec", false)
	want := make(etf.List, 300)
	for i := range want {
		want[i] = etf.Atom(fmt.Sprintf("erldist_atom_%d", i+1))
	}
	for round := range 3 {
		erl.MustEval(t, "{rec, "+atom(g.Name())+"} ! {round, erldist_peer:atoms(300)}")
		m := within(t, got, "the atoms").(etf.Tuple)
		assert.Equal(t, etf.Tuple{etf.Atom("round"), want}, m, "round %d", round)
	}
	// And a message mixing cached atoms with many new ones.
	erl.MustEval(t, "{rec, "+atom(g.Name())+"} ! {mixed, erldist_peer:atoms(310)}")
	m := within(t, got, "the atoms").(etf.Tuple)
	assert.True(t, slices.Equal(want, m[1].(etf.List)[:300]))
	assert.Equal(t, etf.Atom("erldist_atom_310"), m[1].(etf.List)[309])
}

// Many processes send to an Erlang node that is not connected yet, at
// once: ergo dials once per sender; the dials share one connection and
// every message arrives.
func TestConcurrentFirstSendsShareOneConnection(t *testing.T) {
	epmd, erl := erlang(t)
	g := goNode(t, epmd)
	erl.MustEval(t, "erldist_peer:start_collector(coll)")
	const senders = 50
	procs := make([]gen.Process, senders)
	for i := range procs {
		procs[i], _ = spawnRecorder(t, g, "", false)
	}
	errs := make(chan error, senders)
	start := make(chan struct{})
	for i, p := range procs {
		go func() {
			<-start
			errs <- p.Send(gen.ProcessID{Name: "coll", Node: erl.Name}, etf.Tuple{etf.Atom("n"), i})
		}()
	}
	close(start)
	for range senders {
		assert.NoError(t, within(t, errs, "a send"))
	}
	l := collected(t, erl, "coll", senders)
	assert.Len(t, l, senders, "every first message arrived")
	assert.Equal(t, []string{erl.Name}, g.Nodes())
}

// Both nodes dial each other at the same moment: the handshakes settle it
// as OTP does (the greater name's dial wins, the other side uses it) and
// both calls succeed over one connection.
func TestSimultaneousConnect(t *testing.T) {
	epmd, erl := erlang(t)
	for range 4 {
		g := goNode(t, epmd)
		res := evalAsync(t, erl, "net_kernel:connect_node("+atom(g.Name())+")")
		errs := make(chan error, 1)
		go func() { errs <- g.Connect(erl.Name) }()
		assert.Equal(t, true, within(t, res, "Erlang's connect"))
		assert.NoError(t, within(t, errs, "Go's connect"))
		assert.Equal(t, []string{erl.Name}, g.Nodes())
		assert.Equal(t, true, erl.MustEval(t, "lists:member("+atom(g.Name())+", nodes())"))
	}
}

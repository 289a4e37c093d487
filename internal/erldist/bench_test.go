package erldist_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/ergo-services/ergo"
	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/erldist"
)

// echo answers {From, Ref, Msg} with {Ref, Msg} to From, and any other
// message with itself, to its sender.
type echo struct{}

func (echo) Init(gen.Process, ...etf.Term) error { return nil }
func (echo) Terminate(gen.Process, string)       {}
func (echo) HandleMessage(p gen.Process, from etf.Pid, msg etf.Term) string {
	if t, ok := msg.(etf.Tuple); ok && len(t) == 3 {
		if to, ok := t[0].(etf.Pid); ok {
			_ = p.Send(to, etf.Tuple{t[1], t[2]})
			return ""
		}
	}
	_ = p.Send(from, msg)
	return ""
}

// benchPair starts two nodes that know each other through a static
// registrar: ergonx's (erldist) or stock ergo's (ergo.StartNode's
// defaults: handshake 5, proto/dist with a handler per CPU).
func benchPair(b *testing.B, stock bool) (node.Node, node.Node) {
	reg := actors.NewStaticRegistrar()
	start := func(i int) node.Node {
		name := fmt.Sprintf("bench%d_%d_%d@localhost", os.Getpid(), nodeCounter.Add(1), i)
		opts := node.Options{
			Registrar: reg,
			Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
			System:    node.System{DisableAnonMetrics: true},
		}
		var nd node.Node
		var err error
		if stock {
			opts.Proto = erldist.GuardProto(dist.CreateProto(node.DefaultProtoOptions()))
			nd, err = erldist.StartNode(func() (node.Node, error) { return ergo.StartNode(name, cookie, opts) })
		} else {
			nd, err = actors.StartNode(name, cookie, opts)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { stopNode(nd) })
		return nd
	}
	return start(1), start(2)
}

// BenchmarkRoundTripGoGo is one message to a process of another node over
// loopback and its echo back, from a plain goroutine: ergonx's erldist
// against ergo's stock distribution.
func BenchmarkRoundTripGoGo(b *testing.B) {
	for _, kind := range []string{"erldist", "ergo-dist"} {
		b.Run(kind, func(b *testing.B) {
			a, c := benchPair(b, kind == "ergo-dist")
			e, err := c.Spawn("echo", gen.ProcessOptions{MailboxSize: 1024}, actors.NewActor(echo{}))
			if err != nil {
				b.Fatal(err)
			}
			r := &recorder{got: make(chan etf.Term, 16)}
			p, err := a.Spawn("", gen.ProcessOptions{MailboxSize: 1024}, actors.NewActor(r))
			if err != nil {
				b.Fatal(err)
			}
			if err := a.Connect(c.Name()); err != nil {
				b.Fatal(err)
			}
			// The echo answers the pid in the message: stock ergo sends SEND,
			// which does not say who sent it.
			msg := etf.Tuple{p.Self(), a.MakeRef(), etf.Tuple{etf.Atom("ping"), int64(42), []byte("payload")}}
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Send(e.Self(), msg); err != nil {
					b.Fatal(err)
				}
				<-r.got
			}
		})
	}
}

// BenchmarkRoundTripErlangGoErlang is an Erlang process sending
// {self(), Ref, ping} to a Go echo process and waiting for {Ref, ping}:
// the time per round trip as measured in Erlang (us/roundtrip). The BEAM
// runs without scheduler busy-waiting (+sbwt none): on a two-core machine
// its spinning schedulers would otherwise take the core the Go node needs.
func BenchmarkRoundTripErlangGoErlang(b *testing.B) {
	epmd, erl := erlang(b, "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none")
	g := goNode(b, epmd)
	if _, err := g.Spawn("echo", gen.ProcessOptions{MailboxSize: 1024}, actors.NewActor(echo{})); err != nil {
		b.Fatal(err)
	}
	erl.MustEval(b, "net_kernel:connect_node("+atom(g.Name())+")")
	erl.MustEval(b, "erldist_peer:roundtrip("+atom(g.Name())+", echo, 1000)") // warm up
	b.ResetTimer()
	us := erl.MustEval(b, "erldist_peer:roundtrip("+atom(g.Name())+", echo, "+strconv.Itoa(b.N)+")")
	b.StopTimer()
	b.ReportMetric(us.(float64), "us/roundtrip")
}

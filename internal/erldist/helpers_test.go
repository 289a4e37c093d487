package erldist_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/erldist"
	"github.com/ergonx/ergonx/internal/erltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const cookie = "erldist-test-cookie"

// waitLimit bounds every wait: the machine is small and shared.
const waitLimit = 20 * time.Second

var nodeCounter atomic.Int64

// erlang starts an EPMD and an Erlang node with erldist_peer loaded.
func erlang(t testing.TB, args ...string) (*erltest.EPMD, *erltest.Node) {
	t.Helper()
	epmd := erltest.StartEPMD(t)
	dir := t.TempDir()
	erltest.Compile(t, dir, "testdata/erldist_peer.erl")
	return epmd, erltest.Start(t, erltest.Options{Cookie: cookie, EPMD: epmd, CodePath: []string{dir}, Args: args})
}

// goNode starts an ergonx node registered with epmd, stopped when the
// test ends.
func goNode(t testing.TB, epmd *erltest.EPMD) node.Node {
	t.Helper()
	name := fmt.Sprintf("go%d_%d@localhost", os.Getpid(), nodeCounter.Add(1))
	nd, err := actors.StartNode(name, cookie, node.Options{
		Registrar: epmd.Registrar(),
		Listeners: []node.Listener{{ListenBegin: 20000, ListenEnd: 60000}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { stopNode(nd) })
	return nd
}

func stopNode(nd node.Node) {
	nd.Stop()
	_ = nd.WaitWithTimeout(10 * time.Second)
}

// recorder passes every message to got; it traps exits when trap is set,
// answers gen_server calls with {reply, Request}, and stops with the
// reason in a reasonMsg.
type recorder struct {
	got  chan etf.Term
	trap bool
}

type reasonMsg struct{ reason string }

func (r *recorder) Init(p gen.Process, _ ...etf.Term) error {
	p.SetTrapExit(r.trap)
	return nil
}

func (r *recorder) HandleMessage(_ gen.Process, _ etf.Pid, msg etf.Term) string {
	if m, ok := msg.(reasonMsg); ok {
		return m.reason
	}
	r.got <- msg
	return ""
}

// HandleCall answers whoami with the process's pid, anything else with
// {reply, Request}.
func (r *recorder) HandleCall(p gen.Process, _ etf.Pid, request etf.Term) etf.Term {
	if request == etf.Atom("whoami") {
		return p.Self()
	}
	return etf.Tuple{etf.Atom("reply"), request}
}

func (r *recorder) Terminate(gen.Process, string) {}

// spawnRecorder starts a recorder on nd, registered as name unless "".
func spawnRecorder(t testing.TB, nd node.Node, name string, trap bool) (gen.Process, <-chan etf.Term) {
	t.Helper()
	r := &recorder{got: make(chan etf.Term, 1024), trap: trap}
	p, err := nd.Spawn(name, gen.ProcessOptions{MailboxSize: 4096}, actors.NewActor(r))
	require.NoError(t, err)
	return p, r.got
}

// within receives from ch or fails the test after limit.
func within[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		var zero T
		return zero
	}
}

func atom(s string) string { return erltest.Atom(s) }

// worker is a remote-spawn behaviour: spawned with args [A], it exits at
// once with {Function, A}, or, for A = wait, waits for a message and exits
// with it. One value serves every spawn (ergo shares it): the state is in
// the process.
type worker struct{}

func (worker) ProcessInit(p gen.Process, args ...etf.Term) (gen.ProcessState, error) {
	return gen.ProcessState{Process: p, State: args}, nil
}

func (worker) ProcessLoop(ps gen.ProcessState, started chan<- bool) string {
	started <- true
	erldist.AwaitSpawnReply(ps.Process)
	args := ps.State.([]etf.Term)
	opts, _ := ps.Env(node.EnvKeyRemoteSpawn).(gen.RemoteSpawnOptions)
	if len(args) == 1 && args[0] == etf.Atom("wait") {
		select {
		case m := <-ps.ProcessChannels().Mailbox:
			return mustReason(m.Message)
		case <-ps.Context().Done():
			return "kill"
		}
	}
	return mustReason(etf.Tuple{etf.Atom(opts.Function), etf.List(args)})
}

func mustReason(t etf.Term) string {
	r, err := erldist.TermReason(t)
	if err != nil {
		panic(err)
	}
	return r
}

// bigTerm is a reason of about n bytes.
func bigTerm(n int) etf.Tuple {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return etf.Tuple{etf.Atom("big"), b, etf.List{1, int64(300), "text", etf.Map{etf.Atom("k"): etf.Atom("v")}}}
}

// collected waits until the Erlang collector name holds n messages and
// returns them.
func collected(t testing.TB, erl *erltest.Node, name string, n int) etf.List {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		var l etf.List
		switch v := erl.MustEval(t, "erldist_peer:collected("+name+")").(type) {
		case etf.List:
			l = v
		case string: // a list of small integers travels as STRING_EXT
			for i := range len(v) {
				l = append(l, int(v[i]))
			}
		}
		if len(l) >= n || time.Now().After(deadline) {
			return l
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package erldist_test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ergo-services/ergo"
	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/ergo-services/ergo/proto/dist"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/erldist"
)

// stockPair starts a stock ergo node (ergo.StartNode: ergo's handshake
// version 5 and proto/dist) and an ergonx node, resolving each other
// through one static registrar.
func stockPair(t *testing.T) (stock, ours node.Node) {
	t.Helper()
	reg := actors.NewStaticRegistrar()
	n := nodeCounter.Add(1)
	stock, err := erldist.StartNode(func() (node.Node, error) {
		return ergo.StartNode(fmt.Sprintf("stock%d_%d@localhost", os.Getpid(), n), cookie, node.Options{
			Registrar: reg,
			Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
			System:    node.System{DisableAnonMetrics: true},
			// ergo's own distribution, guarded against ergo's race on
			// node starts (see erldist.GuardProto).
			Proto: erldist.GuardProto(dist.CreateProto(node.DefaultProtoOptions())),
		})
	})
	require.NoError(t, err)
	t.Cleanup(func() { stopNode(stock) })
	ours, err = actors.StartNode(fmt.Sprintf("ours%d_%d@localhost", os.Getpid(), n), cookie, node.Options{
		Registrar: reg,
		Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 20000, ListenEnd: 60000}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { stopNode(ours) })
	return stock, ours
}

// Stock ergo nodes and ergonx nodes talk both ways: either dials (the
// stock node's old send_name 'n' with its complement, ergonx's 'N'),
// messages, calls, monitors and remote spawns work.
func TestStockErgoNodesBothWays(t *testing.T) {
	for _, dialer := range []string{"stock", "ours"} {
		t.Run(dialer+" dials", func(t *testing.T) {
			stock, ours := stockPair(t)
			if dialer == "stock" {
				require.NoError(t, stock.Connect(ours.Name()))
			} else {
				require.NoError(t, ours.Connect(stock.Name()))
			}
			// The accepting side registers the connection on its own
			// goroutine: wait for both.
			deadline := time.Now().Add(waitLimit)
			for !slices.Contains(ours.Nodes(), stock.Name()) || !slices.Contains(stock.Nodes(), ours.Name()) {
				require.True(t, time.Now().Before(deadline), "the nodes never listed each other")
				time.Sleep(2 * time.Millisecond)
			}

			// Messages both ways.
			op, ogot := spawnRecorder(t, ours, "rec", false)
			sp, sgot := spawnRecorder(t, stock, "rec", false)
			require.NoError(t, sp.Send(gen.ProcessID{Name: "rec", Node: ours.Name()}, etf.Tuple{etf.Atom("hi"), 300, "str"}))
			assert.Equal(t, etf.Tuple{etf.Atom("hi"), int64(300), "str"}, within(t, ogot, "stock → ours"))
			require.NoError(t, op.Send(sp.Self(), etf.List{etf.Atom("back"), []byte("bin")}))
			assert.Equal(t, etf.List{etf.Atom("back"), []byte("bin")}, within(t, sgot, "ours → stock"))

			// ergo's Call from the stock node to an ergonx actor.
			caller, err := stock.Spawn("", gen.ProcessOptions{}, &callerServer{})
			require.NoError(t, err)
			reply, err := caller.Direct(gen.ProcessID{Name: "rec", Node: ours.Name()})
			require.NoError(t, err)
			assert.Equal(t, etf.Tuple{etf.Atom("reply"), etf.Atom("call")}, reply)

			// A monitor across, with an atom reason.
			victim, _ := spawnRecorder(t, ours, "", false)
			ref := sp.MonitorProcess(victim.Self())
			waitMonitored(t, victim, sp.Self())
			require.NoError(t, victim.Send(victim.Self(), reasonMsg{"shutdown"}))
			down := within(t, sgot, "the DOWN").(gen.MessageDown)
			assert.Equal(t, ref, down.Ref)
			assert.Equal(t, "shutdown", down.Reason)

			// Remote spawn both ways (ergo's RemoteSpawn).
			require.NoError(t, ours.ProvideRemoteSpawn("gworker", worker{}))
			require.NoError(t, stock.ProvideRemoteSpawn("gworker", worker{}))
			for _, pair := range [][2]node.Node{{stock, ours}, {ours, stock}} {
				from, got := spawnRecorder(t, pair[0], "", false)
				mref := from.MakeRef()
				pid, err := from.RemoteSpawn(pair[1].Name(), "gworker", gen.RemoteSpawnOptions{Function: "wait", Monitor: mref},
					etf.Atom("wait"))
				require.NoError(t, err)
				assert.Equal(t, etf.Atom(pair[1].Name()), pid.Node)
				// ergo's RemoteSpawn monitors after the reply, and the stock
				// node may reorder that behind the next message.
				spawned := pair[1].ProcessByPid(pid)
				require.NotNil(t, spawned)
				waitMonitored(t, spawned, from.Self())
				require.NoError(t, from.Send(pid, etf.Atom("bye")))
				down := within(t, got, "the spawned process's DOWN").(gen.MessageDown)
				assert.Equal(t, mref, down.Ref)
				assert.Equal(t, "bye", down.Reason)
			}
		})
	}
}

// waitMonitored waits until p is monitored by watcher (the stock node
// may reorder its MONITOR_P behind later messages: poll).
func waitMonitored(t *testing.T, p gen.Process, watcher etf.Pid) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !slices.Contains(p.MonitoredBy(), watcher) {
		require.True(t, time.Now().Before(deadline), "%v never monitored %v", watcher, p.Self())
		time.Sleep(2 * time.Millisecond)
	}
}

// callerServer calls, in HandleDirect, the process it is given.
type callerServer struct{ gen.Server }

func (*callerServer) HandleDirect(sp *gen.ServerProcess, _ etf.Ref, m any) (any, gen.DirectStatus) {
	v, err := sp.CallWithTimeout(m, etf.Atom("call"), 5)
	if err != nil {
		return nil, err
	}
	return v, gen.DirectStatusOK
}

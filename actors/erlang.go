package actors

import (
	"fmt"
	"slices"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/internal/erldist"
)

// Erlang manners: the processes an Erlang/OTP node expects to find on a
// node it talks to, so that the usual tools answer at once instead of
// hanging or failing. ErlangApp runs them; StartNode adds it to every
// node in place of ergo's own erlang application (whose net_kernel answers
// is_auth with nil, so net_adm:ping gets pang and disconnects).
//
//   - net_kernel answers {is_auth, Node} with yes: net_adm:ping gets pong.
//   - rex (the old rpc server) answers {call, M, F, A, GroupLeader} and
//     {block_call, ...} at once, with the result of an allowed function or
//     {badrpc, {'EXIT', {undef, [{M, F, A, []}]}}}, and tells OTP's rpc
//     that this node runs erpc ({features_reply, Node, [erpc]}).
//   - erpc (a remote-spawn behaviour) runs erpc:execute_call/4 and
//     execute_cast/3, which OTP 25's rpc:call, erpc:call and erpc:cast
//     spawn here: an allowed function returns its value; any other exits
//     with {Ref, error, undef, [{M, F, A, []}]}, what Erlang gives for a
//     function that does not exist, so that rpc:call returns
//     {badrpc, {'EXIT', {undef, [{M, F, A, []}]}}} and erpc:call raises
//     error({exception, undef, [{M, F, A, []}]}) immediately.
//   - global_name_server takes the messages OTP's global sends on connect
//     and ignores them: this node takes no part in global name
//     registration (global:sync/0 on an Erlang node does not finish with
//     this node in the cluster).
//
// The allowed functions are harmless reads: erlang:node/0,
// erlang:nodes/0 and erlang:is_alive/0.
const (
	ErlangAppName    = "ergonx_erlang"
	NetKernelName    = "net_kernel"
	RexName          = "rex"
	GlobalNameServer = "global_name_server"
	ErpcModule       = "erpc"
)

// ErlangApp returns the application of the Erlang-facing processes (see
// above). StartNode starts it; a node started otherwise can load and
// start it itself (it registers the erpc behaviour with
// ProvideRemoteSpawn when it starts).
func ErlangApp() gen.ApplicationBehavior { return &erlangApp{} }

type erlangApp struct{ gen.Application }

func (*erlangApp) Load(...etf.Term) (gen.ApplicationSpec, error) {
	return gen.ApplicationSpec{
		Name:        ErlangAppName,
		Description: "Erlang manners: net_kernel, rex, erpc, global_name_server",
		Version:     "v1",
		Children: []gen.ApplicationChildSpec{
			{Name: NetKernelName, Child: NewActor(&netKernel{})},
			{Name: RexName, Child: NewActor(&rex{})},
			{Name: GlobalNameServer, Child: NewActor(&globalNameServer{})},
		},
	}, nil
}

func (*erlangApp) Start(p gen.Process, _ ...etf.Term) {
	if nd, ok := p.Env(node.EnvKeyNode).(node.Node); ok {
		_ = nd.ProvideRemoteSpawn(ErpcModule, erpcWorker{})
	}
}

// ignore is the part of Behavior the Erlang-facing processes share.
type ignore struct{}

func (ignore) Init(gen.Process, ...etf.Term) error                 { return nil }
func (ignore) HandleMessage(gen.Process, etf.Pid, etf.Term) string { return "" }
func (ignore) Terminate(gen.Process, string)                       {}

type netKernel struct{ ignore }

// HandleCall answers {is_auth, Node} (net_adm:ping) with yes.
func (*netKernel) HandleCall(_ gen.Process, _ etf.Pid, request etf.Term) etf.Term {
	if t, ok := request.(etf.Tuple); ok && len(t) == 2 && t[0] == etf.Atom("is_auth") {
		return etf.Atom("yes")
	}
	return etf.Atom("badarg")
}

type globalNameServer struct{ ignore }

type rex struct{ ignore }

// HandleCall answers old-style rpc calls at once.
func (*rex) HandleCall(p gen.Process, _ etf.Pid, request etf.Term) etf.Term {
	t, ok := request.(etf.Tuple)
	if !ok || len(t) != 5 || (t[0] != etf.Atom("call") && t[0] != etf.Atom("block_call")) {
		return etf.Tuple{etf.Atom("badrpc"), etf.Atom("badarg")}
	}
	if v, ok := allowed(p, t[1], t[2], t[3]); ok {
		return v
	}
	return etf.Tuple{etf.Atom("badrpc"), etf.Tuple{etf.Atom("EXIT"), undef(t[1], t[2], t[3])}}
}

// HandleMessage answers the features request OTP's rpc sends on nodeup.
func (*rex) HandleMessage(p gen.Process, _ etf.Pid, msg etf.Term) string {
	if t, ok := msg.(etf.Tuple); ok && len(t) == 2 && t[1] == etf.Atom("features_request") {
		if from, ok := t[0].(etf.Pid); ok {
			_ = p.Send(from, etf.Tuple{etf.Atom("features_reply"), etf.Atom(p.NodeName()), etf.List{etf.Atom("erpc")}})
		}
	}
	return ""
}

// undef is Erlang's reason for calling a function that does not exist,
// {undef, [{M, F, A, []}]}.
func undef(m, f, a etf.Term) etf.Tuple {
	return etf.Tuple{etf.Atom("undef"), etf.List{etf.Tuple{m, f, a, etf.List{}}}}
}

// allowed runs M:F(A) if it is on the allow-list.
func allowed(p gen.Process, m, f, a etf.Term) (etf.Term, bool) {
	args, ok := a.(etf.List)
	if !ok || m != etf.Atom("erlang") || len(args) != 0 {
		return nil, false
	}
	switch f {
	case etf.Atom("node"):
		return etf.Atom(p.NodeName()), true
	case etf.Atom("is_alive"):
		return true, true
	case etf.Atom("nodes"):
		nodes := etf.List{}
		if nd, ok := p.Env(node.EnvKeyNode).(node.Node); ok {
			names := nd.Nodes()
			slices.Sort(names)
			for _, n := range names {
				nodes = append(nodes, etf.Atom(n))
			}
		}
		return nodes, true
	}
	return nil, false
}

// erpcWorker is the remote-spawn behaviour of module erpc (one value
// serves every spawn: its state is the spawn's arguments).
type erpcWorker struct{}

var _ gen.ProcessBehavior = erpcWorker{}

func (erpcWorker) ProcessInit(p gen.Process, args ...etf.Term) (gen.ProcessState, error) {
	return gen.ProcessState{Process: p, State: args}, nil
}

func (erpcWorker) ProcessLoop(ps gen.ProcessState, started chan<- bool) string {
	started <- true
	erldist.AwaitSpawnReply(ps.Process)
	args, _ := ps.State.([]etf.Term)
	opts, _ := ps.Env(node.EnvKeyRemoteSpawn).(gen.RemoteSpawnOptions)
	switch {
	case opts.Function == "execute_call" && len(args) == 4:
		// erpc:execute_call(Ref, M, F, A) exits with {Ref, return, Value}
		// or {Ref, error, Reason, Stack}.
		ref, m, f, a := args[0], args[1], args[2], args[3]
		var reason etf.Term
		if v, ok := allowed(ps.Process, m, f, a); ok {
			reason = etf.Tuple{ref, etf.Atom("return"), v}
		} else {
			u := undef(m, f, a)
			reason = etf.Tuple{ref, etf.Atom("error"), u[0], u[1]}
		}
		return termReason(reason)
	case opts.Function == "execute_cast" && len(args) == 3:
		return "normal"
	}
	// Any other erpc function is undefined here.
	return termReason(undef(etf.Atom(ErpcModule), etf.Atom(opts.Function), etf.List(args)))
}

func termReason(t etf.Term) string {
	r, err := erldist.TermReason(t)
	if err != nil {
		return fmt.Sprintf("erpc: %v", err)
	}
	return r
}

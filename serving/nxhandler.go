package serving

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/internal/erldist"
)

// Nx calls Go: an Nx caller (any Nx version from 0.5) picks a member of
// the serving's process group, finds an ergonx serving, and spawns
// Nx.Serving.__distributed_batched_run__ on its node with a monitor. The
// ergonx node answers that spawn request with a process of nxHandler,
// which runs the request on the local serving and exits the way Nx's own
// function does:
//
//	{Ref, Result}      the rows, after client postprocessing and the
//	                   serving's distributed postprocessing, as an
//	                   %Nx.Tensor{} (or container) on Nx.BinaryBackend;
//	noproc             no serving of that name runs here (any more): the
//	                   caller retries another member;
//	{Exception, []}    the request failed: an Elixir exception struct
//	                   (RuntimeError, or ArgumentError for input the
//	                   serving cannot take) that the caller re-raises.
//
// A streaming serving (Serving.Streaming) called by an Nx v0.6+ caller
// (function /4, which names the caller's pid) streams as Nx's own
// __distributed_batched_run__ does: it sends the caller {Ref, streaming},
// then {Ref, {batch, Output, Metadata}} and {Ref, {Hook, Value}} events,
// and exits {Ref, streaming}; a failure after the first event exits with
// the failure's reason, which the caller's stream raises. Nx v0.5 callers
// (/3) get the whole result: they cannot read a stream.
//
// The caller reads the result from the DOWN of its monitor, so the
// process's exit reason is a term of any size: erldist carries it (see
// erldist.RawTermReason), which ergo's own distribution could not.

// ProvideNxProtocol lets Nx callers on Erlang and Elixir nodes call the
// servings of nd: it registers the remote-spawn behaviour NxModule. The
// cluster application does this on every node it starts.
func ProvideNxProtocol(nd node.Node) error {
	if err := nd.ProvideRemoteSpawn(NxModule, &nxHandler{}); err != nil {
		return fmt.Errorf("serving: provide %s for Nx callers on %s: %w", NxModule, nd.Name(), err)
	}
	return nil
}

// nxHandler is the behaviour of the processes Nx callers spawn. ergo uses
// one behaviour value for every spawn, so it holds no state: each
// process's request lives in its gen.ProcessState.
type nxHandler struct{}

var _ gen.ProcessBehavior = (*nxHandler)(nil)

// nxRequest is one spawned request, as read from the spawn's arguments.
type nxRequest struct {
	args []etf.Term
}

func (h *nxHandler) ProcessInit(p gen.Process, args ...etf.Term) (gen.ProcessState, error) {
	return gen.ProcessState{Process: p, State: &nxRequest{args: args}}, nil
}

// ProcessLoop serves the request and returns the exit reason Nx's caller
// reads. It waits for the spawn reply first: the caller's monitor must be
// in place before the process can exit.
func (h *nxHandler) ProcessLoop(ps gen.ProcessState, started chan<- bool) string {
	started <- true
	erldist.AwaitSpawnReply(ps.Process)
	req, _ := ps.State.(*nxRequest)
	function := ""
	if opts, ok := ps.Env(node.EnvKeyRemoteSpawn).(gen.RemoteSpawnOptions); ok {
		function = opts.Function
	}
	reason, err := serveNx(ps.Context(), ps.NodeName(), function, req.args, ps.Send)
	if err != nil {
		// The reason itself could not be encoded (a result that cannot
		// cross nodes): say so instead.
		reason, err = erldist.TermReason(nxExitReason(err))
		if err != nil {
			slog.Error("serving: cannot encode the exit reason of an Nx request", "node", ps.NodeName(), "error", err)
			return "ergonx_internal_error"
		}
	}
	return reason
}

// serveNx runs one spawned request and returns its exit reason; send
// sends the events of a streaming serving to the caller.
func serveNx(ctx context.Context, nodeName, function string, args []etf.Term, send func(any, etf.Term) error) (string, error) {
	client, ref, name, input, ok := nxArgs(function, args)
	if !ok {
		return erldist.TermReason(nxUndefReason(function, args))
	}
	e := registered(nodeName, name)
	if e == nil {
		return "noproc", nil
	}
	in, err := nxInput(e.serving, input)
	if err != nil {
		return erldist.TermReason(nxExitReason(err))
	}
	if pid, ok := client.(etf.Pid); ok && e.serving.streaming {
		return serveNxStream(ctx, e, pid, ref, in, send)
	}
	res, err := e.call(ctx, in, callOptions{})
	if err == nil {
		res, err = distributedPostprocess(e.serving, res)
	}
	if err != nil {
		return erldist.TermReason(nxExitReason(err))
	}
	bin, err := wire.Marshal(res)
	if err != nil {
		return "", fmt.Errorf("%w: result of serving %q for an Nx caller: %v", ErrWire, name, err)
	}
	return erldist.TermReason(etf.Tuple{ref, wire.RawTerm(bin)})
}

// nxUndefReason is the exit reason of a call to a function this module
// does not have, as the BEAM gives it: {undef, [{Module, Function, Args,
// []}]}. An Nx v0.6+ caller that reached a v0.5-only function (or the
// reverse) sees what it would see on a real Nx node.
func nxUndefReason(function string, args []etf.Term) etf.Term {
	list := make(etf.List, len(args))
	copy(list, args)
	return etf.Tuple{etf.Atom("undef"), etf.List{etf.Tuple{etf.Atom(NxModule), etf.Atom(function), list, etf.List{}}}}
}

// nxArgs reads __distributed_batched_run__'s arguments: [Ref, Name,
// Input] (Nx v0.5) or [ClientPid, Ref, Name, Input] (Nx v0.6 and later);
// ok is false for any other function or arity. The client pid (nil for
// v0.5) receives the events of a streaming serving. A name that is not an
// atom names no serving: it comes back as "".
func nxArgs(function string, args []etf.Term) (client, ref etf.Term, name string, input etf.Term, ok bool) {
	if function != nxFunction || (len(args) != 3 && len(args) != 4) {
		return nil, nil, "", nil, false
	}
	if len(args) == 4 {
		client, args = args[0], args[1:]
	}
	atom, _ := args[1].(etf.Atom)
	return client, args[0], string(atom), args[2], true
}

// serveNxStream streams a request to an Nx v0.6+ caller (see the top of
// this file). {Ref, streaming} goes out before the first event, so that a
// request refused at once (a wrong key, an input the serving cannot take)
// exits with its reason as a non-streaming one does, and the caller raises
// it.
func serveNxStream(ctx context.Context, e *engine, client etf.Pid, ref etf.Term, in any, send func(any, etf.Term) error) (string, error) {
	started := false
	begin := func() error {
		if started {
			return nil
		}
		started = true
		return send(client, etf.Tuple{ref, etf.Atom("streaming")})
	}
	var sendErr error
	err := e.stream(ctx, in, callOptions{}, func(ev StreamEvent) bool {
		term, err := nxEvent(e.serving, ev)
		if err == nil {
			err = begin()
		}
		if err == nil {
			err = send(client, etf.Tuple{ref, term})
		}
		if err != nil {
			sendErr = err
			return false
		}
		return true
	})
	if sendErr != nil {
		err = sendErr
	}
	if err == nil {
		err = begin()
	}
	if err != nil {
		return erldist.TermReason(nxExitReason(err))
	}
	return erldist.TermReason(etf.Tuple{ref, etf.Atom("streaming")})
}

// nxEvent is an event in Nx's form: {batch, Output, Metadata} after the
// serving's distributed postprocessing, or {Hook, Value}.
func nxEvent(s *Serving, ev StreamEvent) (etf.Term, error) {
	if ev.Hook != "" {
		v, err := wire.Encode(ev.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: the value of hook %q for an Nx caller: %v", ErrWire, ev.Hook, err)
		}
		return etf.Tuple{etf.Atom(ev.Hook), v}, nil
	}
	res, err := distributedPostprocess(s, ev.Value)
	if err != nil {
		return nil, err
	}
	v, err := wire.Encode(res)
	if err != nil {
		return nil, fmt.Errorf("%w: an event for an Nx caller: %v", ErrWire, err)
	}
	meta, err := wire.Encode(ev.Metadata)
	if err != nil {
		return nil, fmt.Errorf("%w: the metadata of an event for an Nx caller: %v", ErrWire, err)
	}
	return etf.Tuple{etf.Atom("batch"), v, meta}, nil
}

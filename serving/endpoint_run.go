package serving

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/actors/wire"
)

// distributedAttempts is how many members a distributed call tries before
// it gives up with ErrNoProc (Nx's rule: 3).
const distributedAttempts = 3

// distributedBatchedRun is Nx's distributed batched_run: distributed
// preprocessing in the caller, then the request runs on a random member
// of the serving's process group (weighted by how often each joined); if
// that node has no such serving, another member is tried, 3 attempts in
// all. A member on an ergonx node is called through the nodes' endpoints;
// a member on an Erlang or Elixir node through Nx's own protocol
// (nxclient.go). When the serving's group is empty, members of Nx v0.5 to
// v0.9's shared group on Erlang and Elixir nodes are tried.
func distributedBatchedRun(ctx context.Context, nd node.Node, name string, input any, o callOptions) (any, error) {
	ep, scope, err := distTarget(nd, o)
	if err != nil {
		return nil, err
	}
	if src, ok := streamOf(input); ok {
		return distributedCollect(ctx, ep, scope, name, src, o)
	}
	if o.distPre != nil {
		var err error
		if input, err = o.distPre(input); err != nil {
			return nil, fmt.Errorf("serving: distributed preprocessing: %w", err)
		}
	}
	in := &distInput{name: name, value: input}
	var last error
	var tried []etf.Pid
	for attempt := 1; attempt <= distributedAttempts; attempt++ {
		member, ok := ep.pickMember(scope, name, tried)
		if !ok && last != nil {
			return nil, fmt.Errorf("%w: serving %q: %d of %d attempts found members that do not run it, and no member is left "+
				"(last: %v)", ErrNoProc, name, attempt-1, distributedAttempts, last)
		}
		if !ok {
			return nil, fmt.Errorf("%w: could not find a serving named %q on any node of the cluster "+
				"(its process group in scope %q is empty); make sure it is started", ErrNoProc, name, scope.Name())
		}
		var res any
		var err error
		if node := string(member.Node); scope.HasMemberOn(EndpointGroup, node) {
			if b, ok := combinableInput(input); ok && combines(scope, name, node) {
				res, err = ep.combinerFor(node, name).call(ctx, b)
			} else {
				res, err = in.callErgonx(ctx, ep, node)
			}
		} else {
			res, err = in.callNx(ctx, ep, member)
		}
		if err == nil {
			return res, nil
		}
		var down *DownError
		if errors.As(err, &down) && down.Serving == "" {
			down.Serving = name
		}
		if !errors.Is(err, ErrNoProc) || ctx.Err() != nil {
			return nil, err
		}
		last = err // that node has no such serving (any more): try another
		tried = append(tried, member)
		suspect(scope, name, member)
	}
	return nil, fmt.Errorf("%w: serving %q: %d attempts on members of its process group found none running (last: %v)",
		ErrNoProc, name, distributedAttempts, last)
}

// suspect reports to the scope a member of the serving's own group that
// answered noproc: its node announced it but serves no such name (a ghost,
// or a serving that just stopped). The scope hides it until its node
// announces it again, so that other callers stop picking it (see
// pg.Scope.Suspect). A member picked from Nx's shared group is left alone:
// noproc there only says that its node serves other names.
func suspect(scope *pg.Scope, name string, member etf.Pid) {
	if slices.Contains(scope.Members(name), member) {
		_ = scope.Suspect(member)
	}
}

// distInput is one distributed request's input, encoded at most once per
// protocol: ergonx's own form for ergonx nodes, Nx's for Nx nodes.
type distInput struct {
	name        string
	value       any
	ergonx, nx  []byte
	ergonxError error
	nxError     error
}

// encodeErgonx encodes the input for ergonx nodes, once.
func (in *distInput) encodeErgonx() error {
	if in.ergonx == nil && in.ergonxError == nil {
		in.ergonx, in.ergonxError = encodeInput(in.name, in.value)
	}
	return in.ergonxError
}

func (in *distInput) callErgonx(ctx context.Context, ep *endpoint, node string) (any, error) {
	if err := in.encodeErgonx(); err != nil {
		return nil, err
	}
	res, err := ep.call(ctx, node, in.name, in.ergonx)
	if err != nil {
		return nil, err
	}
	return decodeResult(in.name, node, res)
}

// encodeInput is an input for serving name in the endpoint protocol's
// wire form.
func encodeInput(name string, value any) ([]byte, error) {
	b, err := wire.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("%w: input for serving %q: %v", ErrWire, name, err)
	}
	return b, nil
}

// decodeResult reads the result of serving name that node answered.
func decodeResult(name, node string, res etf.Term) (any, error) {
	rb, ok := res.([]byte)
	if !ok {
		return nil, fmt.Errorf("%w: result of serving %q from node %s is %T, not a binary", ErrWire, name, node, res)
	}
	out, err := wire.Unmarshal(rb)
	if err != nil {
		return nil, fmt.Errorf("%w: result of serving %q from node %s: %v", ErrWire, name, node, err)
	}
	return out, nil
}

func (in *distInput) callNx(ctx context.Context, ep *endpoint, member etf.Pid) (any, error) {
	if in.nx == nil && in.nxError == nil {
		if in.nx, in.nxError = nxWireInput(in.value); in.nxError != nil {
			in.nxError = fmt.Errorf("%w: input for Nx serving %q: %v", ErrWire, in.name, in.nxError)
		}
	}
	if in.nxError != nil {
		return nil, in.nxError
	}
	return ep.nxCall(ctx, member, in.name, in.nx)
}

// serve runs a request that came from another node on the local serving
// name (client pre- and postprocessing here, then the serving's
// distributed postprocessing) and returns the reply's tail: {ok, Result}
// or {error, Kind, Message}. local says the request came from this node:
// its binary is then the caller's own memory, which a retry sends again,
// so the input must not share it (client preprocessing may write to it).
func (ep *endpoint) serve(ctx context.Context, name string, in etf.Term, local bool) etf.Tuple {
	fail := replyError
	e, input, failed := ep.served(name, in, local)
	if failed != nil {
		return failed
	}
	res, err := e.call(ctx, input, callOptions{})
	if err != nil {
		return fail(err)
	}
	if res, err = distributedPostprocess(e.serving, res); err != nil {
		return fail(err)
	}
	out, err := wire.Marshal(res)
	if err != nil {
		return fail(fmt.Errorf("%w: result of serving %q: %v", ErrWire, name, err))
	}
	return etf.Tuple{atomOK, out}
}

// served finds the serving of a request from another node and decodes
// its input, or returns the error reply.
func (ep *endpoint) served(name string, in etf.Term, local bool) (*engine, any, etf.Tuple) {
	e := registered(ep.node, name)
	if e == nil {
		return nil, nil, replyError(fmt.Errorf("%w: no serving named %q on node %s", ErrNoProc, name, ep.node))
	}
	bin, ok := in.([]byte)
	if !ok {
		return nil, nil, replyError(fmt.Errorf("%w: input for serving %q is %T, not a binary", ErrWire, name, in))
	}
	input, err := wire.Options{Copy: local}.Unmarshal(bin)
	if err != nil {
		return nil, nil, replyError(fmt.Errorf("%w: input for serving %q: %v", ErrWire, name, err))
	}
	return e, input, nil
}

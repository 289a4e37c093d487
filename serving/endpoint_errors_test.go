package serving

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// classify is the switch a caller writes over a serving's errors; the
// same switch must give the same answer whether the serving ran on the
// caller's node or on another.
func classify(err error) string {
	var (
		down  *DownError
		cb    *CallbackError
		panic *PanicError
		over  *OverloadedError
	)
	s := ""
	if errors.As(err, &down) {
		s += "down "
	}
	if errors.As(err, &cb) {
		s += fmt.Sprintf("callback(%s, %s) ", cb.Module, cb.Callback)
	}
	if errors.As(err, &panic) {
		s += fmt.Sprintf("panic(%v) ", panic.Value)
	}
	if errors.As(err, &over) {
		s += fmt.Sprintf("overloaded(%d) ", over.MaxQueue)
	}
	for _, w := range wireSentinels {
		if errors.Is(err, w.err) {
			s += string(w.kind) + " "
		}
	}
	return s
}

// overTheWire sends err as a serving node's endpoint does and returns the
// error the caller's node rebuilds from the bytes.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	b, encErr := wire.EncodeTerm(append(etf.Tuple{int64(7)}, replyError(err)...))
	require.NoError(t, encErr)
	term, decErr := wire.DecodeTerm(b)
	require.NoError(t, decErr)
	id, r, perr := parseReply(term, "server@localhost")
	require.NoError(t, perr)
	require.Equal(t, uint64(7), id)
	require.Error(t, r.err)
	return r.err
}

// execFails is a serving whose execution does what fail does.
func execFails(fail func() (any, error)) *Serving {
	return NewModule(ModuleFuncs{HandleBatchFunc: func(b *batch.Batch, _ int, state any) (ExecFunc, any, error) {
		return func() (any, any, error) {
			out, err := fail()
			return out, nil, err
		}, state, nil
	}}, nil)
}

// The errors of a serving keep their types and sentinels across nodes:
// a table of real failures, each produced by a serving without a node,
// goes through the endpoint's error reply and comes out with the same
// classification.
func TestErrorsKeepTheirKindAcrossNodes(t *testing.T) {
	ctx := context.Background()
	userErr := errors.New("the model refused")
	for _, tc := range []struct {
		name    string
		serving *Serving
		input   any
		opts    Options
		want    string
	}{
		{"execute returns an error", execFails(func() (any, error) { return nil, userErr }), nil, Options{},
			"down callback(serving.ModuleFuncs, execute) "},
		{"execute returns nil", execFails(func() (any, error) { return nil, nil }), nil, Options{},
			"down callback(serving.ModuleFuncs, execute) bad_callback "},
		{"output without rows", execFails(func() (any, error) { return f32([]int{0, 1}), nil }), nil, Options{},
			"down callback(serving.ModuleFuncs, execute) output_rows "},
		{"execute panics", execFails(func() (any, error) { panic("boom") }), nil, Options{},
			"down callback(serving.ModuleFuncs, execute) panic(boom) "},
		{"execute panics with a sentinel", execFails(func() (any, error) { panic(fmt.Errorf("wrapped: %w", ErrBatchKey)) }), nil,
			Options{}, "down callback(serving.ModuleFuncs, execute) panic(wrapped: serving: unknown batch key) batch_key "},
		{"preprocessing fails", doubling().ClientPreprocessing(func(any) (*batch.Batch, any, error) {
			return nil, nil, fmt.Errorf("no: %w", ErrInvalidOptions)
		}), 1, Options{}, "callback(serving.Default, ClientPreprocessing) invalid_options "},
		{"not a batch", doubling(), "text", Options{}, "not_batch "},
		{"unknown key", doubling(), keyed(t, "other", 1, 1), Options{}, "batch_key "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Serving = tc.serving
			h := startLocalServing(t, opts)
			in := tc.input
			if in == nil {
				in = rows(t, 1, 1)
			}
			_, local := h.BatchedRun(ctx, in)
			require.Error(t, local)
			assert.Equal(t, tc.want, classify(local), "locally: %v", local)
			remote := overTheWire(t, local)
			assert.Equal(t, tc.want, classify(remote), "remotely: %v", remote)
		})
	}
}

// A peer that sends no details ({Id, error, Kind, Message}) is still read:
// the kind's sentinel matches, a failed batch is a *DownError.
func TestErrorRepliesWithoutDetails(t *testing.T) {
	_, r, err := parseReply(etf.Tuple{int64(1), atomError, etf.Atom("down"), []byte("it failed")}, "old@localhost")
	require.NoError(t, err)
	var down *DownError
	require.ErrorAs(t, r.err, &down)
	var re *RemoteError
	require.ErrorAs(t, r.err, &re)
	assert.Equal(t, RemoteError{Node: "old@localhost", Kind: "down", Message: "it failed"}, *re)

	_, r, err = parseReply(etf.Tuple{int64(1), atomError, etf.Atom("noproc"), []byte("none")}, "old@localhost")
	require.NoError(t, err)
	require.ErrorIs(t, r.err, ErrNoProc)
	assert.Equal(t, "on node old@localhost: none", r.err.Error())

	// A 6-tuple is malformed.
	_, _, err = parseReply(etf.Tuple{int64(1), atomError, etf.Atom("x"), []byte("m"), etf.Map{}, 1}, "old@localhost")
	require.ErrorContains(t, err, "error is a 6-tuple")
}

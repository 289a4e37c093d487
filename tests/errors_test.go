package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/serving"
)

// errorSwitch is the switch a Go caller writes over a serving's errors.
func errorSwitch(err error) string {
	var (
		down *serving.DownError
		cb   *serving.CallbackError
		pe   *serving.PanicError
	)
	s := ""
	if errors.As(err, &down) {
		s += fmt.Sprintf("down(%s) ", down.Serving)
	}
	if errors.As(err, &cb) {
		s += fmt.Sprintf("callback(%s, %s) ", cb.Module, cb.Callback)
	}
	if errors.As(err, &pe) {
		s += fmt.Sprintf("panic(%v) ", pe.Value)
	}
	for _, sentinel := range []error{serving.ErrNoProc, serving.ErrBadCallback, serving.ErrOutputRows, serving.ErrBatchKey,
		serving.ErrNotBatch, serving.ErrEmptyBatch, serving.ErrInvalidOptions, serving.ErrBatchTooLarge} {
		if errors.Is(err, sentinel) {
			s += sentinel.Error() + "; "
		}
	}
	return s
}

// A callback failure on another ergonx node satisfies the same errors.Is
// and errors.As as on the caller's node: the same switch gives the same
// answer for the same failure, local or remote.
func TestErrorsKeepTheirKindAcrossNodes(t *testing.T) {
	nodes := cluster(t, 2)
	caller, server := nodes[0], nodes[1]
	name := servingName(t)
	m := serving.ModuleFuncs{HandleBatchFunc: func(b *batch.Batch, _ int, state any) (serving.ExecFunc, any, error) {
		return func() (any, any, error) {
			in, err := b.Materialize()
			if err != nil {
				return nil, nil, err
			}
			switch in.(*tensor.Dense).Data().([]float32)[0] {
			case 1:
				return nil, nil, errors.New("the model refused")
			case 2:
				panic("boom")
			case 3:
				return nil, nil, nil
			case 4:
				return tensor.New(tensor.WithShape(0, 1), tensor.WithBacking([]float32{})), nil, nil
			case 5:
				panic(fmt.Errorf("wrapped: %w", serving.ErrBatchKey))
			}
			return in, nil, nil
		}, state, nil
	}}
	s := serving.NewModule(m, nil).ClientPreprocessing(func(in any) (*batch.Batch, any, error) {
		b, ok := in.(*batch.Batch)
		if !ok {
			return nil, nil, fmt.Errorf("%T: %w", in, serving.ErrNotBatch)
		}
		if x, _ := b.Materialize(); x.(*tensor.Dense).Data().([]float32)[0] == -1 {
			return nil, nil, fmt.Errorf("-1: %w", serving.ErrInvalidOptions)
		}
		return b, nil, nil
	})
	_, err := serving.Start(server, serving.Options{Name: name, Serving: s, BatchSize: 1})
	require.NoError(t, err)
	waitMembers(t, name, 1, caller, server)

	module := "serving.ModuleFuncs"
	for _, tc := range []struct {
		value float32
		want  string
	}{
		{1, fmt.Sprintf("down(%s) callback(%s, execute) ", name, module)},
		{2, fmt.Sprintf("down(%s) callback(%s, execute) panic(boom) ", name, module)},
		{3, fmt.Sprintf("down(%s) callback(%s, execute) %v; ", name, module, serving.ErrBadCallback)},
		{4, fmt.Sprintf("down(%s) callback(%s, execute) %v; ", name, module, serving.ErrOutputRows)},
		{5, fmt.Sprintf("down(%s) callback(%s, execute) panic(wrapped: %v) %v; ", name, module, serving.ErrBatchKey, serving.ErrBatchKey)},
		{-1, fmt.Sprintf("callback(%s, ClientPreprocessing) %v; ", module, serving.ErrInvalidOptions)},
	} {
		t.Run(fmt.Sprint(tc.value), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			_, local := serving.BatchedRun(ctx, server, serving.Local(name), floats(tc.value))
			require.Error(t, local)
			_, remote := serving.BatchedRun(ctx, caller, serving.Distributed(name), floats(tc.value))
			require.Error(t, remote)
			assert.Equal(t, tc.want, errorSwitch(local), "locally: %v", local)
			assert.Equal(t, tc.want, errorSwitch(remote), "from %s: %v", caller.Name(), remote)

			// The remote cause says where it happened.
			var re *serving.RemoteError
			if errors.As(remote, &re) {
				assert.Equal(t, server.Name(), re.Node)
			}
		})
	}

	// A string is not a batch: the preprocessing says so on both sides.
	ctx := testCtx(t)
	_, local := serving.BatchedRun(ctx, server, serving.Local(name), "text")
	_, remote := serving.BatchedRun(ctx, caller, serving.Distributed(name), "text")
	want := fmt.Sprintf("callback(%s, ClientPreprocessing) %v; ", module, serving.ErrNotBatch)
	assert.Equal(t, want, errorSwitch(local))
	assert.Equal(t, want, errorSwitch(remote))
}

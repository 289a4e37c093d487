package serving

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// denseLayer is y = x·W + b for x of 3 floats and y of 2, on a batch of
// rows; calls counts its calls and sizes records their batch sizes.
type denseLayer struct {
	mu    sync.Mutex
	sizes []int
}

var (
	denseW = [3][2]float32{{1, 0}, {0, 1}, {1, 1}}
	denseB = [2]float32{0.5, -0.5}
)

func (l *denseLayer) fn(_ context.Context, rows [][]float32) ([][]float32, error) {
	l.mu.Lock()
	l.sizes = append(l.sizes, len(rows))
	l.mu.Unlock()
	out := make([][]float32, len(rows))
	for i, x := range rows {
		y := []float32{denseB[0], denseB[1]}
		for k := range x {
			y[0] += x[k] * denseW[k][0]
			y[1] += x[k] * denseW[k][1]
		}
		out[i] = y
	}
	return out, nil
}

// dense is the expected output of the dense layer.
func dense(x ...float32) []float32 {
	return []float32{x[0] + x[2] + 0.5, x[1] + x[2] - 0.5}
}

// A typed serving without a node: callers send []float32 rows and get
// []float32 rows, batched together, without a type assertion.
func TestTypedServingWithoutANode(t *testing.T) {
	layer := &denseLayer{}
	typed := NewBatchFunc(layer.fn)
	h := startLocalServing(t, Options{Serving: typed.Serving(), BatchSize: 4, BatchTimeout: time.Hour})
	c := typed.Client(h)

	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([][]float32, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = c.Call(ctx, []float32{float32(i), 1, 2})
		}()
	}
	wg.Wait()
	for i := range 4 {
		require.NoError(t, errs[i])
		assert.Equal(t, dense(float32(i), 1, 2), got[i])
	}
	assert.Equal(t, []int{4}, layer.sizes, "four callers, one batch of four rows")

	// By name, from a client made with the package function.
	byName := NewClient[[]float32, []float32](nil, t.Name())
	outs, err := byName.CallMany(ctx, [][]float32{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {0, 0, 0}})
	require.NoError(t, err)
	assert.Equal(t, [][]float32{dense(1, 2, 3), dense(4, 5, 6), dense(7, 8, 9), dense(0, 0, 0)}, outs)

	// Inline.
	out, err := typed.Run(ctx, []float32{1, 1, 1})
	require.NoError(t, err)
	assert.Equal(t, dense(1, 1, 1), out)
}

// What reaches a typed serving's preprocessing on each path, through the
// untyped BatchedRun: the row itself (a local call), a 1-D tensor (a row
// from another node), a 2-D tensor (rows from an Nx caller), a batch
// (rows from the HTTP app); anything else is ErrRowType.
func TestTypedServingInputs(t *testing.T) {
	layer := &denseLayer{}
	startLocalServing(t, Options{Serving: NewBatchFunc(layer.fn).Serving(), BatchSize: 8, BatchTimeout: time.Millisecond})
	ctx := context.Background()
	call := func(in any) (any, error) { return BatchedRun(ctx, nil, t.Name(), in) }

	out, err := call([]float32{1, 2, 3})
	require.NoError(t, err)
	assert.Equal(t, dense(1, 2, 3), out)

	out, err = call(row(1, 2, 3))
	require.NoError(t, err)
	assert.Equal(t, dense(1, 2, 3), out, "a 1-D tensor is one row")

	out, err = call(f32([]int{2, 3}, 1, 2, 3, 4, 5, 6))
	require.NoError(t, err)
	assert.Equal(t, []int{2, 2}, shapeOf(out), "a 2-D tensor is rows")
	assert.Equal(t, append(dense(1, 2, 3), dense(4, 5, 6)...), floats(t, out))

	b, err := batch.Concatenate(f32([]int{2, 3}, 1, 2, 3, 4, 5, 6))
	require.NoError(t, err)
	out, err = call(b)
	require.NoError(t, err)
	assert.Equal(t, append(dense(1, 2, 3), dense(4, 5, 6)...), floats(t, out))

	for name, bad := range map[string]any{
		"a string":            "text",
		"float64 rows":        []float64{1, 2, 3},
		"a float64 tensor":    tensor.New(tensor.WithShape(3), tensor.WithBacking([]float64{1, 2, 3})),
		"a rank-3 tensor":     f32([]int{1, 1, 3}, 1, 2, 3),
		"a batch of 2-D rows": mustStack(t, f32([]int{1, 3}, 1, 2, 3)),
		"a nil tensor":        (*tensor.Dense)(nil),
		"a batch of int64":    mustStack(t, tensor.New(tensor.WithShape(3), tensor.WithBacking([]int64{1, 2, 3}))),
		"a tuple batch":       mustStack(t, batch.Tuple{row(1, 2, 3), row(4)}),
	} {
		_, err := call(bad)
		require.ErrorIs(t, err, ErrRowType, name)
		var cb *CallbackError
		require.ErrorAs(t, err, &cb, name)
		assert.Equal(t, "ClientPreprocessing", cb.Callback, name)
	}
	assert.NotContains(t, layer.sizes, 0)
}

func mustStack(t *testing.T, rows ...any) *batch.Batch {
	b, err := batch.Stack(rows...)
	require.NoError(t, err)
	return b
}

// A typed serving over tensor rows of any shape: a 2x2 row comes back
// transposed.
func TestTypedServingTensorRows(t *testing.T) {
	transpose := NewBatchFunc(func(_ context.Context, rows []*tensor.Dense) ([]*tensor.Dense, error) {
		out := make([]*tensor.Dense, len(rows))
		for i, r := range rows {
			c := r.Clone().(*tensor.Dense)
			if err := c.T(); err != nil {
				return nil, err
			}
			out[i] = c // a lazily transposed tensor: the serving lays it out
		}
		return out, nil
	})
	h := startLocalServing(t, Options{Serving: transpose.Serving(), BatchSize: 2, BatchTimeout: time.Millisecond})
	c := transpose.Client(h)
	ctx := context.Background()
	out, err := c.Call(ctx, f32([]int{2, 2}, 1, 2, 3, 4))
	require.NoError(t, err)
	assert.Equal(t, []int{2, 2}, []int(out.Shape()))
	assert.Equal(t, []float32{1, 3, 2, 4}, out.Data())

	outs, err := c.CallMany(ctx, []*tensor.Dense{f32([]int{2, 2}, 1, 2, 3, 4), f32([]int{2, 2}, 5, 6, 7, 8), f32([]int{2, 2}, 0, 0, 0, 1)})
	require.NoError(t, err)
	require.Len(t, outs, 3)
	assert.Equal(t, []float32{5, 7, 6, 8}, outs[1].Data())
	assert.Equal(t, []float32{0, 0, 0, 1}, outs[2].Data())
}

// Every slice row type, in and out.
func TestTypedServingSliceTypes(t *testing.T) {
	ctx := context.Background()
	sum := NewBatchFunc(func(_ context.Context, rows [][]float64) ([][]int64, error) {
		out := make([][]int64, len(rows))
		for i, r := range rows {
			var s float64
			for _, x := range r {
				s += x
			}
			out[i] = []int64{int64(s), int64(len(r))}
		}
		return out, nil
	})
	got, err := sum.Run(ctx, []float64{1.5, 2.5, 3})
	require.NoError(t, err)
	assert.Equal(t, []int64{7, 3}, got)

	neg := NewBatchFunc(func(_ context.Context, rows [][]int32) ([][]int32, error) {
		out := make([][]int32, len(rows))
		for i, r := range rows {
			out[i] = make([]int32, len(r))
			for k, x := range r {
				out[i][k] = -x
			}
		}
		return out, nil
	})
	h := startLocalServing(t, Options{Serving: neg.Serving(), BatchSize: 2, BatchTimeout: time.Millisecond})
	n, err := neg.Client(h).Call(ctx, []int32{1, -2, 3})
	require.NoError(t, err)
	assert.Equal(t, []int32{-1, 2, -3}, n)

	// A client whose types are not the serving's gets ErrRowType.
	_, err = NewClient[[]int32, []float32](nil, t.Name()).Call(ctx, []int32{1})
	require.ErrorIs(t, err, ErrRowType)
}

// A batch function that breaks its contract fails its batch's callers
// with a *CallbackError naming the callback, and the serving goes on.
func TestTypedServingBatchFuncErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		fn    BatchFunc[[]float32, []float32]
		match func(t *testing.T, err error)
	}{
		{"one row too few", func(_ context.Context, rows [][]float32) ([][]float32, error) { return rows[1:], nil },
			func(t *testing.T, err error) { require.ErrorIs(t, err, ErrOutputRows) }},
		{"rows of different lengths", func(_ context.Context, rows [][]float32) ([][]float32, error) {
			return [][]float32{{1}, {1, 2}}, nil
		}, func(t *testing.T, err error) { require.ErrorIs(t, err, ErrBadCallback) }},
		{"an error", func(context.Context, [][]float32) ([][]float32, error) { return nil, boom },
			func(t *testing.T, err error) { require.ErrorIs(t, err, boom) }},
		{"a panic", func(context.Context, [][]float32) ([][]float32, error) { panic("oops") },
			func(t *testing.T, err error) {
				var pe *PanicError
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, "oops", pe.Value)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typed := NewBatchFunc(tc.fn)
			h := startLocalServing(t, Options{Serving: typed.Serving(), BatchSize: 2, BatchTimeout: time.Hour})
			c := typed.Client(h)
			rows, err := c.CallMany(ctx, [][]float32{{1}, {2}})
			require.Nil(t, rows)
			var down *DownError
			require.ErrorAs(t, err, &down)
			assert.Equal(t, t.Name(), down.Serving)
			var cb *CallbackError
			require.ErrorAs(t, err, &cb)
			assert.Equal(t, CallbackError{Module: "serving.BatchFunc", Callback: "execute", Err: cb.Err}, *cb)
			tc.match(t, err)
			st, err := h.Stats()
			require.NoError(t, err)
			assert.Equal(t, uint64(1), st.FailedBatches)
		})
	}
}

// The batch function's ctx ends once the serving has stopped and its
// Shutdown bound has passed; Run's ctx reaches it as it is.
func TestTypedServingContext(t *testing.T) {
	started := make(chan struct{}, 1)
	gaveUp := make(chan error, 1)
	typed := NewBatchFunc(func(ctx context.Context, rows [][]float32) ([][]float32, error) {
		started <- struct{}{}
		<-ctx.Done()
		gaveUp <- ctx.Err()
		return nil, ctx.Err()
	})
	h, err := Start(nil, Options{Name: t.Name(), Serving: typed.Serving(), Shutdown: 20 * time.Millisecond})
	require.NoError(t, err)
	res := make(chan error, 1)
	go func() {
		_, err := typed.Client(h).Call(context.Background(), []float32{1})
		res <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch did not start within 10 s")
	}
	require.NoError(t, h.Stop(context.Background()))
	select {
	case err := <-res:
		require.ErrorIs(t, err, ErrShutdownTimeout)
	case <-time.After(10 * time.Second):
		t.Fatal("the caller got no answer within 10 s of the stop")
	}
	select {
	case err := <-gaveUp:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("the batch function's context did not end within 10 s of the stop")
	}

	type key struct{}
	seen := make(chan any, 1)
	inline := NewBatchFunc(func(ctx context.Context, rows [][]float32) ([][]float32, error) {
		seen <- ctx.Value(key{})
		return rows, nil
	})
	out, err := inline.Run(context.WithValue(context.Background(), key{}, "mine"), []float32{4})
	require.NoError(t, err)
	assert.Equal(t, []float32{4}, out)
	assert.Equal(t, "mine", <-seen)
}

package serving

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// Checklist §4.2 item 13.
func TestRunWithFunction(t *testing.T) {
	b, err := batch.Stack(row(1, 2, 3))
	require.NoError(t, err)
	out, err := Run(context.Background(), doubling(), b)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3}, shapeOf(out))
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))
}

// Checklist §4.2 item 14.
func TestRunWithContainer(t *testing.T) {
	b, err := batch.Concatenate(batch.Tuple{row(1, 2, 3), row(4, 5, 6)})
	require.NoError(t, err)
	out, err := Run(context.Background(), doubling(), b)
	require.NoError(t, err)
	tu := out.(batch.Tuple)
	assert.Equal(t, []float32{2, 4, 6}, floats(t, tu[0]))
	assert.Equal(t, []float32{2, 2.5, 3}, floats(t, tu[1]))
}

// Checklist §4.2 item 15: padding added inside the function is stripped.
func TestRunWithPadding(t *testing.T) {
	s := New(func(o compiler.Options) (compiler.Func, error) {
		return func(in any) (any, error) {
			b := in.(*batch.Batch)
			if err := b.Pad(4); err != nil {
				return nil, err
			}
			m, err := b.Materialize()
			if err != nil {
				return nil, err
			}
			return times2(m)
		}, nil
	})
	b, err := batch.Stack(row(1, 2, 3))
	require.NoError(t, err)
	out, err := Run(context.Background(), s, b)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3}, shapeOf(out))
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))
}

// Checklist §4.2 item 16.
func TestRunWithModuleCallbacks(t *testing.T) {
	m := newSimple()
	s := NewModule(m, nil, compiler.With("garbage_collect", 1))
	b, err := batch.Stack(row(1, 2, 3))
	require.NoError(t, err)

	out, err := Run(context.Background(), s, b)
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4, 6}, floats(t, out))

	init := <-m.events
	assert.Equal(t, "init", init.what)
	assert.Equal(t, Inline, init.kind)
	require.Len(t, init.partitions, 1)
	gc, ok := init.partitions[0].Get("garbage_collect")
	assert.True(t, ok)
	assert.Equal(t, 1, gc)

	hb := <-m.events
	assert.Equal(t, "batch", hb.what)
	assert.Equal(t, 0, hb.partition)
	assert.Equal(t, 1, hb.batch.Size())
	assert.Equal(t, 0, hb.batch.Padding())
	realised, err := hb.batch.Materialize()
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 2, 3}, floats(t, realised))

	assert.Equal(t, "execute", (<-m.events).what)
	assert.Empty(t, m.events)
}

// prePost is Nx's pre/post fixture: preprocessing stacks the input list
// and returns :pre; postprocessing returns {output, metadata, info}.
func prePost(s *Serving) *Serving {
	return s.ClientPreprocessing(func(input any) (*batch.Batch, any, error) {
		b, err := batch.Stack(input.([]any)...)
		return b, "pre", err
	}).ClientPostprocessing(func(output, metadata, info any) (any, error) {
		return []any{output, metadata, info}, nil
	})
}

// Checklist §4.2 item 17.
func TestRunWithClientPrePost(t *testing.T) {
	m := newSimple()
	s := prePost(NewModule(m, nil))
	out, err := Run(context.Background(), s, []any{row(1, 2), row(3, 4)})
	require.NoError(t, err)

	res := out.([]any)
	assert.Equal(t, []float32{2, 4, 6, 8}, floats(t, res[0]))
	assert.Equal(t, "metadata", res[1])
	assert.Equal(t, "pre", res[2])

	<-m.events // init
	hb := <-m.events
	assert.Equal(t, 2, hb.batch.Size())
	assert.Equal(t, 0, hb.batch.Padding())
}

// recordTelemetry attaches a handler recording every event of the test.
func recordTelemetry(t *testing.T, names ...EventName) <-chan Event {
	t.Helper()
	ch := make(chan Event, 1024)
	id := t.Name()
	require.NoError(t, AttachTelemetry(id, func(ev Event) { ch <- ev }, names...))
	t.Cleanup(func() { _ = DetachTelemetry(id) })
	return ch
}

// Checklist §4.2 item 18.
func TestRunInstrumentsWithTelemetry(t *testing.T) {
	events := recordTelemetry(t, ExecuteStop, PreprocessingStop, PostprocessingStop)
	s := prePost(doubling())
	_, err := Run(context.Background(), s, []any{row(1, 2)})
	require.NoError(t, err)

	pre := <-events
	assert.Equal(t, PreprocessingStop, pre.Name)
	assert.Equal(t, "pre", pre.Info)
	assert.Equal(t, []any{row(1, 2)}, pre.Input)

	exec := <-events
	assert.Equal(t, ExecuteStop, exec.Name)
	assert.Equal(t, DefaultMetadata, exec.Metadata)
	assert.Equal(t, "serving.Default", exec.Module)

	post := <-events
	assert.Equal(t, PostprocessingStop, post.Name)
	assert.Equal(t, "pre", post.Info)
	assert.Equal(t, DefaultMetadata, post.Metadata)
	res := post.Output.([]any)
	assert.Equal(t, []float32{2, 4}, floats(t, res[0]))
	assert.Empty(t, events)
}

func TestRunTelemetryException(t *testing.T) {
	events := recordTelemetry(t, ExecuteStart, ExecuteException)
	s := New(func(compiler.Options) (compiler.Func, error) {
		return func(any) (any, error) { panic("oops") }, nil
	})
	b, _ := batch.Stack(row(1))
	_, err := Run(context.Background(), s, b)
	require.Error(t, err)
	assert.Equal(t, ExecuteStart, (<-events).Name)
	exc := <-events
	assert.Equal(t, ExecuteException, exc.Name)
	var pe *PanicError
	require.ErrorAs(t, exc.Err, &pe)
	assert.Equal(t, "oops", pe.Value)
}

func TestRunDefaultPreprocessingNeedsBatch(t *testing.T) {
	_, err := Run(context.Background(), doubling(), row(1, 2, 3))
	require.ErrorIs(t, err, ErrNotBatch)
	assert.Equal(t, "serving: the default client preprocessing expects a *batch.Batch or an input stream "+
		"(serving.BatchStream, <-chan *batch.Batch) as input; give one or set a ClientPreprocessing, got *tensor.Dense", err.Error())
}

// Checklist §4.3 item 39's error, inline.
func TestRunEmptyBatch(t *testing.T) {
	_, err := Run(context.Background(), doubling(), batch.New())
	require.ErrorIs(t, err, ErrEmptyBatch)
	assert.Equal(t, "serving: cannot run with an empty batch", err.Error())
}

func TestRunCallbackErrorsWrapTheCause(t *testing.T) {
	cause := errors.New("no weights")
	b, _ := batch.Stack(row(1))

	t.Run("Init", func(t *testing.T) {
		s := NewModule(ModuleFuncs{InitFunc: func(Kind, any, []compiler.Options) (any, error) { return nil, cause }}, nil)
		_, err := Run(context.Background(), s, b)
		require.ErrorIs(t, err, cause)
		var ce *CallbackError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "Init", ce.Callback)
		assert.Equal(t, "serving: serving.ModuleFuncs Init: no weights", err.Error())
	})
	t.Run("HandleBatch returns nil", func(t *testing.T) {
		s := NewModule(ModuleFuncs{HandleBatchFunc: func(*batch.Batch, int, any) (ExecFunc, any, error) { return nil, nil, nil }}, nil)
		_, err := Run(context.Background(), s, b)
		require.ErrorIs(t, err, ErrBadCallback)
		assert.Contains(t, err.Error(), "HandleBatch must return a non-nil ExecFunc; got nil")
	})
	t.Run("execute panics with an error", func(t *testing.T) {
		s := New(func(compiler.Options) (compiler.Func, error) {
			return func(any) (any, error) { panic(cause) }, nil
		})
		_, err := Run(context.Background(), s, b)
		require.ErrorIs(t, err, cause)
		var pe *PanicError
		require.ErrorAs(t, err, &pe)
		assert.Contains(t, string(pe.Stack), "panic")
	})
	t.Run("compile returns nil", func(t *testing.T) {
		s := New(func(compiler.Options) (compiler.Func, error) { return nil, nil })
		_, err := Run(context.Background(), s, b)
		require.ErrorIs(t, err, ErrBadCallback)
		assert.Contains(t, err.Error(), "must return a compiled function")
	})
	t.Run("preprocessing", func(t *testing.T) {
		s := doubling().ClientPreprocessing(func(any) (*batch.Batch, any, error) { return nil, nil, cause })
		_, err := Run(context.Background(), s, 1)
		require.ErrorIs(t, err, cause)
	})
	t.Run("postprocessing panics", func(t *testing.T) {
		s := doubling().ClientPostprocessing(func(any, any, any) (any, error) { panic("post") })
		_, err := Run(context.Background(), s, b)
		var ce *CallbackError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "ClientPostprocessing", ce.Callback)
	})
}

func TestRunOutputWithFewerRows(t *testing.T) {
	s := New(func(compiler.Options) (compiler.Func, error) {
		return func(any) (any, error) { return row(1), nil }, nil
	})
	b, _ := batch.Stack(row(1), row(2))
	_, err := Run(context.Background(), s, b)
	require.ErrorIs(t, err, ErrOutputRows)
	assert.Contains(t, err.Error(), "1 rows for a batch of 2")
}

func TestRunCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, _ := batch.Stack(row(1))
	_, err := Run(ctx, doubling(), b)
	require.ErrorIs(t, err, context.Canceled)
}

// Methods return new servings and leave the receiver unchanged.
func TestServingIsImmutable(t *testing.T) {
	s := doubling()
	withPre := s.ClientPreprocessing(func(any) (*batch.Batch, any, error) { return nil, nil, nil })
	assert.Nil(t, s.pre)
	assert.NotNil(t, withPre.pre)
	d := s.DefnOptions(compiler.WithMaxConcurrency(3))
	assert.Equal(t, 0, s.CompilerOptions().MaxConcurrency)
	assert.Equal(t, 3, d.CompilerOptions().MaxConcurrency)
}

// DefnOptions replaces the options; New merges them into the defaults.
func TestDefnOptionsDoNotMergeDefaults(t *testing.T) {
	compiler.SetDefaultOptions(compiler.With("from_defaults", true))
	t.Cleanup(func() { compiler.SetDefaultOptions() })
	s := doubling(compiler.WithMaxConcurrency(2))
	_, ok := s.CompilerOptions().Get("from_defaults")
	assert.True(t, ok)
	_, ok = s.DefnOptions(compiler.WithMaxConcurrency(2)).CompilerOptions().Get("from_defaults")
	assert.False(t, ok)
}

func TestTelemetryAttachDetach(t *testing.T) {
	h := func(Event) {}
	require.NoError(t, AttachTelemetry("dup", h))
	require.ErrorIs(t, AttachTelemetry("dup", h), ErrHandlerExists)
	require.NoError(t, DetachTelemetry("dup"))
	require.ErrorIs(t, DetachTelemetry("dup"), ErrHandlerUnknown)
}

// A handler that panics is detached and the run goes on.
func TestTelemetryPanickingHandlerIsDetached(t *testing.T) {
	require.NoError(t, AttachTelemetry("panicky", func(Event) { panic("handler") }, ExecuteStop))
	b, _ := batch.Stack(row(1))
	_, err := Run(context.Background(), doubling(), b)
	require.NoError(t, err)
	require.ErrorIs(t, DetachTelemetry("panicky"), ErrHandlerUnknown)
}

// A JIT serving compiles with the named compiler.
func TestJIT(t *testing.T) {
	b, _ := batch.Stack(row(1, 2))
	out, err := Run(context.Background(), JIT(times2), b)
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 4}, floats(t, out))
	_, err = Run(context.Background(), JIT(times2, compiler.WithCompiler("nope")), b)
	require.ErrorIs(t, err, compiler.ErrUnknownCompiler)
}

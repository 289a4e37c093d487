package compiler

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

func TestCPUPartitionsAreMaxConcurrency(t *testing.T) {
	for _, tc := range []struct{ max, want int }{{0, 1}, {1, 1}, {2, 2}, {-3, 1}} {
		parts, err := Partitions(Options{MaxConcurrency: tc.max})
		require.NoError(t, err)
		assert.Len(t, parts, tc.want, "max concurrency %d", tc.max)
		for _, p := range parts {
			assert.Equal(t, tc.max, p.MaxConcurrency)
		}
	}
}

func TestCPUJITMaterialisesBatches(t *testing.T) {
	double, err := JIT(func(in any) (any, error) {
		return in.(*tensor.Dense).MulScalar(int64(2), true)
	}, Options{})
	require.NoError(t, err)

	b, err := batch.Stack(tensor.New(tensor.WithShape(3), tensor.WithBacking([]int64{1, 2, 3})))
	require.NoError(t, err)
	require.NoError(t, b.Pad(1))
	out, err := double(b)
	require.NoError(t, err)
	assert.Equal(t, []int64{2, 4, 6, 0, 0, 0}, out.(*tensor.Dense).Data())

	// Containers pass straight through.
	out, err = double(tensor.New(tensor.WithShape(2), tensor.WithBacking([]int64{5, 6})))
	require.NoError(t, err)
	assert.Equal(t, []int64{10, 12}, out.(*tensor.Dense).Data())

	// An empty batch cannot be materialised.
	_, err = double(batch.New())
	require.ErrorIs(t, err, batch.ErrEmpty)
}

func TestCPUJITNilFunction(t *testing.T) {
	_, err := JIT(nil, Options{})
	require.Error(t, err)
}

func TestLookupUnknownCompiler(t *testing.T) {
	_, err := Lookup("tpu")
	require.ErrorIs(t, err, ErrUnknownCompiler)
	assert.Contains(t, err.Error(), `unknown compiler "tpu": registered compilers are cpu`)
	_, err = JIT(func(any) (any, error) { return nil, nil }, Options{Compiler: "tpu"})
	require.ErrorIs(t, err, ErrUnknownCompiler)
}

func TestRegisterDuplicate(t *testing.T) {
	err := Register(CPU{})
	require.ErrorIs(t, err, ErrDuplicate)
}

// noPartitions is a compiler that cannot list partitions.
type noPartitions struct{}

func (noPartitions) Name() string { return "test-no-partitions" }
func (noPartitions) JIT(fn Defn, _ Options) (Func, error) {
	return func(in any) (any, error) { return fn(in) }, nil
}

func TestPartitionsOfCompilerWithoutPartitioner(t *testing.T) {
	require.NoError(t, Register(noPartitions{}))
	_, err := Partitions(Options{Compiler: "test-no-partitions"})
	require.ErrorIs(t, err, ErrNoPartitions)
	assert.Contains(t, err.Error(), `"test-no-partitions" does not implement compiler.Partitioner`)
}

// Defaults apply to every Resolve and the call's options win (Nx merges
// defn options into Nx.Defn.default_options()).
func TestDefaultOptionsMerge(t *testing.T) {
	t.Cleanup(func() { SetDefaultOptions() })
	SetDefaultOptions(WithMaxConcurrency(4), With("garbage_collect", 1))

	o := Resolve(WithMaxConcurrency(2))
	assert.Equal(t, 2, o.MaxConcurrency)
	v, ok := o.Get("garbage_collect")
	assert.True(t, ok)
	assert.Equal(t, 1, v)
	assert.Equal(t, "cpu", o.CompilerName())

	assert.Equal(t, 4, DefaultOptions().MaxConcurrency)
	SetDefaultOptions()
	assert.Equal(t, Options{}, DefaultOptions())
}

// With copies the map: options derived from a value never change it.
func TestWithCopiesExtra(t *testing.T) {
	base := Options{}.Apply(With("a", 1))
	derived := base.Apply(With("b", 2))
	_, ok := base.Get("b")
	assert.False(t, ok)
	_, ok = derived.Get("a")
	assert.True(t, ok)
}

func TestPartitionsErrorsAreWrapped(t *testing.T) {
	_, err := Partitions(Options{Compiler: "nope"})
	assert.True(t, errors.Is(err, ErrUnknownCompiler))
}

// WithHook copies on write: an Options value never sees the hooks another
// was given later.
func TestWithHookCopiesOnWrite(t *testing.T) {
	var calls []string
	a := Options{}.Apply(WithHook("h", func(any) { calls = append(calls, "a") }))
	b := a.Apply(WithHook("h", func(any) { calls = append(calls, "b") }), WithHook("g", func(any) {}))
	a.Hook("h")(nil)
	b.Hook("h")(nil)
	assert.Equal(t, []string{"a", "b"}, calls)
	assert.Len(t, a.Hooks, 1)
	assert.Len(t, b.Hooks, 2)
	c := b.Apply(WithHook("g", nil))
	assert.Len(t, c.Hooks, 1)
	assert.Len(t, b.Hooks, 2)

	keys := []string{"x", "y"}
	o := Options{}.Apply(WithBatchKeys(keys...))
	keys[0] = "changed"
	assert.Equal(t, []string{"x", "y"}, o.BatchKeys)
}

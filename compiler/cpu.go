package compiler

import (
	"fmt"

	"github.com/ergonx/ergonx/batch"
)

// CPU is the CPU evaluator (Nx.Defn.Evaluator): it runs a Defn directly on
// gorgonia tensors in the calling goroutine. Its partitions are
// MaxConcurrency copies of the options (at least one), so a serving
// started with Partitions runs that many batches at once.
type CPU struct{}

var _ Partitioner = CPU{}

func init() {
	if err := Register(CPU{}); err != nil {
		panic(err)
	}
}

// Name returns DefaultCompiler, "cpu".
func (CPU) Name() string { return DefaultCompiler }

// Partitions returns max(opts.MaxConcurrency, 1) copies of opts.
func (CPU) Partitions(opts Options) ([]Options, error) {
	n := max(opts.MaxConcurrency, 1)
	parts := make([]Options, n)
	for i := range parts {
		parts[i] = opts
	}
	return parts, nil
}

// JIT returns fn wrapped so that a *batch.Batch is materialised first.
// Nothing is compiled: gorgonia evaluates eagerly.
func (CPU) JIT(fn Defn, _ Options) (Func, error) {
	if fn == nil {
		return nil, fmt.Errorf("compiler: cpu: JIT of a nil function")
	}
	return func(input any) (any, error) {
		in, err := Materialize(input)
		if err != nil {
			return nil, err
		}
		return fn(in)
	}, nil
}

// Materialize returns input's container: a *batch.Batch is materialised
// (padding included), anything else is returned as is. Compilers use it
// to accept batches and containers alike.
func Materialize(input any) (any, error) {
	if b, ok := input.(*batch.Batch); ok {
		return b.Materialize()
	}
	return input, nil
}

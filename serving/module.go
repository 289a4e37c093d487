package serving

import (
	"fmt"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// Kind tells Module.Init where the serving runs.
type Kind string

const (
	// Inline is a serving run by Run, in the caller's goroutine.
	Inline Kind = "inline"
	// Process is a serving started by Start, run by a serving process.
	Process Kind = "process"
)

// DefaultMetadata is the metadata of executions of servings made with
// New and JIT (Nx's :server_info).
const DefaultMetadata = "server_info"

// ExecFunc runs one batch. It returns the output container (every tensor
// with the batch on axis 0, padding rows included or not) and metadata
// that every caller of the batch receives.
type ExecFunc func() (output, metadata any, err error)

// Module is the behaviour of a serving (Nx's Nx.Serving behaviour).
//
// Init is called once per process serving at start (and once per Run for
// inline servings) with one compiler.Options per partition; it returns
// the module's state, or an error that makes Start fail.
//
// HandleBatch is called for every batch, on the serving process (never
// concurrently for one serving), with the partition the batch will run on
// and the current state. It returns the function that executes the batch
// and the new state; that function runs on the partition's worker, so
// HandleBatch should do no heavy work itself.
type Module interface {
	Init(kind Kind, arg any, partitions []compiler.Options) (state any, err error)
	HandleBatch(b *batch.Batch, partition int, state any) (exec ExecFunc, newState any, err error)
}

// ModuleFuncs adapts two functions to a Module, for modules that need no
// type of their own.
type ModuleFuncs struct {
	InitFunc        func(kind Kind, arg any, partitions []compiler.Options) (any, error)
	HandleBatchFunc func(b *batch.Batch, partition int, state any) (ExecFunc, any, error)
}

var _ Module = ModuleFuncs{}

// Init calls InitFunc; a nil InitFunc returns arg as the state.
func (m ModuleFuncs) Init(kind Kind, arg any, partitions []compiler.Options) (any, error) {
	if m.InitFunc == nil {
		return arg, nil
	}
	return m.InitFunc(kind, arg, partitions)
}

// HandleBatch calls HandleBatchFunc.
func (m ModuleFuncs) HandleBatch(b *batch.Batch, partition int, state any) (ExecFunc, any, error) {
	if m.HandleBatchFunc == nil {
		return nil, state, fmt.Errorf("%w: ModuleFuncs has no HandleBatchFunc", ErrBadCallback)
	}
	return m.HandleBatchFunc(b, partition, state)
}

// CompileFunc returns the compiled function of one partition (see New).
type CompileFunc func(opts compiler.Options) (compiler.Func, error)

// defaultModule is the module of servings made with New (Nx.Serving.Default):
// Init compiles one function per partition, HandleBatch runs the
// partition's function and reports DefaultMetadata.
type defaultModule struct{}

func (defaultModule) Init(_ Kind, arg any, partitions []compiler.Options) (any, error) {
	compile := arg.(CompileFunc)
	funcs := make([]compiler.Func, len(partitions))
	for i, opts := range partitions {
		f, err := compile(opts)
		if err != nil {
			return nil, fmt.Errorf("compile partition %d: %w", i, err)
		}
		if f == nil {
			return nil, fmt.Errorf("%w: the function given to serving.New must return a compiled "+
				"function (compiler.Func); got nil for partition %d", ErrBadCallback, i)
		}
		funcs[i] = f
	}
	return funcs, nil
}

func (defaultModule) HandleBatch(b *batch.Batch, partition int, state any) (ExecFunc, any, error) {
	f := state.([]compiler.Func)[partition]
	return func() (any, any, error) {
		out, err := f(b)
		return out, DefaultMetadata, err
	}, state, nil
}

// keyedModule is the module of servings made with NewKeyed (Nx's
// Nx.Serving.Default with a two-arity function): Init compiles one
// function per batch key on every partition, HandleBatch runs the one of
// the batch's key on its partition.
type keyedModule struct{}

func (keyedModule) Init(_ Kind, arg any, partitions []compiler.Options) (any, error) {
	compile := arg.(KeyedCompileFunc)
	funcs := make([]map[string]compiler.Func, len(partitions))
	for i, opts := range partitions {
		keys := opts.BatchKeys
		if len(keys) == 0 {
			keys = []string{batch.DefaultKey}
		}
		funcs[i] = make(map[string]compiler.Func, len(keys))
		for _, key := range keys {
			f, err := compile(key, opts)
			if err != nil {
				return nil, fmt.Errorf("compile batch key %q on partition %d: %w", key, i, err)
			}
			if f == nil {
				return nil, fmt.Errorf("%w: the function given to serving.NewKeyed must return a compiled "+
					"function (compiler.Func); got nil for batch key %q on partition %d", ErrBadCallback, key, i)
			}
			funcs[i][key] = f
		}
	}
	return funcs, nil
}

func (keyedModule) HandleBatch(b *batch.Batch, partition int, state any) (ExecFunc, any, error) {
	f, ok := state.([]map[string]compiler.Func)[partition][b.Key()]
	if !ok {
		return nil, state, fmt.Errorf("%w: %q has no compiled function", ErrBatchKey, b.Key())
	}
	return func() (any, any, error) {
		out, err := f(b)
		return out, DefaultMetadata, err
	}, state, nil
}

package serving

import (
	"context"

	"github.com/ergonx/ergonx/compiler"
)

// Run runs s on input inline, in the calling goroutine (Nx's run/2):
// it initialises the module for Inline with one partition (on every call,
// as Nx does), preprocesses input (the default accepts a non-empty
// *batch.Batch only), runs HandleBatch for partition 0 and the function it
// returns, keeps the first Size() rows of every output tensor (padding
// added inside the function is dropped) and postprocesses.
//
// ctx is checked before the module is initialised and before the batch
// executes; an execution that has started runs to its end. Failures of
// user code come back as *CallbackError wrapping the cause.
func Run(ctx context.Context, s *Serving, input any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	state, err := callInit(s.module, Inline, s.arg, []compiler.Options{s.defn})
	if err != nil {
		return nil, err
	}
	b, info, err := preprocess(s, input)
	if err != nil {
		return nil, err
	}
	exec, _, err := callHandleBatch(s.module, b, 0, state)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	module := s.moduleName()
	sp := startSpan(Event{Name: ExecuteStart, Module: module}, ExecuteStop, ExecuteException)
	out, meta, err := callExec(module, exec)
	sp.end(Event{Module: module, Metadata: meta, Err: err})
	if err != nil {
		return nil, err
	}
	if out, err = trimRows(module, out, b.Size()); err != nil {
		return nil, err
	}
	return postprocess(s, out, meta, info)
}

package serving

import (
	"context"
	"reflect"

	"github.com/ergo-services/ergo/node"
)

// Target names a serving for BatchedRun: a plain name (a string) or
// Local(name). (Distributed(name), for servings on other nodes, comes with
// the cluster support.)
type Target interface {
	~string | LocalTarget
}

// LocalTarget is a serving that must run on the caller's node.
type LocalTarget struct{ Name string }

// Local names a serving that must run on the caller's node: BatchedRun
// never looks for it elsewhere.
func Local(name string) LocalTarget { return LocalTarget{Name: name} }

// BatchedRun runs input on the serving named name (Nx's batched_run): the
// serving batches it with other callers' inputs and returns exactly this
// caller's rows, after client postprocessing.
//
// It may be called from any goroutine, including from inside an ergo
// actor's callback (which it blocks until the answer). Client pre- and
// postprocessing run in the caller's goroutine. The request travels to
// the serving without an ergo message: it is stacked directly on the
// serving's engine.
//
// It returns ErrNoProc when no serving runs under name, or when the
// serving stops before running the rows; a *DownError when the batch
// holding the rows failed (only that batch's callers get it); ctx.Err()
// when ctx ends first — the caller's rows are then taken out of the
// serving if they have not run yet. Inputs larger than the batch size are
// split across batches and the rows come back concatenated in order.
func BatchedRun[T Target](ctx context.Context, nd node.Node, name T, input any) (any, error) {
	return localBatchedRun(ctx, nd, targetName(name), input)
}

// targetName returns the serving name of a target.
func targetName[T Target](name T) string {
	if t, ok := any(name).(LocalTarget); ok {
		return t.Name
	}
	// string, or a named string type.
	return reflect.ValueOf(name).String()
}

func localBatchedRun(ctx context.Context, nd node.Node, name string, input any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, err := lookup(nd, name)
	if err != nil {
		return nil, err
	}
	b, info, err := preprocess(e.serving, input)
	if err != nil {
		return nil, err
	}
	// A caller that cannot give up may run the batch its rows complete.
	r, err := e.submit(b, ctx.Done() == nil)
	if err != nil {
		return nil, err
	}
	out, meta, err := e.wait(ctx, r)
	if err != nil {
		return nil, err
	}
	return postprocess(e.serving, out, meta, info)
}

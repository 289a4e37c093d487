package serving

import (
	"context"
	"fmt"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/batch"
)

// Client calls a typed serving (NewBatchFunc) with rows of type In and
// returns rows of type Out: Call sends one row, CallMany several. The
// serving may run in the process (with or without a node) or on another
// ergonx node. A Client is safe for concurrent use.
type Client[In, Out Row] struct {
	name string
	call func(ctx context.Context, input any) (any, error)
}

// NewClient returns a client of the typed serving target reached from
// node nd, as BatchedRun reaches it: a plain name (the serving on nd, else
// a member of its process group in the cluster), Local(name) or
// Distributed(name); nd nil reaches the servings without a node. In and
// Out must be the serving's row types (a mismatch fails each call with
// ErrRowType). opts apply to every call.
func NewClient[In, Out Row, T Target](nd node.Node, target T, opts ...CallOption) *Client[In, Out] {
	return &Client[In, Out]{
		name: targetName(target),
		call: func(ctx context.Context, input any) (any, error) {
			return BatchedRun(ctx, nd, target, input, opts...)
		},
	}
}

// Client returns a client of the serving that h runs (started from t's
// Serving): calls go to it without a lookup.
func (t *Typed[In, Out]) Client(h *Handle, opts ...CallOption) *Client[In, Out] {
	return &Client[In, Out]{
		name: h.Name(),
		call: func(ctx context.Context, input any) (any, error) { return h.BatchedRun(ctx, input, opts...) },
	}
}

// Call runs one row on the serving, batched with other callers' rows, and
// returns its output row. Errors are BatchedRun's, and ErrRowType for a
// result that is not an Out.
func (c *Client[In, Out]) Call(ctx context.Context, row In) (Out, error) {
	res, err := c.call(ctx, row)
	if err != nil {
		var zero Out
		return zero, err
	}
	out, err := resultRow[Out](res)
	if err != nil {
		return out, fmt.Errorf("serving %q: %w", c.name, err)
	}
	return out, nil
}

// CallMany runs rows on the serving as one request (batched with other
// callers' rows, split across batches when larger than the batch size)
// and returns their output rows, in order. The rows must have one shape.
func (c *Client[In, Out]) CallMany(ctx context.Context, rows []In) ([]Out, error) {
	if len(rows) == 0 {
		return nil, ErrEmptyBatch
	}
	entries := make([]any, len(rows))
	for i, r := range rows {
		d, err := rowTensor(r)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
		entries[i] = d
	}
	b, err := batch.Stack(entries...)
	if err != nil {
		return nil, fmt.Errorf("%w: the rows differ: %v", ErrRowType, err)
	}
	res, err := c.call(ctx, b)
	if err != nil {
		return nil, err
	}
	outs, err := resultRows[Out](res, len(rows))
	if err != nil {
		return nil, fmt.Errorf("serving %q: %w", c.name, err)
	}
	return outs, nil
}

// targetName is the serving name a Target holds.
func targetName[T Target](t T) string {
	switch x := any(t).(type) {
	case LocalTarget:
		return x.Name
	case DistributedTarget:
		return x.Name
	}
	return fmt.Sprint(t)
}

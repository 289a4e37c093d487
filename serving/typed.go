package serving

import (
	"context"
	"fmt"
	"reflect"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// Row is the type of one row of a typed serving (NewBatchFunc): a Go
// slice is a row of that many elements (a 1-D tensor of its element
// type); a *tensor.Dense is one row of any shape and dtype.
type Row interface {
	[]float32 | []float64 | []int64 | []int32 | *tensor.Dense
}

// BatchFunc computes a batch: out[i] is the output of rows[i], for every
// row, in order. ctx ends when no caller waits for the batch any more:
// for a serving process, once it has stopped and its Shutdown bound has
// passed (see compiler.Options.Context); for Run, with Run's ctx.
//
// rows are views of one buffer the serving fills for this batch (the
// callers' inputs are copied into it): fn may read and write them, but
// must not keep them after it returns. The output rows are copied into
// the batch's output: fn may reuse their memory after it returns.
type BatchFunc[In, Out Row] func(ctx context.Context, rows []In) ([]Out, error)

// Typed is a serving whose rows have Go types: NewBatchFunc makes one from
// a function over a batch of rows, and its Client calls it with one row
// and returns one row, without a type assertion. Serving returns the
// untyped *Serving that Start, Run and the rest of the package take. A
// Typed is immutable and safe to share.
type Typed[In, Out Row] struct {
	s *Serving
}

// NewBatchFunc returns a typed serving that runs fn on batches of rows
// (Ray Serve's @serve.batch shape): the serving stacks the callers' rows
// into a batch, hands fn the batch's rows, checks that fn returned one
// output row per row, and gives every caller exactly its own output row.
// opts are the serving's compiler options (see New).
//
// Its client preprocessing takes, as one call's input:
//
//   - an In: one row. Its result is an Out.
//   - a *batch.Batch of rows of In's dtype and shape, such as the HTTP
//     app sends (apps/httpapi) and Client.CallMany: several rows. Its
//     result is the output tensor of those rows (n rows on axis 0).
//   - a *tensor.Dense, for a serving with slice rows: of rank 1 one row
//     (as a slice arrives from another ergonx node: the wire codec sends
//     it as a 1-D tensor), of rank 2 several rows (as from an Nx caller);
//     the result is as for an In or a *batch.Batch. For a serving with
//     *tensor.Dense rows, a *tensor.Dense is always one row.
//
// Anything else, or rows of another dtype or rank, fails with ErrRowType.
// Replacing the Serving's ClientPreprocessing or ClientPostprocessing
// breaks its typed clients.
func NewBatchFunc[In, Out Row](fn BatchFunc[In, Out], opts ...compiler.Option) *Typed[In, Out] {
	s := NewModule(batchFuncModule[In, Out]{fn: fn}, nil, opts...).
		ClientPreprocessing(typedPreprocess[In]).
		ClientPostprocessing(typedPostprocess[Out])
	return &Typed[In, Out]{s: s}
}

// Serving returns the serving, for Start, Run, ChildSpec and the Serving
// builders (BatchSize, ProcessOptions, DistributedPostprocessing...).
func (t *Typed[In, Out]) Serving() *Serving { return t.s }

// Run runs one row inline, in the calling goroutine (see the package's
// Run).
func (t *Typed[In, Out]) Run(ctx context.Context, row In) (Out, error) {
	res, err := Run(ctx, t.s, row)
	if err != nil {
		var zero Out
		return zero, err
	}
	return resultRow[Out](res)
}

// batchFuncModule is the module of typed servings: its state is the
// context of its computations (compiler.Options.Context), its executions
// run fn on the batch's rows.
type batchFuncModule[In, Out Row] struct {
	fn BatchFunc[In, Out]
}

// batchFuncModuleName names typed servings' module in errors and
// telemetry (*CallbackError.Module).
const batchFuncModuleName = "serving.BatchFunc"

func (batchFuncModule[In, Out]) name() string { return batchFuncModuleName }

func (m batchFuncModule[In, Out]) Init(_ Kind, _ any, partitions []compiler.Options) (any, error) {
	if m.fn == nil {
		return nil, fmt.Errorf("%w: NewBatchFunc was given a nil function", ErrBadCallback)
	}
	ctx := context.Background()
	if len(partitions) > 0 && partitions[0].Context != nil {
		ctx = partitions[0].Context
	}
	return ctx, nil
}

func (m batchFuncModule[In, Out]) HandleBatch(b *batch.Batch, _ int, state any) (ExecFunc, any, error) {
	ctx := state.(context.Context)
	return func() (any, any, error) {
		in, err := b.Materialize()
		if err != nil {
			return nil, nil, err
		}
		d, ok := in.(*tensor.Dense)
		if !ok {
			return nil, nil, fmt.Errorf("%w: a batch of %v, not of one tensor", ErrRowType, b.Template())
		}
		rows, err := splitRows[In](d, b.Size())
		if err != nil {
			return nil, nil, err
		}
		out, err := m.fn(ctx, rows)
		if err != nil {
			return nil, nil, err
		}
		if len(out) != len(rows) {
			return nil, nil, fmt.Errorf("%w: the batch function returned %d rows for a batch of %d; it must return one "+
				"output row per row, in order", ErrOutputRows, len(out), len(rows))
		}
		res, err := stackRows(out)
		return res, nil, err
	}, state, nil
}

// The client info of typed preprocessing: one row, or several.
type typedInfo int

const (
	oneRow typedInfo = iota + 1
	manyRows
)

// typedPreprocess is the client preprocessing of typed servings (see
// NewBatchFunc).
func typedPreprocess[In Row](input any) (*batch.Batch, any, error) {
	var zero In
	dt, isSlice := sliceDtype(zero)
	switch x := input.(type) {
	case In:
		d, err := rowTensor(x)
		if err != nil {
			return nil, nil, err
		}
		b, err := batch.Stack(d)
		return b, oneRow, err
	case *tensor.Dense:
		// Only for slice rows (a *tensor.Dense In matched above).
		switch {
		case x == nil || x.Dtype() != dt:
			return nil, nil, rowTypeErr[In](input)
		case x.Dims() == 1:
			b, err := batch.Stack(x)
			return b, oneRow, err
		case x.Dims() == 2:
			b, err := batch.Concatenate(x)
			return b, manyRows, err
		}
		return nil, nil, fmt.Errorf("%w: a tensor of shape %v is neither a row (rank 1) nor rows (rank 2) of %T",
			ErrRowType, x.Shape(), zero)
	case *batch.Batch:
		if x == nil {
			return nil, nil, rowTypeErr[In](input)
		}
		if x.Size() == 0 {
			return nil, nil, ErrEmptyBatch
		}
		if rdt, shape, ok := x.Template().Tensor(); !ok || (isSlice && (rdt != dt || len(shape) != 1)) {
			return nil, nil, fmt.Errorf("%w: a batch of %v rows, not of %T rows", ErrRowType, x.Template(), zero)
		}
		return x, manyRows, nil
	}
	return nil, nil, rowTypeErr[In](input)
}

func rowTypeErr[In Row](input any) error {
	var zero In
	return fmt.Errorf("%w: got %T; a call takes a %T row, or a *batch.Batch or a tensor of such rows", ErrRowType, input, zero)
}

// typedPostprocess is the client postprocessing of typed servings: a
// call of one row gets its output row, a call of several the output
// tensor of its rows.
func typedPostprocess[Out Row](output, _, info any) (any, error) {
	if info != oneRow {
		return output, nil
	}
	d, ok := output.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%w: the output is %T, not a tensor", ErrRowType, output)
	}
	rows, err := splitRows[Out](d, 1)
	if err != nil {
		return nil, err
	}
	return rows[0], nil
}

// sliceDtype returns the dtype of a slice row type's elements; false for
// *tensor.Dense rows.
func sliceDtype(row any) (tensor.Dtype, bool) {
	switch row.(type) {
	case []float32:
		return tensor.Float32, true
	case []float64:
		return tensor.Float64, true
	case []int64:
		return tensor.Int64, true
	case []int32:
		return tensor.Int32, true
	}
	return tensor.Dtype{}, false
}

// rowTensor returns a row as a tensor: a slice as the 1-D tensor over its
// elements (no copy).
func rowTensor[R Row](row R) (*tensor.Dense, error) {
	if d, ok := any(row).(*tensor.Dense); ok {
		if d == nil {
			return nil, fmt.Errorf("%w: a nil *tensor.Dense row", ErrRowType)
		}
		return d, nil
	}
	v := reflect.ValueOf(row)
	return tensor.New(tensor.WithShape(v.Len()), tensor.WithBacking(any(row))), nil
}

// splitRows cuts the first n rows out of d (rows on axis 0) as Rs: slices
// of d's memory for slice rows, tensors over it for tensor rows.
func splitRows[R Row](d *tensor.Dense, n int) ([]R, error) {
	var zero R
	dt, isSlice := sliceDtype(zero)
	shape := d.Shape()
	if len(shape) == 0 || shape[0] < n {
		return nil, fmt.Errorf("%w: %d rows wanted from a tensor of shape %v", ErrOutputRows, n, shape)
	}
	if isSlice && (d.Dtype() != dt || len(shape) != 2) {
		return nil, fmt.Errorf("%w: rows of %v%v are not %T rows", ErrRowType, d.Dtype(), []int(shape[1:]), zero)
	}
	rowShape := []int(shape[1:])
	width := 1
	for _, k := range rowShape {
		width *= k
	}
	data := reflect.ValueOf(tensorData(d))
	rows := make([]R, n)
	for i := range rows {
		part := data.Slice(i*width, (i+1)*width).Interface()
		if isSlice {
			rows[i] = part.(R)
			continue
		}
		rows[i] = any(tensor.New(tensor.WithShape(rowShape...), tensor.WithBacking(part))).(R)
	}
	return rows, nil
}

// tensorData returns d's elements in row-major order (its own memory when
// it is laid out so): an empty slice of d's Go type for a tensor without
// elements, whose Data gorgonia cannot give.
func tensorData(d *tensor.Dense) any {
	if d.Size() == 0 {
		return reflect.MakeSlice(reflect.SliceOf(d.Dtype().Type), 0, 0).Interface()
	}
	if !d.IsView() && d.DataOrder().IsRowMajor() {
		if data := d.Data(); reflect.ValueOf(data).Len() == d.Size() {
			return data
		}
	}
	// A view or another layout: one row-major copy.
	b, err := batch.Stack(d)
	if err == nil {
		var m any
		if m, err = b.Materialize(); err == nil {
			return m.(*tensor.Dense).Data()
		}
	}
	panic(fmt.Sprintf("serving: internal error: cannot lay out a %v tensor of shape %v as rows: %v", d.Dtype(), d.Shape(), err))
}

// stackRows stacks output rows into one tensor of len(rows) rows.
func stackRows[R Row](rows []R) (*tensor.Dense, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: no rows", ErrOutputRows)
	}
	if d, ok := any(rows).([]*tensor.Dense); ok {
		entries := make([]any, len(rows))
		for i, r := range d {
			if r == nil {
				return nil, fmt.Errorf("%w: output row %d is a nil *tensor.Dense", ErrBadCallback, i)
			}
			entries[i] = r
		}
		b, err := batch.Stack(entries...)
		if err != nil {
			return nil, fmt.Errorf("%w: the output rows differ: %v", ErrBadCallback, err)
		}
		m, err := b.Materialize()
		if err != nil {
			return nil, err
		}
		return m.(*tensor.Dense), nil
	}
	width := reflect.ValueOf(rows[0]).Len()
	elem := reflect.TypeOf(rows[0]).Elem()
	all := reflect.MakeSlice(reflect.SliceOf(elem), len(rows)*width, len(rows)*width)
	for i, r := range rows {
		v := reflect.ValueOf(r)
		if v.Len() != width {
			return nil, fmt.Errorf("%w: output row %d has %d elements and row 0 has %d; output rows must be of one length",
				ErrBadCallback, i, v.Len(), width)
		}
		reflect.Copy(all.Slice(i*width, (i+1)*width), v)
	}
	return tensor.New(tensor.WithShape(len(rows), width), tensor.WithBacking(all.Interface())), nil
}

// resultRow converts the result of a one-row call to Out: as is, or, for
// slice rows, from the 1-D tensor a result crosses nodes as.
func resultRow[Out Row](res any) (Out, error) {
	if out, ok := res.(Out); ok {
		return out, nil
	}
	var zero Out
	dt, isSlice := sliceDtype(zero)
	d, ok := res.(*tensor.Dense)
	if !ok || !isSlice || d == nil || d.Dtype() != dt || d.Dims() != 1 {
		return zero, fmt.Errorf("%w: the result is %s, not a %T row", ErrRowType, describeValue(res), zero)
	}
	return tensorData(d).(Out), nil
}

// resultRows converts the result of a call of n rows (an output tensor of
// n rows) to n Outs.
func resultRows[Out Row](res any, n int) ([]Out, error) {
	d, ok := res.(*tensor.Dense)
	if !ok || d == nil {
		var zero Out
		return nil, fmt.Errorf("%w: the result is %s, not a tensor of %T rows", ErrRowType, describeValue(res), zero)
	}
	return splitRows[Out](d, n)
}

// describeValue names a value for errors: its type, and a tensor's dtype
// and shape.
func describeValue(v any) string {
	if d, ok := v.(*tensor.Dense); ok && d != nil {
		return fmt.Sprintf("a %v tensor of shape %v", d.Dtype(), d.Shape())
	}
	return fmt.Sprintf("%T", v)
}

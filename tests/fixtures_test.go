package tests

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/serving"
)

// doubler is the serving most tests run: it doubles float32 rows, counts
// its batches and rows, can announce each batch and hold it until the
// test lets go, and its distributed postprocessing tags each distributed
// result with the node it ran on: batch.Tuple{doubled rows, []byte(node)}.
type doubler struct {
	node string

	batches atomic.Int64
	rows    atomic.Int64

	// entered, if not nil, receives the size of each batch as its
	// execution starts (it must have room: executions never wait on it).
	entered chan int
	// gate holds executions while it is closed.
	gate gate
}

// failValue in a batch makes the doubler's execution fail with
// errDoublerFailed.
const failValue = -0.25

var errDoublerFailed = errors.New("doubler: told to fail")

// gate holds the goroutines that pass it while it is held.
type gate struct {
	mu sync.Mutex
	ch chan struct{} // guarded by mu; nil: open
}

// hold makes later passes wait until open.
func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
}

// open lets every waiting and later pass through.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

func (g *gate) pass() {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// newDoubler returns a doubler for a serving on nd.
func newDoubler(nd node.Node) *doubler { return &doubler{node: nd.Name()} }

// held makes every execution of d announce itself and wait until release;
// the test's cleanup releases it (before the nodes stop: cleanups run last
// in, first out).
func (d *doubler) held(t testing.TB) *doubler {
	d.entered = make(chan int, 1<<14)
	d.gate.hold()
	t.Cleanup(d.release)
	return d
}

// release lets d's executions run.
func (d *doubler) release() { d.gate.open() }

func (d *doubler) serving() *serving.Serving {
	m := serving.ModuleFuncs{
		HandleBatchFunc: func(b *batch.Batch, _ int, state any) (serving.ExecFunc, any, error) {
			return d.execute(b), state, nil
		},
	}
	return serving.NewModule(m, nil).DistributedPostprocessing(func(r any) (any, error) {
		return batch.Tuple{r, []byte(d.node)}, nil
	})
}

// execute returns the execution of batch b.
func (d *doubler) execute(b *batch.Batch) serving.ExecFunc {
	return func() (any, any, error) {
		d.batches.Add(1)
		d.rows.Add(int64(b.Size()))
		if d.entered != nil {
			select {
			case d.entered <- b.Size():
			default:
				panic("doubler: entered is full")
			}
		}
		d.gate.pass()
		in, err := b.Materialize()
		if err != nil {
			return nil, nil, err
		}
		if slices.Contains(values(in.(*tensor.Dense)), failValue) {
			return nil, nil, errDoublerFailed
		}
		out, err := in.(*tensor.Dense).MulScalar(float32(2), true)
		return out, "doubled on " + d.node, err
	}
}

// start starts d's serving as name on nd and stops it when the test ends.
func (d *doubler) start(t testing.TB, nd node.Node, o serving.Options) {
	t.Helper()
	o.Serving = d.serving()
	if o.BatchTimeout == 0 {
		o.BatchTimeout = time.Millisecond
	}
	if o.Shutdown == 0 {
		o.Shutdown = 5 * time.Second
	}
	_, err := serving.Start(nd, o)
	require.NoError(t, err)
}

// floats returns a batch of one scalar row per value.
func floats(vs ...float32) *batch.Batch {
	b, err := batch.Concatenate(tensor.New(tensor.WithShape(len(vs)), tensor.WithBacking(append([]float32(nil), vs...))))
	if err != nil {
		panic(err)
	}
	return b
}

// doubled returns each value times two.
func doubled(vs ...float32) []float32 {
	out := make([]float32, len(vs))
	for i, v := range vs {
		out[i] = 2 * v
	}
	return out
}

// tagged reads a distributed doubler's result: the rows and the node that
// ran them.
func tagged(res any) (rows []float32, node string, err error) {
	tup, ok := res.(batch.Tuple)
	if !ok || len(tup) != 2 {
		return nil, "", fmt.Errorf("result %T %v is not {rows, node}", res, res)
	}
	d, ok := tup[0].(*tensor.Dense)
	if !ok {
		return nil, "", fmt.Errorf("rows are %T, not a tensor", tup[0])
	}
	if rows = values(d); rows == nil {
		return nil, "", fmt.Errorf("rows are %T, not float32", d.Data())
	}
	nodeName, ok := tup[1].([]byte)
	if !ok {
		return nil, "", fmt.Errorf("node is %T, not a binary", tup[1])
	}
	return rows, string(nodeName), nil
}

// callTagged makes a distributed call of vs on name from nd and reads the
// doubler's tagged result.
func callTagged[T serving.Target](ctx context.Context, nd node.Node, name T, vs ...float32) ([]float32, string, error) {
	res, err := serving.BatchedRun(ctx, nd, name, floats(vs...))
	if err != nil {
		return nil, "", err
	}
	return tagged(res)
}

// countExecutions counts the batches of the serving named name that
// finish (telemetry, all nodes of this process), and their sizes.
func countExecutions(t testing.TB, name string) *executions {
	t.Helper()
	ex := &executions{}
	id := "tests." + t.Name()
	require.NoError(t, serving.AttachTelemetry(id, func(ev serving.Event) {
		if ev.Batch != nil && ev.Batch.Serving == name {
			ex.mu.Lock()
			ex.sizes = append(ex.sizes, ev.Batch.Size)
			ex.mu.Unlock()
		}
	}, serving.ExecuteStop))
	t.Cleanup(func() { _ = serving.DetachTelemetry(id) })
	return ex
}

type executions struct {
	mu    sync.Mutex
	sizes []int
}

func (e *executions) get() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int(nil), e.sizes...)
}

// values returns a float32 tensor's elements (nil for another dtype).
func values(d *tensor.Dense) []float32 {
	switch v := d.Data().(type) {
	case []float32:
		return v
	case float32: // a scalar's Data
		return []float32{v}
	}
	return nil
}

// timedResult is one call of a load loop: when it ran, the node that
// served it, and its error.
type timedResult struct {
	start, end time.Time
	node       string
	err        error
}

// timedCall makes a distributed call of {v, -v} on name from nd, with no
// deadline, and checks the rows: wrong rows are its error.
func timedCall(nd node.Node, name string, v float32) timedResult {
	c := timedResult{start: time.Now()}
	var rows []float32
	rows, c.node, c.err = callTagged(context.Background(), nd, serving.Distributed(name), v, -v)
	c.end = time.Now()
	if c.err == nil && !slices.Equal(rows, doubled(v, -v)) {
		c.err = fmt.Errorf("call %v got rows %v from %s", v, rows, c.node)
	}
	return c
}

package serving

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// execution is one batch announced by the executeSync module: it waits in
// its task until the test calls proceed or crash.
type execution struct {
	partition int
	key       string
	size      int
	pad       int
	input     []float32
	release   chan bool // true: continue, false: crash
}

func (x execution) proceed() { x.release <- true }
func (x execution) crash()   { x.release <- false }

// executeSync is Nx's ExecuteSync: each execution reports {:execute,
// partition, ...} and waits for :continue (→ batch*2, "metadata") or
// :crash (→ panic "oops").
type executeSync struct{ executions chan execution }

func newExecuteSync() executeSync { return executeSync{executions: make(chan execution, 1024)} }

func (executeSync) Init(_ Kind, _ any, partitions []compiler.Options) (any, error) { return nil, nil }

func (m executeSync) HandleBatch(b *batch.Batch, partition int, state any) (ExecFunc, any, error) {
	return func() (any, any, error) {
		in, err := b.Materialize()
		if err != nil {
			return nil, nil, err
		}
		x := execution{partition: partition, size: b.Size(), pad: b.Padding(), release: make(chan bool)}
		if d, ok := in.(interface{ Data() any }); ok {
			if fs, ok := d.Data().([]float32); ok {
				x.input = append([]float32(nil), fs...)
			}
		}
		m.executions <- x
		if !<-x.release {
			panic(errOops)
		}
		out, err := times2(in)
		return out, "metadata", err
	}, state, nil
}

var errOops = errors.New("oops")

// next waits for the next execution, failing the test after 10 s.
func (m executeSync) next(t testing.TB) execution {
	t.Helper()
	select {
	case x := <-m.executions:
		return x
	case <-time.After(10 * time.Second):
		t.Fatal("no execution started within 10 s")
		return execution{}
	}
}

// none asserts that no execution has been announced.
func (m executeSync) none(t testing.TB) {
	t.Helper()
	select {
	case x := <-m.executions:
		t.Fatalf("unexpected execution of %d rows on partition %d", x.size, x.partition)
	default:
	}
}

// awaitDone waits for a request to be answered, failing after 10 s.
func awaitDone(t testing.TB, r *request) {
	t.Helper()
	select {
	case <-r.done:
		r.done <- struct{}{} // put the token back for the caller's wait
	case <-time.After(10 * time.Second):
		t.Fatalf("request %d not answered within 10 s", r.id)
	}
}

// rows returns a batch concatenating n float32 rows of one value each,
// starting at first.
func rows(t testing.TB, first float32, n int) *batch.Batch {
	t.Helper()
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = first + float32(i)
	}
	b, err := batch.Concatenate(row(xs...))
	require.NoError(t, err)
	return b
}

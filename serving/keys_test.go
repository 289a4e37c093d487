package serving

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// halve is Nx's &Nx.divide(&1, 2) on float32 tensors.
func halve(in any) (any, error) {
	return in.(*tensor.Dense).DivScalar(float32(2), true)
}

// perKey compiles times2 for "double" and halve for "half", recording
// every (key, partition options) it compiles for.
type perKey struct {
	mu       sync.Mutex
	compiled []string
}

func (p *perKey) compile(key string, o compiler.Options) (compiler.Func, error) {
	p.mu.Lock()
	p.compiled = append(p.compiled, fmt.Sprintf("%s%v", key, o.BatchKeys))
	p.mu.Unlock()
	switch key {
	case "double", batch.DefaultKey, "foo", "bar":
		return compiler.JIT(times2, o)
	case "half":
		return compiler.JIT(halve, o)
	}
	return nil, fmt.Errorf("no function for key %q", key)
}

// Checklist §4.3 item 34: Nx's "batch keys".
func TestBatchKeys(t *testing.T) { // "batch keys"
	nd := testNode(t)
	pk := &perKey{}
	start(t, nd, Options{Serving: NewKeyed(pk.compile), BatchTimeout: 10 * time.Second, BatchSize: 3,
		BatchKeys: []string{"double", "half"}})
	assert.Equal(t, []string{"double[double half]", "half[double half]"}, pk.compiled,
		"one function per key, each partition's options carrying the keys")

	_, err := BatchedRun(context.Background(), nd, t.Name(), rows(t, 0, 3))
	require.ErrorIs(t, err, ErrBatchKey)
	assert.Equal(t, `serving: unknown batch key: "default" (expected one of ["double" "half"]); set the batch's key `+
		`with SetKey, or start the serving with that key in Options.BatchKeys`, err.Error())

	t1 := async(nd, t.Name(), keyed(t, "double", 0, 2))
	waitStats(t, nd, t.Name(), func(st Stats) bool { return st.StackedRows == 2 })
	t2 := await(t, async(nd, t.Name(), keyed(t, "half", 0, 3)))
	require.NoError(t, t2.err)
	assert.Equal(t, []float32{0, 0.5, 1}, floats(t, t2.out), "half fills its own batch and runs first")
	pendingCall(t, t1)

	t3 := async(nd, t.Name(), keyed(t, "double", 0, 1))
	r1, r3 := await(t, t1), await(t, t3)
	require.NoError(t, r1.err)
	require.NoError(t, r3.err)
	assert.Equal(t, []float32{0, 2}, floats(t, r1.out))
	assert.Equal(t, []float32{0}, floats(t, r3.out))
}

// Checklist §4.2 item 19: Nx's run "with function and batch key": Run
// compiles for the key of its input's batch.
func TestRunWithFunctionAndBatchKey(t *testing.T) { // "with function and batch key"
	pk := &perKey{}
	s := NewKeyed(pk.compile)
	for _, key := range []string{"foo", "bar"} {
		out, err := Run(context.Background(), s, keyed(t, key, 1, 3))
		require.NoError(t, err)
		assert.Equal(t, []float32{2, 4, 6}, floats(t, out))
	}
	assert.Equal(t, []string{"foo[foo]", "bar[bar]"}, pk.compiled)
}

// Nx's "1=1" (newest): Init gets the keys in every partition's options.
func TestBatchKeysReachInit(t *testing.T) {
	nd := testNode(t)
	m := newSimple()
	start(t, nd, Options{Serving: NewModule(m, nil, compiler.WithMaxConcurrency(2)), Partitions: CompilerPartitions,
		BatchKeys: []string{"a", "b"}})
	init := <-m.events
	require.Len(t, init.partitions, 2)
	for _, o := range init.partitions {
		assert.Equal(t, []string{"a", "b"}, o.BatchKeys)
	}

	nd2 := testNode(t)
	start(t, nd2, Options{Serving: NewModule(m, nil)})
	init = <-m.events
	assert.Equal(t, []string{batch.DefaultKey}, init.partitions[0].BatchKeys)
}

func TestBatchKeysInvalidOptions(t *testing.T) {
	nd := testNode(t)
	for _, keys := range [][]string{{"a", "a"}, {"a", ""}} {
		_, err := Start(nd, Options{Name: "x", Serving: doubling(), BatchKeys: keys})
		require.ErrorIs(t, err, ErrInvalidOptions, "keys %q", keys)
	}
	// Keys on the Serving's process options count too.
	s := doubling().ProcessOptions(ProcessOptions{BatchKeys: []string{"p"}})
	start(t, nd, Options{Serving: s, BatchSize: 1})
	_, err := BatchedRun(context.Background(), nd, t.Name(), keyed(t, "p", 1, 1))
	require.NoError(t, err)
}

// Stats and telemetry carry the key.
func TestBatchKeysStatsAndTelemetry(t *testing.T) {
	events := recordTelemetry(t, ExecuteStop)
	m := newExecuteSync()
	e := testEngineKeys(t, NewModule(m, nil), 2, 1, []string{"a", "b"})

	busy := submit(t, e, keyed(t, "a", 1, 2))
	x := m.next(t)
	q := submit(t, e, keyed(t, "b", 10, 2))
	s := submit(t, e, keyed(t, "a", 20, 1))
	st := e.stats()
	assert.Equal(t, []KeyStats{{Key: "a", StackedRows: 1}, {Key: "b", QueuedBatches: 1, QueuedRows: 2}}, st.Keys)
	assert.Equal(t, 1, st.StackedRows)
	assert.Equal(t, 2, st.QueuedRows)

	x.proceed()
	assert.Equal(t, "a", (<-events).Batch.Key)
	m.next(t).proceed()
	assert.Equal(t, "b", (<-events).Batch.Key)
	for _, r := range []*request{busy, q} {
		_, err := answer(t, e, r)
		require.NoError(t, err)
	}
	e.cancel(s, context.Canceled)
}

// testEngineKeys is testEngine with batch keys.
func testEngineKeys(t testing.TB, s *Serving, batchSize, partitions int, keys []string) *engine {
	t.Helper()
	parts := make([]compiler.Options, partitions)
	for i := range parts {
		parts[i] = s.defn
		parts[i].BatchKeys = keys
	}
	state, err := callInit(s.module, Process, s.arg, parts)
	require.NoError(t, err)
	e := newEngine(engineConfig{
		name: t.Name(), serving: s, batchSize: batchSize, batchTimeout: 100 * time.Millisecond,
		shutdownTimeout: 10 * time.Second, partitions: parts, clock: newFakeClock(), keys: keys,
	}, state)
	t.Cleanup(e.shutdown)
	return e
}

// Batches of different keys share the partitions in the order they
// became ready: a key's partial stack that times out behind full batches
// of another key runs in its turn, before the full batches that became
// ready after it.
func TestBatchKeysShareThePartitionsInOrder(t *testing.T) {
	m := newExecuteSync()
	clock := newFakeClock()
	parts := []compiler.Options{{}}
	e := newEngine(engineConfig{name: t.Name(), serving: NewModule(m, nil), batchSize: 2, batchTimeout: time.Millisecond,
		shutdownTimeout: 10 * time.Second, partitions: parts, clock: clock, keys: []string{"busy", "rare"}}, nil)
	t.Cleanup(e.shutdown)

	var reqs []*request
	reqs = append(reqs, submit(t, e, keyed(t, "busy", 0, 2)))
	running := m.next(t)
	for i := 1; i <= 3; i++ {
		reqs = append(reqs, submit(t, e, keyed(t, "busy", float32(10*i), 2)))
	}
	reqs = append(reqs, submit(t, e, keyed(t, "rare", 100, 1)))
	require.Equal(t, 1, clock.fire(), "only the rare key's stack has a timer")
	for i := 4; i <= 6; i++ {
		reqs = append(reqs, submit(t, e, keyed(t, "busy", float32(10*i), 2)))
	}
	var order []float32
	for i := 0; i < 7; i++ {
		running.proceed()
		running = m.next(t)
		order = append(order, running.input[0])
	}
	running.proceed()
	assert.Equal(t, []float32{10, 20, 30, 100, 40, 50, 60}, order)
	for _, r := range reqs {
		_, err := answer(t, e, r)
		require.NoError(t, err)
	}
}

// Under load no key starves another: while callers of one key keep every
// partition busy with full batches (the queue never empties), a lone row
// of another key still runs once its batch times out.
func TestBatchKeysNoKeyStarvesAnother(t *testing.T) {
	nd := testNode(t)
	s := NewModule(ModuleFuncs{HandleBatchFunc: func(b *batch.Batch, _ int, st any) (ExecFunc, any, error) {
		return func() (any, any, error) {
			in, err := b.Materialize()
			if err != nil {
				return nil, nil, err
			}
			time.Sleep(200 * time.Microsecond) // the work of a batch: keeps the queue from emptying
			out, err := times2(in)
			return out, nil, err
		}, st, nil
	}}, nil)
	start(t, nd, Options{Serving: s, BatchSize: 4, BatchTimeout: 2 * time.Millisecond, BatchKeys: []string{"busy", "rare"}})

	stop := make(chan struct{})
	var flooded atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := BatchedRun(context.Background(), nd, t.Name(), keyed(nopTB{t}, "busy", 1, 4)); err != nil {
					errs <- err
					return
				}
				flooded.Add(1)
			}
		}()
	}
	waitStats(t, nd, t.Name(), func(st Stats) bool { return st.QueuedBatches >= 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := flooded.Load()
	out, err := BatchedRun(ctx, nd, t.Name(), keyed(t, "rare", 7, 1))
	during := flooded.Load() - before
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, err, "the rare key starved")
	assert.Equal(t, []float32{14}, floats(t, out))
	assert.Positive(t, during, "the busy key kept the serving busy meanwhile")
}

// WaitWhenFull and MaxQueue count the rows of every key.
func TestBatchKeysShareTheQueueBound(t *testing.T) {
	m := newExecuteSync()
	e := testEngineKeys(t, NewModule(m, nil), 2, 1, []string{"a", "b"})
	e.maxQueue = 3
	busy := submit(t, e, keyed(t, "a", 1, 2))
	x := m.next(t)
	a := submit(t, e, keyed(t, "a", 10, 2))
	b := submit(t, e, keyed(t, "b", 20, 1))
	_, err := e.submit(context.Background(), keyed(t, "b", 30, 1), false, false)
	var over *OverloadedError
	require.ErrorAs(t, err, &over)
	assert.Equal(t, 3, over.Waiting)
	x.proceed()
	m.next(t).proceed()
	require.Equal(t, 1, e.clock.(*fakeClock).fire())
	m.next(t).proceed()
	for _, r := range []*request{busy, a, b} {
		_, err := answer(t, e, r)
		require.NoError(t, err)
	}
}

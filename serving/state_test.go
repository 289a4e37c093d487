package serving

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/batch"
)

// Unit tests of the state machine alone, event by event, with batch
// keys: no engine, no goroutines, no clock. machine.check runs after
// every step.

// machineRun drives a machine and records what it asks for.
type machineRun struct {
	t    *testing.T
	m    *machine
	next float32 // next row value
}

func newMachineRun(t *testing.T, limit, partitions, keys int) *machineRun {
	now := time.Unix(1_700_000_000, 0)
	return &machineRun{t: t, m: newMachine(limit, partitions, keys, func() time.Time { return now }), next: 1}
}

// push stacks a request of n rows under key and returns it with the
// actions it caused.
func (mr *machineRun) push(key, n int) (*request, []action) {
	mr.t.Helper()
	b := rows(mr.t, mr.next, n)
	mr.next += float32(n)
	r := newRequest(n)
	mr.m.push(r, key, b)
	return r, mr.actions()
}

func (mr *machineRun) actions() []action {
	mr.t.Helper()
	require.NoError(mr.t, mr.m.check())
	return mr.m.takeActions()
}

// executed returns the batches the actions run: key, partition, first row
// value and rows of each.
type ran struct{ key, partition, rows int }

func executed(acts []action) []ran {
	var out []ran
	for _, a := range acts {
		if a.kind == actExecute {
			out = append(out, ran{key: int(a.key), partition: a.partition, rows: a.batch.count})
		}
	}
	return out
}

// armed returns the generation of the timer the actions arm for key, or 0.
func armed(acts []action, key int) uint64 {
	for _, a := range acts {
		if a.kind == actArm && int(a.key) == key {
			return a.gen
		}
	}
	return 0
}

func TestMachineEachKeyHasItsOwnStackAndTimer(t *testing.T) {
	mr := newMachineRun(t, 2, 1, 2)
	_, acts := mr.push(0, 1)
	g0 := armed(acts, 0)
	require.NotZero(t, g0, "key 0's first rows arm its timer")
	_, acts = mr.push(1, 1)
	g1 := armed(acts, 1)
	require.NotZero(t, g1, "key 1 has a timer of its own")
	assert.NotEqual(t, g0, g1)
	assert.Empty(t, executed(acts), "rows of two keys never fill one batch")
	assert.Equal(t, 2, mr.m.stackedRows())

	_, acts = mr.push(1, 1)
	assert.Equal(t, []ran{{key: 1, partition: 0, rows: 2}}, executed(acts))
	assert.Contains(t, acts, action{kind: actDisarm, key: 1, gen: g1})

	// Key 1's old timer is stale; key 0's still runs its stack.
	mr.m.timeout(1, g1)
	assert.Empty(t, mr.actions())
	mr.m.taskDone(0)
	assert.Empty(t, mr.actions())
	mr.m.timeout(0, g0)
	assert.Equal(t, []ran{{key: 0, partition: 0, rows: 1}}, executed(mr.actions()))
}

// Ready batches take free partitions in the order they became ready,
// whatever their keys (Nx's in_queue): a key never overtakes another.
func TestMachineReadyBatchesRunInTheOrderTheyBecameReady(t *testing.T) {
	mr := newMachineRun(t, 1, 1, 3)
	_, acts := mr.push(0, 1) // runs: the only partition is busy from now on
	require.Len(t, executed(acts), 1)
	order := []int{1, 0, 2, 0, 1, 1, 2}
	for _, k := range order {
		_, acts = mr.push(k, 1)
		assert.Empty(t, executed(acts))
	}
	assert.Equal(t, len(order), mr.m.queuedBatchCount())
	for _, want := range order {
		mr.m.taskDone(0)
		got := executed(mr.actions())
		require.Len(t, got, 1)
		assert.Equal(t, want, got[0].key)
	}
	mr.m.taskDone(0)
	assert.Empty(t, mr.actions())
}

// A stack that times out while every partition is busy gets in line at
// that moment and keeps growing; full batches of a busier key that become
// ready later do not overtake it (no key starves another).
func TestMachineTimedOutStackKeepsItsPlaceInLine(t *testing.T) {
	mr := newMachineRun(t, 3, 1, 2)
	_, acts := mr.push(0, 3)
	require.Len(t, executed(acts), 1) // busy
	_, acts = mr.push(1, 1)           // the rare key: one row
	g := armed(acts, 1)
	mr.push(0, 3) // ready before the timeout
	mr.m.timeout(1, g)
	assert.Empty(t, executed(mr.actions()))
	mr.push(1, 1) // still stacking after the timeout
	mr.push(0, 3) // ready after the timeout
	mr.push(0, 3)

	var got []ran
	for i := 0; i < 4; i++ {
		mr.m.taskDone(0)
		got = append(got, executed(mr.actions())...)
	}
	assert.Equal(t, []ran{{0, 0, 3}, {1, 0, 2}, {0, 0, 3}, {0, 0, 3}}, got)
}

// A timed-out stack that fills up runs as a full batch, in its place.
func TestMachineTimedOutStackFillsUp(t *testing.T) {
	mr := newMachineRun(t, 2, 1, 2)
	mr.push(0, 2) // busy
	_, acts := mr.push(1, 1)
	mr.m.timeout(1, armed(acts, 1))
	mr.actions()
	mr.push(0, 2)
	mr.push(1, 1) // fills the timed-out stack
	assert.Equal(t, 2, mr.m.queuedBatchCount())
	assert.Equal(t, 0, mr.m.stackedRows())
	mr.m.taskDone(0)
	assert.Equal(t, []ran{{1, 0, 2}}, executed(mr.actions()))
	mr.m.taskDone(0)
	assert.Equal(t, []ran{{0, 0, 2}}, executed(mr.actions()))
}

// Taking a request out leaves nothing in line for it: a ready batch or a
// timed-out stack left empty gives up its place.
func TestMachineRemoveGivesUpThePlaceInLine(t *testing.T) {
	mr := newMachineRun(t, 2, 1, 2)
	mr.push(0, 2) // busy
	gone, _ := mr.push(1, 2)
	stacked, acts := mr.push(1, 1)
	mr.m.timeout(1, armed(acts, 1))
	mr.actions()
	kept, _ := mr.push(0, 2)
	assert.Equal(t, 2, mr.m.remove(gone))
	mr.actions()
	assert.Equal(t, 1, mr.m.remove(stacked))
	mr.actions()
	assert.Equal(t, 0, mr.m.remove(stacked))
	mr.m.taskDone(0)
	got := mr.actions()
	require.Len(t, executed(got), 1)
	assert.Equal(t, kept, got[0].batch.parts[0].req)
	mr.m.taskDone(0)
	assert.Empty(t, mr.actions())
}

// With streaming hooks a request is never split: one that does not fit in
// what is left of the stack runs the stack first (Nx: "AA0 -> BB0").
func TestMachineHooksNeverSplitARequest(t *testing.T) {
	mr := newMachineRun(t, 3, 2, 1)
	mr.m.noSplit = true
	_, acts := mr.push(0, 2)
	g := armed(acts, 0)
	_, acts = mr.push(0, 2)
	assert.Equal(t, []ran{{0, 0, 2}}, executed(acts))
	assert.Contains(t, acts, action{kind: actDisarm, key: 0, gen: g})
	assert.NotZero(t, armed(acts, 0), "the second request starts a stack with a timer")
	_, acts = mr.push(0, 1)
	assert.Equal(t, []ran{{0, 1, 3}}, executed(acts))
}

// Without hooks the same requests are split to fill every batch.
func TestMachineSplitsWithoutHooks(t *testing.T) {
	mr := newMachineRun(t, 3, 2, 1)
	mr.push(0, 2)
	_, acts := mr.push(0, 2)
	assert.Equal(t, []ran{{0, 0, 3}}, executed(acts))
	assert.Equal(t, 1, mr.m.stackedRows())
}

func TestMachineDrainAnswersEveryKey(t *testing.T) {
	mr := newMachineRun(t, 2, 1, 2)
	mr.push(0, 2)
	a, _ := mr.push(1, 2)
	b, _ := mr.push(0, 1)
	c, _ := mr.push(1, 1)
	got := mr.m.drain()
	assert.ElementsMatch(t, []*request{a, b, c}, got)
	assert.Equal(t, a, got[0], "ready batches first")
	acts := mr.actions()
	assert.Empty(t, executed(acts))
	assert.Equal(t, 0, mr.m.waitingRows())
}

func TestMachineKeyStats(t *testing.T) {
	mr := newMachineRun(t, 2, 1, 2)
	mr.push(0, 2)
	mr.push(1, 2)
	mr.push(1, 2)
	mr.push(0, 1)
	st, qb, qr := mr.m.keyStats(0)
	assert.Equal(t, [3]int{1, 0, 0}, [3]int{st, qb, qr})
	st, qb, qr = mr.m.keyStats(1)
	assert.Equal(t, [3]int{0, 2, 4}, [3]int{st, qb, qr})
	assert.Equal(t, 5, mr.m.waitingRows())
}

// keyed is a batch of rows with a key.
func keyed(t testing.TB, key string, first float32, n int) *batch.Batch {
	t.Helper()
	b := rows(t, first, n)
	b.SetKey(key)
	return b
}

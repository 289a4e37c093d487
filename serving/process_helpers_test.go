package serving

import (
	"context"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/testnode"
)

// testNode starts a node for one test (stopped at its end).
func testNode(t testing.TB) node.Node {
	t.Helper()
	return testnode.Start(t, testnode.Options{})
}

// start starts a serving named after the test and stops it at the end.
func start(t testing.TB, nd node.Node, opts Options) *Handle {
	t.Helper()
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	sup, err := Start(nd, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = Stop(ctx, nd, opts.Name)
	})
	return sup
}

// result is one BatchedRun's outcome.
type result struct {
	out any
	err error
}

// async calls BatchedRun in a goroutine; the result arrives on the
// returned channel.
func async(nd node.Node, name string, input any) <-chan result {
	ch := make(chan result, 1)
	go func() {
		out, err := BatchedRun(context.Background(), nd, name, input)
		ch <- result{out, err}
	}()
	return ch
}

// await waits for an async result, failing the test after 10 s.
func await(t testing.TB, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("BatchedRun did not return within 10 s")
		return result{}
	}
}

// pending asserts that an async call has not returned.
func pendingCall(t testing.TB, ch <-chan result) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("call returned early: %v, %v", r.out, r.err)
	default:
	}
}

// waitStats polls the serving's stats until cond holds (bounded: fails the
// test after 10 s). It is how tests wait for callers to reach the serving.
func waitStats(t testing.TB, nd node.Node, name string, cond func(Stats) bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := GetStats(nd, name)
		return err == nil && cond(st)
	}, 10*time.Second, 200*time.Microsecond)
}

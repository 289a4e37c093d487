package actors

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/internal/safelog"
)

// captureLogs routes safelog.Default to a buffer, three lines per key
// per hour, for the test; nothing else may log meanwhile.
func captureLogs(t *testing.T) func() []string {
	t.Helper()
	var mu sync.Mutex
	var buf bytes.Buffer
	l := safelog.NewLimiter(3, time.Hour)
	l.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	old := safelog.Default
	safelog.Default = l
	t.Cleanup(func() { safelog.Default = old })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A task supervisor is registered under a well-known name: whatever a
// peer sends it (a list nested a million deep, a 100 MB binary) is logged
// in a bounded line, at most three times an hour here, and a task that
// panics with such a value too.
func TestTaskSupervisorLogsBoundedLines(t *testing.T) {
	lines := captureLogs(t)
	var deep etf.Term = etf.List{}
	for range 1_000_000 {
		deep = etf.List{deep}
	}
	huge := make([]byte, 100<<20)
	ts := NewTaskSupervisor(time.Minute)
	for range 5 {
		assert.Empty(t, ts.HandleMessage(nil, etf.Pid{}, deep))
	}
	assert.Empty(t, ts.HandleMessage(nil, etf.Pid{}, etf.Tuple{huge}))
	done := make(chan struct{})
	require.NoError(t, ts.Go(func() { defer close(done); panic(etf.Tuple{etf.Atom("bad"), huge}) }))
	<-done
	require.Eventually(t, func() bool { return ts.Running() == 0 }, 5*time.Second, time.Millisecond)
	ts.stopAndWait()

	got := lines()
	require.Len(t, got, 4, "3 lines of the flood, then the panic:\n%s", strings.Join(got, "\n"))
	for _, l := range got[:3] {
		assert.Contains(t, l, "unexpected message")
		assert.Less(t, len(l), 2*safelog.DefaultMaxBytes)
	}
	assert.Contains(t, got[3], `panic="{bad,<<0,0,0`)
	assert.Contains(t, got[3], "(+104857536 bytes)")
	// The panic's line carries its stack; the value in it is bounded.
	assert.Less(t, len(got[3]), 16<<10)
}

package safelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter(lines int, per time.Duration) (*Limiter, *fakeClock) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := NewLimiter(lines, per)
	l.now = c.now
	return l, c
}

func TestLimiterLetsBurstThroughThenCounts(t *testing.T) {
	l, clock := newTestLimiter(10, time.Second)
	allowed := 0
	for range 100 {
		if ok, suppressed := l.Allow("k"); ok {
			allowed++
			assert.Zero(t, suppressed)
		}
	}
	assert.Equal(t, 10, allowed, "a burst of Lines")

	// One token every Per/Lines.
	clock.advance(100 * time.Millisecond)
	ok, suppressed := l.Allow("k")
	assert.True(t, ok)
	assert.Equal(t, 90, suppressed)
	ok, _ = l.Allow("k")
	assert.False(t, ok)

	// After a whole period the burst is back.
	clock.advance(time.Second)
	for i := range 10 {
		ok, suppressed := l.Allow("k")
		assert.True(t, ok, "line %d", i)
		if i == 0 {
			assert.Equal(t, 1, suppressed)
		} else {
			assert.Zero(t, suppressed)
		}
	}
}

func TestLimiterKeysAreIndependent(t *testing.T) {
	l, _ := newTestLimiter(1, time.Second)
	ok, _ := l.Allow("a")
	assert.True(t, ok)
	ok, _ = l.Allow("a")
	assert.False(t, ok)
	ok, _ = l.Allow("b")
	assert.True(t, ok)
}

// A flood of distinct keys keeps at most MaxKeys (plus the shared
// overflow bucket); idle keys make room again.
func TestLimiterBoundsKeys(t *testing.T) {
	l, clock := newTestLimiter(1, time.Second)
	l.MaxKeys = 4
	allowed := 0
	for i := range 1000 {
		if ok, _ := l.Allow(fmt.Sprint("key", i)); ok {
			allowed++
		}
	}
	assert.Len(t, l.keys, 5)
	assert.Contains(t, l.keys, overflowKey)
	assert.Equal(t, 5, allowed, "4 keys and one line of the shared overflow bucket")

	clock.advance(time.Second)
	ok, suppressed := l.Allow("fresh")
	assert.True(t, ok)
	assert.Zero(t, suppressed)
	assert.Len(t, l.keys, 1, "the idle keys were forgotten")
}

func TestLimiterLogAddsSuppressed(t *testing.T) {
	var buf bytes.Buffer
	l, clock := newTestLimiter(2, time.Second)
	l.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	for i := range 50 {
		l.Warn("flood", "bad message", "i", i)
	}
	clock.advance(500 * time.Millisecond)
	l.Warn("flood", "bad message", "i", 50)
	l.Info("other", "unrelated")
	assert.Equal(t, strings.Join([]string{
		`level=WARN msg="bad message" i=0`,
		`level=WARN msg="bad message" i=1`,
		`level=WARN msg="bad message" i=50 suppressed=48`,
		`level=INFO msg=unrelated`,
		``,
	}, "\n"), buf.String())
}

// A level the logger does not write takes no token.
func TestLimiterDisabledLevelCostsNoToken(t *testing.T) {
	var buf bytes.Buffer
	l, _ := newTestLimiter(1, time.Second)
	l.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for range 10 {
		l.Info("k", "quiet")
	}
	l.Warn("k", "loud")
	assert.Equal(t, 1, strings.Count(buf.String(), "\n"))
	assert.Contains(t, buf.String(), "loud")
	assert.NotContains(t, buf.String(), "suppressed")
}

func TestLimiterConcurrentUse(t *testing.T) {
	l := NewLimiter(5, time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if ok, _ := l.Allow("k"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 5, allowed)
}

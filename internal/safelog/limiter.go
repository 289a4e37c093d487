package safelog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The defaults of NewLimiter's zero arguments and of Default: ten lines of
// a key per second (a burst of ten at once), which keeps a flood of one
// kind of line from drowning the others while still showing its first
// occurrences in full.
const (
	DefaultLines   = 10
	DefaultPer     = time.Second
	DefaultMaxKeys = 1024
)

// overflowKey is the bucket shared by the keys that did not fit in
// MaxKeys.
const overflowKey = "safelog.overflow"

// Limiter lets at most Lines lines of each key through per Per, and counts
// the rest: the next line of a key that it lets through carries the
// number held back since the previous one (Allow's suppressed, the
// attribute suppressed=K of Log). A key that has been idle for Per is
// forgotten when room is needed; at most MaxKeys keys are kept, and lines
// of keys beyond that share one bucket, so a stream of distinct keys
// costs bounded memory.
//
// A Limiter is safe for concurrent use. Allow takes a mutex and allocates
// only for a key it has not seen. The fields must be set before first use.
type Limiter struct {
	// Lines is the number of lines of a key let through per Per, and the
	// burst let through at once. Zero means DefaultLines.
	Lines int
	// Per is the period of Lines. Zero means DefaultPer.
	Per time.Duration
	// MaxKeys bounds the number of keys tracked. Zero means
	// DefaultMaxKeys.
	MaxKeys int
	// Logger receives what Log lets through. Nil means slog.Default() at
	// the time of the call.
	Logger *slog.Logger

	// now is the clock; tests replace it.
	now func() time.Time

	mu      sync.Mutex
	keys    map[string]*keyState // guarded by mu
	evicted time.Time            // guarded by mu: the last eviction scan
}

type keyState struct {
	bucket     *rate.Limiter
	suppressed int       // lines held back since the last one let through
	last       time.Time // of the last line, let through or not
}

// Default is the limiter of the package-level Warn, Error and Info, with
// the default limits, logging to slog.Default(). A test may replace it
// while nothing logs.
var Default = &Limiter{}

// NewLimiter returns a limiter of lines per per (zero values mean the
// defaults).
func NewLimiter(lines int, per time.Duration) *Limiter {
	return &Limiter{Lines: lines, Per: per}
}

func (l *Limiter) lines() int {
	if l.Lines <= 0 {
		return DefaultLines
	}
	return l.Lines
}

func (l *Limiter) per() time.Duration {
	if l.Per <= 0 {
		return DefaultPer
	}
	return l.Per
}

func (l *Limiter) maxKeys() int {
	if l.MaxKeys <= 0 {
		return DefaultMaxKeys
	}
	return l.MaxKeys
}

func (l *Limiter) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// Allow reports whether a line of key may be written now. When it may,
// suppressed is the number of lines of key held back since the last one
// let through; write it with the line.
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.stateLocked(key, now)
	k.last = now
	if !k.bucket.AllowN(now, 1) {
		k.suppressed++
		return false, 0
	}
	suppressed, k.suppressed = k.suppressed, 0
	return true, suppressed
}

// stateLocked finds or makes the state of key. Requires l.mu.
func (l *Limiter) stateLocked(key string, now time.Time) *keyState {
	if l.keys == nil {
		l.keys = make(map[string]*keyState)
	}
	if k, ok := l.keys[key]; ok {
		return k
	}
	if len(l.keys) >= l.maxKeys() {
		l.evictLocked(now)
		if len(l.keys) >= l.maxKeys() {
			if k, ok := l.keys[overflowKey]; ok {
				return k
			}
			// The overflow bucket may take the map one past MaxKeys.
			key = overflowKey
		}
	}
	k := &keyState{bucket: rate.NewLimiter(rate.Every(l.per()/time.Duration(l.lines())), l.lines())}
	l.keys[key] = k
	return k
}

// evictLocked forgets the keys idle for at least Per: their buckets are
// full again, so a new one behaves the same. A count of suppressed lines
// not yet reported is lost with its key. It scans only when the map is
// full and at most once per Per, so that a flood of new keys costs O(1)
// a line. Requires l.mu.
func (l *Limiter) evictLocked(now time.Time) {
	if !l.evicted.IsZero() && now.Sub(l.evicted) < l.per() {
		return
	}
	l.evicted = now
	for key, k := range l.keys {
		if now.Sub(k.last) >= l.per() {
			delete(l.keys, key)
		}
	}
}

// Log writes msg with args at level through Logger, if a line of key may
// be written now, adding suppressed=K when K lines of key were held back
// since the last one. Format terms in args with T. A level the logger
// does not write costs no token.
func (l *Limiter) Log(ctx context.Context, level slog.Level, key, msg string, args ...any) {
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if !logger.Enabled(ctx, level) {
		return
	}
	ok, suppressed := l.Allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, slog.Int("suppressed", suppressed))
	}
	logger.Log(ctx, level, msg, args...)
}

// Warn logs at slog.LevelWarn through l; see Log.
func (l *Limiter) Warn(key, msg string, args ...any) {
	l.Log(context.Background(), slog.LevelWarn, key, msg, args...)
}

// Error logs at slog.LevelError through l; see Log.
func (l *Limiter) Error(key, msg string, args ...any) {
	l.Log(context.Background(), slog.LevelError, key, msg, args...)
}

// Info logs at slog.LevelInfo through l; see Log.
func (l *Limiter) Info(key, msg string, args ...any) {
	l.Log(context.Background(), slog.LevelInfo, key, msg, args...)
}

// Warn logs at slog.LevelWarn through Default.
func Warn(key, msg string, args ...any) { Default.Warn(key, msg, args...) }

// Error logs at slog.LevelError through Default.
func Error(key, msg string, args ...any) { Default.Error(key, msg, args...) }

// Info logs at slog.LevelInfo through Default.
func Info(key, msg string, args ...any) { Default.Info(key, msg, args...) }

package erldist

import (
	"encoding/hex"
	"log/slog"
	"sync"
	"time"
)

// logLimiter logs each kind of event at most once per interval, with the
// count of those it kept quiet about: a peer that sends a million
// malformed messages costs a few log lines, not a million.
type logLimiter struct {
	log      *slog.Logger
	interval time.Duration

	mu    sync.Mutex // guards kinds
	kinds map[string]*logState
}

type logState struct {
	last       time.Time
	suppressed int
}

func newLogLimiter(log *slog.Logger) *logLimiter {
	return &logLimiter{log: log, interval: time.Minute, kinds: make(map[string]*logState)}
}

// warn logs msg under kind unless kind was logged within the interval.
func (l *logLimiter) warn(kind, msg string, args ...any) {
	l.mu.Lock()
	st := l.kinds[kind]
	if st == nil {
		st = &logState{}
		l.kinds[kind] = st
	}
	now := time.Now()
	if !st.last.IsZero() && now.Sub(st.last) < l.interval {
		st.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed_since_last", suppressed)
	}
	l.log.Warn(msg, args...)
}

// prefix renders at most the first 64 bytes of b in hex: what a log line
// may show of a packet (a huge term is never formatted).
func prefix(b []byte) string {
	const n = 64
	if len(b) <= n {
		return hex.EncodeToString(b)
	}
	return hex.EncodeToString(b[:n]) + "..."
}

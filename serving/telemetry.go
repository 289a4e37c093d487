package serving

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// EventName names a telemetry event. The names follow Nx's
// [:nx, :serving, ...] events, dot-separated.
type EventName string

// Telemetry events. Each operation emits a start event, then a stop event
// on success or an exception event on failure (:telemetry.span's shape).
const (
	// Execute* surround the execution of one batch: inline in Run, on a
	// partition worker in a serving process.
	ExecuteStart     EventName = "nx.serving.execute.start"
	ExecuteStop      EventName = "nx.serving.execute.stop"
	ExecuteException EventName = "nx.serving.execute.exception"
	// Preprocessing* surround a custom ClientPreprocessing (not emitted
	// for the default one), in the caller's goroutine.
	PreprocessingStart     EventName = "nx.serving.preprocessing.start"
	PreprocessingStop      EventName = "nx.serving.preprocessing.stop"
	PreprocessingException EventName = "nx.serving.preprocessing.exception"
	// Postprocessing* surround a custom ClientPostprocessing, in the
	// caller's goroutine.
	PostprocessingStart     EventName = "nx.serving.postprocessing.start"
	PostprocessingStop      EventName = "nx.serving.postprocessing.stop"
	PostprocessingException EventName = "nx.serving.postprocessing.exception"
)

// Event is one telemetry event. Which fields are set depends on the event,
// as in Nx:
//
//   - execute start: Module; stop: Module, Metadata; exception: Module, Err.
//   - preprocessing start: Input; stop: Input, Info; exception: Input, Err.
//   - postprocessing start: Info, Metadata, Output (the caller's rows);
//     stop: the same with Output replaced by the postprocessed result;
//     exception: Info, Metadata, Err.
//
// Execute events of a serving process also carry Batch, the measurements
// Nx never had.
type Event struct {
	Name EventName
	// Duration is the time since the matching start event (stop and
	// exception events only).
	Duration time.Duration
	Module   string
	Metadata any
	Input    any
	Info     any
	Output   any
	Err      error
	Batch    *BatchStats
}

// BatchStats describes one batch run by a serving process.
type BatchStats struct {
	// Serving is the serving's name, Node the node it runs on (several
	// nodes in one process share telemetry handlers).
	Serving string
	Node    string
	// Key is the batch's key (batch.DefaultKey unless the serving has
	// Options.BatchKeys): a batch never mixes keys.
	Key string
	// Partition the batch ran on.
	Partition int
	// Size is the number of rows, Padding the zero rows HandleBatch asked
	// for on top of them (as known before execution).
	Size, Padding int
	// Requests is the number of caller requests (or parts of requests)
	// in the batch.
	Requests int
	// QueueWait is the time from the first row's arrival at the serving
	// to the start of execution.
	QueueWait time.Duration
	// Execution is the time the execution took (stop and exception
	// events).
	Execution time.Duration
}

// Handler receives telemetry events. Handlers run synchronously in the
// goroutine that emits the event (a caller or a partition worker), so
// they must be fast and safe for concurrent use. A handler that panics is
// detached, as :telemetry does.
type Handler func(Event)

type attached struct {
	id string
	h  Handler
}

// handlers is an immutable snapshot: event name → handlers. Emitters load
// it with one atomic read, so that a serving with no handlers pays almost
// nothing per event.
type handlers map[EventName][]attached

var (
	telemetryMu sync.Mutex // serialises writers of telemetry
	telemetry   atomic.Pointer[handlers]
)

// allEvents lists every event, for handlers attached without names.
var allEvents = []EventName{
	ExecuteStart, ExecuteStop, ExecuteException,
	PreprocessingStart, PreprocessingStop, PreprocessingException,
	PostprocessingStart, PostprocessingStop, PostprocessingException,
}

// AttachTelemetry calls h for the named events (all events when names is
// empty) until DetachTelemetry(id).
func AttachTelemetry(id string, h Handler, names ...EventName) error {
	if h == nil {
		return fmt.Errorf("serving: AttachTelemetry %q: nil handler", id)
	}
	if len(names) == 0 {
		names = allEvents
	}
	telemetryMu.Lock()
	defer telemetryMu.Unlock()
	old := telemetry.Load()
	if old != nil {
		for _, hs := range *old {
			for _, a := range hs {
				if a.id == id {
					return fmt.Errorf("%w: %q", ErrHandlerExists, id)
				}
			}
		}
	}
	next := handlers{}
	if old != nil {
		for n, hs := range *old {
			next[n] = hs
		}
	}
	for _, n := range names {
		next[n] = append(append([]attached(nil), next[n]...), attached{id: id, h: h})
	}
	telemetry.Store(&next)
	return nil
}

// DetachTelemetry removes the handler attached under id.
func DetachTelemetry(id string) error {
	telemetryMu.Lock()
	defer telemetryMu.Unlock()
	if !detachLocked(id) {
		return fmt.Errorf("%w: %q", ErrHandlerUnknown, id)
	}
	return nil
}

// detachLocked removes id; telemetryMu must be held.
func detachLocked(id string) bool {
	old := telemetry.Load()
	if old == nil {
		return false
	}
	found := false
	next := handlers{}
	for n, hs := range *old {
		var keep []attached
		for _, a := range hs {
			if a.id == id {
				found = true
				continue
			}
			keep = append(keep, a)
		}
		if len(keep) > 0 {
			next[n] = keep
		}
	}
	telemetry.Store(&next)
	return found
}

// listening reports whether any handler wants name.
func listening(name EventName) bool {
	hs := telemetry.Load()
	return hs != nil && len((*hs)[name]) > 0
}

// emit sends ev to its handlers.
func emit(ev Event) {
	hs := telemetry.Load()
	if hs == nil {
		return
	}
	for _, a := range (*hs)[ev.Name] {
		callHandler(a, ev)
	}
}

func callHandler(a attached, ev Event) {
	defer func() {
		if r := recover(); r != nil {
			slog.Warn("serving: telemetry handler panicked; detaching it", "id", a.id, "event", ev.Name, "panic", r)
			telemetryMu.Lock()
			detachLocked(a.id)
			telemetryMu.Unlock()
		}
	}()
	a.h(ev)
}

// span emits start, then stop or exception, around one operation. The
// zero span (nobody listening) costs nothing.
type span struct {
	on    bool
	start time.Time
	stop  EventName
	exc   EventName
}

// startSpan emits ev (a start event) when someone listens to any event of
// the span.
func startSpan(ev Event, stop, exc EventName) span {
	if !listening(ev.Name) && !listening(stop) && !listening(exc) {
		return span{}
	}
	emit(ev)
	return span{on: true, start: time.Now(), stop: stop, exc: exc}
}

// end emits ev as the stop event, or as the exception event when ev.Err
// is set.
func (s span) end(ev Event) {
	if !s.on {
		return
	}
	ev.Duration = time.Since(s.start)
	ev.Name = s.stop
	if ev.Err != nil {
		ev.Name = s.exc
	}
	emit(ev)
}

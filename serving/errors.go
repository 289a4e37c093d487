package serving

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/ergo-services/ergo/etf"
)

// Every sentinel error of the package is here. Test them with errors.Is;
// the returned errors wrap them with the details of the failing call.
// The typed errors below (*CallbackError, *PanicError, *DownError,
// *OverloadedError, *RemoteError) carry fields for errors.As.

// Errors of Start, ChildSpec and the Serving builders.
var (
	// ErrInvalidOptions is returned by Start and ChildSpec for options
	// that cannot start a serving, and by every use of a Serving a builder
	// made invalid (Streaming called twice, BatchSize not positive).
	ErrInvalidOptions = errors.New("serving: invalid options")

	// ErrConflictingBatchSize is returned by Start when Options.BatchSize
	// and the Serving's ProcessOptions.BatchSize or BatchSize are set and
	// differ.
	ErrConflictingBatchSize = errors.New("serving: conflicting batch sizes")

	// ErrAlreadyStarted is returned by Start when a serving (or another
	// process) already runs under the serving's name (or its supervisor's)
	// on the node, or, for a serving without a node, when a serving
	// without a node runs under that name in the process.
	ErrAlreadyStarted = errors.New("serving: a process with this name already runs")
)

// Errors of a request: what a caller of BatchedRun, Stream, Run or a
// Client gets.
var (
	// ErrNoProc is returned by BatchedRun when no serving process runs
	// under the name (Nx's :noproc exit), or when the serving stopped
	// before running the caller's rows (they were stacked or queued).
	ErrNoProc = errors.New("serving: no serving process")

	// ErrNotBatch is returned when a serving without ClientPreprocessing
	// is given an input that is not a *batch.Batch.
	ErrNotBatch = errors.New("serving: the default client preprocessing expects a *batch.Batch or an input stream " +
		"(serving.BatchStream, <-chan *batch.Batch) as input; give one or set a ClientPreprocessing")

	// ErrEmptyBatch is returned for a batch without rows.
	ErrEmptyBatch = errors.New("serving: cannot run with an empty batch")

	// ErrBatchKey is returned for a batch whose key is not one of the
	// serving's Options.BatchKeys.
	ErrBatchKey = errors.New("serving: unknown batch key")

	// ErrBatchTooLarge is returned for a batch larger than the serving's
	// batch size where it cannot be split: a request to a serving with
	// streaming hooks, or a batch of an input stream.
	ErrBatchTooLarge = errors.New("serving: batch larger than the serving's batch size")

	// ErrStreamingHooks is returned for an input stream sent to a serving
	// with streaming hooks: hooks stream per execution, and a request with
	// hooks must be one batch.
	ErrStreamingHooks = errors.New("serving: streaming hooks do not support input streaming; input must be a *batch.Batch")

	// ErrInputStream is returned when an input stream fails: it yields an
	// error (wrapped), panics (a *PanicError, wrapped) or a value that is
	// not a non-empty batch. The rows of its batches already in the
	// serving are taken out.
	ErrInputStream = errors.New("serving: input stream failed")

	// ErrRowType is returned by a typed serving (NewBatchFunc) for an
	// input that is not one of its rows (or a batch or tensor of them),
	// and by a typed Client for a result that is not one of its output
	// rows.
	ErrRowType = errors.New("serving: not a row of the typed serving's type")

	// ErrOverloaded is matched (errors.Is) by the *OverloadedError a
	// serving returns when its queue is full.
	ErrOverloaded = errors.New("serving: overloaded")

	// ErrShutdownTimeout is returned to callers whose batch was still
	// running when the serving's Shutdown time ran out.
	ErrShutdownTimeout = errors.New("serving: shutdown timed out before the batch finished")
)

// Errors of user code, wrapped in a *CallbackError naming the callback.
var (
	// ErrBadCallback is returned when a user callback returns something
	// the serving cannot use (a nil batch, a nil function...).
	ErrBadCallback = errors.New("serving: callback returned an invalid value")

	// ErrOutputRows is returned when an execution returns fewer rows than
	// the batch it ran: every output tensor must keep the batch axis, so
	// that each caller can take its own rows.
	ErrOutputRows = errors.New("serving: output has fewer rows than the batch")
)

// Errors of distributed calls.
var (
	// ErrNoEndpoint is returned for distributed calls from a node whose
	// serving endpoint does not run (start the cluster application,
	// apps/cluster), or from a caller without a node.
	ErrNoEndpoint = errors.New("serving: no serving endpoint on this node")

	// ErrNodeDown is returned to callers whose request was on a node that
	// went down or disconnected (or whose endpoint stopped) before it
	// answered. Whether the request ran there is unknown.
	ErrNodeDown = errors.New("serving: the serving's node went down before answering")

	// ErrWire is returned when an input or a result cannot cross nodes: it
	// is not made of tensors, batches, tuples, maps, numeric slices and
	// plain values, or a received term is malformed.
	ErrWire = errors.New("serving: value cannot cross nodes")
)

// Errors of telemetry: ErrHandlerExists is returned by AttachTelemetry
// for an id in use; ErrHandlerUnknown by DetachTelemetry for an id not
// attached.
var (
	ErrHandlerExists  = errors.New("serving: a telemetry handler with this id is already attached")
	ErrHandlerUnknown = errors.New("serving: no telemetry handler with this id")
)

// errStopped is the answer of a streamed request whose caller stopped
// reading (broke out of its range loop): its rows are taken out.
var errStopped = errors.New("serving: the caller stopped reading the stream")

// CallbackError reports a failure inside user code: a callback returned
// an error, panicked, or returned an invalid value. Err is the cause (a
// *PanicError for a panic) and is unwrapped by errors.Is and errors.As.
type CallbackError struct {
	// Module is the Go type of the serving's module.
	Module string
	// Callback is the failing call: "Init", "HandleBatch", "execute" (the
	// function HandleBatch returned, or a hook it called),
	// "ClientPreprocessing", "ClientStreamPreprocessing",
	// "ClientPostprocessing" or "DistributedPostprocessing".
	Callback string
	// Err is the cause.
	Err error
}

func (e *CallbackError) Error() string {
	return fmt.Sprintf("serving: %s %s: %v", e.Module, e.Callback, e.Err)
}

func (e *CallbackError) Unwrap() error { return e.Err }

// PanicError is a panic recovered from user code, with the stack of the
// goroutine that panicked. When the panic value is an error, Unwrap
// returns it. A panic on another node's serving has no Stack and, as
// Value, the panic value's text (an error with that text when the value
// was an error matching sentinels of this package, so that errors.Is
// still matches them).
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v", e.Value)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// newPanicError captures the current stack; call it inside the deferred
// recover.
func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// DownError is the error of callers whose batch failed: its execution (or
// HandleBatch) returned an error or panicked. Reason is the cause,
// usually a *CallbackError; errors.Is and errors.As see through it. Only
// the callers of the failed batch get it; the serving goes on serving.
type DownError struct {
	Serving string
	Reason  error
}

func (e *DownError) Error() string {
	return fmt.Sprintf("serving %q: batch failed: %v", e.Serving, e.Reason)
}

func (e *DownError) Unwrap() error { return e.Reason }

// OverloadedError is returned by BatchedRun when the serving's queue holds
// MaxQueue rows already. RetryAfter is how long the serving expects to
// take to run the rows waiting now: a caller that backs off that long
// finds room again unless the load stays above capacity. HTTP servers
// send it as Retry-After.
type OverloadedError struct {
	Serving    string
	Node       string // the serving's node when it is not the caller's, else ""
	Waiting    int    // rows waiting when the request came
	Rows       int    // the request's rows
	MaxQueue   int
	RetryAfter time.Duration
}

func (e *OverloadedError) Error() string {
	where := ""
	if e.Node != "" {
		where = " on node " + e.Node
	}
	return fmt.Sprintf("serving: %q%s is overloaded: %d rows wait already and %d more would pass its MaxQueue of %d; "+
		"retry after %v, or call with WaitWhenFull to wait for room", e.Serving, where, e.Waiting, e.Rows, e.MaxQueue, e.RetryAfter)
}

// Is makes errors.Is(err, ErrOverloaded) true.
func (e *OverloadedError) Is(target error) bool { return target == ErrOverloaded }

// RemoteError is an error that happened on the node that served a
// distributed call. Kind names it (noproc, down, not_batch, callback...:
// see endpoint_errors.go); errors.Is matches the sentinel of its kind and
// every sentinel the error matched on its node (Sentinels). A failed
// batch comes as a *DownError whose Reason is, as on the serving's node,
// a *CallbackError whose Err is a *RemoteError, or a *PanicError for a
// panic.
type RemoteError struct {
	Node    string
	Kind    string
	Message string
	// Sentinels are the kinds of the sentinels the error matched on its
	// node (nil from peers that do not send them).
	Sentinels []string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("on node %s: %s", e.Node, e.Message)
}

// Is matches the sentinel of the error's kind and of each of Sentinels.
func (e *RemoteError) Is(target error) bool {
	if s, ok := kindSentinels[etf.Atom(e.Kind)]; ok && s == target {
		return true
	}
	for _, k := range e.Sentinels {
		if s, ok := kindSentinels[etf.Atom(k)]; ok && s == target {
			return true
		}
	}
	return false
}

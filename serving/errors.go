package serving

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Errors returned by servings. Test them with errors.Is; the returned
// errors wrap them with the details of the failing call.
var (
	// ErrNotBatch is returned when a serving without ClientPreprocessing
	// is given an input that is not a *batch.Batch.
	ErrNotBatch = errors.New("serving: the default client preprocessing expects a *batch.Batch or an input stream " +
		"(serving.BatchStream, <-chan *batch.Batch) as input; give one or set a ClientPreprocessing")

	// ErrEmptyBatch is returned for a batch without rows.
	ErrEmptyBatch = errors.New("serving: cannot run with an empty batch")

	// ErrBadCallback is returned when a user callback returns something
	// the serving cannot use (a nil batch, a nil function...). It comes
	// wrapped in a *CallbackError naming the callback.
	ErrBadCallback = errors.New("serving: callback returned an invalid value")

	// ErrOutputRows is returned when an execution returns fewer rows than
	// the batch it ran: every output tensor must keep the batch axis, so
	// that each caller can take its own rows.
	ErrOutputRows = errors.New("serving: output has fewer rows than the batch")
)

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
// returns it.
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

// Errors of serving processes.
var (
	// ErrNoProc is returned by BatchedRun when no serving process runs
	// under the name (Nx's :noproc exit), or when the serving stopped
	// before running the caller's rows (they were stacked or queued).
	ErrNoProc = errors.New("serving: no serving process")

	// ErrShutdownTimeout is returned to callers whose batch was still
	// running when the serving's Shutdown time ran out.
	ErrShutdownTimeout = errors.New("serving: shutdown timed out before the batch finished")

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
)

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

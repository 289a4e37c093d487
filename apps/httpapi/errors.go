package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/serving"
)

// Errors of the codecs (DecodeJSON, DecodeBinary, EncodeJSON,
// EncodeBinary) and of request validation. The returned errors wrap them
// with the details; test them with errors.Is. The handler answers each
// with 400 and the reason named in its doc.
var (
	// ErrMalformed: the body is not well-formed JSON of the API's shape,
	// or not a well-formed binary tensor (reason "malformed").
	ErrMalformed = errors.New("httpapi: malformed body")

	// ErrDType: a dtype that is unknown, not supported, or not the one the
	// serving expects (reason "bad_dtype").
	ErrDType = errors.New("httpapi: bad dtype")

	// ErrShape: a shape that is invalid (a negative axis, too many axes or
	// elements), has no first axis (rows), or is not the row shape the
	// serving expects (reason "bad_shape").
	ErrShape = errors.New("httpapi: bad shape")

	// ErrLength: the data does not hold exactly as many elements as the
	// shape says (reason "bad_length").
	ErrLength = errors.New("httpapi: data length does not match the shape")

	// ErrValue: an element is not a value of the dtype: a fraction for an
	// integer type, out of range, a string or null (reason "bad_value").
	ErrValue = errors.New("httpapi: bad value")

	// ErrNotTensor: EncodeBinary was given something other than one
	// tensor; the binary format carries one tensor (the handler answers
	// 406, reason "not_acceptable").
	ErrNotTensor = errors.New("httpapi: the binary format carries exactly one tensor")
)

// ErrInvalidOptions is returned by NewHandler, NewApp's start and Start
// for options that cannot work: a serving without a name, two servings of
// one name, a row spec of an unsupported dtype.
var ErrInvalidOptions = errors.New("httpapi: invalid options")

// Reasons are the machine-readable causes of error responses: the
// "reason" field of the JSON error body and the reason label of
// ergonx_http_errors_total.
const (
	ReasonMalformed        = "malformed"              // 400: ErrMalformed
	ReasonBadDType         = "bad_dtype"              // 400: ErrDType
	ReasonBadShape         = "bad_shape"              // 400: ErrShape
	ReasonBadLength        = "bad_length"             // 400: ErrLength
	ReasonBadValue         = "bad_value"              // 400: ErrValue
	ReasonBadInput         = "bad_input"              // 400: the serving rejected the input
	ReasonBadTimeout       = "bad_timeout"            // 400: the X-Request-Timeout header
	ReasonNotFound         = "not_found"              // 404: no such route
	ReasonUnknownServing   = "unknown_serving"        // 404: no such serving in Options.Servings
	ReasonMethodNotAllowed = "method_not_allowed"     // 405
	ReasonNotAcceptable    = "not_acceptable"         // 406: Accept, or a non-tensor result in binary
	ReasonBodyTooLarge     = "body_too_large"         // 413: over Options.MaxBodyBytes
	ReasonUnsupportedMedia = "unsupported_media_type" // 415: Content-Type
	ReasonOverloaded       = "overloaded"             // 429: serving.ErrOverloaded (with Retry-After)
	ReasonClientClosed     = "client_closed"          // 499: the client went away first
	ReasonBatchFailed      = "batch_failed"           // 500: *serving.DownError
	ReasonInternal         = "internal"               // 500: anything else
	ReasonUnavailable      = "serving_unavailable"    // 503: serving.ErrNoProc, ErrNoEndpoint
	ReasonNodeDown         = "node_down"              // 503: serving.ErrNodeDown
	ReasonShutdownTimeout  = "shutdown_timeout"       // 503: serving.ErrShutdownTimeout
	ReasonBusy             = "busy"                   // 503: Options.MaxConcurrent requests in progress (with Retry-After)
	ReasonDeadline         = "deadline_exceeded"      // 504: the request's deadline passed
)

// errBusy is the error of a request beyond Options.MaxConcurrent.
var errBusy = errors.New("httpapi: too many requests in progress; retry after the time Retry-After gives")

// busy is the answer to a request beyond Options.MaxConcurrent.
func busy() *requestError {
	return &requestError{status: http.StatusServiceUnavailable, reason: ReasonBusy, err: errBusy, retryAfter: time.Second}
}

// StatusClientClosedRequest is the status recorded (in metrics and logs;
// nobody reads the response) for a request whose client disconnected
// before the answer: nginx's 499.
const StatusClientClosedRequest = 499

// requestError is an error with the status and reason it is answered with.
type requestError struct {
	status int
	reason string
	err    error
	// retryAfter, when set, is sent as Retry-After.
	retryAfter time.Duration
}

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// badRequest classifies an error of the codecs or of validation.
func badRequest(err error) *requestError {
	var re *requestError
	if errors.As(err, &re) {
		return re
	}
	reason := ReasonMalformed
	switch {
	case errors.Is(err, ErrDType):
		reason = ReasonBadDType
	case errors.Is(err, ErrShape):
		reason = ReasonBadShape
	case errors.Is(err, ErrLength):
		reason = ReasonBadLength
	case errors.Is(err, ErrValue):
		reason = ReasonBadValue
	}
	return &requestError{status: http.StatusBadRequest, reason: reason, err: err}
}

// classify maps an error of serving.BatchedRun to a status and reason.
// ctx is the call's context: a context error counts as the deadline (or
// the client) only when ctx itself has ended, so that an execution that
// fails with a deadline of its own is a failed batch, not a 504.
// isInput is the serving's Serving.IsInputError, or nil.
func classify(ctx context.Context, err error, isInput func(error) bool) *requestError {
	re := func(status int, reason string) *requestError {
		return &requestError{status: status, reason: reason, err: err}
	}
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return re(http.StatusGatewayTimeout, ReasonDeadline)
		}
		return re(StatusClientClosedRequest, ReasonClientClosed)
	}
	var down *serving.DownError
	var cb *serving.CallbackError
	var over *serving.OverloadedError
	switch {
	case errors.As(err, &over):
		e := re(http.StatusTooManyRequests, ReasonOverloaded)
		e.retryAfter = max(over.RetryAfter, time.Second)
		return e
	// Unavailability first: a batch that could not start because its
	// serving was stopping comes as a DownError wrapping ErrNoProc.
	case errors.Is(err, serving.ErrNodeDown):
		return re(http.StatusServiceUnavailable, ReasonNodeDown)
	case errors.Is(err, serving.ErrShutdownTimeout):
		return re(http.StatusServiceUnavailable, ReasonShutdownTimeout)
	case errors.Is(err, serving.ErrNoProc), errors.Is(err, serving.ErrNoEndpoint):
		return re(http.StatusServiceUnavailable, ReasonUnavailable)
	case isInput != nil && isInput(err):
		return re(http.StatusBadRequest, ReasonBadInput)
	case errors.As(err, &down):
		return re(http.StatusInternalServerError, ReasonBatchFailed)
	case errors.Is(err, serving.ErrEmptyBatch), errors.Is(err, serving.ErrNotBatch),
		errors.Is(err, serving.ErrBatchKey), errors.Is(err, serving.ErrRowType),
		errors.Is(err, batch.ErrIncompatible), errors.Is(err, batch.ErrScalar),
		errors.Is(err, batch.ErrUnequalRows), errors.Is(err, batch.ErrEmptyContainer),
		errors.Is(err, batch.ErrUnsupported):
		return re(http.StatusBadRequest, ReasonBadInput)
	case errors.As(err, &cb) && cb.Callback == "ClientPreprocessing":
		// The serving's own preprocessing refused the input.
		return re(http.StatusBadRequest, ReasonBadInput)
	}
	return re(http.StatusInternalServerError, ReasonInternal)
}

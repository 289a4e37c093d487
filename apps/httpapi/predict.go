package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elnormous/contenttype"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/serving"
)

// format is a body format of the predict route.
type format int

const (
	formatJSON format = iota
	formatBinary
)

// octetStream is accepted as another name of the binary format.
const octetStream = "application/octet-stream"

// predict answers POST /v1/servings/{name}/predict.
func (h *Handler) predict(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rt := h.routes[name]
	if rt == nil {
		e := unknownServing(name)
		h.m.unknown(e)
		writeError(w, "", e)
		return
	}
	h.runRequest(w, r, rt, "predict", h.doPredict, func(w http.ResponseWriter, e *requestError) { writeError(w, rt.Name, e) })
}

// doPredict runs one predict request. It writes the response on success
// and returns its status; on failure it returns the error to answer with
// and writes nothing.
func (h *Handler) doPredict(w http.ResponseWriter, r *http.Request, rt *route) (int, *requestError) {
	ctx := r.Context() // ends when the client goes away
	timeout, e := h.timeout(r)
	if e != nil {
		return 0, e
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	in, e := requestFormat(r.Header.Get("Content-Type"))
	if e != nil {
		return 0, e
	}
	out, outType, e := negotiate(r, in)
	if e != nil {
		return 0, e
	}
	body, e := h.readBody(w, r)
	if e != nil {
		return 0, e
	}
	input, err := decodeBody(in, body)
	if err != nil {
		return 0, badRequest(err)
	}
	if err := rt.check(input); err != nil {
		return 0, badRequest(err)
	}
	b, err := batch.Concatenate(input)
	if err != nil {
		// Everything Concatenate refuses is about the shapes sent.
		return 0, badRequest(fmt.Errorf("%w: %v", ErrShape, err))
	}

	result, err := serving.BatchedRun(ctx, h.nd, rt.Name, b)
	if err != nil {
		e := classify(ctx, err, rt.IsInputError)
		if e.reason == ReasonDeadline {
			e.err = fmt.Errorf("httpapi: the request's deadline (%v) passed before serving %q answered: %w", timeout, rt.Name, err)
		}
		return 0, e
	}

	resp, err := encodeResult(out, result)
	if err != nil {
		if errors.Is(err, ErrNotTensor) && out == formatBinary {
			return 0, &requestError{status: http.StatusNotAcceptable, reason: ReasonNotAcceptable, err: err}
		}
		return 0, &requestError{status: http.StatusInternalServerError, reason: ReasonInternal,
			err: fmt.Errorf("httpapi: encoding the result of serving %q: %w", rt.Name, err)}
	}
	if out == formatJSON {
		resp = append(resp, '\n') // as every JSON answer, for curl
	}
	w.Header().Set("Content-Type", outType)
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
	return http.StatusOK, nil
}

// timeout reads the request's deadline from TimeoutHeader, or the default.
func (h *Handler) timeout(r *http.Request) (time.Duration, *requestError) {
	v := r.Header.Get(TimeoutHeader)
	if v == "" {
		return h.opts.DefaultTimeout, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 {
		return 0, &requestError{status: http.StatusBadRequest, reason: ReasonBadTimeout,
			err: fmt.Errorf("httpapi: %s: %q: want a positive Go duration such as 250ms or 2s", TimeoutHeader, v)}
	}
	if h.opts.MaxTimeout > 0 && d > h.opts.MaxTimeout {
		d = h.opts.MaxTimeout
	}
	return d, nil
}

// requestFormat reads the body format from the Content-Type header; no
// header means JSON.
func requestFormat(contentType string) (format, *requestError) {
	if contentType == "" {
		return formatJSON, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil {
		switch mt {
		case JSONContentType:
			return formatJSON, nil
		case BinaryContentType, octetStream:
			return formatBinary, nil
		}
	}
	hint := ""
	if strings.HasPrefix(contentType, "application/x-www-form-urlencoded") {
		hint = " (curl -d sends a form; add -H 'Content-Type: application/json')"
	}
	return 0, &requestError{status: http.StatusUnsupportedMediaType, reason: ReasonUnsupportedMedia,
		err: fmt.Errorf("httpapi: Content-Type %q: send %s or %s%s", contentType, JSONContentType, BinaryContentType, hint)}
}

// negotiate picks the response format from the Accept header, by the
// rules of RFC 9110: the most specific range that matches a type gives
// its q, q=0 refuses it, and the highest q wins; between equals, and for
// */* or no header, the request's own format. It returns the media type
// to answer with. Parsing and matching are contenttype's, a library
// that implements those rules (goautoneg's Negotiate does not honour
// q=0 under a wildcard).
func negotiate(r *http.Request, in format) (format, string, *requestError) {
	offers := binaryFirst
	if in == formatJSON {
		offers = jsonFirst
	}
	mt, _, err := contenttype.GetAcceptableMediaType(r, offers)
	if err != nil {
		return 0, "", &requestError{status: http.StatusNotAcceptable, reason: ReasonNotAcceptable,
			err: fmt.Errorf("httpapi: Accept %q: this route answers %s or %s", r.Header.Get("Accept"), JSONContentType, BinaryContentType)}
	}
	switch typ := mt.Type + "/" + mt.Subtype; typ {
	case JSONContentType:
		return formatJSON, typ, nil
	case octetStream:
		return formatBinary, octetStream, nil
	default:
		return formatBinary, BinaryContentType, nil
	}
}

// The types the predict route answers with, the request's format first
// (the choice between equals).
var (
	jsonFirst = []contenttype.MediaType{contenttype.NewMediaType(JSONContentType),
		contenttype.NewMediaType(BinaryContentType), contenttype.NewMediaType(octetStream)}
	binaryFirst = []contenttype.MediaType{contenttype.NewMediaType(BinaryContentType),
		contenttype.NewMediaType(octetStream), contenttype.NewMediaType(JSONContentType)}
)

// admit counts a predict or infer request in, unless Options.MaxConcurrent
// are in progress already.
func (h *Handler) admit() bool {
	if n := h.inProgress.Add(1); h.opts.MaxConcurrent > 0 && n > int64(h.opts.MaxConcurrent) {
		h.inProgress.Add(-1)
		return false
	}
	return true
}

// release counts an admitted request out.
func (h *Handler) release() { h.inProgress.Add(-1) }

// readBody reads the whole body, at most Options.MaxBodyBytes, within
// Options.BodyTimeout. The buffer grows with the bytes that arrive: a
// Content-Length header is a claim, and sizing memory by it let 40 slow
// clients claiming 32 MiB each take 1.3 GB before sending a byte. A
// claim over the limit is refused before anything is read.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	limit := h.opts.MaxBodyBytes
	tooLarge := func(limit int64) *requestError {
		return &requestError{status: http.StatusRequestEntityTooLarge, reason: ReasonBodyTooLarge,
			err: fmt.Errorf("httpapi: the body is larger than %d bytes", limit)}
	}
	if limit > 0 && r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	if h.opts.BodyTimeout > 0 {
		// The connection's read deadline: a body that has not arrived by
		// then fails to read, and the server closes the connection.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.opts.BodyTimeout))
	}
	src := io.Reader(r.Body)
	var buf bytes.Buffer
	if limit > 0 {
		src = http.MaxBytesReader(w, r.Body, limit)
	}
	if _, err := buf.ReadFrom(src); err != nil {
		var over *http.MaxBytesError
		if errors.As(err, &over) {
			return nil, tooLarge(over.Limit)
		}
		if ctxErr := r.Context().Err(); ctxErr != nil {
			return nil, &requestError{status: StatusClientClosedRequest, reason: ReasonClientClosed, err: ctxErr}
		}
		return nil, &requestError{status: http.StatusBadRequest, reason: ReasonMalformed,
			err: fmt.Errorf("%w: reading the body: %v", ErrMalformed, err)}
	}
	return buf.Bytes(), nil
}

// decodeBody decodes a request body of format f.
func decodeBody(f format, body []byte) (any, error) {
	if f == formatBinary {
		return DecodeBinary(body)
	}
	return DecodeJSON(body)
}

// encodeResult encodes a serving's result in format f. Results that are
// not containers of tensors (a client postprocessing may return any Go
// value) are written in JSON as {"value": ...}.
func encodeResult(f format, result any) ([]byte, error) {
	if f == formatBinary {
		return EncodeBinary(result)
	}
	b, err := EncodeJSON(result)
	if errors.Is(err, ErrNotTensor) && !isContainer(result) {
		v, err := json.Marshal(struct {
			Value any `json:"value"`
		}{result})
		return v, err
	}
	return b, err
}

// isContainer reports whether v is a tensor, tuple or map.
func isContainer(v any) bool {
	switch v.(type) {
	case *tensor.Dense, batch.Tuple, batch.Map:
		return true
	}
	return false
}

// check validates a decoded request against what the serving takes.
func (rt *route) check(in any) error {
	leaves, err := batch.Leaves(in)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrShape, err)
	}
	for _, d := range leaves {
		if d.Dims() == 0 {
			return fmt.Errorf("%w: a tensor of shape []: requests need a first axis that counts rows (shape [n, ...])", ErrShape)
		}
	}
	if rt.Row == nil {
		return nil
	}
	d, ok := in.(*tensor.Dense)
	if !ok {
		return fmt.Errorf("%w: serving %q takes one tensor of rows of %v; got a %s", ErrShape, rt.Name, rt.Row, kindOf(in))
	}
	if rt.Row.DType.Type != nil {
		// Compared as wire types: a row of Go ints is one of int64s.
		want, _ := dtypeOf(rt.Row.DType)
		got, _ := dtypeOf(d.Dtype())
		if want != got {
			return fmt.Errorf("%w: serving %q takes %s rows; got %s", ErrDType, rt.Name, want.name, got.name)
		}
	}
	if rt.Row.Shape != nil && !rowFits(d.Shape()[1:], rt.Row.Shape) {
		return fmt.Errorf("%w: serving %q takes rows of %v, a tensor of shape %s; got shape %v",
			ErrShape, rt.Name, rt.Row, requestShape(rt.Row.Shape), []int(d.Shape()))
	}
	return nil
}

// requestShape shows the shape of a request of rows of shape row:
// "[n, 64]".
func requestShape(row []int) string {
	s := "[n"
	for _, n := range row {
		if n < 0 {
			s += ", *"
		} else {
			s += ", " + strconv.Itoa(n)
		}
	}
	return s + "]"
}

// rowFits reports whether a row shape matches a spec (-1: any length).
func rowFits(got, want []int) bool {
	return slices.EqualFunc(got, want, func(g, w int) bool { return w < 0 || g == w })
}

func kindOf(v any) string {
	switch v.(type) {
	case batch.Tuple:
		return "tuple"
	case batch.Map:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

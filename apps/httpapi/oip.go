package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/version"
	"github.com/ergonx/ergonx/serving"
)

// The Open Inference Protocol (KServe v2, Triton's HTTP/REST API) beside
// the handler's own routes: health, metadata and inference with named
// input and output tensors, in JSON or with the binary tensor data
// extension. See the package doc, "Open Inference Protocol".

// InferenceHeaderContentLength is the header of the binary tensor data
// extension that gives the length of the JSON object at the start of a
// body that binary tensors follow.
const InferenceHeaderContentLength = "Inference-Header-Content-Length"

// Model describes a serving to the Open Inference Protocol routes: the
// named tensors it takes and gives. A nil Serving.Model means one input
// "input0" as the serving's Row describes it and one output "output0".
type Model struct {
	// Platform is the metadata's "platform". "" means "ergonx".
	Platform string

	// Inputs are the tensors a request must send, by name. One input is
	// given to the serving as a tensor; several as a batch.Map keyed by
	// their names. nil means one input, "input0", of the serving's Row.
	Inputs []TensorSpec

	// Outputs name what the serving returns: a tensor is the first
	// output; a batch.Map's keys and a batch.Tuple's elements are
	// matched to them by name and by position. nil means "output0" for
	// a tensor, the keys of a map, "output0", "output1"... for a tuple.
	// DType and Shape are reported in the metadata only.
	Outputs []TensorSpec

	// Unbatched serves each request as one row, as Triton does for
	// models with max_batch_size 0: shapes are the tensors' own, without
	// the axis that counts rows; the handler adds that axis of length 1
	// to every input and takes it off every output. Requests then need
	// no common first axis; the serving still batches requests together.
	Unbatched bool
}

// TensorSpec is one named tensor of a Model.
type TensorSpec struct {
	Name string
	// DType is the element type; the zero Dtype accepts any (the
	// metadata's datatype is then "").
	DType tensor.Dtype
	// Shape is the whole tensor's shape, the first axis counting rows
	// (-1) unless Model.Unbatched; -1 is any length. nil accepts any
	// shape.
	Shape []int
}

// oipModel is a serving's resolved Model.
type oipModel struct {
	platform  string
	inputs    []TensorSpec
	outputs   []TensorSpec
	unbatched bool
}

// resolveModel fills a Serving's Model with its defaults.
func resolveModel(s Serving) (*oipModel, error) {
	m := &oipModel{platform: "ergonx"}
	if s.Model != nil {
		m.platform = s.Model.Platform
		if m.platform == "" {
			m.platform = "ergonx"
		}
		m.inputs = cloneSpecs(s.Model.Inputs)
		m.outputs = cloneSpecs(s.Model.Outputs)
		m.unbatched = s.Model.Unbatched
	}
	if m.inputs == nil {
		in := TensorSpec{Name: "input0"}
		if s.Row != nil {
			in.DType = s.Row.DType
			if s.Row.Shape != nil {
				in.Shape = append([]int{-1}, s.Row.Shape...)
			}
		}
		m.inputs = []TensorSpec{in}
	}
	seen := map[string]bool{}
	for _, specs := range [][]TensorSpec{m.inputs, m.outputs} {
		clear(seen)
		for _, t := range specs {
			if t.Name == "" {
				return nil, fmt.Errorf("%w: serving %q: a Model tensor without a name", ErrInvalidOptions, s.Name)
			}
			if seen[t.Name] {
				return nil, fmt.Errorf("%w: serving %q: Model tensor %q named twice", ErrInvalidOptions, s.Name, t.Name)
			}
			seen[t.Name] = true
			if t.DType.Type != nil {
				if _, ok := oipTypeOf(t.DType); !ok {
					return nil, fmt.Errorf("%w: serving %q: tensor %q: dtype %v is not supported; supported: %s",
						ErrInvalidOptions, s.Name, t.Name, t.DType, oipTypeList())
				}
			}
		}
	}
	if len(m.inputs) == 0 {
		return nil, fmt.Errorf("%w: serving %q: a Model with no inputs", ErrInvalidOptions, s.Name)
	}
	return m, nil
}

func cloneSpecs(specs []TensorSpec) []TensorSpec {
	if specs == nil {
		return nil
	}
	out := make([]TensorSpec, len(specs))
	for i, t := range specs {
		out[i] = t
		out[i].Shape = slices.Clone(t.Shape)
	}
	return out
}

// registerOIP adds the protocol's routes to mux.
func (h *Handler) registerOIP(mux *recordingMux) {
	mux.HandleFunc("GET /v2", h.oipServerMetadata)
	mux.HandleFunc("GET /v2/health/live", h.oipLive)
	mux.HandleFunc("GET /v2/health/ready", h.oipReady)
	mux.HandleFunc("GET /v2/models/{name}", h.oipModelMetadata)
	mux.HandleFunc("GET /v2/models/{name}/ready", h.oipModelReady)
	mux.HandleFunc("POST /v2/models/{name}/infer", h.oipInfer)
	for path, allow := range map[string]string{
		"/v2":                     "GET, HEAD",
		"/v2/health/live":         "GET, HEAD",
		"/v2/health/ready":        "GET, HEAD",
		"/v2/models/{name}":       "GET, HEAD",
		"/v2/models/{name}/ready": "GET, HEAD",
		"/v2/models/{name}/infer": "POST",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeOIPError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: method not allowed; use %s", r.Method, r.URL.Path, allow))
		})
	}
}

// oipError is the protocol's error body.
type oipError struct {
	Error string `json:"error"`
}

func writeOIPError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, oipError{Error: msg})
}

// oipServerMetadata answers GET /v2.
func (h *Handler) oipServerMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Name       string   `json:"name"`
		Version    string   `json:"version"`
		Extensions []string `json:"extensions"`
	}{"ergonx", version.Version, []string{"binary_tensor_data"}})
}

// oipLive answers GET /v2/health/live: the server answers requests.
func (h *Handler) oipLive(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"live": true})
}

// oipReady answers GET /v2/health/ready: 200 when every listed serving
// is ready and the server is not draining, 503 otherwise.
func (h *Handler) oipReady(w http.ResponseWriter, _ *http.Request) {
	ready := !h.draining.Load()
	for _, name := range h.names {
		ready = ready && h.servingReady(name)
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]bool{"ready": ready})
}

// servingReady reports whether a request for serving name would find
// it: running on this node, or a member of its process group elsewhere.
func (h *Handler) servingReady(name string) bool {
	if st, err := serving.GetStats(h.nd, name); err == nil && !st.Stopped {
		return true
	}
	scope := h.scope()
	return scope != nil && scope.Count(name) > 0
}

// oipRoute finds the serving of a protocol request, or answers 404.
func (h *Handler) oipRoute(w http.ResponseWriter, r *http.Request) *route {
	name := r.PathValue("name")
	rt := h.routes[name]
	if rt == nil {
		writeOIPError(w, http.StatusNotFound, fmt.Sprintf("httpapi: no model named %q here; the models are the servings of GET /v1/servings", name))
	}
	return rt
}

// metadataTensor is a tensor of the model metadata.
type metadataTensor struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

func metadataTensors(specs []TensorSpec) []metadataTensor {
	out := make([]metadataTensor, len(specs))
	for i, t := range specs {
		out[i] = metadataTensor{Name: t.Name, Shape: t.Shape}
		if out[i].Shape == nil {
			out[i].Shape = []int{-1}
		}
		if t.DType.Type != nil {
			d, _ := oipTypeOf(t.DType)
			out[i].Datatype = d.oip
		}
	}
	return out
}

// oipModelMetadata answers GET /v2/models/{name}.
func (h *Handler) oipModelMetadata(w http.ResponseWriter, r *http.Request) {
	rt := h.oipRoute(w, r)
	if rt == nil {
		return
	}
	outputs := rt.model.outputs
	if outputs == nil {
		outputs = []TensorSpec{{Name: "output0"}}
	}
	writeJSON(w, http.StatusOK, struct {
		Name     string           `json:"name"`
		Platform string           `json:"platform"`
		Inputs   []metadataTensor `json:"inputs"`
		Outputs  []metadataTensor `json:"outputs"`
	}{rt.Name, rt.model.platform, metadataTensors(rt.model.inputs), metadataTensors(outputs)})
}

// oipModelReady answers GET /v2/models/{name}/ready: 200 when the
// serving is ready, 503 when it is listed but does not run.
func (h *Handler) oipModelReady(w http.ResponseWriter, r *http.Request) {
	rt := h.oipRoute(w, r)
	if rt == nil {
		return
	}
	ready := h.servingReady(rt.Name)
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
	}{rt.Name, ready})
}

// oipInfer answers POST /v2/models/{name}/infer.
func (h *Handler) oipInfer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rt := h.routes[name]
	if rt == nil {
		e := unknownServing(name)
		h.m.unknown(e)
		writeOIPError(w, e.status, fmt.Sprintf("httpapi: no model named %q here; the models are the servings of GET /v1/servings", name))
		return
	}
	h.runRequest(w, r, rt, "infer", h.doInfer, func(w http.ResponseWriter, e *requestError) {
		setRetryAfter(w, e)
		writeOIPError(w, e.status, e.err.Error())
	})
}

// doInfer runs one inference request; it writes the answer on success
// and returns its status, or returns the error to answer with.
func (h *Handler) doInfer(w http.ResponseWriter, r *http.Request, rt *route) (int, *requestError) {
	ctx := r.Context()
	timeout, e := h.timeout(r)
	if e != nil {
		return 0, e
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	body, e := h.readBody(w, r)
	if e != nil {
		return 0, e
	}
	req, err := decodeInferRequest(body, r.Header.Get(InferenceHeaderContentLength))
	if err != nil {
		return 0, badRequest(err)
	}
	input, err := rt.model.input(req)
	if err != nil {
		return 0, badRequest(err)
	}
	b, err := batch.Concatenate(input)
	if err != nil {
		return 0, badRequest(fmt.Errorf("%w: %v", ErrShape, err))
	}
	result, err := serving.BatchedRun(ctx, h.nd, rt.Name, b)
	if err != nil {
		e := classify(ctx, err, rt.IsInputError)
		if e.reason == ReasonDeadline {
			e.err = fmt.Errorf("httpapi: the request's deadline (%v) passed before model %q answered: %w", timeout, rt.Name, err)
		}
		return 0, e
	}
	outs, err := rt.model.outputsOf(result, req)
	if err != nil {
		return 0, badRequest(err)
	}
	resp, jsonLen, err := encodeInferResponse(rt.Name, req, outs)
	if err != nil {
		return 0, &requestError{status: http.StatusInternalServerError, reason: ReasonInternal,
			err: fmt.Errorf("httpapi: encoding the result of model %q: %w", rt.Name, err)}
	}
	if jsonLen < len(resp) {
		w.Header().Set("Content-Type", octetStream)
		w.Header().Set(InferenceHeaderContentLength, strconv.Itoa(jsonLen))
	} else {
		w.Header().Set("Content-Type", JSONContentType)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
	return http.StatusOK, nil
}

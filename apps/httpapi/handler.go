package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/serving"
)

// Defaults of Options.
const (
	// DefaultMaxBodyBytes bounds request bodies: 32 MiB.
	DefaultMaxBodyBytes = 32 << 20
	// DefaultMaxConcurrent bounds the predict and infer requests the
	// handler works on at once.
	DefaultMaxConcurrent = 4096
	// DefaultBodyTimeout bounds how long a request's body may take to
	// arrive.
	DefaultBodyTimeout = 30 * time.Second
)

// TimeoutHeader is the request header that sets a request's deadline: a
// Go duration ("250ms", "2s", "1m30s").
const TimeoutHeader = "X-Request-Timeout"

// Options configure a Handler; NewHandler reads them once. Every field
// may be left zero for its default; a handler without Servings answers
// every predict request with 404.
type Options struct {
	// Servings are the servings the handler exposes, by name. A request
	// for any other name is a 404 (reason "unknown_serving"), so that a
	// 503 always means that a serving the handler knows is not running.
	Servings []Serving

	// Registry receives the handler's metrics and is what GET /metrics
	// serves. nil means a new registry of the handler's own, never
	// prometheus.DefaultRegisterer, so that several handlers can run in
	// one process. Registering other collectors on it (Go runtime,
	// process) adds them to /metrics.
	Registry *prometheus.Registry

	// MaxBodyBytes bounds request bodies; larger ones get 413. 0 means
	// DefaultMaxBodyBytes; negative means no limit. Memory follows the
	// bytes that arrive, never what a Content-Length header claims.
	MaxBodyBytes int64

	// MaxConcurrent bounds the predict and infer requests in progress at
	// once; a request beyond it gets 503 (reason "busy") with
	// Retry-After: 1 at once, before its body is read. 0 means
	// DefaultMaxConcurrent; negative means no bound.
	MaxConcurrent int

	// BodyTimeout bounds how long a predict or infer request's body may
	// take to arrive after its headers; a slower client's connection is
	// cut. 0 means DefaultBodyTimeout; negative means no bound.
	BodyTimeout time.Duration

	// DefaultTimeout is the deadline of predict requests that do not send
	// the X-Request-Timeout header. 0 means none: such a request waits
	// as long as its client stays connected.
	DefaultTimeout time.Duration

	// MaxTimeout caps the deadline a request may ask for with
	// X-Request-Timeout (larger values are lowered to it, not refused).
	// 0 means no cap.
	MaxTimeout time.Duration

	// Logger receives a line for every 500 answer (a failed batch, a
	// result that cannot be encoded) and for server errors. nil means
	// slog.Default().
	Logger *slog.Logger
}

// Serving is one serving a Handler exposes (not to be confused with
// serving.Serving, what a serving runs): its name on the node and what it
// accepts. A nil Row accepts any dtype and row shape and leaves it to the
// serving to refuse what it cannot run. NewHandler copies it.
type Serving struct {
	// Name is the serving's name (serving.Options.Name). Required.
	Name string

	// Row, when set, is what one row of a request must be: a request
	// whose body is not one tensor of this dtype and row shape gets 400
	// with the reason before it reaches the serving.
	Row *Row

	// IsInputError, when set, reports whether an error the serving
	// returned was caused by the request's input (400, reason
	// "bad_input") rather than by the serving (500). For example
	// errors.Is(err, digits.ErrShape).
	IsInputError func(err error) bool

	// Model describes the serving to the Open Inference Protocol routes
	// (/v2/models/{name}/...): its named input and output tensors. nil
	// means one input "input0" of Row and one output "output0".
	Model *Model
}

// Row describes one row of a request: the request tensor's dtype and its
// shape without the first axis, which counts the rows.
type Row struct {
	// DType is the element type; the zero Dtype accepts any.
	DType tensor.Dtype
	// Shape is the shape of one row. nil accepts any shape, []int{}
	// scalar rows (requests of shape [n]); an axis of -1 accepts any
	// length.
	Shape []int
}

// String shows the row as "float32[64]".
func (r *Row) String() string {
	dt := "any"
	if r.DType.Type != nil {
		dt = r.DType.String()
	}
	if r.Shape == nil {
		return dt + "[...]"
	}
	s := dt + "["
	for i, n := range r.Shape {
		if i > 0 {
			s += ", "
		}
		if n < 0 {
			s += "*"
		} else {
			s += strconv.Itoa(n)
		}
	}
	return s + "]"
}

// route is one exposed serving with its metrics.
type route struct {
	Serving
	m     *servingMetrics
	model *oipModel
	live  *liveServing
}

// Handler is the HTTP/JSON inference API for the servings of a node (see
// the package doc for the routes); it is safe for concurrent use, and
// never blocks beyond the serving calls its requests make. It is an
// http.Handler for any server; App runs one in an ergo application.
//
// Its routes and servings are fixed by NewHandler. Close detaches it from
// telemetry and from its registry; it keeps answering requests after
// Close, without metrics.
type Handler struct {
	nd     node.Node
	opts   Options
	log    *slog.Logger
	routes map[string]*route // immutable after NewHandler
	names  []string          // sorted names of routes
	mux    *http.ServeMux
	m      *metricsOf
	// patterns are the mux's patterns, in the order registered.
	patterns []string

	draining atomic.Bool
	// inProgress counts the predict and infer requests being handled,
	// against Options.MaxConcurrent.
	inProgress atomic.Int64

	closeOnce sync.Once
}

// NewHandler returns a handler for the servings opts lists on nd: those
// running on nd or, through nd's cluster application, elsewhere in its
// cluster. nd nil serves the servings started without a node
// (serving.Start(nil, ...)) in this process. It registers the handler's
// metrics with opts.Registry and attaches a telemetry handler (see
// serving.AttachTelemetry) under an id of its own; call Close when done
// with it.
func NewHandler(nd node.Node, opts Options) (*Handler, error) {
	h := &Handler{nd: nd, opts: opts, log: opts.Logger, routes: map[string]*route{}}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.opts.MaxBodyBytes == 0 {
		h.opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if h.opts.MaxConcurrent == 0 {
		h.opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if h.opts.BodyTimeout == 0 {
		h.opts.BodyTimeout = DefaultBodyTimeout
	}
	if h.opts.Registry == nil {
		h.opts.Registry = prometheus.NewRegistry()
	}
	if h.opts.DefaultTimeout < 0 || h.opts.MaxTimeout < 0 {
		return nil, fmt.Errorf("%w: negative DefaultTimeout or MaxTimeout", ErrInvalidOptions)
	}
	for _, s := range opts.Servings {
		if err := checkServing(s); err != nil {
			return nil, err
		}
		if _, dup := h.routes[s.Name]; dup {
			return nil, fmt.Errorf("%w: serving %q listed twice", ErrInvalidOptions, s.Name)
		}
		if s.Row != nil {
			row := *s.Row
			row.Shape = slices.Clone(s.Row.Shape)
			s.Row = &row
		}
		model, err := resolveModel(s)
		if err != nil {
			return nil, err
		}
		h.routes[s.Name] = &route{Serving: s, model: model, live: newLiveServing()}
		h.names = append(h.names, s.Name)
	}
	sort.Strings(h.names)

	m, err := newMetrics(h)
	if err != nil {
		return nil, err
	}
	h.m = m
	for _, name := range h.names {
		h.routes[name].m = m.forServing(name)
	}

	mux := &recordingMux{ServeMux: http.NewServeMux()}
	h.registerOIP(mux)
	h.registerLive(mux)
	h.registerOpenAPI(mux)
	mux.HandleFunc("POST /v1/servings/{name}/predict", h.predict)
	mux.HandleFunc("GET /v1/servings/{name}", h.getServing)
	mux.HandleFunc("GET /v1/servings", h.listServings)
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.opts.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	// The same paths without a method answer the other methods with a
	// JSON 405 (the mux's own is plain text); "/" is every other path.
	for path, allow := range map[string]string{
		"/v1/servings/{name}/predict": "POST",
		"/v1/servings/{name}":         "GET, HEAD",
		"/v1/servings":                "GET, HEAD",
		"/metrics":                    "GET, HEAD",
		"/healthz":                    "GET, HEAD",
		"/readyz":                     "GET, HEAD",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, "", &requestError{status: http.StatusMethodNotAllowed, reason: ReasonMethodNotAllowed,
				err: fmt.Errorf("httpapi: %s %s: method not allowed; use %s", r.Method, r.URL.Path, allow)})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, "", &requestError{status: http.StatusNotFound, reason: ReasonNotFound,
			err: fmt.Errorf("httpapi: no route %s %s; see /v1/servings", r.Method, r.URL.Path)})
	})
	h.mux, h.patterns = mux.ServeMux, mux.patterns
	return h, nil
}

// checkServing validates one entry of Options.Servings.
func checkServing(s Serving) error {
	if s.Name == "" {
		return fmt.Errorf("%w: a serving without a name", ErrInvalidOptions)
	}
	if s.Name == UnknownServingLabel {
		return fmt.Errorf("%w: %q is the metrics' label of unknown servings; name the serving otherwise", ErrInvalidOptions, s.Name)
	}
	if s.Row == nil {
		return nil
	}
	if s.Row.DType.Type != nil {
		if _, ok := dtypeOf(s.Row.DType); !ok {
			return fmt.Errorf("%w: serving %q: row dtype %v is not supported; supported: %s", ErrInvalidOptions, s.Name, s.Row.DType, dtypeList())
		}
	}
	for _, n := range s.Row.Shape {
		if n < -1 {
			return fmt.Errorf("%w: serving %q: row shape %v: axes are >= 0, or -1 for any length", ErrInvalidOptions, s.Name, s.Row.Shape)
		}
	}
	return nil
}

// scope is the node's process-group scope, or nil (no node, or no
// cluster application).
func (h *Handler) scope() *pg.Scope {
	if h.nd == nil {
		return nil
	}
	return pg.Lookup(h.nd, "")
}

// nodeName is the node's name, or "" without a node.
func (h *Handler) nodeName() string {
	if h.nd == nil {
		return ""
	}
	return h.nd.Name()
}

// ServeHTTP routes a request (see the package doc).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Registry returns the registry /metrics serves: Options.Registry, or the
// handler's own.
func (h *Handler) Registry() *prometheus.Registry { return h.opts.Registry }

// Close detaches the handler's telemetry handler and unregisters its
// metrics. It is idempotent and always returns nil.
func (h *Handler) Close() error {
	h.closeOnce.Do(func() {
		h.m.close()
	})
	return nil
}

// SetDraining marks the handler as draining (GET /readyz answers 503,
// so that load balancers stop sending it requests) or not. App sets it
// when it starts to shut down. Requests are still served.
func (h *Handler) SetDraining(draining bool) { h.draining.Store(draining) }

// healthz answers GET /healthz, the liveness check: 200 while the
// process serves HTTP at all, draining included (a liveness probe that
// failed during a drain would have the process restarted mid-drain).
func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the body of GET /readyz.
type readiness struct {
	Status string `json:"status"` // ready, not_ready, draining
	// Servings says, per listed serving, "local" (runs on this node),
	// "remote" (members of its process group elsewhere) or "down".
	Servings map[string]string `json:"servings"`
}

// readyz answers GET /readyz, the readiness check: 200 when the handler
// is not draining and every listed serving runs here or has a member of
// its process group in the cluster; 503 otherwise, saying which.
func (h *Handler) readyz(w http.ResponseWriter, _ *http.Request) {
	rd := readiness{Status: "ready", Servings: map[string]string{}}
	scope := h.scope()
	for _, name := range h.names {
		switch st, err := serving.GetStats(h.nd, name); {
		case err == nil && !st.Stopped:
			rd.Servings[name] = "local"
		case scope != nil && scope.Count(name) > 0:
			rd.Servings[name] = "remote"
		default:
			rd.Servings[name] = "down"
			rd.Status = "not_ready"
		}
	}
	if h.draining.Load() {
		rd.Status = "draining"
	}
	status := http.StatusOK
	if rd.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}

// servingInfo is one serving in GET /v1/servings.
type servingInfo struct {
	Name string `json:"name"`
	// Row is the row the handler checks requests against, if any.
	Row *rowInfo `json:"row,omitempty"`
	// Local is true when the serving runs on this node; Stats is then
	// its snapshot. A serving that does not run here may still be
	// reached on other nodes of the cluster.
	Local bool       `json:"local"`
	Stats *statsInfo `json:"stats,omitempty"`
}

type rowInfo struct {
	DType string `json:"dtype,omitempty"`
	Shape []int  `json:"shape"`
}

type statsInfo struct {
	BatchSize           int     `json:"batch_size"`
	BatchTimeoutSeconds float64 `json:"batch_timeout_seconds"`
	Partitions          int     `json:"partitions"`
	StackedRows         int     `json:"stacked_rows"`
	QueuedBatches       int     `json:"queued_batches"`
	QueuedRows          int     `json:"queued_rows"`
	BusyPartitions      int     `json:"busy_partitions"`
	Waiting             int     `json:"waiting"`
	Stopped             bool    `json:"stopped"`
	Requests            uint64  `json:"requests"`
	Batches             uint64  `json:"batches"`
	Rows                uint64  `json:"rows"`
	FailedBatches       uint64  `json:"failed_batches"`
	Cancelled           uint64  `json:"cancelled"`
}

func (h *Handler) info(rt *route) servingInfo {
	si := servingInfo{Name: rt.Name}
	if rt.Row != nil {
		ri := &rowInfo{Shape: rt.Row.Shape}
		if rt.Row.DType.Type != nil {
			d, _ := dtypeOf(rt.Row.DType)
			ri.DType = d.name
		}
		si.Row = ri
	}
	if st, err := serving.GetStats(h.nd, rt.Name); err == nil {
		si.Local = true
		si.Stats = &statsInfo{
			BatchSize: st.BatchSize, BatchTimeoutSeconds: st.BatchTimeout.Seconds(), Partitions: st.Partitions,
			StackedRows: st.StackedRows, QueuedBatches: st.QueuedBatches, QueuedRows: st.QueuedRows,
			BusyPartitions: st.BusyPartitions, Waiting: st.Waiting, Stopped: st.Stopped,
			Requests: st.Requests, Batches: st.Batches, Rows: st.Rows, FailedBatches: st.FailedBatches, Cancelled: st.Cancelled,
		}
	}
	return si
}

// listServings answers GET /v1/servings.
func (h *Handler) listServings(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Servings []servingInfo `json:"servings"`
	}{Servings: make([]servingInfo, 0, len(h.names))}
	for _, name := range h.names {
		out.Servings = append(out.Servings, h.info(h.routes[name]))
	}
	writeJSON(w, http.StatusOK, out)
}

// getServing answers GET /v1/servings/{name}.
func (h *Handler) getServing(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rt := h.routes[name]
	if rt == nil {
		writeError(w, "", unknownServing(name))
		return
	}
	writeJSON(w, http.StatusOK, h.info(rt))
}

func unknownServing(name string) *requestError {
	return &requestError{status: http.StatusNotFound, reason: ReasonUnknownServing,
		err: fmt.Errorf("httpapi: no serving named %q here; see GET /v1/servings", name)}
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", JSONContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error   string `json:"error"`
	Reason  string `json:"reason"`
	Serving string `json:"serving,omitempty"`
}

// writeError answers with e's status and the JSON error body.
func writeError(w http.ResponseWriter, servingName string, e *requestError) {
	setRetryAfter(w, e)
	writeJSON(w, e.status, errorBody{Error: e.err.Error(), Reason: e.reason, Serving: servingName})
}

// setRetryAfter sets Retry-After for an answer that says when to come
// back (429, 503 busy), in whole seconds, at least 1.
func setRetryAfter(w http.ResponseWriter, e *requestError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
}

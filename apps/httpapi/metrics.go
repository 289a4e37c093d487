package httpapi

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ergonx/ergonx/metrics"
	"github.com/ergonx/ergonx/serving"
)

// metricsOf are a handler's Prometheus metrics (see the package doc for
// what each means): its own ergonx_http_* series, and the servings'
// ergonx_batch_* and ergonx_serving_* series from package metrics.
type metricsOf struct {
	h *Handler

	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	servings *metrics.Collector

	collectors []prometheus.Collector
}

// servingMetrics are the HTTP children of one serving, resolved once.
type servingMetrics struct {
	m        *metricsOf
	name     string
	latency  prometheus.Observer
	inFlight prometheus.Gauge
}

func newMetrics(h *Handler) (*metricsOf, error) {
	m := &metricsOf{
		h: h,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ergonx_http_requests_total",
			Help: "Predict requests answered, by serving and HTTP status code (serving is \"(unknown)\" for servings the handler does not expose).",
		}, []string{"serving", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ergonx_http_errors_total",
			Help: "Predict requests answered with an error, by serving and reason.",
		}, []string{"serving", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ergonx_http_request_duration_seconds",
			Help:    "Time from a predict request's arrival to its answer, errors included.",
			Buckets: metrics.TimeBuckets,
		}, []string{"serving"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ergonx_http_requests_in_flight",
			Help: "Predict requests being answered.",
		}, []string{"serving"}),
	}
	servings, err := metrics.NewCollector(metrics.Options{Node: h.nd, Servings: h.names, OnBatch: h.onBatch})
	if err != nil {
		return nil, err
	}
	m.servings = servings
	m.collectors = []prometheus.Collector{m.requests, m.errors, m.latency, m.inFlight, m.servings}
	for i, c := range m.collectors {
		if err := h.opts.Registry.Register(c); err != nil {
			for _, r := range m.collectors[:i] {
				h.opts.Registry.Unregister(r)
			}
			_ = servings.Close()
			return nil, fmt.Errorf("%w: registering metrics (is another handler using this registry?): %v", ErrInvalidOptions, err)
		}
	}
	return m, nil
}

// forServing resolves the HTTP children of serving name, so that its
// series exist (at zero) from the start.
func (m *metricsOf) forServing(name string) *servingMetrics {
	return &servingMetrics{
		m:        m,
		name:     name,
		latency:  m.latency.WithLabelValues(name),
		inFlight: m.inFlight.WithLabelValues(name),
	}
}

// done records an answered request.
func (sm *servingMetrics) done(status int, e *requestError, d time.Duration) {
	sm.m.requests.WithLabelValues(sm.name, strconv.Itoa(status)).Inc()
	if e != nil {
		sm.m.errors.WithLabelValues(sm.name, e.reason).Inc()
	}
	sm.latency.Observe(d.Seconds())
}

// UnknownServingLabel is the serving label of requests for servings the
// handler does not expose. It is a value of its own, not "": Prometheus
// reads an empty label as no label at all, which `by (serving)` queries
// and dashboards show as a serving without a name. NewHandler refuses a
// serving of this name.
const UnknownServingLabel = "(unknown)"

// unknown records a request for a serving the handler does not expose,
// under UnknownServingLabel: request paths never become labels, so that
// clients cannot grow the number of series.
func (m *metricsOf) unknown(e *requestError) {
	m.requests.WithLabelValues(UnknownServingLabel, strconv.Itoa(e.status)).Inc()
	m.errors.WithLabelValues(UnknownServingLabel, e.reason).Inc()
}

// close detaches the servings' collector from telemetry and removes the
// metrics from the registry.
func (m *metricsOf) close() {
	_ = m.servings.Close()
	for _, c := range m.collectors {
		m.h.opts.Registry.Unregister(c)
	}
}

// onBatch feeds the live page with every executed batch of an exposed
// serving. It runs on the serving's partition worker.
func (h *Handler) onBatch(b serving.BatchStats) {
	if rt := h.routes[b.Serving]; rt != nil {
		rt.live.batch(b.Size)
	}
}

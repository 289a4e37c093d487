package httpapi

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/serving"
)

// Buckets of the histograms.
var (
	// timeBuckets, in seconds: 100 µs to 6.5 s, doubling.
	timeBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)
	// sizeBuckets, in rows: 1 to 4096, doubling.
	sizeBuckets = prometheus.ExponentialBuckets(1, 2, 13)
)

// telemetryIDs numbers the handlers' telemetry attachments, so that
// every handler of the process has an id of its own.
var telemetryIDs atomic.Int64

// metrics are a handler's Prometheus metrics (see the package doc for
// what each means).
type metrics struct {
	h           *Handler
	telemetryID string

	requests  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	inFlight  *prometheus.GaugeVec
	batchSize *prometheus.HistogramVec
	padding   *prometheus.CounterVec
	queueWait *prometheus.HistogramVec
	execution *prometheus.HistogramVec
	stats     *statsCollector

	collectors []prometheus.Collector
}

// servingMetrics are the children of one serving, resolved once.
type servingMetrics struct {
	m        *metrics
	name     string
	latency  prometheus.Observer
	inFlight prometheus.Gauge
	// batches are the batch series of the default batch key; keys holds
	// those of other keys, resolved at their first batch (a serving's
	// keys are its Options.BatchKeys: the label set stays bounded).
	batches batchMetrics
	keys    sync.Map // key → *batchMetrics
}

// batchMetrics are the batch series of one serving and batch key.
type batchMetrics struct {
	batchSize prometheus.Observer
	padding   prometheus.Counter
	queueWait prometheus.Observer
	execution prometheus.Observer
}

func newMetrics(h *Handler) (*metrics, error) {
	m := &metrics{
		h:           h,
		telemetryID: fmt.Sprintf("ergonx/httpapi/%s/%d", h.nodeName(), telemetryIDs.Add(1)),
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
			Buckets: timeBuckets,
		}, []string{"serving"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ergonx_http_requests_in_flight",
			Help: "Predict requests being answered.",
		}, []string{"serving"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ergonx_batch_size_rows",
			Help:    "Rows per batch the serving executed (padding excluded), by serving and batch key.",
			Buckets: sizeBuckets,
		}, []string{"serving", "key"}),
		padding: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ergonx_batch_padding_rows_total",
			Help: "Zero rows added to batches as padding, by serving and batch key.",
		}, []string{"serving", "key"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ergonx_batch_queue_wait_seconds",
			Help:    "Time from a batch's first row's arrival at the serving to the start of its execution, by serving and batch key.",
			Buckets: timeBuckets,
		}, []string{"serving", "key"}),
		execution: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ergonx_batch_execution_seconds",
			Help:    "Time a batch's execution took, failed ones included, by serving and batch key.",
			Buckets: timeBuckets,
		}, []string{"serving", "key"}),
		stats: newStatsCollector(h),
	}
	m.collectors = []prometheus.Collector{m.requests, m.errors, m.latency, m.inFlight,
		m.batchSize, m.padding, m.queueWait, m.execution, m.stats}
	for i, c := range m.collectors {
		if err := h.opts.Registry.Register(c); err != nil {
			for _, r := range m.collectors[:i] {
				h.opts.Registry.Unregister(r)
			}
			return nil, fmt.Errorf("%w: registering metrics (is another handler using this registry?): %v", ErrInvalidOptions, err)
		}
	}
	return m, nil
}

// forServing resolves the children of serving name, so that its series
// exist (at zero) from the start.
func (m *metrics) forServing(name string) *servingMetrics {
	return &servingMetrics{
		m:        m,
		name:     name,
		latency:  m.latency.WithLabelValues(name),
		inFlight: m.inFlight.WithLabelValues(name),
		batches:  m.forKey(name, batch.DefaultKey),
	}
}

// forKey resolves the batch series of serving name and batch key.
func (m *metrics) forKey(name, key string) batchMetrics {
	return batchMetrics{
		batchSize: m.batchSize.WithLabelValues(name, key),
		padding:   m.padding.WithLabelValues(name, key),
		queueWait: m.queueWait.WithLabelValues(name, key),
		execution: m.execution.WithLabelValues(name, key),
	}
}

// batchesOf returns the batch series of key.
func (sm *servingMetrics) batchesOf(key string) *batchMetrics {
	if key == batch.DefaultKey || key == "" {
		return &sm.batches
	}
	if bm, ok := sm.keys.Load(key); ok {
		return bm.(*batchMetrics)
	}
	bm := sm.m.forKey(sm.name, key)
	got, _ := sm.keys.LoadOrStore(key, &bm)
	return got.(*batchMetrics)
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
func (m *metrics) unknown(e *requestError) {
	m.requests.WithLabelValues(UnknownServingLabel, strconv.Itoa(e.status)).Inc()
	m.errors.WithLabelValues(UnknownServingLabel, e.reason).Inc()
}

// attach subscribes to the servings' batch telemetry.
func (m *metrics) attach() error {
	return serving.AttachTelemetry(m.telemetryID, m.onBatch, serving.ExecuteStop, serving.ExecuteException)
}

// detach unsubscribes from telemetry.
func (m *metrics) detach() { _ = serving.DetachTelemetry(m.telemetryID) }

// unregister removes the metrics from the registry.
func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.h.opts.Registry.Unregister(c)
	}
}

// onBatch records one executed batch of an exposed serving. It runs on
// the serving's partition worker, so it only updates atomics.
//
// Telemetry is process-wide and BatchStats names the serving, not its
// node: a process that runs servings of the same name on several nodes
// counts all of their batches here.
func (m *metrics) onBatch(ev serving.Event) {
	b := ev.Batch
	if b == nil {
		return
	}
	rt := m.h.routes[b.Serving]
	if rt == nil {
		return
	}
	bm := rt.m.batchesOf(b.Key)
	bm.batchSize.Observe(float64(b.Size))
	rt.live.batch(b.Size)
	if b.Padding > 0 {
		bm.padding.Add(float64(b.Padding))
	}
	bm.queueWait.Observe(b.QueueWait.Seconds())
	bm.execution.Observe(b.Execution.Seconds())
}

// statsCollector reads serving.GetStats of every exposed serving at
// scrape time.
type statsCollector struct {
	h *Handler

	up, stacked, queuedBatches, queuedRows, busy, partitions, waiting *prometheus.Desc
	requests, batches, rows, failed, cancelled, streamed              *prometheus.Desc
	keyStacked, keyQueued                                             *prometheus.Desc
}

func newStatsCollector(h *Handler) *statsCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"serving"}, nil)
	}
	return &statsCollector{
		h:             h,
		up:            d("ergonx_serving_up", "1 when the serving runs on this node, 0 when it does not (stopped, or only on other nodes)."),
		stacked:       d("ergonx_serving_stacked_rows", "Rows waiting for their batch to fill or time out."),
		queuedBatches: d("ergonx_serving_queued_batches", "Batches waiting for a free partition."),
		queuedRows:    d("ergonx_serving_queued_rows", "Rows in the batches waiting for a free partition."),
		busy:          d("ergonx_serving_busy_partitions", "Partitions running a batch."),
		partitions:    d("ergonx_serving_partitions", "Partitions of the serving."),
		waiting:       d("ergonx_serving_waiting_callers", "Callers waiting for an answer."),
		requests:      d("ergonx_serving_requests_total", "Requests the serving accepted since it started (from every caller, not only HTTP)."),
		batches:       d("ergonx_serving_batches_total", "Batches the serving executed since it started."),
		rows:          d("ergonx_serving_rows_total", "Rows in the batches the serving executed since it started."),
		failed:        d("ergonx_serving_failed_batches_total", "Batches whose callers got an error since the serving started."),
		cancelled:     d("ergonx_serving_cancelled_requests_total", "Requests whose callers gave up (context ended) since the serving started."),
		streamed:      d("ergonx_serving_streamed_requests_total", "Requests whose callers stream the results since the serving started."),
		keyStacked: prometheus.NewDesc("ergonx_serving_key_stacked_rows", "Rows of one batch key waiting for their batch to fill or time out.",
			[]string{"serving", "key"}, nil),
		keyQueued: prometheus.NewDesc("ergonx_serving_key_queued_rows", "Rows of one batch key in batches waiting for a free partition.",
			[]string{"serving", "key"}, nil),
	}
}

// Describe sends every descriptor.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.stacked, c.queuedBatches, c.queuedRows, c.busy, c.partitions, c.waiting,
		c.requests, c.batches, c.rows, c.failed, c.cancelled, c.streamed, c.keyStacked, c.keyQueued} {
		ch <- d
	}
}

// Collect takes a snapshot of every exposed serving. It is safe for
// concurrent use: GetStats is.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	counter := func(d *prometheus.Desc, v uint64, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
	}
	for _, name := range c.h.names {
		st, err := serving.GetStats(c.h.nd, name)
		if err != nil || st.Stopped {
			gauge(c.up, 0, name)
			continue
		}
		gauge(c.up, 1, name)
		gauge(c.stacked, float64(st.StackedRows), name)
		gauge(c.queuedBatches, float64(st.QueuedBatches), name)
		gauge(c.queuedRows, float64(st.QueuedRows), name)
		gauge(c.busy, float64(st.BusyPartitions), name)
		gauge(c.partitions, float64(st.Partitions), name)
		gauge(c.waiting, float64(st.Waiting), name)
		counter(c.requests, st.Requests, name)
		counter(c.batches, st.Batches, name)
		counter(c.rows, st.Rows, name)
		counter(c.failed, st.FailedBatches, name)
		counter(c.cancelled, st.Cancelled, name)
		counter(c.streamed, st.Streamed, name)
		for _, k := range st.Keys {
			ch <- prometheus.MustNewConstMetric(c.keyStacked, prometheus.GaugeValue, float64(k.StackedRows), name, k.Key)
			ch <- prometheus.MustNewConstMetric(c.keyQueued, prometheus.GaugeValue, float64(k.QueuedRows), name, k.Key)
		}
	}
}

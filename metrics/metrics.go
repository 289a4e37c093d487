package metrics

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ergo-services/ergo/node"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/serving"
)

// DefaultNamespace prefixes every metric name unless Options.Namespace
// says otherwise.
const DefaultNamespace = "ergonx"

// Buckets of the histograms.
var (
	// TimeBuckets, in seconds: 100 µs to 6.5 s, doubling.
	TimeBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)
	// SizeBuckets, in rows: 1 to 4096, doubling.
	SizeBuckets = prometheus.ExponentialBuckets(1, 2, 13)
)

// ErrInvalidOptions is returned by NewCollector for options it cannot
// use.
var ErrInvalidOptions = errors.New("metrics: invalid options")

// Options configure a Collector; NewCollector reads them once.
type Options struct {
	// Node is the node the servings run on; nil means the servings
	// started without a node (serving.Start(nil, ...)).
	Node node.Node

	// Servings names the servings to report on. Their series exist (at
	// zero) from the start.
	Servings []string

	// Namespace prefixes every metric name ("<Namespace>_serving_up"...).
	// "" means DefaultNamespace. Two collectors on one registry need
	// different namespaces or disjoint Servings.
	Namespace string

	// OnBatch, when set, is called with every batch of a named serving
	// the collector records, on the goroutine that ran it: it must be
	// fast and safe for concurrent use (the HTTP app feeds its live page
	// with it).
	OnBatch func(serving.BatchStats)
}

// Collector is a prometheus.Collector of servings' metrics (see the
// package doc). Register it on a registry; Close it when done, to detach
// it from the servings' telemetry.
type Collector struct {
	nd          node.Node
	names       []string
	series      map[string]*servingSeries // immutable after NewCollector
	onBatch     func(serving.BatchStats)
	telemetryID string

	batchSize *prometheus.HistogramVec
	padding   *prometheus.CounterVec
	queueWait *prometheus.HistogramVec
	execution *prometheus.HistogramVec

	up, batchSizeConf, batchTimeout, maxQueue, partitions          *prometheus.Desc
	stacked, queuedBatches, queuedRows, busy, waiting              *prometheus.Desc
	requests, batches, rows, failed, cancelled, rejected, streamed *prometheus.Desc
	keyStacked, keyQueued                                          *prometheus.Desc
	closeOnce                                                      sync.Once
}

var _ prometheus.Collector = (*Collector)(nil)

// servingSeries are the batch series of one serving.
type servingSeries struct {
	name string
	// def are the series of the default batch key; keys holds those of
	// other keys, resolved at their first batch (a serving's keys are its
	// Options.BatchKeys: the label set stays bounded).
	def  batchSeries
	keys sync.Map // key → *batchSeries
}

// batchSeries are the batch series of one serving and batch key.
type batchSeries struct {
	batchSize prometheus.Observer
	padding   prometheus.Counter
	queueWait prometheus.Observer
	execution prometheus.Observer
}

// collectorIDs numbers the collectors' telemetry attachments.
var collectorIDs atomic.Int64

// NewCollector returns a collector of the servings opts names and
// attaches it to the servings' telemetry.
func NewCollector(opts Options) (*Collector, error) {
	ns := opts.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	seen := map[string]bool{}
	for _, name := range opts.Servings {
		if name == "" || seen[name] {
			return nil, fmt.Errorf("%w: Servings must be distinct non-empty names, got %q", ErrInvalidOptions, opts.Servings)
		}
		seen[name] = true
	}
	nodeName := ""
	if opts.Node != nil {
		nodeName = opts.Node.Name()
	}
	c := &Collector{
		nd:          opts.Node,
		names:       slices.Sorted(slices.Values(opts.Servings)),
		series:      map[string]*servingSeries{},
		onBatch:     opts.OnBatch,
		telemetryID: fmt.Sprintf("ergonx/metrics/%s/%s/%d", ns, nodeName, collectorIDs.Add(1)),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "batch_size_rows",
			Help:    "Rows per batch the serving executed (padding excluded), by serving and batch key.",
			Buckets: SizeBuckets,
		}, []string{"serving", "key"}),
		padding: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "batch_padding_rows_total",
			Help: "Zero rows added to batches as padding, by serving and batch key.",
		}, []string{"serving", "key"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "batch_queue_wait_seconds",
			Help:    "Time from a batch's first row's arrival at the serving to the start of its execution, by serving and batch key.",
			Buckets: TimeBuckets,
		}, []string{"serving", "key"}),
		execution: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "batch_execution_seconds",
			Help:    "Time a batch's execution took, failed ones included, by serving and batch key.",
			Buckets: TimeBuckets,
		}, []string{"serving", "key"}),
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(ns+"_serving_"+name, help, []string{"serving"}, nil)
	}
	c.up = d("up", "1 when the serving runs (on the collector's node, or without a node), 0 when it does not (stopped, or only on other nodes).")
	c.batchSizeConf = d("batch_size", "The serving's configured batch size: the most rows a batch holds.")
	c.batchTimeout = d("batch_timeout_seconds", "The serving's configured batch timeout: how long a batch's first rows wait for more.")
	c.maxQueue = d("max_queue_rows", "The bound on rows waiting in the serving (stacked or queued); 0 for none.")
	c.partitions = d("partitions", "Partitions of the serving.")
	c.stacked = d("stacked_rows", "Rows waiting for their batch to fill or time out.")
	c.queuedBatches = d("queued_batches", "Batches waiting for a free partition.")
	c.queuedRows = d("queued_rows", "Rows in the batches waiting for a free partition.")
	c.busy = d("busy_partitions", "Partitions running a batch.")
	c.waiting = d("waiting_callers", "Callers waiting for an answer.")
	c.requests = d("requests_total", "Requests the serving accepted since it started (from every caller).")
	c.batches = d("batches_total", "Batches the serving executed since it started.")
	c.rows = d("rows_total", "Rows in the batches the serving executed since it started.")
	c.failed = d("failed_batches_total", "Batches whose callers got an error since the serving started.")
	c.cancelled = d("cancelled_requests_total", "Requests whose callers gave up (context ended) since the serving started.")
	c.rejected = d("rejected_requests_total", "Requests refused because the serving's queue was full (ErrOverloaded) since it started.")
	c.streamed = d("streamed_requests_total", "Requests whose callers stream the results since the serving started.")
	c.keyStacked = prometheus.NewDesc(ns+"_serving_key_stacked_rows", "Rows of one batch key waiting for their batch to fill or time out.",
		[]string{"serving", "key"}, nil)
	c.keyQueued = prometheus.NewDesc(ns+"_serving_key_queued_rows", "Rows of one batch key in batches waiting for a free partition.",
		[]string{"serving", "key"}, nil)
	for _, name := range c.names {
		c.series[name] = &servingSeries{name: name, def: c.forKey(name, batch.DefaultKey)}
	}
	if err := serving.AttachTelemetry(c.telemetryID, c.record, serving.ExecuteStop, serving.ExecuteException); err != nil {
		return nil, err
	}
	return c, nil
}

// Close detaches the collector from the servings' telemetry: its batch
// series stop counting. It is idempotent and always returns nil.
func (c *Collector) Close() error {
	c.closeOnce.Do(func() { _ = serving.DetachTelemetry(c.telemetryID) })
	return nil
}

// forKey resolves the batch series of serving name and batch key.
func (c *Collector) forKey(name, key string) batchSeries {
	return batchSeries{
		batchSize: c.batchSize.WithLabelValues(name, key),
		padding:   c.padding.WithLabelValues(name, key),
		queueWait: c.queueWait.WithLabelValues(name, key),
		execution: c.execution.WithLabelValues(name, key),
	}
}

// of returns the batch series of key.
func (s *servingSeries) of(c *Collector, key string) *batchSeries {
	if key == batch.DefaultKey || key == "" {
		return &s.def
	}
	if bs, ok := s.keys.Load(key); ok {
		return bs.(*batchSeries)
	}
	bs := c.forKey(s.name, key)
	got, _ := s.keys.LoadOrStore(key, &bs)
	return got.(*batchSeries)
}

// record records one executed batch of a named serving. It runs on the
// serving's partition worker, so it only updates atomics.
func (c *Collector) record(ev serving.Event) {
	b := ev.Batch
	if b == nil {
		return
	}
	s := c.series[b.Serving]
	if s == nil {
		return
	}
	bs := s.of(c, b.Key)
	bs.batchSize.Observe(float64(b.Size))
	if b.Padding > 0 {
		bs.padding.Add(float64(b.Padding))
	}
	bs.queueWait.Observe(b.QueueWait.Seconds())
	bs.execution.Observe(b.Execution.Seconds())
	if c.onBatch != nil {
		c.onBatch(*b)
	}
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.batchSize.Describe(ch)
	c.padding.Describe(ch)
	c.queueWait.Describe(ch)
	c.execution.Describe(ch)
	for _, d := range []*prometheus.Desc{c.up, c.batchSizeConf, c.batchTimeout, c.maxQueue, c.partitions,
		c.stacked, c.queuedBatches, c.queuedRows, c.busy, c.waiting,
		c.requests, c.batches, c.rows, c.failed, c.cancelled, c.rejected, c.streamed, c.keyStacked, c.keyQueued} {
		ch <- d
	}
}

// Collect sends the batch series and a snapshot of every named serving
// (serving.GetStats, which is safe for concurrent use).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.batchSize.Collect(ch)
	c.padding.Collect(ch)
	c.queueWait.Collect(ch)
	c.execution.Collect(ch)
	gauge := func(d *prometheus.Desc, v float64, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
	}
	counter := func(d *prometheus.Desc, v uint64, name string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
	}
	for _, name := range c.names {
		st, err := serving.GetStats(c.nd, name)
		if err != nil || st.Stopped {
			gauge(c.up, 0, name)
			continue
		}
		gauge(c.up, 1, name)
		gauge(c.batchSizeConf, float64(st.BatchSize), name)
		gauge(c.batchTimeout, st.BatchTimeout.Seconds(), name)
		gauge(c.maxQueue, float64(st.MaxQueue), name)
		gauge(c.partitions, float64(st.Partitions), name)
		gauge(c.stacked, float64(st.StackedRows), name)
		gauge(c.queuedBatches, float64(st.QueuedBatches), name)
		gauge(c.queuedRows, float64(st.QueuedRows), name)
		gauge(c.busy, float64(st.BusyPartitions), name)
		gauge(c.waiting, float64(st.Waiting), name)
		counter(c.requests, st.Requests, name)
		counter(c.batches, st.Batches, name)
		counter(c.rows, st.Rows, name)
		counter(c.failed, st.FailedBatches, name)
		counter(c.cancelled, st.Cancelled, name)
		counter(c.rejected, st.Rejected, name)
		counter(c.streamed, st.Streamed, name)
		for _, k := range st.Keys {
			ch <- prometheus.MustNewConstMetric(c.keyStacked, prometheus.GaugeValue, float64(k.StackedRows), name, k.Key)
			ch <- prometheus.MustNewConstMetric(c.keyQueued, prometheus.GaugeValue, float64(k.QueuedRows), name, k.Key)
		}
	}
}

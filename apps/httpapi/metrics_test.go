package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// scrape reads /metrics and parses it as Prometheus' text format.
func scrape(t testing.TB, srv *httptest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	r := do(t, nil, "GET", srv.URL+"/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Contains(t, r.header.Get("Content-Type"), "text/plain")
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	require.NoError(t, err, "body %s", r.body)
	return families
}

// metric finds the series of family name with the given labels.
func metric(t testing.TB, families map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	t.Helper()
	f := families[name]
	require.NotNil(t, f, "no metric %s", name)
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no series %s%v", name, labels)
	return nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// After some requests, /metrics counts them by code and reason, and
// describes the batches that ran and the servings' state.
func TestMetricsAfterRequests(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	// A unique name: telemetry is process-wide.
	startServing(t, nd, serving.Options{Name: "digits-metrics", Serving: digits.Serving(m), BatchSize: 4, BatchTimeout: time.Millisecond})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits-metrics", Row: digitsRow}, {Name: "down"}}})

	// Ten requests of 1 to 3 rows (19 rows), one at a time; then errors.
	sent := 0
	for i := range 10 {
		n := 1 + i%3
		x := images(t, rows[sent:sent+n]...)
		sent += n
		r := do(t, nil, "POST", predictURL(srv, "digits-metrics"), "", tensorJSON([]int{n, 64}, x.Data().([]float32)))
		require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	}
	require.Equal(t, 19, sent)
	require.Equal(t, http.StatusBadRequest, do(t, nil, "POST", predictURL(srv, "digits-metrics"), "", tensorJSON([]int{1, 3}, []float32{1, 2, 3})).status)
	require.Equal(t, http.StatusBadRequest, do(t, nil, "POST", predictURL(srv, "digits-metrics"), "", []byte("{")).status)
	require.Equal(t, http.StatusServiceUnavailable, do(t, nil, "POST", predictURL(srv, "down"), "", tensorJSON([]int{1, 1}, []float32{1})).status)
	require.Equal(t, http.StatusNotFound, do(t, nil, "POST", predictURL(srv, "unknown"), "", nil).status)

	fs := scrape(t, srv)
	const s = "digits-metrics"
	assert.Equal(t, 10.0, value(metric(t, fs, "ergonx_http_requests_total", "serving", s, "code", "200")))
	assert.Equal(t, 2.0, value(metric(t, fs, "ergonx_http_requests_total", "serving", s, "code", "400")))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_http_requests_total", "serving", "down", "code", "503")))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_http_requests_total", "serving", httpapi.UnknownServingLabel, "code", "404")))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_http_errors_total", "serving", s, "reason", "bad_shape")))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_http_errors_total", "serving", s, "reason", "malformed")))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_http_errors_total", "serving", "down", "reason", "serving_unavailable")))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_http_errors_total", "serving", httpapi.UnknownServingLabel, "reason", "unknown_serving")))

	lat := metric(t, fs, "ergonx_http_request_duration_seconds", "serving", s).Histogram
	assert.Equal(t, uint64(12), lat.GetSampleCount())
	assert.Greater(t, lat.GetSampleSum(), 0.0)
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_http_requests_in_flight", "serving", s)))

	// One request at a time: every batch is one request's rows.
	size := metric(t, fs, "ergonx_batch_size_rows", "serving", s).Histogram
	assert.Equal(t, uint64(10), size.GetSampleCount())
	assert.Equal(t, 19.0, size.GetSampleSum())
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_batch_padding_rows_total", "serving", s)))
	wait := metric(t, fs, "ergonx_batch_queue_wait_seconds", "serving", s).Histogram
	assert.Equal(t, uint64(10), wait.GetSampleCount())
	assert.Greater(t, wait.GetSampleSum(), 0.0, "batches of 1-3 rows waited for the timeout")
	exec := metric(t, fs, "ergonx_batch_execution_seconds", "serving", s).Histogram
	assert.Equal(t, uint64(10), exec.GetSampleCount())

	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_serving_up", "serving", s)))
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_serving_up", "serving", "down")))
	assert.Equal(t, 10.0, value(metric(t, fs, "ergonx_serving_requests_total", "serving", s)))
	assert.Equal(t, 10.0, value(metric(t, fs, "ergonx_serving_batches_total", "serving", s)))
	assert.Equal(t, 19.0, value(metric(t, fs, "ergonx_serving_rows_total", "serving", s)))
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_serving_failed_batches_total", "serving", s)))
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_serving_cancelled_requests_total", "serving", s)))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_serving_partitions", "serving", s)))
	for _, name := range []string{"ergonx_serving_stacked_rows", "ergonx_serving_queued_batches", "ergonx_serving_queued_rows",
		"ergonx_serving_busy_partitions", "ergonx_serving_waiting_callers"} {
		assert.Equal(t, 0.0, value(metric(t, fs, name, "serving", s)), name)
	}
}

// While a batch runs and another waits for the partition, the gauges
// show the queue, the busy partition and the waiting callers.
func TestMetricsShowQueueDepth(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	g := newGate()
	defer g.open()
	startServing(t, nd, serving.Options{Name: "gated-metrics", Serving: g.serving(), BatchSize: 2, BatchTimeout: time.Hour})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "gated-metrics"}}})

	var wg sync.WaitGroup
	post := func(n int) {
		wg.Go(func() {
			r, err := doE(nil, "POST", predictURL(srv, "gated-metrics"), "", tensorJSON([]int{n, 1}, make([]float32, n)))
			assert.NoError(t, err)
			assert.Equal(t, http.StatusOK, r.status, "body %s", r.body)
		})
	}
	post(2) // a full batch: runs at once and blocks
	g.waitStarted(t)
	stats := func() serving.Stats {
		st, err := serving.GetStats(nd, "gated-metrics")
		require.NoError(t, err)
		return st
	}
	post(2) // a full batch: queued behind it
	waitFor(t, "a queued batch", func() bool { return stats().QueuedBatches == 1 })
	post(1) // stacked, waiting for a second row (the timeout is an hour)
	waitFor(t, "a stacked row", func() bool { return stats().StackedRows == 1 })

	fs := scrape(t, srv)
	const s = "gated-metrics"
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_serving_busy_partitions", "serving", s)))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_serving_queued_batches", "serving", s)))
	assert.Equal(t, 2.0, value(metric(t, fs, "ergonx_serving_queued_rows", "serving", s)))
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_serving_stacked_rows", "serving", s)))
	assert.Equal(t, 3.0, value(metric(t, fs, "ergonx_serving_waiting_callers", "serving", s)))
	assert.Equal(t, 3.0, value(metric(t, fs, "ergonx_http_requests_in_flight", "serving", s)))

	// The stacked row completes a batch with one more.
	post(1)
	g.open()
	wg.Wait()
	fs = scrape(t, srv)
	size := metric(t, fs, "ergonx_batch_size_rows", "serving", s).Histogram
	assert.Equal(t, uint64(3), size.GetSampleCount())
	assert.Equal(t, 6.0, size.GetSampleSum())
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_http_requests_in_flight", "serving", s)))
}

// The batch series and the per-key gauges carry the batch key of a
// serving with Options.BatchKeys.
func TestMetricsByBatchKey(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	const s = "keys-metrics" // a unique name: telemetry is process-wide
	double := serving.JIT(func(in any) (any, error) { return in.(*tensor.Dense).MulScalar(float32(2), true) })
	startServing(t, nd, serving.Options{Name: s, Serving: double, BatchSize: 2, BatchTimeout: time.Hour,
		BatchKeys: []string{"short", "long"}})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: s}}})

	run := func(key string, vs ...float32) {
		b, err := batch.Concatenate(tensor.New(tensor.WithShape(len(vs)), tensor.WithBacking(vs)))
		require.NoError(t, err)
		b.SetKey(key)
		_, err = serving.BatchedRun(context.Background(), nd, s, b)
		require.NoError(t, err)
	}
	run("short", 1, 2)
	run("long", 1, 2)
	run("long", 3, 4)
	stacked := make(chan error, 1)
	go func() {
		b, _ := batch.Concatenate(tensor.New(tensor.WithShape(1), tensor.WithBacking([]float32{5})))
		b.SetKey("long")
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		_, err := serving.BatchedRun(ctx, nd, s, b)
		stacked <- err
	}()
	require.Eventually(t, func() bool {
		st, err := serving.GetStats(nd, s)
		return err == nil && st.StackedRows == 1
	}, 10*time.Second, time.Millisecond)

	fs := scrape(t, srv)
	assert.Equal(t, uint64(1), metric(t, fs, "ergonx_batch_size_rows", "serving", s, "key", "short").Histogram.GetSampleCount())
	assert.Equal(t, uint64(2), metric(t, fs, "ergonx_batch_size_rows", "serving", s, "key", "long").Histogram.GetSampleCount())
	assert.Equal(t, uint64(0), metric(t, fs, "ergonx_batch_size_rows", "serving", s, "key", "default").Histogram.GetSampleCount())
	assert.Equal(t, 1.0, value(metric(t, fs, "ergonx_serving_key_stacked_rows", "serving", s, "key", "long")))
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_serving_key_stacked_rows", "serving", s, "key", "short")))
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_serving_key_queued_rows", "serving", s, "key", "long")))
	assert.Equal(t, 0.0, value(metric(t, fs, "ergonx_serving_streamed_requests_total", "serving", s)))
}

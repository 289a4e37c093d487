package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ergonx/ergonx/metrics"
	"github.com/ergonx/ergonx/serving"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo is a typed serving that returns its rows.
func echo() *serving.Typed[[]float32, []float32] {
	return serving.NewBatchFunc(func(_ context.Context, rows [][]float32) ([][]float32, error) { return rows, nil })
}

// gather collects reg and indexes its series by name and serving label.
func gather(t *testing.T, reg *prometheus.Registry) map[string]map[string]*dto.Metric {
	t.Helper()
	fs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]map[string]*dto.Metric{}
	for _, f := range fs {
		out[f.GetName()] = map[string]*dto.Metric{}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "serving" {
					out[f.GetName()][l.GetValue()] = m
				}
			}
		}
	}
	return out
}

// The collector reports a serving's configuration, state, counters and
// batches, and a serving that does not run as down.
func TestCollector(t *testing.T) {
	const name = "metrics-echo"
	e := echo()
	h, err := serving.Start(nil, serving.Options{Name: name, Serving: e.Serving(), BatchSize: 4, BatchTimeout: time.Hour, MaxQueue: 100})
	require.NoError(t, err)
	defer h.Stop(context.Background())

	c, err := metrics.NewCollector(metrics.Options{Servings: []string{name, "absent"}})
	require.NoError(t, err)
	defer c.Close()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))

	// Two requests of two rows: one batch of four.
	client := e.Client(h)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := client.CallMany(context.Background(), [][]float32{{1}, {2}})
			done <- err
		}()
	}
	require.NoError(t, <-done)
	require.NoError(t, <-done)
	// A batch's counters move just after its callers have their rows.
	waitBatches(t, h, 1)

	m := gather(t, reg)
	assert.Equal(t, 1.0, m["ergonx_serving_up"][name].GetGauge().GetValue())
	assert.Equal(t, 0.0, m["ergonx_serving_up"]["absent"].GetGauge().GetValue())
	assert.Equal(t, 4.0, m["ergonx_serving_batch_size"][name].GetGauge().GetValue())
	assert.Equal(t, 3600.0, m["ergonx_serving_batch_timeout_seconds"][name].GetGauge().GetValue())
	assert.Equal(t, 100.0, m["ergonx_serving_max_queue_rows"][name].GetGauge().GetValue())
	assert.Equal(t, 1.0, m["ergonx_serving_partitions"][name].GetGauge().GetValue())
	assert.Equal(t, 2.0, m["ergonx_serving_requests_total"][name].GetCounter().GetValue())
	assert.Equal(t, 1.0, m["ergonx_serving_batches_total"][name].GetCounter().GetValue())
	assert.Equal(t, 4.0, m["ergonx_serving_rows_total"][name].GetCounter().GetValue())
	assert.Equal(t, 0.0, m["ergonx_serving_rejected_requests_total"][name].GetCounter().GetValue())
	size := m["ergonx_batch_size_rows"][name].GetHistogram()
	assert.Equal(t, uint64(1), size.GetSampleCount())
	assert.Equal(t, 4.0, size.GetSampleSum())
	assert.Equal(t, uint64(1), m["ergonx_batch_execution_seconds"][name].GetHistogram().GetSampleCount())
	assert.NotContains(t, m["ergonx_serving_batches_total"], "absent", "a serving that does not run has only up")

	// Closed, the collector no longer counts batches.
	require.NoError(t, c.Close())
	_, err = client.CallMany(context.Background(), [][]float32{{1}, {2}, {3}, {4}})
	require.NoError(t, err)
	waitBatches(t, h, 2)
	m = gather(t, reg)
	assert.Equal(t, uint64(1), m["ergonx_batch_size_rows"][name].GetHistogram().GetSampleCount())
	assert.Equal(t, 2.0, m["ergonx_serving_batches_total"][name].GetCounter().GetValue(), "the stats are read at scrape time")
}

// Namespace prefixes every name, so that two families of servings report
// apart on one registry; names must be distinct.
func TestCollectorNamespace(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := metrics.NewCollector(metrics.Options{Servings: []string{"x"}})
	require.NoError(t, err)
	defer a.Close()
	b, err := metrics.NewCollector(metrics.Options{Servings: []string{"x"}, Namespace: "other"})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, reg.Register(a))
	require.NoError(t, reg.Register(b))
	m := gather(t, reg)
	assert.Contains(t, m, "ergonx_serving_up")
	assert.Contains(t, m, "other_serving_up")
	assert.Contains(t, m, "other_batch_size_rows")

	_, err = metrics.NewCollector(metrics.Options{Servings: []string{"x", "x"}})
	require.ErrorIs(t, err, metrics.ErrInvalidOptions)
}

// waitBatches waits until h's serving has counted n batches (10 s at
// most).
func waitBatches(t *testing.T, h *serving.Handle, n uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := h.Stats()
		return err == nil && st.Batches == n
	}, 10*time.Second, 100*time.Microsecond)
}

package httpapi_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

type liveServing struct {
	Name              string  `json:"name"`
	Up                bool    `json:"up"`
	BatchSize         int     `json:"batch_size"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	RowsPerSecond     float64 `json:"rows_per_second"`
	RequestsTotal     uint64  `json:"requests_total"`
	BatchesTotal      uint64  `json:"batches_total"`
	LatencyCount      int64   `json:"latency_count"`
	P50               float64 `json:"p50_seconds"`
	P99               float64 `json:"p99_seconds"`
	QueueDepth        int     `json:"queue_depth_rows"`
	BusyPartitions    int     `json:"busy_partitions"`
	Partitions        int     `json:"partitions"`
	BatchSizes        []struct {
		Min, Max int
		Count    int64
	} `json:"batch_sizes"`
}

// The live figures move with the load: totals, throughput against the
// previous sample, latency percentiles, the batch-size histogram.
func TestLiveFiguresMoveUnderLoad(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	defer httpapi.SetLiveClock(func() time.Time { return time.Unix(0, now.Load()) })()

	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startServing(t, nd, serving.Options{Name: "digits", Serving: digits.Serving(m), BatchSize: 4, BatchTimeout: time.Millisecond})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow}, {Name: "elsewhere"}}})

	read := func() (liveServing, liveServing) {
		r := do(t, nil, "GET", srv.URL+"/v1/live", "", nil)
		require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
		var out struct {
			Node     string        `json:"node"`
			Servings []liveServing `json:"servings"`
		}
		require.NoError(t, json.Unmarshal(r.body, &out))
		assert.Equal(t, nd.Name(), out.Node)
		require.Len(t, out.Servings, 2)
		return out.Servings[0], out.Servings[1]
	}
	d, other := read()
	assert.Equal(t, "digits", d.Name)
	assert.True(t, d.Up)
	assert.Equal(t, 4, d.BatchSize)
	assert.Zero(t, d.RequestsTotal)
	assert.Zero(t, d.RequestsPerSecond)
	assert.Zero(t, d.LatencyCount)
	assert.Equal(t, "elsewhere", other.Name)
	assert.False(t, other.Up)

	// 3 requests of 4 rows each: 3 full batches.
	for i := 0; i < 3; i++ {
		x := images(t, rows[4*i:4*i+4]...)
		r := do(t, nil, "POST", predictURL(srv, "digits"), "", tensorJSON([]int{4, 64}, x.Data().([]float32)))
		require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	}
	now.Add(int64(2 * time.Second))
	d, _ = read()
	assert.Equal(t, uint64(3), d.RequestsTotal)
	assert.Equal(t, uint64(3), d.BatchesTotal)
	assert.Equal(t, 1.5, d.RequestsPerSecond, "3 requests in the 2 s since the last sample")
	assert.Equal(t, 6.0, d.RowsPerSecond)
	assert.Equal(t, int64(3), d.LatencyCount)
	assert.Positive(t, d.P50)
	assert.GreaterOrEqual(t, d.P99, d.P50)
	assert.Zero(t, d.QueueDepth)
	assert.Equal(t, 0, d.BusyPartitions)
	assert.Equal(t, 1, d.Partitions)
	var sizes []int64
	for _, b := range d.BatchSizes {
		sizes = append(sizes, b.Count)
	}
	// Buckets up to the batch size: 1, 2-3, 4.
	require.Len(t, d.BatchSizes, 3)
	assert.Equal(t, []int{1, 2, 4}, []int{d.BatchSizes[0].Min, d.BatchSizes[1].Min, d.BatchSizes[2].Min})
	assert.Equal(t, []int{1, 3, 4}, []int{d.BatchSizes[0].Max, d.BatchSizes[1].Max, d.BatchSizes[2].Max})
	assert.Equal(t, []int64{0, 0, 3}, sizes)

	// Past the latency window, the percentiles have nothing to show.
	now.Add(int64(11 * time.Second))
	d, _ = read()
	assert.Zero(t, d.LatencyCount)
	assert.Zero(t, d.RequestsPerSecond, "no request since the last sample")
}

// GET / is the page: HTML that loads nothing from anywhere else.
func TestLivePageIsSelfContained(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	_, srv := newServer(t, nd, httpapi.Options{})
	r := do(t, nil, "GET", srv.URL+"/", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
	assert.Contains(t, r.header.Get("Content-Security-Policy"), "default-src 'self'")
	assert.Contains(t, string(r.body), `fetch("/v1/live"`)
	assert.NotRegexp(t, regexp.MustCompile(`(src|href)\s*=\s*["']?(https?:)?//`), string(r.body), "no CDN, no external resource")
	assert.NotRegexp(t, regexp.MustCompile(`<(script|link)[^>]+(src|href)=`), string(r.body), "scripts and styles are inline")

	r = do(t, nil, "POST", srv.URL+"/", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	r = do(t, nil, "GET", srv.URL+"/nothing-here", "", nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "not_found", r.err(t).Reason)
}

package httpapi

import (
	_ "embed"
	"math/bits"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ergonx/ergonx/serving"
)

// The live page: GET / shows every serving's throughput, latency, queue,
// busy partitions and batch sizes, and polls GET /v1/live for them. The
// page is one HTML file embedded in the binary: no CDN, nothing fetched
// from anywhere but this server.

//go:embed assets/live.html
var livePage []byte

// Windows of the live figures.
const (
	// liveLatencyWindow is how far back the latency percentiles look.
	liveLatencyWindow = 10 // seconds
	// liveRateWindow is how far back throughput looks: the rate is taken
	// against the oldest sample within it.
	liveRateWindow = 5 * time.Second
	// liveSampleEvery spaces the samples the rates are taken against.
	liveSampleEvery = 200 * time.Millisecond
)

// nowFunc is the live figures' clock; tests replace it.
var nowFunc = time.Now

// liveServing holds one serving's live figures. Its methods are safe
// for concurrent use.
type liveServing struct {
	// sizes counts executed batches by size: bucket k holds the sizes
	// whose bit length is k, [2^(k-1), 2^k).
	sizes [33]atomic.Int64

	mu      sync.Mutex // guards the fields below
	lat     [liveLatencyWindow]*hdrhistogram.Histogram
	stamp   [liveLatencyWindow]int64 // the Unix second each lat slot holds
	samples []liveSample             // recent counters, oldest first
}

// liveSample is a serving's counters at one time.
type liveSample struct {
	at                      time.Time
	requests, rows, batches uint64
}

func newLiveServing() *liveServing {
	l := &liveServing{}
	for i := range l.lat {
		l.lat[i] = hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 2)
	}
	return l
}

// observe records an answered HTTP request's latency.
func (l *liveServing) observe(d time.Duration) {
	now := nowFunc().Unix()
	slot := now % liveLatencyWindow
	l.mu.Lock()
	if l.stamp[slot] != now {
		l.lat[slot].Reset()
		l.stamp[slot] = now
	}
	_ = l.lat[slot].RecordValue(max(d.Microseconds(), 1))
	l.mu.Unlock()
}

// batch records an executed batch of size rows.
func (l *liveServing) batch(size int) {
	if size > 0 {
		l.sizes[bits.Len(uint(size))].Add(1)
	}
}

// liveInfo is one serving on GET /v1/live.
type liveInfo struct {
	Name         string  `json:"name"`
	Up           bool    `json:"up"` // runs on this node
	BatchSize    int     `json:"batch_size"`
	BatchTimeout float64 `json:"batch_timeout_seconds"`
	Partitions   int     `json:"partitions"`

	RequestsPerSecond float64 `json:"requests_per_second"`
	RowsPerSecond     float64 `json:"rows_per_second"`
	BatchesPerSecond  float64 `json:"batches_per_second"`
	RequestsTotal     uint64  `json:"requests_total"`
	BatchesTotal      uint64  `json:"batches_total"`
	FailedBatches     uint64  `json:"failed_batches_total"`

	// Latency of the HTTP requests this server answered with 200 for the serving
	// in the last LatencyWindow seconds.
	LatencyWindow int     `json:"latency_window_seconds"`
	LatencyCount  int64   `json:"latency_count"`
	P50           float64 `json:"p50_seconds"`
	P99           float64 `json:"p99_seconds"`

	StackedRows    int `json:"stacked_rows"`
	QueuedBatches  int `json:"queued_batches"`
	QueuedRows     int `json:"queued_rows"`
	QueueDepth     int `json:"queue_depth_rows"` // stacked + queued rows
	BusyPartitions int `json:"busy_partitions"`
	Waiting        int `json:"waiting_callers"`

	BatchSizes []liveBucket `json:"batch_sizes"`
}

// liveBucket is one bar of the batch-size histogram: batches of Min to
// Max rows.
type liveBucket struct {
	Min   int   `json:"min"`
	Max   int   `json:"max"`
	Count int64 `json:"count"`
}

// snapshot reads the serving's figures now.
func (l *liveServing) snapshot(name string, st serving.Stats, up bool) liveInfo {
	now := nowFunc()
	info := liveInfo{Name: name, Up: up, LatencyWindow: liveLatencyWindow}
	if up {
		info.BatchSize, info.BatchTimeout, info.Partitions = st.BatchSize, st.BatchTimeout.Seconds(), st.Partitions
		info.RequestsTotal, info.BatchesTotal, info.FailedBatches = st.Requests, st.Batches, st.FailedBatches
		info.StackedRows, info.QueuedBatches, info.QueuedRows = st.StackedRows, st.QueuedBatches, st.QueuedRows
		info.QueueDepth = st.StackedRows + st.QueuedRows
		info.BusyPartitions, info.Waiting = st.BusyPartitions, st.Waiting
	}
	limit := info.BatchSize
	for k := range l.sizes {
		n := l.sizes[k].Load()
		if n == 0 && (k == 0 || limit == 0 || 1<<(k-1) > limit) {
			continue
		}
		lo, hi := 1<<(k-1), 1<<k-1
		if limit > 0 {
			hi = min(hi, limit)
		}
		info.BatchSizes = append(info.BatchSizes, liveBucket{Min: lo, Max: hi, Count: n})
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	merged := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 2)
	for i := range l.lat {
		if l.stamp[i] > now.Unix()-liveLatencyWindow {
			merged.Merge(l.lat[i])
		}
	}
	info.LatencyCount = merged.TotalCount()
	if info.LatencyCount > 0 {
		info.P50 = float64(merged.ValueAtQuantile(50)) / 1e6
		info.P99 = float64(merged.ValueAtQuantile(99)) / 1e6
	}
	if !up {
		l.samples = l.samples[:0]
		return info
	}
	cur := liveSample{at: now, requests: st.Requests, rows: st.Rows, batches: st.Batches}
	// Forget samples past the window, and any from before a restart of
	// the serving (counters that went back).
	keep := l.samples[:0]
	for _, s := range l.samples {
		if now.Sub(s.at) <= liveRateWindow && s.requests <= cur.requests {
			keep = append(keep, s)
		}
	}
	l.samples = keep
	if len(l.samples) > 0 {
		old := l.samples[0]
		if dt := now.Sub(old.at).Seconds(); dt > 0 {
			info.RequestsPerSecond = float64(cur.requests-old.requests) / dt
			info.RowsPerSecond = float64(cur.rows-old.rows) / dt
			info.BatchesPerSecond = float64(cur.batches-old.batches) / dt
		}
	}
	if len(l.samples) == 0 || now.Sub(l.samples[len(l.samples)-1].at) >= liveSampleEvery {
		l.samples = append(l.samples, cur)
	}
	return info
}

// registerLive adds the live page and its data to mux.
func (h *Handler) registerLive(mux *recordingMux) {
	mux.HandleFunc("GET /{$}", h.livePage)
	mux.HandleFunc("GET /v1/live", h.liveData)
	for path, allow := range map[string]string{"/{$}": "GET, HEAD", "/v1/live": "GET, HEAD"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, "", &requestError{status: http.StatusMethodNotAllowed, reason: ReasonMethodNotAllowed,
				err: methodNotAllowed(r, allow)})
		})
	}
}

// livePage answers GET /: the page.
func (h *Handler) livePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(livePage)))
	// The page loads nothing from anywhere else, and says so.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(livePage)
}

// liveData answers GET /v1/live: every serving's figures, now.
func (h *Handler) liveData(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Node     string     `json:"node"`
		Time     time.Time  `json:"time"`
		Servings []liveInfo `json:"servings"`
	}{Node: h.nodeName(), Time: nowFunc().UTC(), Servings: make([]liveInfo, 0, len(h.names))}
	for _, name := range h.names {
		st, err := serving.GetStats(h.nd, name)
		out.Servings = append(out.Servings, h.routes[name].live.snapshot(name, st, err == nil && !st.Stopped))
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

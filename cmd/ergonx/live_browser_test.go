package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromium finds Debian's headless browser, which .ci/run installs: in
// CI a missing one fails the test; elsewhere the test is skipped and
// says what to install.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); CI runs this test")
	return ""
}

// liveFigures are what the page shows for one serving, read from its DOM.
type liveFigures struct {
	Found      bool   `json:"found"`
	State      string `json:"state"`
	Config     string `json:"config"`
	Throughput string `json:"throughput"`
	P50        string `json:"p50"`
	P99        string `json:"p99"`
	Queue      string `json:"queue"`
	Busy       string `json:"busy"`
	Requests   string `json:"requests"`
	Sizes      []int  `json:"sizes"`
}

const readFigures = `(() => {
  const s = document.querySelector('section[data-serving="digits"]');
  if (!s) return JSON.stringify({found: false});
  const f = name => s.querySelector('[data-field="' + name + '"]').textContent;
  return JSON.stringify({found: true, state: f("state"), config: f("config"), throughput: f("requests_per_second"),
    p50: f("p50"), p99: f("p99"), queue: f("queue_depth_rows"), busy: f("busy_partitions"), requests: f("requests_total"),
    sizes: [...s.querySelectorAll('[data-field="batch_sizes"] [data-field="count"]')].map(e => parseInt(e.textContent, 10))});
})()`

// `ergonx serve`'s live page in a real browser (Debian's headless
// Chromium): it loads, shows the digits serving, and its numbers move
// while clients send requests.
func TestLivePageInChromium(t *testing.T) {
	browser := chromium(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, &out, serveOptions{listen: "127.0.0.1:0", batchSize: 8, batchTimeout: 2 * time.Millisecond,
			partitions: 1, shutdownTimeout: 4 * time.Second, maxBody: 1 << 20, maxConcurrent: 64}, func(url string) { ready <- url })
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("serve ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not listen")
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, 2*time.Minute)
	defer tcancel()

	read := func() liveFigures {
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](readFigures))
		require.NoError(t, err)
		var f liveFigures
		require.NoError(t, json.Unmarshal([]byte(s), &f), s)
		return f
	}
	// waitFigures polls the page until cond holds, bounded by bctx.
	waitFigures := func(what string, cond func(liveFigures) bool) liveFigures {
		for {
			f := read()
			if cond(f) {
				return f
			}
			select {
			case <-bctx.Done():
				t.Fatalf("the page never showed %s; last: %+v", what, f)
			case <-time.After(50 * time.Millisecond): // the page polls every 100 ms
			}
		}
	}

	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/?interval=100"),
		chromedp.WaitVisible(chromedp.CSS(`section[data-serving="digits"]`))))
	title, err := chromedp.Run(bctx, chromedp.Title())
	require.NoError(t, err)
	assert.Equal(t, "ergonx live", title)
	before := waitFigures("the serving", func(f liveFigures) bool { return f.Found && f.Requests != "–" })
	assert.Equal(t, "running", before.State)
	assert.Equal(t, "batch size 8, timeout 2.00 ms, 1 partition", before.Config)
	assert.Equal(t, "0", before.Requests)
	assert.Equal(t, "–", before.P50, "no request answered yet")
	assert.Equal(t, "0 / 1", before.Busy)

	// Load: HTTP clients send held-out images until the test has seen
	// the page move.
	rows, err := heldOutRows()
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := c; ; i += 8 {
				select {
				case <-stop:
					return
				default:
				}
				body, _ := json.Marshal(jsonTensor{Shape: []int{1, 64}, DType: "float32", Data: rows[i%len(rows)].Data().([]float32)})
				resp, err := client.Post(base+"/v1/servings/digits/predict", "application/json", bytes.NewReader(body))
				if err == nil {
					resp.Body.Close()
				}
			}
		}(c)
	}
	defer func() { close(stop); wg.Wait() }()

	moved := waitFigures("numbers that move", func(f liveFigures) bool {
		n, _ := strconv.Atoi(f.Requests)
		return n >= 200 && f.Throughput != "0.0" && f.P99 != "–" && len(f.Sizes) > 0 && sum(f.Sizes) > 0
	})
	n1, _ := strconv.Atoi(moved.Requests)
	later := waitFigures("the total grow further", func(f liveFigures) bool {
		n, _ := strconv.Atoi(f.Requests)
		return n > n1
	})
	assert.Regexp(t, `^[\d.]+ (µs|ms)$`, later.P50)
	assert.Regexp(t, `^[\d.]+ (µs|ms)$`, later.P99)
	assert.Regexp(t, `^\d+$`, later.Queue)
	assert.Regexp(t, `^[01] / 1$`, later.Busy)
	assert.Greater(t, sum(later.Sizes), 0)

	// A screenshot, as the README's command takes one.
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	assert.Equal(t, "\x89PNG", string(png[:4]), "a PNG")
	if dir := os.Getenv("ERGONX_SCREENSHOT_DIR"); dir != "" {
		require.NoError(t, os.WriteFile(dir+"/live.png", png, 0o644))
	}
	t.Logf("the live page showed %s requests, p50 %s, p99 %s", later.Requests, later.P50, later.P99)
	cancel()
	<-done
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

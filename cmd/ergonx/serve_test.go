package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// syncBuffer is a bytes.Buffer that the command and the test may use at
// once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `ergonx serve` answers the curl example it prints with the model's
// logits, serves metrics, and stops gracefully when its context ends
// (as on SIGINT), leaving nothing running.
func TestServeAnswersItsExampleAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, &out, serveOptions{
			listen: "127.0.0.1:0", batchSize: 8, batchTimeout: time.Millisecond, partitions: 1,
			shutdownTimeout: 4 * time.Second, maxBody: 1 << 20, maxConcurrent: 64,
		}, func(url string) { ready <- url })
	}()
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatalf("serve ended before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start listening")
	}
	printed := out.String()
	assert.Contains(t, printed, "ergonx serve: digits classifier on "+url)
	assert.Contains(t, printed, "batch size 8, batch timeout 1ms, 1 partition(s)")

	// The printed example, sent as printed.
	m := regexp.MustCompile(`(?m)^  curl -s (\S+) -H 'Content-Type: application/json' \\\n    -d '([^']+)'$`).FindStringSubmatch(printed)
	require.NotNil(t, m, "no curl example in:\n%s", printed)
	assert.Equal(t, url+"/v1/servings/digits/predict", m[1])
	resp, err := http.Post(m[1], "application/json", strings.NewReader(m[2]))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body %s", body)

	model, err := digits.Pretrained()
	require.NoError(t, err)
	_, test, err := digits.Split(digits.SplitSeed)
	require.NoError(t, err)
	row, err := batch.SliceRows(test.X, 0, 1)
	require.NoError(t, err)
	want, err := model.Predict(row.(*tensor.Dense))
	require.NoError(t, err)
	var got struct {
		Shape []int     `json:"shape"`
		Data  []float32 `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, []int{1, 10}, got.Shape)
	assert.Equal(t, want.Data(), got.Data)

	// A bad shape is refused with the reason.
	resp, err = http.Post(m[1], "application/json", strings.NewReader(`{"shape":[1,8],"dtype":"float32","data":[0,0,0,0,0,0,0,0]}`))
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), `"reason":"bad_shape"`)

	resp, err = http.Get(url + "/metrics")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(body)
	assert.Contains(t, metrics, `ergonx_http_requests_total{code="200",serving="digits"} 1`)
	assert.Contains(t, metrics, `ergonx_http_errors_total{reason="bad_shape",serving="digits"} 1`)
	assert.Contains(t, metrics, `ergonx_serving_up{serving="digits"} 1`)
	assert.Contains(t, metrics, "go_goroutines ", "the Go runtime's metrics are served too")
	http.DefaultClient.CloseIdleConnections()

	cancel() // as SIGINT does
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	assert.Contains(t, out.String(), "stopped")
	_, err = http.Get(url + "/healthz")
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "after the stop: want connection refused, got %v", err)
}

// If part of serve ends while it serves — here its serving stops — serve
// does not go on answering 503 forever: it returns an error naming what
// ended (the CLI exits 1), leaving nothing running.
func TestServeExitsWhenItsServingStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	nodes := make(chan node.Node, 1)
	testHookServeNode = func(nd node.Node) { nodes <- nd }
	defer func() { testHookServeNode = nil }()
	done := make(chan error, 1)
	go func() {
		done <- runServe(context.Background(), io.Discard, serveOptions{
			listen: "127.0.0.1:0", batchSize: 8, batchTimeout: time.Millisecond, partitions: 1,
			shutdownTimeout: 4 * time.Second, maxBody: 1 << 20, maxConcurrent: 64,
		}, nil)
	}()
	var nd node.Node
	select {
	case nd = <-nodes:
	case err := <-done:
		t.Fatalf("serve returned %v before serving", err)
	case <-time.After(time.Minute):
		t.Fatal("serve did not start within a minute")
	}
	require.NoError(t, serving.Stop(context.Background(), nd, "digits"))
	select {
	case err := <-done:
		require.Error(t, err)
		assert.Equal(t, "serve: process digits stopped; exiting", err.Error())
	case <-time.After(time.Minute):
		t.Fatal("serve went on without its serving")
	}
}

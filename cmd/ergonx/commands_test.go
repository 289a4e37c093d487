package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/models/digits"
)

func TestBenchInProcess(t *testing.T) {
	var out bytes.Buffer
	err := runBench(context.Background(), &out, benchOptions{
		target: "inproc", model: "double", callers: 8, requests: 500,
		batchSize: 4, batchTimeout: time.Millisecond, partitions: 1,
	})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "in-process serving of double, batch size 4")
	assert.Regexp(t, `(?m)^\s+500\s+0\s+0\s+\d+`, out.String())
	assert.Contains(t, out.String(), "(req/s and latencies count the 500 successful calls only")
}

// --baseline runs the same load through the hand-written channel batcher
// after the serving and prints both, then the ratio of their rates.
func TestBenchBaseline(t *testing.T) {
	var out bytes.Buffer
	err := runBench(context.Background(), &out, benchOptions{
		target: "inproc", model: "digits", callers: 8, requests: 400,
		batchSize: 4, batchTimeout: time.Millisecond, partitions: 1, baseline: true,
	})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "\nbaseline: hand-written channel batcher (internal/chanbatch) of digits, batch size 4, timeout 1ms; closed loop, 8 callers\n")
	assert.Regexp(t, `(?s)count the 400 successful calls.*count the 400 successful calls`, out.String())
	assert.Regexp(t, `\nergonx / channel batcher: \d+\.\d\dx the req/s, p50 [\d.]+ (µs|ms|s) against [\d.]+ (µs|ms|s)\n$`, out.String())
}

func TestBenchOpenLoop(t *testing.T) {
	var out bytes.Buffer
	err := runBench(context.Background(), &out, benchOptions{
		target: "inproc", model: "digits", rate: 200, duration: 200 * time.Millisecond, callers: 64,
		batchSize: 8, batchTimeout: time.Millisecond, partitions: 1,
	})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "open loop, 200 req/s")
}

func TestBenchRejectsUnknownTargets(t *testing.T) {
	err := runBench(context.Background(), &bytes.Buffer{}, benchOptions{target: "carrier-pigeon"})
	require.EqualError(t, err, `--target "carrier-pigeon": use inproc, cluster, http`)
	var ue *usageError
	require.ErrorAs(t, err, &ue)
}

func TestTrainWritesTheCommittedWeights(t *testing.T) {
	out := filepath.Join(t.TempDir(), "w.safetensors")
	var buf bytes.Buffer
	require.NoError(t, runTrain(context.Background(), &buf, &buf, trainOptions{out: out, seed: 1, hidden: 32, epochs: 40, progress: progressNever}))
	assert.Contains(t, buf.String(), "held-out 99.44 % (358/360)")
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// Two nodes of `ergonx node`: one serves, the other calls it through the
// cluster (static routes, no EPMD).
func TestNodeCallsAServingOnAnotherNode(t *testing.T) {
	pa, pc := freePort(t), freePort(t)
	a := nodeOptions{clusterOptions: clusterOptions{name: "clitesta@localhost", cookie: "c", port: pa,
		peers: []string{fmt.Sprintf("clitestc@localhost=127.0.0.1:%d", pc)}}, serve: true, batchSize: 8, batchTimeout: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var aOut syncBuffer
	go func() { done <- runNode(ctx, &aOut, a) }()
	defer func() { cancel(); <-done }()
	// Wait for a to serve before c starts: ergo v1.999.224 writes a
	// global as a node starts, so two nodes must not start at once.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(aOut.String(), `serving "digits"`); {
		require.True(t, time.Now().Before(deadline), "node a did not start serving: %s", aOut.String())
		time.Sleep(10 * time.Millisecond) // polling a's output, bounded
	}

	c := nodeOptions{clusterOptions: clusterOptions{name: "clitestc@localhost", cookie: "c", port: pc,
		connect: []string{"clitesta@localhost"}, peers: []string{fmt.Sprintf("clitesta@localhost=127.0.0.1:%d", pa)}},
		call: "digits", callers: 4, requests: 200, wait: 20 * time.Second}
	var out bytes.Buffer
	err := runNode(context.Background(), &out, c)
	require.NoError(t, err, out.String())
	assert.Contains(t, out.String(), `called "digits" 200 times from clitestc@localhost`)
	assert.Contains(t, out.String(), "answered by clitesta@localhost: 200")
}

// --target cluster calls a serving on another node of this process.
func TestBenchCluster(t *testing.T) {
	var out bytes.Buffer
	err := runBench(context.Background(), &out, benchOptions{
		target: "cluster", model: "double", callers: 8, requests: 300,
		batchSize: 4, batchTimeout: time.Millisecond, partitions: 1,
	})
	require.NoError(t, err)
	assert.Contains(t, out.String(), "from node bench-client@localhost")
	assert.Regexp(t, `(?m)^\s+300\s+0\s+0\s+\d+`, out.String())
}

// The weights `train --out` writes are what serve, demo and node serve
// with --weights.
func TestTrainedWeightsAreServed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.safetensors")
	var buf bytes.Buffer
	require.NoError(t, runTrain(context.Background(), &buf, &buf, trainOptions{out: path, seed: 7, hidden: 12, epochs: 5, progress: progressNever}))
	assert.Contains(t, buf.String(), "trained 64→12→10")
	model, err := digits.LoadFile(path)
	require.NoError(t, err)

	var out bytes.Buffer
	require.NoError(t, runDemo(context.Background(), &out, &out, demoOptions{callers: 4, requests: 10, batchSize: 4,
		batchTimeout: time.Millisecond, partitions: 1, progress: progressNever, weights: path}))
	assert.Contains(t, out.String(), "digits classifier (64→12→10 MLP)")
	assert.Contains(t, out.String(), "(10 of the 360 images served, each once)")

	// serve answers with the trained model's logits.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var sout syncBuffer
	go func() {
		done <- runServe(ctx, &sout, serveOptions{listen: "127.0.0.1:0", batchSize: 4, batchTimeout: time.Millisecond, partitions: 1,
			shutdownTimeout: 4 * time.Second, maxBody: 1 << 20, maxConcurrent: 64, weights: path}, func(url string) { ready <- url })
	}()
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatalf("serve ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not listen")
	}
	_, test, err := digits.Split(digits.SplitSeed)
	require.NoError(t, err)
	row, err := batch.SliceRows(test.X, 0, 1)
	require.NoError(t, err)
	want, err := model.Predict(row.(*tensor.Dense))
	require.NoError(t, err)
	body, _ := json.Marshal(jsonTensor{Shape: []int{1, 64}, DType: "float32", Data: row.(*tensor.Dense).Data().([]float32)})
	resp, err := http.Post(url+"/v1/servings/digits/predict", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	var got jsonTensor
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	resp.Body.Close()
	assert.Equal(t, want.Data(), got.Data)
	http.DefaultClient.CloseIdleConnections()
	cancel()
	require.NoError(t, <-done)

	// node --weights refuses a file that holds no weights, before it starts.
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	require.NoError(t, os.WriteFile(bad, []byte("not weights"), 0o600))
	out.Reset()
	err = runNode(context.Background(), &out, nodeOptions{clusterOptions: clusterOptions{name: "w@localhost", cookie: "c"},
		serve: true, batchSize: 4, batchTimeout: time.Millisecond, weights: bad})
	require.ErrorContains(t, err, "--weights "+bad+": ")
	assert.Empty(t, out.String())
}

// serve --name joins a cluster: a node started by `ergonx node` calls
// its serving.
func TestServeJoinsACluster(t *testing.T) {
	ps, pc := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var sout syncBuffer
	go func() {
		done <- runServe(ctx, &sout, serveOptions{listen: "127.0.0.1:0", batchSize: 8, batchTimeout: time.Millisecond, partitions: 1,
			shutdownTimeout: 4 * time.Second, maxBody: 1 << 20, maxConcurrent: 64, cluster: clusterOptions{name: "clisrv@localhost", cookie: "k", port: ps,
				peers: []string{fmt.Sprintf("clicall@localhost=127.0.0.1:%d", pc)}}}, func(url string) { ready <- url })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not listen")
	}
	assert.Contains(t, sout.String(), "(node clisrv@localhost)")

	var out bytes.Buffer
	err := runNode(context.Background(), &out, nodeOptions{clusterOptions: clusterOptions{name: "clicall@localhost", cookie: "k", port: pc,
		connect: []string{"clisrv@localhost"}, peers: []string{fmt.Sprintf("clisrv@localhost=127.0.0.1:%d", ps)}},
		call: "digits", callers: 2, requests: 50, wait: 20 * time.Second})
	require.NoError(t, err, out.String())
	assert.Contains(t, out.String(), `called "digits" 50 times from clicall@localhost`)
	assert.Contains(t, out.String(), "answered by clisrv@localhost: 50")
	cancel()
	require.NoError(t, <-done)
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	var aOut bytes.Buffer
	go func() { done <- runNode(ctx, &aOut, a) }()
	defer func() { cancel(); <-done }()

	c := nodeOptions{clusterOptions: clusterOptions{name: "clitestc@localhost", cookie: "c", port: pc,
		connect: []string{"clitesta@localhost"}, peers: []string{fmt.Sprintf("clitesta@localhost=127.0.0.1:%d", pa)}},
		call: "digits", callers: 4, requests: 200, wait: 20 * time.Second}
	var out bytes.Buffer
	// a may still be starting: connect retries are the caller's job.
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		out.Reset()
		if err = runNode(context.Background(), &out, c); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // a is starting; polling, bounded
	}
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

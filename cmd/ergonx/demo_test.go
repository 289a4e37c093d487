package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The demo runs end to end on a small load and reports what it promises.
func TestDemoReports(t *testing.T) {
	var out, errOut bytes.Buffer
	err := runDemo(context.Background(), &out, &errOut, demoOptions{
		callers: 16, requests: 2000, batchSize: 8, batchTimeout: time.Millisecond, partitions: 1, progress: progressNever,
	})
	require.NoError(t, err)
	s := out.String()
	assert.Regexp(t, `(?m)^\s+batched\s+2000\s+\d+\s+[\d.]+ [mµ]s\s+[\d.]+ [mµ]s\s+[\d.]+$`, s)
	assert.Regexp(t, `(?m)^\s+unbatched\s+2000\s+\d+\s+[\d.]+ [mµ]s\s+[\d.]+ [mµ]s\s+1\.0$`, s)
	assert.Regexp(t, `speed-up of batching: [\d.]+×`, s)
	assert.Contains(t, s, "batch sizes (batched run):")
	assert.Contains(t, s, "8 (full)")
	assert.Contains(t, s, "accuracy on held-out data: 358/360 images = 99.44 % (each image served 5 to 6 times, all answers agreed)")
}

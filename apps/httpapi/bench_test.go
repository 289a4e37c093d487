package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// BenchmarkPredict measures one-image digits requests over loopback HTTP
// from concurrent clients (32×GOMAXPROCS of them), batch size
// 64, batch timeout 1 ms: the cost of the HTTP layer and the codecs
// around the serving.
func BenchmarkPredict(b *testing.B) {
	nd := testnode.Start(b, testnode.Options{})
	m, rows := heldOut(b)
	startServing(b, nd, serving.Options{Name: "digits", Serving: digits.Serving(m), BatchSize: 64, BatchTimeout: time.Millisecond})
	_, srv := newServer(b, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow}}})
	x := rows[0].Data().([]float32)
	for _, bc := range []struct {
		name, contentType string
		body              []byte
	}{
		{"json", "application/json", tensorJSON([]int{1, 64}, x)},
		{"binary", httpapi.BinaryContentType, binaryTensor([]int{1, 64}, x)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
			defer client.CloseIdleConnections()
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(predictURL(srv, "digits"), bc.contentType, bytes.NewReader(bc.body))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

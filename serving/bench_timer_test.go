package serving

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/testnode"
)

// BenchmarkTrickle: one call every 20 ms (50 a second) for 2 s on a
// serving with batch size 64 and a 5 ms timeout (every call waits for the
// timer) and on one with batch size 1 (no timer at all). It reports the
// process's CPU time per second of the run and the calls' p50 latency:
// the batch timer must cost no more CPU than no timer, and a lone call
// must wait the timeout, not more. Run:
//
//	go test -run '^$' -bench Trickle -benchtime 1x ./serving
func BenchmarkTrickle(b *testing.B) {
	for _, bs := range []int{64, 1} {
		b.Run(fmt.Sprintf("batch=%d", bs), func(b *testing.B) {
			nd := testnode.Start(b, testnode.Options{})
			if _, err := Start(nd, Options{Name: "trickle", Serving: doubling(), BatchSize: bs, BatchTimeout: 5 * time.Millisecond}); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = Stop(context.Background(), nd, "trickle") }()
			in := benchRow()
			h := hdrhistogram.New(1, int64(time.Second/time.Microsecond), 3)
			cpu0 := cpuTime()
			begin := time.Now()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for range 100 {
				<-tick.C
				bt, _ := batch.Stack(in)
				t0 := time.Now()
				if _, err := BatchedRun(context.Background(), nd, "trickle", bt); err != nil {
					b.Fatal(err)
				}
				_ = h.RecordValue(time.Since(t0).Microseconds())
			}
			elapsed := time.Since(begin)
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/elapsed.Seconds()/1000, "cpu-ms/s")
			b.ReportMetric(float64(h.ValueAtQuantile(50)), "p50-µs")
			b.ReportMetric(float64(h.ValueAtQuantile(99)), "p99-µs")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

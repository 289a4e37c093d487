package serving

import (
	"context"
	"testing"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// sixteen returns a one-row batch of 16 floats.
func sixteen(tb testing.TB) *batch.Batch {
	xs := make([]float32, 16)
	for i := range xs {
		xs[i] = float32(i)
	}
	b, err := batch.Stack(row(xs...))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkRun measures inline Run of x*2 on one 16-float row next to the
// compiled function called directly; the difference is Run's overhead
// (init, preprocessing check, HandleBatch, telemetry check, row trim).
func BenchmarkRun(b *testing.B) {
	in := sixteen(b)
	ctx := context.Background()

	b.Run("serving", func(b *testing.B) {
		s := doubling()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Run(ctx, s, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare", func(b *testing.B) {
		f, err := compiler.JIT(times2, compiler.Resolve())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

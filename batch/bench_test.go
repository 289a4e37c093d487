package batch

import (
	"testing"

	"gorgonia.org/tensor"
)

// rows16 returns n one-row float32 tensors of 16 values.
func rows16(n int) []any {
	out := make([]any, n)
	for i := range out {
		xs := make([]float32, 16)
		for j := range xs {
			xs[j] = float32(i*16 + j)
		}
		out[i] = tensor.New(tensor.WithShape(16), tensor.WithBacking(xs))
	}
	return out
}

// BenchmarkStackMaterialize64: 64 one-row entries stacked and materialised
// into one [64,16] tensor, the serving's per-batch input cost.
func BenchmarkStackMaterialize64(b *testing.B) {
	entries := rows16(64)
	b.ReportAllocs()
	for b.Loop() {
		bt, err := Stack(entries...)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bt.Materialize(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMergeMaterialize64: how a serving builds a batch: 64 requests
// of one stacked row each, merged, then materialised.
func BenchmarkMergeMaterialize64(b *testing.B) {
	entries := rows16(64)
	reqs := make([]*Batch, len(entries))
	for i, e := range entries {
		bt, err := Stack(e)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = bt
	}
	b.ReportAllocs()
	for b.Loop() {
		m, err := Merge(reqs...)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Materialize(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStackOne is what each caller pays to wrap its input.
func BenchmarkStackOne(b *testing.B) {
	entry := rows16(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Stack(entry); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSliceRowsOne is what each caller pays to take its row back.
func BenchmarkSliceRowsOne(b *testing.B) {
	out := tensor.New(tensor.WithShape(64, 16), tensor.Of(tensor.Float32))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := SliceRows(out, i%64, 1); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGorgoniaStack64 is the reference: gorgonia's own tensor.Stack
// of the same 64 rows (it copies through Data(), boxing each row).
func BenchmarkGorgoniaStack64(b *testing.B) {
	entries := rows16(64)
	first := entries[0].(*tensor.Dense)
	rest := make([]*tensor.Dense, 63)
	for i := range rest {
		rest[i] = entries[i+1].(*tensor.Dense)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := first.Stack(0, rest...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSlicerRowsOne is the serving's per-caller reply cost.
func BenchmarkSlicerRowsOne(b *testing.B) {
	s, err := NewSlicer(tensor.New(tensor.WithShape(64, 16), tensor.Of(tensor.Float32)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Rows(i%64, 1); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

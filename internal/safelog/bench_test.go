package safelog

import (
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
)

// The formatter's cost is bounded by its limits: a 100 MB binary and a
// list nested a million deep cost about what a small term does.
//
//	go test -run '^$' -bench . -benchmem ./internal/safelog

func BenchmarkFormatBinary100MB(b *testing.B) {
	bin := make([]byte, 100<<20)
	b.ReportAllocs()
	for b.Loop() {
		Format(bin)
	}
}

func BenchmarkFormatDeepList1e6(b *testing.B) {
	deep := deepList(1_000_000)
	b.ReportAllocs()
	for b.Loop() {
		Format(deep)
	}
}

func BenchmarkFormatWideTuple1e6(b *testing.B) {
	wide := make(etf.Tuple, 1_000_000)
	for i := range wide {
		wide[i] = etf.Atom("x")
	}
	b.ReportAllocs()
	for b.Loop() {
		Format(wide)
	}
}

func BenchmarkFormatSmallMessage(b *testing.B) {
	msg := etf.Tuple{etf.Atom("join"), pid, etf.Atom("Elixir.Nx.Serving"), etf.List{pid, pid}}
	b.ReportAllocs()
	for b.Loop() {
		Format(msg)
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := NewLimiter(10, time.Second)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("k")
	}
}

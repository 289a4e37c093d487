package wire_test

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
)

// BenchmarkEncodeDecode measures one tensor's way between two nodes:
//
//   - wire: EncodeTensor then DecodeTensor of the term (what a local
//     delivery costs, and this package's share of a remote one);
//   - wire-share: the same with Options{Share: true} (no copy at all);
//   - ergo: EncodeTensor, ergo's etf.Encode into a pooled buffer,
//     etf.Decode, DecodeTensor: the whole CPU cost of a remote message
//     apart from the network.
//
// Sizes: a [64,16] float32 batch (4 KiB), and a [512,512] float32 tensor
// (1 MiB).
func BenchmarkEncodeDecode(b *testing.B) {
	sizes := []struct {
		name  string
		shape []int
	}{
		{"f32[64,16]", []int{64, 16}},
		{"f32[512,512]=1MiB", []int{512, 512}},
	}
	for _, s := range sizes {
		d := filled(tensor.Float32, s.shape...)
		bytes := int64(len(d.Raw))
		b.Run(s.name+"/wire", func(b *testing.B) {
			benchWire(b, wire.Options{}, d, bytes)
		})
		b.Run(s.name+"/wire-share", func(b *testing.B) {
			benchWire(b, wire.Options{Share: true}, d, bytes)
		})
		b.Run(s.name+"/ergo", func(b *testing.B) {
			b.SetBytes(bytes)
			b.ReportAllocs()
			for b.Loop() {
				term, err := wire.EncodeTensor(d)
				if err != nil {
					b.Fatal(err)
				}
				buf := lib.TakeBuffer()
				if err := etf.Encode(term, buf, etf.EncodeOptions{}); err != nil {
					b.Fatal(err)
				}
				received, _, err := etf.Decode(buf.B, []etf.Atom{}, etf.DecodeOptions{})
				lib.ReleaseBuffer(buf)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := wire.DecodeTensor(received); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchWire(b *testing.B, o wire.Options, d *tensor.Dense, bytes int64) {
	b.SetBytes(bytes)
	b.ReportAllocs()
	for b.Loop() {
		term, err := o.EncodeTensor(d)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.DecodeTensor(term); err != nil {
			b.Fatal(err)
		}
	}
}

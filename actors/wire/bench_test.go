package wire_test

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
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

// benchValues are the values of BenchmarkMarshal and BenchmarkUnmarshal:
// a request or result of one row of 16 floats (a tensor, or the 1-row
// batch that a distributed batched_run sends), and a 64-row batch's
// tensor.
func benchValues(b *testing.B) []struct {
	name string
	v    any
} {
	row := filled(tensor.Float32, 16)
	oneRow, err := batch.Stack(row)
	if err != nil {
		b.Fatal(err)
	}
	return []struct {
		name string
		v    any
	}{
		{"f32[1,16]", filled(tensor.Float32, 1, 16)},
		{"batch-1x16", oneRow},
		{"f32[64,16]", filled(tensor.Float32, 64, 16)},
	}
}

// BenchmarkMarshal compares Marshal ("new", direct) with the former
// implementation ("old": Encode, then ergo's encoder), in the same run:
//
//	go test -run '^$' -bench 'Marshal' -benchmem ./actors/wire/
func BenchmarkMarshal(b *testing.B) {
	for _, c := range benchValues(b) {
		for _, impl := range []struct {
			name    string
			marshal func(any) ([]byte, error)
		}{{"old", wire.Options{}.MarshalViaETF}, {"new", wire.Marshal}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.marshal(c.v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkUnmarshal compares Unmarshal ("new", direct) with the former
// implementation ("old": ergo's decoder, then Decode), on Marshal's
// bytes, in the same run. The bytes are not copied per iteration:
// Unmarshal's tensors use them in place, which both do only read.
func BenchmarkUnmarshal(b *testing.B) {
	for _, c := range benchValues(b) {
		bin, err := wire.Marshal(c.v)
		if err != nil {
			b.Fatal(err)
		}
		for _, impl := range []struct {
			name      string
			unmarshal func([]byte) (any, error)
		}{{"old", wire.Options{}.UnmarshalViaETF}, {"new", wire.Unmarshal}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(bin)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.unmarshal(bin); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

package wire_test

import (
	"fmt"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/lib"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/wire"
	"github.com/ergonx/ergonx/batch"
)

// A tensor becomes an %Nx.Tensor{} term, goes through ergo's ETF encoder
// and decoder as it would between two nodes, and comes back.
func Example() {
	x := tensor.New(tensor.WithShape(2, 2), tensor.WithBacking([]float32{1, 2, 3, 4}))
	term, err := wire.Encode(batch.Tuple{x, "request-7"})
	if err != nil {
		panic(err)
	}

	// What ergo does to a remote message.
	buf := lib.TakeBuffer()
	defer lib.ReleaseBuffer(buf)
	if err := etf.Encode(term, buf, etf.EncodeOptions{}); err != nil {
		panic(err)
	}
	received, _, err := etf.Decode(buf.B, []etf.Atom{}, etf.DecodeOptions{})
	if err != nil {
		panic(err)
	}

	v, err := wire.Decode(received)
	if err != nil {
		panic(err)
	}
	t := v.(batch.Tuple)
	y := t[0].(*tensor.Dense)
	fmt.Println(y.Dtype(), y.Shape(), y.Data(), t[1])

	// The tensor as Elixir sees it.
	m := received.(etf.Tuple)[0].(etf.Map)
	fmt.Println(m[etf.Atom("__struct__")], m[etf.Atom("type")], m[etf.Atom("shape")], m[etf.Atom("names")])
	// Output:
	// float32 (2, 2) [1 2 3 4] request-7
	// Elixir.Nx.Tensor [f 32] [2 2] [nil nil]
}

// A batch travels with its rows, padding and key.
func ExampleEncode_batch() {
	b, _ := batch.Stack(
		tensor.New(tensor.WithShape(2), tensor.WithBacking([]int64{1, 2})),
		tensor.New(tensor.WithShape(2), tensor.WithBacking([]int64{3, 4})),
	)
	_ = b.Pad(2)
	b.SetKey("text")

	term, _ := wire.Encode(b)
	v, _ := wire.Decode(term)
	got := v.(*batch.Batch)
	rows, _ := got.Materialize()
	fmt.Println(got, got.Key(), rows.(*tensor.Dense).Data())
	// Output:
	// #batch<size: 2, pad: 2> text [1 2 3 4 0 0 0 0]
}

// Malformed terms are errors that say what and where.
func ExampleDecode_malformed() {
	_, err := wire.Decode(etf.Tuple{1, etf.Map{etf.Atom("x"): etf.List{1}}})
	fmt.Println(err)
	// Output:
	// wire: unsupported type at [1].x: list of 1 elements: containers are tuples and maps
}

package compiler_test

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// denseRelu returns a numerical function for one dense layer followed by
// ReLU: relu(x·W + b), for x of shape [N, in].
func denseRelu(w, b *tensor.Dense) compiler.Defn {
	return func(input any) (any, error) {
		x := input.(*tensor.Dense)
		xw, err := tensor.MatMul(x, w)
		if err != nil {
			return nil, err
		}
		// Broadcast the bias over the N rows.
		bias, err := tensor.Repeat(b, 0, x.Shape()[0])
		if err != nil {
			return nil, err
		}
		z, err := tensor.Add(xw, bias)
		if err != nil {
			return nil, err
		}
		return tensor.Clamp(z, float32(0), float32(math.MaxFloat32))
	}
}

// A small model, dense + ReLU, compiled with the CPU evaluator and run on
// a batch of two rows.
func ExampleJIT() {
	w := tensor.New(tensor.WithShape(3, 2), tensor.WithBacking([]float32{
		1, -1,
		0, 2,
		1, 0,
	}))
	b := tensor.New(tensor.WithShape(1, 2), tensor.WithBacking([]float32{0.5, -4}))

	model, err := compiler.JIT(denseRelu(w, b), compiler.Resolve())
	if err != nil {
		panic(err)
	}

	rows, _ := batch.Stack(
		tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{1, 2, 3})),
		tensor.New(tensor.WithShape(3), tensor.WithBacking([]float32{0, 0, 1})),
	)
	out, err := model(rows)
	if err != nil {
		panic(err)
	}
	fmt.Println(out.(*tensor.Dense).Shape(), out.(*tensor.Dense).Data())
	// Output:
	// (2, 2) [4.5 0 1.5 0]
}

// Partitions of the CPU evaluator: one per MaxConcurrency.
func ExamplePartitions() {
	parts, _ := compiler.Partitions(compiler.Resolve(compiler.WithMaxConcurrency(2)))
	fmt.Println(len(parts))
	// Output:
	// 2
}

// A computation calls its hooks whether or not it is served with them:
// Hook returns a function that does nothing for a hook nobody set.
func ExampleOptions_Hook() {
	var seen []any
	o := compiler.Options{}.Apply(compiler.WithHook("progress", func(v any) { seen = append(seen, v) }))
	o.Hook("progress")(1)
	o.Hook("unset")(2) // nothing happens
	fmt.Println(seen)
	// Output:
	// [1]
}

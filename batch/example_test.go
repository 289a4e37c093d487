package batch_test

import (
	"fmt"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

func ints(xs ...int64) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(xs)), tensor.WithBacking(xs))
}

// Stack adds each entry as one row; Materialize builds one tensor.
func ExampleStack() {
	b, _ := batch.Stack(ints(1, 2, 3), ints(4, 5, 6))
	fmt.Println(b.Size())

	c, _ := b.Materialize()
	fmt.Println(c.(*tensor.Dense).Shape(), c.(*tensor.Dense).Data())
	// Output:
	// 2
	// (2, 3) [1 2 3 4 5 6]
}

// Concatenate adds the rows of each entry's first axis.
func ExampleConcatenate() {
	b, _ := batch.Concatenate(ints(1, 2), ints(3, 4, 5))
	fmt.Println(b.Size())
	c, _ := b.Materialize()
	fmt.Println(c.(*tensor.Dense).Data())
	// Output:
	// 5
	// [1 2 3 4 5]
}

// Containers stack and concatenate leaf by leaf.
func ExampleConcatenate_containers() {
	b, _ := batch.Concatenate(
		batch.Tuple{ints(1, 2), ints(10, 20)},
		batch.Tuple{ints(3), ints(30)},
	)
	c, _ := b.Materialize()
	t := c.(batch.Tuple)
	fmt.Println(t[0].(*tensor.Dense).Data(), t[1].(*tensor.Dense).Data())
	// Output:
	// [1 2 3] [10 20 30]
}

// Merge keeps rows in order; stacked and concatenated batches mix when
// their rows have the same template.
func ExampleMerge() {
	left, _ := batch.Stack(ints(1), ints(2), ints(3))
	right, _ := batch.Concatenate(mat(2, 1, 4, 5), mat(3, 1, 6, 7, 8))
	m, _ := batch.Merge(left, right)
	c, _ := m.Materialize()
	fmt.Println(m.Size(), c.(*tensor.Dense).Data())
	// Output:
	// 8 [1 2 3 4 5 6 7 8]
}

func mat(rows, cols int, xs ...int64) *tensor.Dense {
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(xs))
}

// Split takes the first n rows; the rest stays in the right half.
func ExampleBatch_Split() {
	b, _ := batch.Concatenate(ints(1, 2, 3, 4, 5))
	left, right, _ := b.Split(3)
	l, _ := left.Materialize()
	r, _ := right.Materialize()
	fmt.Println(l.(*tensor.Dense).Data(), r.(*tensor.Dense).Data())
	// Output:
	// [1 2 3] [4 5]
}

// Pad appends zero rows when the batch is materialised.
func ExampleBatch_Pad() {
	b, _ := batch.Stack(int64(1), int64(2), int64(3))
	_ = b.Pad(2)
	c, _ := b.Materialize()
	fmt.Println(c.(*tensor.Dense).Data())
	// Output:
	// [1 2 3 0 0]
}

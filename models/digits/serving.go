package digits

import (
	"fmt"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/compiler"
	"github.com/ergonx/ergonx/serving"
)

// Serving returns a serving of m: it takes batches of rows of 64 pixels
// (float32, scaled to [0, 1]) and returns their [N, 10] logits. Callers
// send a *batch.Batch (batch.Concatenate of [n, 64] tensors, or
// batch.Stack of [64] ones) and get their own rows of logits back; Argmax
// turns them into digits. opts are its compiler options.
func Serving(m *Model, opts ...compiler.Option) *serving.Serving {
	return serving.JIT(func(in any) (any, error) {
		x, ok := in.(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("digits: the serving takes a batch of one tensor of rows of %d pixels, got %T", Pixels, in)
		}
		return m.Predict(x)
	}, opts...)
}

package digits

import (
	"errors"
	"fmt"
	"maps"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gorgonia.org/tensor"
)

// Model is the trained two-layer perceptron: logits = relu(x·W1 + b1)·W2 + b2,
// with x an [N, 64] float32 matrix of pixels in [0, 1], W1 [64, H], b1 [H],
// W2 [H, 10] and b2 [10].
//
// A Model is read-only once Train, Load, LoadFile or Pretrained has returned
// it, and its methods are safe for concurrent use by any number of
// goroutines. The zero Model has no weights: its Predict fails.
type Model struct {
	hidden int
	// w1 is fc1.weight transposed: row k holds the weights from pixel k to
	// each hidden unit, so that x·w1 is a plain row-major product.
	w1 []float32
	b1 []float32
	// w2 is fc2.weight transposed: row j holds the weights from hidden
	// unit j to each class.
	w2 []float32
	b2 []float32
	// meta is the file's __metadata__ (Save writes the training report
	// there); never changed after construction.
	meta map[string]string

	// scratch holds *[]float32 buffers of predictChunk·hidden floats for
	// the hidden layer, so that Predict allocates only its result.
	scratch sync.Pool
}

// predictChunk is how many rows Predict pushes through both layers at a
// time. It keeps the scratch buffer small however large N is, and it keeps
// gonum's Sgemm on its serial path (gonum spreads a product over goroutines
// once it spans 4 blocks of 64×64), so that Predict runs on the calling
// goroutine alone: running batches in parallel is the serving's business,
// through its partitions.
const predictChunk = 128

// Hidden returns the number of hidden units H.
func (m *Model) Hidden() int { return m.hidden }

// Metadata returns a copy of the metadata stored with the weights: the
// training seed, epochs, held-out accuracy and the data set's attribution
// (see Save). It is empty for a Model whose file had none.
func (m *Model) Metadata() map[string]string { return maps.Clone(m.meta) }

// Predict returns the logits for a batch of images: x must be a float32
// tensor of shape [N, 64] (N ≥ 1, pixels scaled to [0, 1] as in Dataset), and
// the result is a new float32 tensor of shape [N, 10], row i holding the
// scores of digits 0–9 for row i of x. Rows are independent: a row's logits do
// not depend on the other rows of the batch.
//
// A wrong dtype or shape is a *FormatError wrapping ErrDType or ErrShape.
// Predict never changes x; views, transposes and column-major tensors are
// accepted (and copied once), contiguous row-major tensors are read in place.
//
// Both layers run as single-precision GEMMs through gorgonia's BLAS
// (tensor.WhichBLAS(): gonum's Go and assembly implementation, unless the
// program chose another with tensor.Use, which must then be safe for
// concurrent use), with the bias pre-loaded into the output (beta = 1) and
// ReLU applied in place, on the calling goroutine only. Predict allocates
// only the result: about 3 KB and 9 allocations for 64 rows.
func (m *Model) Predict(x *tensor.Dense) (*tensor.Dense, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	xs, n, err := inputRows(x)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n*Classes)
	m.forward(xs, out, n)
	return tensor.New(tensor.WithShape(n, Classes), tensor.WithBacking(out)), nil
}

// errNoWeights is what a Model that no constructor made gives.
var errNoWeights = errors.New("digits: the Model has no weights; get one from Pretrained, Train, Load or LoadFile")

func (m *Model) check() error {
	if m == nil || m.hidden == 0 {
		return errNoWeights
	}
	return nil
}

// forward computes the logits of the n rows of xs into out.
func (m *Model) forward(xs, out []float32, n int) {
	h := m.hidden
	bp, _ := m.scratch.Get().(*[]float32)
	if bp == nil {
		b := make([]float32, predictChunk*h)
		bp = &b
	}
	defer m.scratch.Put(bp)
	impl := tensor.WhichBLAS()
	for start := 0; start < n; start += predictChunk {
		rows := min(predictChunk, n-start)
		hid := (*bp)[:rows*h]
		for r := range rows {
			copy(hid[r*h:(r+1)*h], m.b1)
		}
		impl.Sgemm(blas.NoTrans, blas.NoTrans, rows, h, Pixels,
			1, xs[start*Pixels:(start+rows)*Pixels], Pixels, m.w1, h,
			1, hid, h)
		for i, v := range hid {
			if v < 0 {
				hid[i] = 0
			}
		}
		o := out[start*Classes : (start+rows)*Classes]
		for r := range rows {
			copy(o[r*Classes:(r+1)*Classes], m.b2)
		}
		impl.Sgemm(blas.NoTrans, blas.NoTrans, rows, Classes, h,
			1, hid, h, m.w2, Classes,
			1, o, Classes)
	}
}

// inputRows checks Predict's input and returns its data as n row-major rows
// of Pixels floats, copying only when x is not already laid out that way.
func inputRows(x *tensor.Dense) ([]float32, int, error) {
	const want = "want a float32 tensor of shape [N, 64] with pixels scaled to [0, 1]"
	if x == nil {
		return nil, 0, inputError(ErrShape, "Predict input is a nil tensor; "+want)
	}
	if dt := x.Dtype(); dt != tensor.Float32 {
		return nil, 0, inputError(ErrDType, fmt.Sprintf("Predict input has dtype %v; %s", dt, want))
	}
	shape := x.Shape()
	if len(shape) != 2 || shape[1] != Pixels {
		hint := ""
		if len(shape) == 1 && shape[0] == Pixels {
			hint = " (reshape a single image to [1, 64])"
		}
		return nil, 0, inputError(ErrShape, fmt.Sprintf("Predict input has shape %v; %s%s", shape, want, hint))
	}
	n := shape[0]
	if n == 0 {
		return nil, 0, inputError(ErrShape, "Predict input has 0 rows; "+want+" and N ≥ 1")
	}
	if !x.IsNativelyAccessible() {
		return nil, 0, inputError(ErrDType, "Predict input lives in memory Go cannot read (a device tensor); copy it to host memory first")
	}
	return rowMajor(x, n, Pixels), n, nil
}

// rowMajor returns the values of the rows×cols float32 matrix x in row-major
// order: x's own backing array when x is a plain row-major tensor (the
// served case, no copy), otherwise a copy. The copy goes element by element
// through At, which follows any view, transpose or column-major layout; it
// is slow, but only unusual callers pay for it.
func rowMajor(x *tensor.Dense, rows, cols int) []float32 {
	if !x.IsMaterializable() && !x.DataOrder().IsColMajor() {
		if xs := x.Float32s(); len(xs) >= rows*cols {
			return xs[:rows*cols]
		}
	}
	xs := make([]float32, rows*cols)
	for i := range rows {
		for k := range cols {
			v, _ := x.At(i, k) // in range: the shape was checked
			xs[i*cols+k] = v.(float32)
		}
	}
	return xs
}

// Classify returns the predicted digit for each row of x: the index of the
// largest logit (the first one on a tie). It fails as Predict does.
func (m *Model) Classify(x *tensor.Dense) ([]int, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	xs, n, err := inputRows(x)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n*Classes)
	m.forward(xs, out, n)
	return argmaxRows(out, n), nil
}

// Accuracy returns the share of rows of x that the model classifies as the
// matching entry of labels. It fails as Predict does, and with ErrShape when
// len(labels) is not the number of rows of x.
func (m *Model) Accuracy(x *tensor.Dense, labels []int) (float64, error) {
	pred, err := m.Classify(x)
	if err != nil {
		return 0, err
	}
	if len(labels) != len(pred) {
		return 0, inputError(ErrShape, fmt.Sprintf("Accuracy got %d labels for %d rows of input", len(labels), len(pred)))
	}
	return float64(countEqual(pred, labels)) / float64(len(pred)), nil
}

// Argmax returns, for each row of a [N, 10] float32 logits tensor such as
// Predict returns, the index of its largest value (the first one on a tie).
// It is the postprocessing a serving applies to each caller's rows.
func Argmax(logits *tensor.Dense) ([]int, error) {
	if logits == nil || logits.Dtype() != tensor.Float32 {
		return nil, inputError(ErrDType, "Argmax wants a float32 tensor of shape [N, 10]")
	}
	shape := logits.Shape()
	if len(shape) != 2 || shape[1] != Classes {
		return nil, inputError(ErrShape, fmt.Sprintf("Argmax input has shape %v; want [N, 10]", shape))
	}
	n := shape[0]
	return argmaxRows(rowMajor(logits, n, Classes), n), nil
}

func argmaxRows(ls []float32, n int) []int {
	pred := make([]int, n)
	for i := range n {
		row := ls[i*Classes : (i+1)*Classes]
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		pred[i] = best
	}
	return pred
}

func countEqual(a, b []int) int {
	n := 0
	for i := range a {
		if a[i] == b[i] {
			n++
		}
	}
	return n
}

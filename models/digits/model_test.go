package digits

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"gorgonia.org/tensor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// heldOut returns the pretrained model and the held-out split.
func heldOut(t testing.TB) (*Model, *Set) {
	t.Helper()
	m, err := Pretrained()
	require.NoError(t, err)
	_, test, err := Split(SplitSeed)
	require.NoError(t, err)
	return m, test
}

// rows returns a new [n, 64] tensor holding the first n rows of s.
func rows(s *Set, n int) *tensor.Dense {
	data := append([]float32(nil), s.X.Float32s()[:n*Pixels]...)
	return tensor.New(tensor.WithShape(n, Pixels), tensor.WithBacking(data))
}

// referencePredict computes the logits with gorgonia's generic operations
// only: MatMul, Add of the bias repeated over the rows, Clamp as ReLU.
func referencePredict(t *testing.T, m *Model, x *tensor.Dense) []float32 {
	t.Helper()
	n := x.Shape()[0]
	layer := func(in *tensor.Dense, w, b []float32, cols int, relu bool) *tensor.Dense {
		wt := tensor.New(tensor.WithShape(len(w)/cols, cols), tensor.WithBacking(append([]float32(nil), w...)))
		prod, err := tensor.MatMul(in, wt)
		require.NoError(t, err)
		bias := tensor.New(tensor.WithShape(1, cols), tensor.WithBacking(append([]float32(nil), b...)))
		rep, err := tensor.Repeat(bias, 0, n)
		require.NoError(t, err)
		sum, err := tensor.Add(prod, rep)
		require.NoError(t, err)
		if relu {
			sum, err = tensor.Clamp(sum, float32(0), float32(3.4e38))
			require.NoError(t, err)
		}
		return sum.(*tensor.Dense)
	}
	h := layer(x, m.w1, m.b1, m.hidden, true)
	return layer(h, m.w2, m.b2, Classes, false).Float32s()
}

func TestPredictReturnsNBy10LogitsThatMatchGorgoniasGenericOps(t *testing.T) {
	m, test := heldOut(t)

	out, err := m.Predict(test.X)
	require.NoError(t, err)

	assert.Equal(t, tensor.Shape{test.Len(), Classes}, out.Shape())
	assert.Equal(t, tensor.Float32, out.Dtype())
	assert.InDeltaSlice(t, referencePredict(t, m, test.X), out.Float32s(), 1e-4)
}

func TestPredictGivesEachRowTheSameLogitsAloneOrInABatch(t *testing.T) {
	m, test := heldOut(t)
	n := 300 // spans three chunks of predictChunk rows
	batch, err := m.Predict(rows(test, n))
	require.NoError(t, err)

	for i := range n {
		x := tensor.New(tensor.WithShape(1, Pixels), tensor.WithBacking(append([]float32(nil), test.X.Float32s()[i*Pixels:(i+1)*Pixels]...)))
		alone, err := m.Predict(x)
		require.NoError(t, err)
		require.InDeltaSlice(t, alone.Float32s(), batch.Float32s()[i*Classes:(i+1)*Classes], 1e-6, "row %d", i)
	}
}

func TestPredictLeavesItsInputUnchanged(t *testing.T) {
	m, test := heldOut(t)
	x := rows(test, 10)
	before := append([]float32(nil), x.Float32s()...)

	_, err := m.Predict(x)
	require.NoError(t, err)
	assert.Equal(t, before, x.Float32s())
}

func TestPredictAcceptsViewsTransposesAndColumnMajorTensors(t *testing.T) {
	m, test := heldOut(t)
	want, err := m.Predict(rows(test, 20))
	require.NoError(t, err)

	t.Run("row slice of a larger tensor", func(t *testing.T) {
		big := rows(test, 40)
		v, err := big.Slice(tensor.S(0, 20))
		require.NoError(t, err)
		got, err := m.Predict(v.(*tensor.Dense))
		require.NoError(t, err)
		assert.Equal(t, want.Float32s(), got.Float32s())
	})
	t.Run("transpose of a [64, N] tensor", func(t *testing.T) {
		x := rows(test, 20)
		xt := x.Clone().(*tensor.Dense)
		require.NoError(t, xt.T())
		require.NoError(t, xt.Transpose()) // now a [64, 20] tensor in memory
		require.NoError(t, xt.T())         // and a [20, 64] view of it
		got, err := m.Predict(xt)
		require.NoError(t, err)
		assert.Equal(t, want.Float32s(), got.Float32s())
	})
	t.Run("column-major", func(t *testing.T) {
		src := rows(test, 20).Float32s()
		colMajor := make([]float32, len(src))
		for i := range 20 {
			for k := range Pixels {
				colMajor[k*20+i] = src[i*Pixels+k]
			}
		}
		// AsFortran before WithShape: the backing is taken as column-major
		// storage (after it, gorgonia would copy a row-major backing).
		x := tensor.New(tensor.AsFortran(colMajor), tensor.WithShape(20, Pixels))
		require.True(t, x.DataOrder().IsColMajor())
		got, err := m.Predict(x)
		require.NoError(t, err)
		assert.Equal(t, want.Float32s(), got.Float32s())
	})
}

func TestPredictRejectsBadInputWithTheRightError(t *testing.T) {
	m, _ := heldOut(t)
	cases := []struct {
		name     string
		x        *tensor.Dense
		kind     error
		contains string
	}{
		{"nil tensor", nil, ErrShape, "Predict input is a nil tensor"},
		{"float64", tensor.New(tensor.WithShape(2, Pixels), tensor.Of(tensor.Float64)), ErrDType, "Predict input has dtype float64; want a float32 tensor of shape [N, 64]"},
		{"int", tensor.New(tensor.WithShape(2, Pixels), tensor.Of(tensor.Int)), ErrDType, "has dtype int"},
		{"one image as a vector", tensor.New(tensor.WithShape(Pixels), tensor.Of(tensor.Float32)), ErrShape, "(reshape a single image to [1, 64])"},
		{"8x8 image", tensor.New(tensor.WithShape(8, 8), tensor.Of(tensor.Float32)), ErrShape, "has shape (8, 8)"},
		{"63 pixels", tensor.New(tensor.WithShape(4, 63), tensor.Of(tensor.Float32)), ErrShape, "has shape (4, 63)"},
		{"3-D batch", tensor.New(tensor.WithShape(2, 8, 8), tensor.Of(tensor.Float32)), ErrShape, "has shape (2, 8, 8)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := m.Predict(tc.x)

			assert.Nil(t, out)
			require.ErrorIs(t, err, tc.kind)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "input", fe.Tensor)
			assert.Contains(t, err.Error(), tc.contains)

			_, err = m.Classify(tc.x)
			assert.ErrorIs(t, err, tc.kind, "Classify checks its input as Predict does")
		})
	}
}

func TestPredictIsSafeForConcurrentUse(t *testing.T) {
	m, test := heldOut(t)
	want, err := m.Predict(test.X)
	require.NoError(t, err)

	const goroutines, calls = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for c := range calls {
				n := 1 + (g*calls+c)%test.Len()
				got, err := m.Predict(rows(test, n))
				if err != nil {
					errs <- err
					return
				}
				if !assert.InDeltaSlice(t, want.Float32s()[:n*Classes], got.Float32s(), 1e-6) {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPredictAllocatesOnlyItsResult(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	m, test := heldOut(t)
	x := rows(test, 64)
	_, err := m.Predict(x) // warm the scratch pool
	require.NoError(t, err)

	allocs := testing.AllocsPerRun(100, func() { _, _ = m.Predict(x) })
	assert.LessOrEqual(t, allocs, 10.0, "the result slice and gorgonia's tensor.New")
}

func TestClassifyAndArgmaxAgreeWithTheLabelsOnTheHeldOutSplit(t *testing.T) {
	m, test := heldOut(t)

	pred, err := m.Classify(test.X)
	require.NoError(t, err)
	logits, err := m.Predict(test.X)
	require.NoError(t, err)
	fromLogits, err := Argmax(logits)
	require.NoError(t, err)

	assert.Equal(t, pred, fromLogits)
	assert.GreaterOrEqual(t, countEqual(pred, test.Labels), 350)
}

func TestArgmaxPicksTheFirstOfEqualMaximaAndReadsViews(t *testing.T) {
	logits := tensor.New(tensor.WithShape(3, Classes), tensor.WithBacking([]float32{
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
		9, 0, 0, 0, 0, 0, 0, 0, 0, 9,
		-5, -4, -3, -2, -1, -1, -2, -3, -4, -5,
	}))
	got, err := Argmax(logits)
	require.NoError(t, err)
	assert.Equal(t, []int{9, 0, 4}, got)

	view, err := logits.Slice(tensor.S(1, 3))
	require.NoError(t, err)
	got, err = Argmax(view.(*tensor.Dense))
	require.NoError(t, err)
	assert.Equal(t, []int{0, 4}, got)

	_, err = Argmax(tensor.New(tensor.WithShape(2, 5), tensor.Of(tensor.Float32)))
	assert.ErrorIs(t, err, ErrShape)
	_, err = Argmax(tensor.New(tensor.WithShape(2, Classes), tensor.Of(tensor.Float64)))
	assert.ErrorIs(t, err, ErrDType)
}

func TestPredictOnAZeroModelSaysWhereModelsComeFrom(t *testing.T) {
	_, test := heldOut(t)
	var m Model

	_, err := m.Predict(test.X)

	require.ErrorIs(t, err, errNoWeights)
	assert.Contains(t, err.Error(), "get one from Pretrained, Train, Load or LoadFile")
}

func TestAccuracyRejectsAWrongNumberOfLabels(t *testing.T) {
	m, test := heldOut(t)

	_, err := m.Accuracy(test.X, test.Labels[1:])

	require.ErrorIs(t, err, ErrShape)
	assert.Contains(t, err.Error(), "Accuracy got 359 labels for 360 rows of input")
}

func benchmarkPredict(b *testing.B, n int) {
	m, test := heldOut(b)
	x := rows(test, n)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Predict(x); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkPredict64 is the served computation at the demo's batch size:
// 64 held-out images.
func BenchmarkPredict64(b *testing.B) { benchmarkPredict(b, 64) }

// BenchmarkPredict1 is one image: the floor of a batch's cost.
func BenchmarkPredict1(b *testing.B) { benchmarkPredict(b, 1) }

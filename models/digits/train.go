package digits

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Defaults of TrainOptions. Train with all of them reproduces the committed
// weights (digits.safetensors) bit for bit.
const (
	DefaultSeed         = 1
	DefaultHidden       = 32
	DefaultEpochs       = 40
	DefaultBatchSize    = 32
	DefaultLearningRate = 0.05
)

// momentum is the SGD momentum coefficient μ.
const momentum = 0.9

// MaxHidden bounds TrainOptions.Hidden and the hidden size Load accepts.
const MaxHidden = 4096

// trainStream keeps the training random stream (initial weights, epoch
// shuffles) apart from Split's stream of the same seed.
const trainStream = 0x7a11_ed00_0000_0002

// TrainOptions configures Train. The zero value trains the default model.
type TrainOptions struct {
	// Seed seeds the initial weights and the order of examples in each
	// epoch. The same options give bit-identical weights on every platform
	// and Go release. Zero means DefaultSeed (so seeds 0 and 1 are the same
	// model).
	Seed uint64
	// Hidden is the number of hidden units, 1..MaxHidden. Zero means
	// DefaultHidden.
	Hidden int
	// Epochs is the number of passes over the training set. Zero means
	// DefaultEpochs.
	Epochs int
	// BatchSize is the number of examples per gradient step. Zero means
	// DefaultBatchSize.
	BatchSize int
	// LearningRate is the initial step size of SGD with momentum 0.9; it
	// decays linearly to a tenth of itself over the epochs. Zero means
	// DefaultLearningRate.
	LearningRate float32
	// Progress, when not nil, is called after each epoch, on the goroutine
	// that called Train. Its work does not affect the result.
	Progress func(Epoch)
}

// Epoch is what Train reports to TrainOptions.Progress after each pass over
// the training set.
type Epoch struct {
	// Epoch counts from 1 to Epochs.
	Epoch, Epochs int
	// Loss is the mean cross-entropy over the epoch's examples, each
	// measured before its own gradient step.
	Loss float64
	// TrainAccuracy is the share of the epoch's examples classified right
	// before their gradient step.
	TrainAccuracy float64
}

// Report describes a finished training run.
type Report struct {
	// Options are the options Train ran with, defaults filled in and
	// Progress left out.
	Options TrainOptions
	// TrainSize and TestSize are the sizes of the two parts of
	// Split(SplitSeed).
	TrainSize, TestSize int
	// Loss is the last epoch's mean training loss.
	Loss float64
	// TrainAccuracy and TestAccuracy are the trained model's accuracies on
	// the training and held-out parts; TestCorrect is the number of
	// held-out examples it classifies right.
	TrainAccuracy, TestAccuracy float64
	TestCorrect                 int
	// Duration is the wall time Train took.
	Duration time.Duration
}

// withDefaults returns o with zero fields set to their defaults, or an error
// naming the first invalid field.
func (o TrainOptions) withDefaults() (TrainOptions, error) {
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.Hidden == 0 {
		o.Hidden = DefaultHidden
	}
	if o.Epochs == 0 {
		o.Epochs = DefaultEpochs
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.LearningRate == 0 {
		o.LearningRate = DefaultLearningRate
	}
	switch {
	case o.Hidden < 1 || o.Hidden > MaxHidden:
		return o, fmt.Errorf("digits: TrainOptions.Hidden is %d; want 1..%d (0 means %d)", o.Hidden, MaxHidden, DefaultHidden)
	case o.Epochs < 1:
		return o, fmt.Errorf("digits: TrainOptions.Epochs is %d; want at least 1 (0 means %d)", o.Epochs, DefaultEpochs)
	case o.BatchSize < 1:
		return o, fmt.Errorf("digits: TrainOptions.BatchSize is %d; want at least 1 (0 means %d)", o.BatchSize, DefaultBatchSize)
	case !(o.LearningRate > 0) || math.IsInf(float64(o.LearningRate), 0):
		return o, fmt.Errorf("digits: TrainOptions.LearningRate is %v; want a positive number (0 means %v)", o.LearningRate, DefaultLearningRate)
	}
	return o, nil
}

// Train trains a model on the training part of Split(SplitSeed) and measures
// it on the held-out part. It runs on the calling goroutine only (one core)
// and takes a fraction of a second with the defaults.
//
// It is deterministic: the same options give bit-identical weights (and
// held-out score) on every platform and Go release: it uses no goroutines,
// no map order, only PCG's raw output for randomness, its own exp for the
// softmax (math.Exp has per-architecture assembly), and an explicit float32
// conversion on every product that is added to something, which forbids
// the fused multiply-adds Go may otherwise emit on arm64, ppc64le, s390x
// and riscv64. The tests pass, committed weights included, on amd64 and
// under emulation on arm64, ppc64le and s390x (big-endian).
//
// The error is not nil only for invalid options or a damaged build.
func Train(opts TrainOptions) (*Model, *Report, error) {
	began := time.Now()
	o, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	progress := o.Progress
	o.Progress = nil
	trainSet, testSet, err := Split(SplitSeed)
	if err != nil {
		return nil, nil, err
	}
	xs := trainSet.X.Float32s()
	if len(xs) != trainSet.Len()*Pixels {
		return nil, nil, errors.New("digits: training tensor has an unexpected layout")
	}

	src := rand.NewPCG(o.Seed, trainStream)
	t := newTrainer(o.Hidden, src)
	order := make([]int, trainSet.Len())
	for i := range order {
		order[i] = i
	}
	var last Epoch
	for e := range o.Epochs {
		shuffle(order, src)
		// Linear decay from lr to lr/10; computed in float32 like the rest.
		lr := o.LearningRate * (1 - float32(0.9)*float32(e)/float32(o.Epochs))
		last = t.epoch(xs, trainSet.Labels, order, o.BatchSize, lr)
		last.Epoch, last.Epochs = e+1, o.Epochs
		if progress != nil {
			progress(last)
		}
	}

	correct := t.correct(testSet.X.Float32s(), testSet.Labels)
	rep := &Report{
		Options:       o,
		TrainSize:     trainSet.Len(),
		TestSize:      testSet.Len(),
		Loss:          last.Loss,
		TrainAccuracy: float64(t.correct(xs, trainSet.Labels)) / float64(trainSet.Len()),
		TestAccuracy:  float64(correct) / float64(testSet.Len()),
		TestCorrect:   correct,
	}
	m := t.model()
	m.meta = rep.metadata()
	rep.Duration = time.Since(began)
	return m, rep, nil
}

// trainer holds the parameters (laid out as in Model), their gradient sums
// over the current mini-batch, the momentum buffers, and per-example scratch.
type trainer struct {
	h                  int
	w1, b1, w2, b2     []float32
	gw1, gb1, gw2, gb2 []float32
	vw1, vb1, vw2, vb2 []float32
	hid, dh            []float32
	logits, dl         [Classes]float32
}

func newTrainer(h int, src *rand.PCG) *trainer {
	t := &trainer{
		h:  h,
		w1: make([]float32, Pixels*h), b1: make([]float32, h),
		w2: make([]float32, h*Classes), b2: make([]float32, Classes),
		gw1: make([]float32, Pixels*h), gb1: make([]float32, h),
		gw2: make([]float32, h*Classes), gb2: make([]float32, Classes),
		vw1: make([]float32, Pixels*h), vb1: make([]float32, h),
		vw2: make([]float32, h*Classes), vb2: make([]float32, Classes),
		hid: make([]float32, h), dh: make([]float32, h),
	}
	// Glorot-uniform weights, zero biases. math.Sqrt is correctly rounded
	// everywhere, so the bounds are the same on every platform.
	glorot(t.w1, float32(math.Sqrt(6/float64(Pixels+h))), src)
	glorot(t.w2, float32(math.Sqrt(6/float64(h+Classes))), src)
	return t
}

// glorot fills w with values uniform in [-a, a), from the top 24 bits of
// each raw draw. The draw becomes a float32 in [-1, 1) exactly (an integer
// below 2²⁴ over a power of two), so only the product with a rounds.
func glorot(w []float32, a float32, src *rand.PCG) {
	for i := range w {
		r := int32(src.Uint64()>>40) - 1<<23 // uniform in [-2²³, 2²³)
		w[i] = a * (float32(r) / (1 << 23))
	}
}

// epoch runs one pass of mini-batch SGD over the examples in order.
func (t *trainer) epoch(xs []float32, labels, order []int, batch int, lr float32) Epoch {
	var loss float64
	correct := 0
	for start := 0; start < len(order); start += batch {
		end := min(start+batch, len(order))
		clear(t.gw1)
		clear(t.gb1)
		clear(t.gw2)
		clear(t.gb2)
		for _, i := range order[start:end] {
			l, ok := t.example(xs[i*Pixels:(i+1)*Pixels], labels[i])
			loss += l
			if ok {
				correct++
			}
		}
		t.step(lr, float32(1)/float32(end-start))
	}
	return Epoch{Loss: loss / float64(len(order)), TrainAccuracy: float64(correct) / float64(len(order))}
}

// example runs the forward and backward pass of one example, adding its
// gradient to the sums. It returns the example's loss and whether the
// model classified it right.
//
// Every product that is added to something is converted to float32 first:
// the Go spec lets a compiler fuse x*y+z into one FMA instruction unless
// an explicit conversion rounds x*y, and fused and unfused results differ
// in the last bit.
func (t *trainer) example(x []float32, label int) (float64, bool) {
	best := t.forward(x)

	// Softmax cross-entropy: dl = softmax(logits) - onehot(label).
	var e [Classes]float64
	var sum float64
	for c, v := range t.logits {
		e[c] = expNonPositive(float64(v) - float64(t.logits[best]))
		sum += e[c]
	}
	for c := range t.dl {
		t.dl[c] = float32(e[c] / sum)
	}
	loss := -math.Log(e[label] / sum) // reported only; never feeds back into the weights
	t.dl[label]--

	t.backward(x)
	return loss, best == label
}

// forward computes hid = relu(x·w1 + b1) and logits = hid·w2 + b2, and
// returns the index of the largest logit (the first one on a tie).
func (t *trainer) forward(x []float32) int {
	h := t.h
	copy(t.hid, t.b1)
	for k, xv := range x {
		if xv == 0 {
			continue // about half the pixels are blank
		}
		row := t.w1[k*h : (k+1)*h]
		for j := range t.hid {
			t.hid[j] += float32(xv * row[j])
		}
	}
	for j, v := range t.hid {
		if v < 0 {
			t.hid[j] = 0
		}
	}
	t.logits = [Classes]float32(t.b2)
	for j, hv := range t.hid {
		if hv == 0 {
			continue
		}
		row := t.w2[j*Classes : (j+1)*Classes]
		for c := range t.logits {
			t.logits[c] += float32(hv * row[c])
		}
	}
	best := 0
	for c, v := range t.logits {
		if v > t.logits[best] {
			best = c
		}
	}
	return best
}

// backward adds the gradient of the example x to the sums, given dl, the
// gradient of the loss with respect to the logits of the last forward.
func (t *trainer) backward(x []float32) {
	h := t.h
	for c, d := range t.dl {
		t.gb2[c] += d
	}
	for j, hv := range t.hid {
		if hv == 0 {
			t.dh[j] = 0 // ReLU's gradient is zero here
			continue
		}
		row := t.w2[j*Classes : (j+1)*Classes]
		grow := t.gw2[j*Classes : (j+1)*Classes]
		var d float32
		for c, dl := range t.dl {
			grow[c] += float32(hv * dl)
			d += float32(row[c] * dl)
		}
		t.dh[j] = d
	}
	for j, d := range t.dh {
		t.gb1[j] += d
	}
	for k, xv := range x {
		if xv == 0 {
			continue
		}
		grow := t.gw1[k*h : (k+1)*h]
		for j, d := range t.dh {
			grow[j] += float32(xv * d)
		}
	}
}

// correct returns how many of the examples in xs the current parameters
// classify as their label. Train reports accuracy from it rather than from
// Predict, whose BLAS may round differently on another platform, so that
// the report (and the metadata Save writes) are as reproducible as the
// weights.
func (t *trainer) correct(xs []float32, labels []int) int {
	n := 0
	for i, label := range labels {
		if t.forward(xs[i*Pixels:(i+1)*Pixels]) == label {
			n++
		}
	}
	return n
}

// step applies SGD with momentum: v = μ·v + g/n; p -= lr·v.
func (t *trainer) step(lr, invN float32) {
	sgd(t.w1, t.vw1, t.gw1, lr, invN)
	sgd(t.b1, t.vb1, t.gb1, lr, invN)
	sgd(t.w2, t.vw2, t.gw2, lr, invN)
	sgd(t.b2, t.vb2, t.gb2, lr, invN)
}

func sgd(p, v, g []float32, lr, invN float32) {
	for i := range p {
		v[i] = float32(momentum*v[i]) + float32(g[i]*invN)
		p[i] -= float32(lr * v[i])
	}
}

// model copies the parameters into a new Model.
func (t *trainer) model() *Model {
	return &Model{
		hidden: t.h,
		w1:     append([]float32(nil), t.w1...),
		b1:     append([]float32(nil), t.b1...),
		w2:     append([]float32(nil), t.w2...),
		b2:     append([]float32(nil), t.b2...),
	}
}

// expNonPositive returns e^z for z ≤ 0, to within a few ulps, computed the
// same way on every platform: math.Exp has assembly versions on amd64,
// arm64 and s390x whose last bits may differ from the pure-Go one, and the
// softmax feeds the weights. z = k·ln2 + r with |r| ≤ ln2/2, e^r by a
// degree-12 Taylor polynomial (truncation error below 1e-16), then scaled
// by 2^k exactly.
func expNonPositive(z float64) float64 {
	if z < -700 {
		return 0
	}
	k := math.Floor(float64(z*math.Log2E) + 0.5)
	r := z - float64(k*math.Ln2)
	p := 1.0 / 479001600 // 1/12!
	for _, c := range [...]float64{
		1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320,
		1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1, 1,
	} {
		p = float64(p*r) + c
	}
	return float64(p * math.Float64frombits(uint64(int64(k)+1023)<<52))
}

package digits

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"gorgonia.org/tensor"
)

// The shape of the data and of the model's input and output.
const (
	// Pixels is the number of inputs: an 8×8 image, row by row.
	Pixels = 64
	// Classes is the number of outputs: one logit per digit 0–9.
	Classes = 10
	// MaxPixel is the largest raw pixel value in the data set (a count of
	// "on" pixels in a 4×4 block); Dataset scales pixels by 1/MaxPixel.
	MaxPixel = 16
)

// SplitSeed is the seed of the fixed held-out split: Train trains on
// Split(SplitSeed)'s training part, and the accuracy that Train reports,
// that the committed weights were checked against and that the demo
// prints is measured on its test part.
const SplitSeed = 20_230_415

// TestFraction is the share of the examples that Split holds out, rounded up:
// 360 of the 1,797 examples.
const TestFraction = 0.2

// digitsCSV is the UCI optical-recognition digits test set as scikit-learn
// ships it (sklearn/datasets/data/digits.csv.gz): 1,797 lines of 64 pixels
// in 0..16 and a label in 0..9. See digits.csv.gz.license.
//
//go:embed digits.csv.gz
var digitsCSV []byte

// Set is a labelled set of images: X is a float32 tensor of shape
// [len(Labels), Pixels] with pixels scaled to [0, 1], and Labels[i] is the
// digit drawn in row i of X.
//
// Each call of Dataset or Split returns new tensors and slices, which the
// caller owns and may change.
type Set struct {
	X      *tensor.Dense
	Labels []int
}

// Len returns the number of examples in s.
func (s *Set) Len() int { return len(s.Labels) }

// raw is the parsed data set: pixels as in the file (0..16), row by row.
type raw struct {
	pixels []uint8
	labels []int
}

// parsed parses the embedded file once; its result is never changed.
var parsed = sync.OnceValues(func() (*raw, error) { return parseCSV(digitsCSV) })

// Dataset returns all 1,797 examples in the order of the file.
//
// The error is not nil only if the embedded file is damaged, which means the
// package was built from a broken checkout.
func Dataset() (*Set, error) {
	r, err := parsed()
	if err != nil {
		return nil, err
	}
	idx := make([]int, len(r.labels))
	for i := range idx {
		idx[i] = i
	}
	return r.subset(idx), nil
}

// Split shuffles the examples with a generator seeded by seed and returns the
// last ⌈TestFraction·1797⌉ = 360 of them as test and the others as train. The
// same seed gives the same split on every platform and Go release (the
// shuffle uses only PCG's raw 64-bit output).
//
// Train uses Split(SplitSeed); measure a model trained by Train on that
// split's test part only.
func Split(seed uint64) (train, test *Set, err error) {
	r, err := parsed()
	if err != nil {
		return nil, nil, err
	}
	idx := shuffled(len(r.labels), rand.NewPCG(seed, splitStream))
	nTest := testSize(len(idx))
	return r.subset(idx[:len(idx)-nTest]), r.subset(idx[len(idx)-nTest:]), nil
}

// splitStream keeps the split's random stream apart from the training
// stream of the same seed.
const splitStream = 0x5d1e_7e57_0000_0001

// testSize is ⌈n·TestFraction⌉, in integers.
func testSize(n int) int { return (n*int(TestFraction*100) + 99) / 100 }

// shuffled returns a permutation of 0..n-1 (Fisher–Yates). It uses the
// source's Uint64 directly and not rand.Rand's helpers, whose algorithms the
// Go release does not promise to keep.
func shuffled(n int, src *rand.PCG) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	shuffle(idx, src)
	return idx
}

func shuffle(idx []int, src *rand.PCG) {
	for i := len(idx) - 1; i > 0; i-- {
		// The modulo bias is below 2⁻⁵² for these sizes: irrelevant here, and
		// exactly reproducible, which is what matters.
		j := int(src.Uint64() % uint64(i+1))
		idx[i], idx[j] = idx[j], idx[i]
	}
}

// subset builds a new Set from the examples at idx, in that order.
func (r *raw) subset(idx []int) *Set {
	x := make([]float32, len(idx)*Pixels)
	labels := make([]int, len(idx))
	for row, i := range idx {
		src := r.pixels[i*Pixels : (i+1)*Pixels]
		dst := x[row*Pixels : (row+1)*Pixels]
		for k, p := range src {
			dst[k] = float32(p) / MaxPixel
		}
		labels[row] = r.labels[i]
	}
	return &Set{
		X:      tensor.New(tensor.WithShape(len(idx), Pixels), tensor.WithBacking(x)),
		Labels: labels,
	}
}

// parseCSV reads the gzip-compressed file: one example per line, 64 pixels
// then the label, separated by commas.
func parseCSV(gz []byte) (*raw, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("digits: embedded digits.csv.gz: %w", err)
	}
	defer zr.Close()
	r := &raw{}
	sc := bufio.NewScanner(zr)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Split(strings.TrimSpace(sc.Text()), ",")
		if len(fields) != Pixels+1 {
			return nil, fmt.Errorf("digits: embedded digits.csv.gz line %d has %d fields, want %d", line, len(fields), Pixels+1)
		}
		for i, f := range fields {
			v, err := strconv.Atoi(f)
			max := MaxPixel
			if i == Pixels {
				max = Classes - 1
			}
			if err != nil || v < 0 || v > max {
				return nil, fmt.Errorf("digits: embedded digits.csv.gz line %d field %d is %q, want an integer in 0..%d", line, i+1, f, max)
			}
			if i == Pixels {
				r.labels = append(r.labels, v)
			} else {
				r.pixels = append(r.pixels, uint8(v))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("digits: embedded digits.csv.gz: %w", err)
	}
	if len(r.labels) == 0 {
		return nil, fmt.Errorf("digits: embedded digits.csv.gz holds no examples")
	}
	return r, nil
}

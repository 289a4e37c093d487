package digits

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

//go:generate go run ./internal/gen -o digits.safetensors

// The tensors of a weights file, named and laid out as PyTorch's nn.Linear
// stores them (weight is [out, in]), so that
//
//	nn.Sequential(OrderedDict(fc1=nn.Linear(64, 32), relu=nn.ReLU(), fc2=nn.Linear(32, 10)))
//
// loads the file with safetensors.torch.load_file and load_state_dict.
const (
	TensorFC1Weight = "fc1.weight" // F32 [H, 64]
	TensorFC1Bias   = "fc1.bias"   // F32 [H]
	TensorFC2Weight = "fc2.weight" // F32 [10, H]
	TensorFC2Bias   = "fc2.bias"   // F32 [10]
)

// tensorNames lists the model's tensors in the order Save writes them and
// Load checks them.
var tensorNames = [...]string{TensorFC1Weight, TensorFC1Bias, TensorFC2Weight, TensorFC2Bias}

// pretrainedFile is the output of `go generate`: Train with the default
// options, saved with Save.
//
//go:embed digits.safetensors
var pretrainedFile []byte

var pretrained = sync.OnceValues(func() (*Model, error) {
	return load(bytes.NewReader(pretrainedFile), "embedded weights file digits.safetensors")
})

// Pretrained returns the model trained by Train with the default options,
// loaded from the weights file embedded in the package (a few kilobytes;
// nothing is downloaded). Every call returns the same *Model, which is
// read-only and safe for concurrent use.
//
// The error is not nil only if the embedded file is damaged, which means the
// package was built from a broken checkout.
func Pretrained() (*Model, error) { return pretrained() }

// Save writes m to w as a safetensors file: the four F32 tensors named by
// the Tensor constants, and as __metadata__ the training report (seed,
// options, held-out accuracy) and the data set's attribution. The same model
// always gives the same bytes.
func (m *Model) Save(w io.Writer) error {
	h := m.hidden
	tensors := []stTensor{
		{name: TensorFC1Weight, dtype: "F32", shape: []int{h, Pixels}, data: f32Bytes(transpose(m.w1, Pixels, h))},
		{name: TensorFC1Bias, dtype: "F32", shape: []int{h}, data: f32Bytes(m.b1)},
		{name: TensorFC2Weight, dtype: "F32", shape: []int{Classes, h}, data: f32Bytes(transpose(m.w2, h, Classes))},
		{name: TensorFC2Bias, dtype: "F32", shape: []int{Classes}, data: f32Bytes(m.b2)},
	}
	return writeSafetensors(w, tensors, m.meta)
}

// SaveFile writes m to the file at path with Save, through a temporary file
// in the same directory that it renames over path, so that a reader never
// sees half a file.
func (m *Model) SaveFile(path string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("digits: saving weights: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = m.Save(tmp); err != nil {
		return fmt.Errorf("digits: saving weights to %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("digits: saving weights to %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("digits: saving weights to %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("digits: saving weights: %w", err)
	}
	return nil
}

// Load reads a model saved by Save (or by PyTorch from the module described
// at TensorFC1Weight) from r, up to EOF.
//
// A bad file gives a *FormatError whose message says what is wrong and how
// to fix it, wrapping ErrTruncated, ErrCorrupt, ErrMissingTensor,
// ErrUnknownTensor, ErrDType or ErrShape; errors from r come back wrapped.
// The hidden size H is taken from fc1.weight and must be 1..MaxHidden.
func Load(r io.Reader) (*Model, error) { return load(r, "weights file") }

// LoadFile loads the model saved in the file at path; see Load. Its error
// messages name the file.
func LoadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("digits: %w; train one with `ergonx train` or use Pretrained", err)
	}
	defer f.Close()
	return load(f, "weights file "+path)
}

func load(r io.Reader, src string) (*Model, error) {
	tensors, meta, err := readSafetensors(r, src)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, name := range tensorNames {
		if _, ok := tensors[name]; !ok {
			missing = append(missing, strconv.Quote(name))
		}
	}
	if len(missing) > 0 {
		return nil, weightsError(ErrMissingTensor, strings.Trim(missing[0], `"`),
			fmt.Sprintf("%s lacks tensor %s (it holds %s): the file belongs to another model", src, strings.Join(missing, ", "), quotedNames(tensors)))
	}
	if len(tensors) > len(tensorNames) {
		for _, name := range slices.Sorted(maps.Keys(tensors)) {
			if !slices.Contains(tensorNames[:], name) {
				return nil, weightsError(ErrUnknownTensor, name,
					fmt.Sprintf("%s holds tensor %q, which this model does not have (it has %s): the file belongs to another model", src, name, quotedList(tensorNames[:])))
			}
		}
	}
	for _, name := range tensorNames {
		if dt := tensors[name].dtype; dt != "F32" {
			return nil, weightsError(ErrDType, name, fmt.Sprintf("%s: tensor %q has dtype %s; want F32", src, name, dt))
		}
	}

	fc1 := tensors[TensorFC1Weight].shape
	if len(fc1) != 2 || fc1[1] != Pixels || fc1[0] < 1 || fc1[0] > MaxHidden {
		return nil, weightsError(ErrShape, TensorFC1Weight,
			fmt.Sprintf("%s: tensor %q has shape %v; want [H, %d] with 1 ≤ H ≤ %d", src, TensorFC1Weight, fc1, Pixels, MaxHidden))
	}
	h := fc1[0]
	want := map[string][]int{
		TensorFC1Bias:   {h},
		TensorFC2Weight: {Classes, h},
		TensorFC2Bias:   {Classes},
	}
	for _, name := range tensorNames[1:] {
		if got := tensors[name].shape; !slices.Equal(got, want[name]) {
			return nil, weightsError(ErrShape, name,
				fmt.Sprintf("%s: tensor %q has shape %v; want %v to match %s of shape %v", src, name, got, want[name], TensorFC1Weight, fc1))
		}
	}

	vals := make(map[string][]float32, len(tensorNames))
	for _, name := range tensorNames {
		v := f32Values(tensors[name].data)
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, weightsError(ErrCorrupt, name,
					fmt.Sprintf("%s: tensor %q holds %v at element %d, which no trained model has: the weights are damaged", src, name, x, i))
			}
		}
		vals[name] = v
	}
	return &Model{
		hidden: h,
		w1:     transpose(vals[TensorFC1Weight], h, Pixels),
		b1:     vals[TensorFC1Bias],
		w2:     transpose(vals[TensorFC2Weight], Classes, h),
		b2:     vals[TensorFC2Bias],
		meta:   meta,
	}, nil
}

// metadata returns what Save stores in the file's __metadata__ for a model
// trained with r. All values are exact (no timings), so that the file is
// reproducible.
func (r *Report) metadata() map[string]string {
	o := r.Options
	return map[string]string{
		"format":        "pt",
		"model":         fmt.Sprintf("ergonx digits MLP %d-%d-%d: fc2(relu(fc1(x))), x = 8x8 pixels/16", Pixels, o.Hidden, Classes),
		"trained_by":    "github.com/ergonx/ergonx/models/digits.Train",
		"seed":          strconv.FormatUint(o.Seed, 10),
		"hidden":        strconv.Itoa(o.Hidden),
		"epochs":        strconv.Itoa(o.Epochs),
		"batch_size":    strconv.Itoa(o.BatchSize),
		"learning_rate": strconv.FormatFloat(float64(o.LearningRate), 'g', -1, 32),
		"split_seed":    strconv.FormatUint(SplitSeed, 10),
		"test_correct":  fmt.Sprintf("%d/%d", r.TestCorrect, r.TestSize),
		"dataset":       "UCI Optical Recognition of Handwritten Digits (test set, as shipped by scikit-learn), E. Alpaydin and C. Kaynak, 1998, doi:10.24432/C50P49, CC BY 4.0",
	}
}

// transpose returns the transpose of the rows×cols row-major matrix a.
func transpose(a []float32, rows, cols int) []float32 {
	t := make([]float32, len(a))
	for i := range rows {
		for j := range cols {
			t[j*rows+i] = a[i*cols+j]
		}
	}
	return t
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func f32Values(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// quotedNames lists the names of tensors, sorted and quoted, for messages.
func quotedNames(tensors map[string]stTensor) string {
	if len(tensors) == 0 {
		return "no tensors"
	}
	return quotedList(slices.Sorted(maps.Keys(tensors)))
}

func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

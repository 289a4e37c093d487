package digits

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPretrainedScoresAtLeast97PercentOnTheHeldOutSplit(t *testing.T) {
	m, err := Pretrained()
	require.NoError(t, err)
	_, test, err := Split(SplitSeed)
	require.NoError(t, err)

	acc, err := m.Accuracy(test.X, test.Labels)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, acc, 0.97)
	assert.Equal(t, 32, m.Hidden())
	assert.Equal(t, "358/360", m.Metadata()["test_correct"], "the accuracy Train recorded in the file")
}

func TestPretrainedReturnsTheSameModelEveryCall(t *testing.T) {
	a, err := Pretrained()
	require.NoError(t, err)
	b, err := Pretrained()
	require.NoError(t, err)
	assert.Same(t, a, b)
}

func TestMetadataReturnsACopy(t *testing.T) {
	m, err := Pretrained()
	require.NoError(t, err)
	m.Metadata()["seed"] = "changed"
	assert.Equal(t, "1", m.Metadata()["seed"])
}

func TestSaveThenLoadGivesTheSameBytesAndLogits(t *testing.T) {
	m, err := Pretrained()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, m.Save(&buf))
	assert.Equal(t, pretrainedFile, buf.Bytes(), "Save of the loaded pretrained model rewrites the file exactly")

	back, err := Load(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, m.Metadata(), back.Metadata())
	_, test, err := Split(SplitSeed)
	require.NoError(t, err)
	want, err := m.Predict(test.X)
	require.NoError(t, err)
	got, err := back.Predict(test.X)
	require.NoError(t, err)
	assert.Equal(t, want.Float32s(), got.Float32s())
}

func TestSaveFileThenLoadFileRoundTrips(t *testing.T) {
	m, err := Pretrained()
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")

	require.NoError(t, m.SaveFile(path))
	onDisk, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, pretrainedFile, onDisk)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")

	back, err := LoadFile(path)
	require.NoError(t, err)
	assert.Equal(t, m.w1, back.w1)
}

func TestLoadFileNamesTheFileInItsErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cut.safetensors")
	require.NoError(t, os.WriteFile(path, pretrainedFile[:1234], 0o644))

	_, err := LoadFile(path)
	require.ErrorIs(t, err, ErrTruncated)
	assert.Equal(t, "digits: weights file "+path+" ends after 1234 of 10384 bytes: the file is truncated; "+
		"retrain with `ergonx train` (or `go generate ./models/digits`) or restore the file", err.Error())

	_, err = LoadFile(filepath.Join(t.TempDir(), "absent.safetensors"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "train one with `ergonx train` or use Pretrained")
}

func TestLoadOfATruncatedFileSaysHowManyBytesAreThere(t *testing.T) {
	_, err := Load(bytes.NewReader(pretrainedFile[:1234]))

	require.ErrorIs(t, err, ErrTruncated)
	assert.Equal(t, "digits: weights file ends after 1234 of 10384 bytes: the file is truncated; "+
		"retrain with `ergonx train` (or `go generate ./models/digits`) or restore the file", err.Error())
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	assert.Empty(t, fe.Tensor)
}

func TestLoadRejectsEveryProperPrefixOfTheFileAsTruncated(t *testing.T) {
	for n := range len(pretrainedFile) {
		_, err := Load(bytes.NewReader(pretrainedFile[:n]))
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix of %d bytes: got %v, want ErrTruncated", n, err)
		}
	}
}

// goodTensors returns the pretrained model's tensors, for the cases below to
// break one thing at a time.
func goodTensors(t *testing.T) []stTensor {
	t.Helper()
	m, err := Pretrained()
	require.NoError(t, err)
	h := m.hidden
	return []stTensor{
		{name: TensorFC1Weight, dtype: "F32", shape: []int{h, Pixels}, data: f32Bytes(transpose(m.w1, Pixels, h))},
		{name: TensorFC1Bias, dtype: "F32", shape: []int{h}, data: f32Bytes(m.b1)},
		{name: TensorFC2Weight, dtype: "F32", shape: []int{Classes, h}, data: f32Bytes(transpose(m.w2, h, Classes))},
		{name: TensorFC2Bias, dtype: "F32", shape: []int{Classes}, data: f32Bytes(m.b2)},
	}
}

func encode(t *testing.T, tensors []stTensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, writeSafetensors(&buf, tensors, nil))
	return buf.Bytes()
}

// withHeader builds a file from a literal header and data.
func withHeader(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestLoadRejectsBadFilesWithTheRightError(t *testing.T) {
	cases := []struct {
		name     string
		file     func(t *testing.T) []byte
		kind     error
		tensor   string
		contains string
	}{
		{
			name:     "empty file",
			file:     func(*testing.T) []byte { return nil },
			kind:     ErrTruncated,
			contains: "weights file is empty",
		},
		{
			name:     "cut inside the length prefix",
			file:     func(*testing.T) []byte { return pretrainedFile[:5] },
			kind:     ErrTruncated,
			contains: "ends after 5 bytes, inside the 8-byte header length",
		},
		{
			name:     "cut inside the header",
			file:     func(*testing.T) []byte { return pretrainedFile[:100] },
			kind:     ErrTruncated,
			contains: "ends after 100 bytes, inside its header, which runs to byte 744",
		},
		{
			name:     "cut inside the data",
			file:     func(*testing.T) []byte { return pretrainedFile[:len(pretrainedFile)-1] },
			kind:     ErrTruncated,
			contains: "ends after 10383 of 10384 bytes",
		},
		{
			name:     "text file",
			file:     func(*testing.T) []byte { return []byte("This is not a weights file, it is a text file.\n") },
			kind:     ErrCorrupt,
			contains: "starts with a header length of 2338328219631577172 bytes, more than the 1048576 this model's weights can need",
		},
		{
			name:     "zero-length header",
			file:     func(*testing.T) []byte { return withHeader("", nil)[:8:8] },
			kind:     ErrCorrupt,
			contains: "does not start with '{'",
		},
		{
			name: "garbage where the header should be, file cut short",
			file: func(*testing.T) []byte {
				return append(binary.LittleEndian.AppendUint64(nil, 4096), "GIF89a garbage"...)
			},
			kind:     ErrCorrupt,
			contains: "does not start with a safetensors header",
		},
		{
			name:     "header is not JSON",
			file:     func(*testing.T) []byte { return withHeader("{not json at all}", nil) },
			kind:     ErrCorrupt,
			contains: "header is not a JSON object",
		},
		{
			name:     "header entry has the wrong fields",
			file:     func(*testing.T) []byte { return withHeader(`{"fc1.weight":{"type":"F32"}}`, nil) },
			kind:     ErrCorrupt,
			contains: `entry "fc1.weight" is not {dtype, shape, data_offsets}`,
		},
		{
			name:     "header entry lacks data_offsets",
			file:     func(*testing.T) []byte { return withHeader(`{"fc1.bias":{"dtype":"F32","shape":[1]}}`, nil) },
			kind:     ErrCorrupt,
			contains: `entry "fc1.bias" lacks dtype, shape or a [begin, end] data_offsets`,
		},
		{
			name: "metadata is not strings",
			file: func(*testing.T) []byte {
				return withHeader(`{"__metadata__":{"epochs":40}}`, nil)
			},
			kind:     ErrCorrupt,
			contains: "__metadata__ entry that is not an object of strings",
		},
		{
			name: "offsets do not match the shape",
			file: func(*testing.T) []byte {
				return withHeader(`{"fc2.bias":{"dtype":"F32","shape":[10],"data_offsets":[0,36]}}`, make([]byte, 36))
			},
			kind:     ErrCorrupt,
			contains: `gives tensor "fc2.bias" data_offsets [0 36], which do not hold the 10×F32 of shape [10]`,
		},
		{
			name: "offsets leave a gap",
			file: func(*testing.T) []byte {
				return withHeader(`{"fc2.bias":{"dtype":"F32","shape":[10],"data_offsets":[4,44]}}`, make([]byte, 44))
			},
			kind:     ErrCorrupt,
			contains: `leaves a gap or an overlap at tensor "fc2.bias"`,
		},
		{
			name:     "bytes after the last tensor",
			file:     func(*testing.T) []byte { return append(append([]byte(nil), pretrainedFile...), 0) },
			kind:     ErrCorrupt,
			contains: "goes on after the 10384 bytes its header describes",
		},
		{
			name: "a NaN weight",
			file: func(t *testing.T) []byte {
				ts := goodTensors(t)
				binary.LittleEndian.PutUint32(ts[2].data[40:], math.Float32bits(float32(math.NaN())))
				return encode(t, ts)
			},
			kind:     ErrCorrupt,
			tensor:   TensorFC2Weight,
			contains: `tensor "fc2.weight" holds NaN at element 10`,
		},
		{
			name: "F64 weights",
			file: func(t *testing.T) []byte {
				ts := goodTensors(t)
				ts[0].dtype = "F64"
				ts[0].shape = []int{16, Pixels}
				return encode(t, ts)
			},
			kind:     ErrDType,
			tensor:   TensorFC1Weight,
			contains: `tensor "fc1.weight" has dtype F64; want F32`,
		},
		{
			name: "a dtype safetensors does not define",
			file: func(t *testing.T) []byte {
				ts := goodTensors(t)
				ts[3].dtype = "F4"
				return encode(t, ts)
			},
			kind:     ErrDType,
			tensor:   TensorFC2Bias,
			contains: `tensor "fc2.bias" has dtype "F4", which safetensors does not define`,
		},
		{
			name: "fc1.weight stored as [in, out]",
			file: func(t *testing.T) []byte {
				ts := goodTensors(t)
				ts[0].shape = []int{Pixels, 32}
				return encode(t, ts)
			},
			kind:     ErrShape,
			tensor:   TensorFC1Weight,
			contains: `tensor "fc1.weight" has shape [64 32]; want [H, 64] with 1 ≤ H ≤ 4096`,
		},
		{
			name: "fc2.weight that does not match the hidden size",
			file: func(t *testing.T) []byte {
				ts := goodTensors(t)
				ts[2].shape = []int{Classes, 16}
				ts[2].data = ts[2].data[:Classes*16*4]
				return encode(t, ts)
			},
			kind:     ErrShape,
			tensor:   TensorFC2Weight,
			contains: `tensor "fc2.weight" has shape [10 16]; want [10 32] to match fc1.weight of shape [32 64]`,
		},
		{
			name:     "a missing bias",
			file:     func(t *testing.T) []byte { return encode(t, goodTensors(t)[:3]) },
			kind:     ErrMissingTensor,
			tensor:   TensorFC2Bias,
			contains: `lacks tensor "fc2.bias" (it holds "fc1.bias", "fc1.weight", "fc2.weight"): the file belongs to another model`,
		},
		{
			name:     "no tensors at all",
			file:     func(t *testing.T) []byte { return withHeader("{}      ", nil) },
			kind:     ErrMissingTensor,
			tensor:   TensorFC1Weight,
			contains: `lacks tensor "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias" (it holds no tensors)`,
		},
		{
			name: "a tensor of another model",
			file: func(t *testing.T) []byte {
				ts := goodTensors(t)
				ts = append(ts, stTensor{name: "fc3.weight", dtype: "F32", shape: []int{1}, data: make([]byte, 4)})
				return encode(t, ts)
			},
			kind:     ErrUnknownTensor,
			tensor:   "fc3.weight",
			contains: `holds tensor "fc3.weight", which this model does not have`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(bytes.NewReader(tc.file(t)))

			assert.Nil(t, m)
			require.ErrorIs(t, err, tc.kind)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.tensor, fe.Tensor)
			assert.Contains(t, err.Error(), tc.contains)
			assert.True(t, strings.HasPrefix(err.Error(), "digits: weights file"), err.Error())
			assert.True(t, strings.HasSuffix(err.Error(), "retrain with `ergonx train` (or `go generate ./models/digits`) or restore the file"), err.Error())
		})
	}
}

func TestLoadAcceptsAnyHiddenSizeAndTensorOrder(t *testing.T) {
	m, _, err := Train(TrainOptions{Hidden: 5, Epochs: 1})
	require.NoError(t, err)
	h := m.hidden
	// Reverse order from Save's, with metadata: any layout that tiles the
	// data is valid safetensors.
	ts := []stTensor{
		{name: TensorFC2Bias, dtype: "F32", shape: []int{Classes}, data: f32Bytes(m.b2)},
		{name: TensorFC2Weight, dtype: "F32", shape: []int{Classes, h}, data: f32Bytes(transpose(m.w2, h, Classes))},
		{name: TensorFC1Bias, dtype: "F32", shape: []int{h}, data: f32Bytes(m.b1)},
		{name: TensorFC1Weight, dtype: "F32", shape: []int{h, Pixels}, data: f32Bytes(transpose(m.w1, Pixels, h))},
	}
	var buf bytes.Buffer
	require.NoError(t, writeSafetensors(&buf, ts, map[string]string{"note": "reordered"}))

	back, err := Load(&buf)
	require.NoError(t, err)
	assert.Equal(t, 5, back.Hidden())
	assert.Equal(t, m.w1, back.w1)
	assert.Equal(t, m.w2, back.w2)
	assert.Equal(t, map[string]string{"note": "reordered"}, back.Metadata())
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestLoadPassesReadErrorsThrough(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := Load(failingReader{boom})
	require.ErrorIs(t, err, boom)
	var fe *FormatError
	assert.False(t, errors.As(err, &fe), "a read error is not a format error")
}

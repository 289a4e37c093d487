package digits

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"
)

func TestEmbeddedDataIsTheFileTheLicenceNoteDescribes(t *testing.T) {
	sum := sha256.Sum256(digitsCSV)
	hexSum := hex.EncodeToString(sum[:])

	note, err := os.ReadFile("digits.csv.gz.license")
	require.NoError(t, err)
	assert.Contains(t, string(note), hexSum)
	assert.Contains(t, string(note), "SPDX-License-Identifier: CC-BY-4.0")
}

func TestDatasetHolds1797ImagesOf64PixelsInTheUnitRange(t *testing.T) {
	d, err := Dataset()
	require.NoError(t, err)

	assert.Equal(t, 1797, d.Len())
	assert.Equal(t, tensor.Shape{1797, Pixels}, d.X.Shape())
	assert.Equal(t, tensor.Float32, d.X.Dtype())
	assert.Equal(t, float32(0), slices.Min(d.X.Float32s()))
	assert.Equal(t, float32(1), slices.Max(d.X.Float32s()))

	perDigit := make([]int, Classes)
	for _, l := range d.Labels {
		perDigit[l]++
	}
	assert.Equal(t, []int{178, 182, 177, 183, 181, 182, 181, 179, 174, 180}, perDigit)
	// The first line of the file: a zero.
	assert.Equal(t, 0, d.Labels[0])
	assert.Equal(t, []float32{0, 0, 5.0 / 16, 13.0 / 16, 9.0 / 16, 1.0 / 16, 0, 0}, d.X.Float32s()[:8])
}

func TestDatasetReturnsTensorsTheCallerOwns(t *testing.T) {
	a, err := Dataset()
	require.NoError(t, err)
	a.X.Float32s()[2] = 99
	a.Labels[0] = 7

	b, err := Dataset()
	require.NoError(t, err)
	assert.Equal(t, float32(5.0/16), b.X.Float32s()[2])
	assert.Equal(t, 0, b.Labels[0])
}

// fingerprints returns one string per example, to compare sets of examples.
func fingerprints(s *Set) []string {
	xs := s.X.Float32s()
	out := make([]string, s.Len())
	for i := range out {
		out[i] = fmt.Sprint(xs[i*Pixels:(i+1)*Pixels], s.Labels[i])
	}
	return out
}

func TestSplitHoldsOut360ExamplesAndKeepsEveryExampleOnce(t *testing.T) {
	train, test, err := Split(SplitSeed)
	require.NoError(t, err)
	all, err := Dataset()
	require.NoError(t, err)

	assert.Equal(t, 1437, train.Len())
	assert.Equal(t, 360, test.Len())
	assert.Equal(t, tensor.Shape{360, Pixels}, test.X.Shape())
	union := append(fingerprints(train), fingerprints(test)...)
	slices.Sort(union)
	whole := fingerprints(all)
	slices.Sort(whole)
	assert.Equal(t, whole, union)
}

func TestSplitIsTheSameForTheSameSeedAndDiffersForAnother(t *testing.T) {
	_, a, err := Split(SplitSeed)
	require.NoError(t, err)
	_, b, err := Split(SplitSeed)
	require.NoError(t, err)
	_, c, err := Split(SplitSeed + 1)
	require.NoError(t, err)

	assert.Equal(t, a.Labels, b.Labels)
	assert.Equal(t, a.X.Float32s(), b.X.Float32s())
	assert.NotEqual(t, a.Labels, c.Labels)
	// Pin the split itself, so that a change to it cannot pass unnoticed.
	assert.Equal(t, "0 6 8 2 1 5 5 6 9 6", strings.Trim(fmt.Sprint(a.Labels[:10]), "[]"))
}

package digits

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func saved(t *testing.T, m *Model) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, m.Save(&buf))
	return buf.Bytes()
}

func TestTrainWithDefaultOptionsReproducesTheCommittedWeightsBitForBit(t *testing.T) {
	m, rep, err := Train(TrainOptions{})
	require.NoError(t, err)

	if !bytes.Equal(pretrainedFile, saved(t, m)) {
		t.Fatalf("Train(TrainOptions{}) no longer reproduces digits.safetensors (held-out %d/%d now, file says %s); "+
			"if the change to training is intended, run `go generate ./models/digits` and commit the new file",
			rep.TestCorrect, rep.TestSize, mustPretrained(t).Metadata()["test_correct"])
	}
	assert.Equal(t, TrainOptions{Seed: DefaultSeed, Hidden: DefaultHidden, Epochs: DefaultEpochs,
		BatchSize: DefaultBatchSize, LearningRate: DefaultLearningRate}, rep.Options)
	assert.Equal(t, 1437, rep.TrainSize)
	assert.Equal(t, 360, rep.TestSize)
	assert.GreaterOrEqual(t, rep.TestAccuracy, 0.97)
}

func mustPretrained(t *testing.T) *Model {
	m, err := Pretrained()
	require.NoError(t, err)
	return m
}

func TestTrainReportsTheAccuracyThatPredictMeasures(t *testing.T) {
	m, rep, err := Train(TrainOptions{Hidden: 16, Epochs: 5})
	require.NoError(t, err)
	_, test, err := Split(SplitSeed)
	require.NoError(t, err)

	acc, err := m.Accuracy(test.X, test.Labels)
	require.NoError(t, err)
	assert.Equal(t, rep.TestAccuracy, acc)
	assert.Equal(t, float64(rep.TestCorrect)/360, rep.TestAccuracy)
}

func TestTrainWithTheSameSeedGivesIdenticalWeights(t *testing.T) {
	opts := TrainOptions{Seed: 42, Hidden: 8, Epochs: 3}
	a, _, err := Train(opts)
	require.NoError(t, err)
	b, _, err := Train(opts)
	require.NoError(t, err)

	assert.Equal(t, saved(t, a), saved(t, b))
}

func TestTrainWithAnotherSeedGivesOtherWeights(t *testing.T) {
	a, _, err := Train(TrainOptions{Seed: 2, Hidden: 8, Epochs: 1})
	require.NoError(t, err)
	b, _, err := Train(TrainOptions{Seed: 3, Hidden: 8, Epochs: 1})
	require.NoError(t, err)

	assert.NotEqual(t, a.w1, b.w1)
}

func TestTrainSeedZeroMeansTheDefaultSeed(t *testing.T) {
	a, _, err := Train(TrainOptions{Seed: 0, Hidden: 4, Epochs: 1})
	require.NoError(t, err)
	b, _, err := Train(TrainOptions{Seed: DefaultSeed, Hidden: 4, Epochs: 1})
	require.NoError(t, err)

	assert.Equal(t, saved(t, a), saved(t, b))
}

func TestTrainCallsProgressAfterEachEpochWithFallingLoss(t *testing.T) {
	var epochs []Epoch
	_, rep, err := Train(TrainOptions{Hidden: 16, Epochs: 4, Progress: func(e Epoch) { epochs = append(epochs, e) }})
	require.NoError(t, err)

	require.Len(t, epochs, 4)
	for i, e := range epochs {
		assert.Equal(t, i+1, e.Epoch)
		assert.Equal(t, 4, e.Epochs)
	}
	assert.Less(t, epochs[3].Loss, epochs[0].Loss)
	assert.Greater(t, epochs[3].TrainAccuracy, epochs[0].TrainAccuracy)
	assert.Equal(t, epochs[3].Loss, rep.Loss)
	assert.Nil(t, rep.Options.Progress, "the report does not keep the callback")
}

func TestTrainRejectsInvalidOptions(t *testing.T) {
	cases := []struct {
		name     string
		opts     TrainOptions
		contains string
	}{
		{"negative hidden", TrainOptions{Hidden: -1}, "TrainOptions.Hidden is -1; want 1..4096"},
		{"too many hidden", TrainOptions{Hidden: MaxHidden + 1}, "TrainOptions.Hidden is 4097"},
		{"negative epochs", TrainOptions{Epochs: -3}, "TrainOptions.Epochs is -3; want at least 1"},
		{"negative batch", TrainOptions{BatchSize: -1}, "TrainOptions.BatchSize is -1"},
		{"negative learning rate", TrainOptions{LearningRate: -0.1}, "TrainOptions.LearningRate is -0.1; want a positive number"},
		{"NaN learning rate", TrainOptions{LearningRate: float32(math.NaN())}, "TrainOptions.LearningRate is NaN"},
		{"infinite learning rate", TrainOptions{LearningRate: float32(math.Inf(1))}, "TrainOptions.LearningRate is +Inf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, rep, err := Train(tc.opts)

			assert.Nil(t, m)
			assert.Nil(t, rep)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.contains)
		})
	}
}

func TestExpNonPositiveIsWithinAFewUlpsOfMathExp(t *testing.T) {
	for i := range 200_001 {
		z := -745 * float64(i) / 200_000
		got, want := expNonPositive(z), math.Exp(z)
		if z < -700 {
			assert.Zero(t, got)
			continue
		}
		if math.Abs(got-want) > 1e-13*want {
			t.Fatalf("expNonPositive(%v) = %v, math.Exp = %v", z, got, want)
		}
	}
	assert.Equal(t, 1.0, expNonPositive(0))
}

package chanbatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"gorgonia.org/tensor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func double(in *tensor.Dense) (*tensor.Dense, error) {
	return in.MulScalar(float32(2), true)
}

// Every caller gets exactly its row doubled, batched by size or timeout.
func TestEveryCallerGetsItsRow(t *testing.T) {
	b := New(double, 2, 8, time.Millisecond)
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			got, err := b.Call(context.Background(), []float32{float32(i), float32(-i)})
			assert.NoError(t, err)
			assert.Equal(t, []float32{float32(2 * i), float32(-2 * i)}, got)
		})
	}
	wg.Wait()
}

// A failed batch fails its callers; Close answers with ErrClosed.
func TestErrorsAndClose(t *testing.T) {
	boom := errors.New("boom")
	b := New(func(*tensor.Dense) (*tensor.Dense, error) { return nil, boom }, 1, 1, time.Millisecond)
	_, err := b.Call(context.Background(), []float32{1})
	require.ErrorIs(t, err, boom)
	b.Close()
	_, err = b.Call(context.Background(), []float32{1})
	require.ErrorIs(t, err, ErrClosed)
}

// Output rows may be narrower than input rows: each caller gets its own.
func TestOutputRowsOfAnotherWidth(t *testing.T) {
	sum := func(in *tensor.Dense) (*tensor.Dense, error) { return in.Sum(1) }
	b := New(sum, 3, 4, time.Millisecond)
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			got, err := b.Call(context.Background(), []float32{float32(i), 1, 2})
			assert.NoError(t, err)
			assert.Equal(t, []float32{float32(i + 3)}, got)
		})
	}
	wg.Wait()
}

package wire

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

func TestMarshalRoundTrip(t *testing.T) {
	d := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	b, err := batch.Concatenate(batch.Tuple{d, d})
	require.NoError(t, err)
	require.NoError(t, b.Pad(1))
	for _, v := range []any{d, batch.Tuple{d, "info"}, b, int64(7), "text", []byte("bin")} {
		bin, err := Marshal(v)
		require.NoError(t, err)
		assert.Equal(t, byte(131), bin[0])
		got, err := Unmarshal(bin)
		require.NoError(t, err)
		switch want := v.(type) {
		case *tensor.Dense:
			assert.Equal(t, want.Data(), got.(*tensor.Dense).Data())
			assert.Equal(t, want.Shape(), got.(*tensor.Dense).Shape())
		case *batch.Batch:
			gb := got.(*batch.Batch)
			assert.Equal(t, want.Size(), gb.Size())
			assert.Equal(t, want.Padding(), gb.Padding())
		case batch.Tuple:
			assert.Equal(t, "info", got.(batch.Tuple)[1])
		default:
			assert.Equal(t, want, got)
		}
	}
}

func TestUnmarshalRejectsBadBinaries(t *testing.T) {
	for name, bin := range map[string][]byte{
		"empty":            {},
		"no version":       {109, 0, 0, 0, 0},
		"huge list header": {131, 108, 0xff, 0xff, 0xff, 0xff},
		"truncated binary": {131, 109, 0, 0, 0, 9, 1, 2},
		"trailing bytes":   {131, 97, 1, 97, 2},
		"pid":              {131, 88, 0},
	} {
		_, err := Unmarshal(bin)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
}

package wire

import (
	"testing"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"
)

func TestSwapBytesReversesEachNumber(t *testing.T) {
	b := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	swapBytes(b, 4)
	assert.Equal(t, []byte{4, 3, 2, 1, 8, 7, 6, 5}, b)
	swapBytes(b, 8)
	assert.Equal(t, []byte{5, 6, 7, 8, 1, 2, 3, 4}, b)
	swapBytes(b, 1)
	assert.Equal(t, []byte{5, 6, 7, 8, 1, 2, 3, 4}, b)
}

// On a big-endian host gorgonia's memory holds big-endian numbers: Encode
// must swap them into the wire's little-endian order and Decode back.
// Pretending the host is big-endian here makes the wire carry byte-swapped
// numbers, which shows that both directions swap, per component for
// complex numbers.
func TestBigEndianHostsSwapOnTheWayInAndOut(t *testing.T) {
	hostLittleEndian = false
	t.Cleanup(func() { hostLittleEndian = true })

	cases := []struct {
		d     *tensor.Dense
		width int
	}{
		{tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{1, -2})), 4},
		{tensor.New(tensor.WithShape(1), tensor.WithBacking([]complex128{complex(1, 2)})), 8},
		{tensor.New(tensor.WithShape(3), tensor.WithBacking([]int16{1, 2, 3})), 2},
		{tensor.New(tensor.WithShape(2), tensor.WithBacking([]uint8{1, 2})), 1},
	}
	for _, c := range cases {
		raw := append([]byte(nil), c.d.Raw...)
		for _, o := range []Options{{}, {Share: true}} {
			term, err := o.EncodeTensor(c.d)
			require.NoError(t, err)
			state := term.(etf.Map)[keyData].(etf.Map)[keyState].([]byte)
			want := append([]byte(nil), raw...)
			swapBytes(want, c.width)
			assert.Equal(t, want, state, "%v", c.d.Dtype())
			assert.Equal(t, raw, c.d.Raw, "Encode must not swap the tensor in place")

			out, err := o.DecodeTensor(term)
			require.NoError(t, err)
			assert.Equal(t, c.d.Data(), out.Data())
			assert.Equal(t, want, state, "Decode must not swap the term in place")
		}
	}
}

// Marshal and Unmarshal swap as Encode and Decode do: the binary holds
// the same bytes as the term, and the value comes back.
func TestBigEndianHostsSwapInMarshalAndUnmarshal(t *testing.T) {
	hostLittleEndian = false
	t.Cleanup(func() { hostLittleEndian = true })

	for _, d := range []*tensor.Dense{
		tensor.New(tensor.WithShape(2), tensor.WithBacking([]float32{1, -2})),
		tensor.New(tensor.WithShape(1), tensor.WithBacking([]complex128{complex(1, 2)})),
		tensor.New(tensor.WithShape(3), tensor.WithBacking([]int16{1, 2, 3})),
		tensor.New(tensor.WithShape(2), tensor.WithBacking([]uint8{1, 2})),
	} {
		raw := append([]byte(nil), d.Raw...)
		bin, err := Marshal(d)
		require.NoError(t, err)
		ref, err := Options{}.marshalViaETF(d)
		require.NoError(t, err)
		term, _, err := etf.Decode(bin[1:], []etf.Atom{}, etf.DecodeOptions{})
		require.NoError(t, err)
		want, _, err := etf.Decode(ref[1:], []etf.Atom{}, etf.DecodeOptions{})
		require.NoError(t, err)
		assert.Equal(t, want, term, "%v", d.Dtype())
		assert.Equal(t, raw, d.Raw, "Marshal must not swap the tensor in place")

		for _, o := range []Options{{}, {Copy: true}} {
			out, err := o.Unmarshal(append([]byte(nil), bin...))
			require.NoError(t, err)
			assert.Equal(t, d.Data(), out.(*tensor.Dense).Data())
		}
	}
}

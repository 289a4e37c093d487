package httpapi_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/batch"
)

// Every dtype survives both formats, extremes included.
func TestCodecsRoundTripEveryDType(t *testing.T) {
	for _, tc := range []struct {
		json string
		back any
	}{
		{`{"shape":[2,2],"dtype":"float32","data":[1.5,-0,1e-45,3.4028235e+38]}`,
			[]float32{1.5, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32}},
		{`{"shape":[3],"dtype":"float64","data":["NaN","Infinity","-Infinity"]}`, []float64{math.NaN(), math.Inf(1), math.Inf(-1)}},
		{`{"shape":[2],"dtype":"float64","data":[0.1,5e-324]}`, []float64{0.1, 5e-324}},
		{`{"shape":[2],"dtype":"int8","data":[-128,127]}`, []int8{-128, 127}},
		{`{"shape":[2],"dtype":"int16","data":[-32768,32767]}`, []int16{-32768, 32767}},
		{`{"shape":[2],"dtype":"int32","data":[-2147483648,2147483647]}`, []int32{math.MinInt32, math.MaxInt32}},
		{`{"shape":[2],"dtype":"int64","data":[-9223372036854775808,9223372036854775807]}`, []int64{math.MinInt64, math.MaxInt64}},
		{`{"shape":[2],"dtype":"uint8","data":[0,255]}`, []uint8{0, 255}},
		{`{"shape":[1],"dtype":"uint16","data":[65535]}`, []uint16{65535}},
		{`{"shape":[1],"dtype":"uint32","data":[4294967295]}`, []uint32{math.MaxUint32}},
		{`{"shape":[1],"dtype":"uint64","data":[18446744073709551615]}`, []uint64{math.MaxUint64}},
		{`{"shape":[1,2],"dtype":"bool","data":[true,false]}`, []bool{true, false}},
		{`{"shape":[0,3],"dtype":"float32","data":[]}`, nil},
		{`{"shape":[],"dtype":"int32","data":[7]}`, int32(7)},
	} {
		t.Run(tc.json, func(t *testing.T) {
			v, err := httpapi.DecodeJSON([]byte(tc.json))
			require.NoError(t, err)
			d := v.(*tensor.Dense)
			if tc.back != nil {
				if f, ok := tc.back.([]float64); ok && math.IsNaN(f[0]) {
					assert.True(t, math.IsNaN(d.Data().([]float64)[0]))
				} else {
					assert.Equal(t, tc.back, d.Data())
				}
			}
			out, err := httpapi.EncodeJSON(d)
			require.NoError(t, err)
			assert.Equal(t, tc.json, string(out), "JSON writes what it reads, in its shortest form")

			bin, err := httpapi.EncodeBinary(d)
			require.NoError(t, err)
			back, err := httpapi.DecodeBinary(bin)
			require.NoError(t, err)
			out2, err := httpapi.EncodeJSON(back)
			require.NoError(t, err)
			assert.Equal(t, tc.json, string(out2), "binary round trip")
		})
	}
}

// Nx's short type names are accepted; Go's int travels as int64.
func TestCodecsDTypeNames(t *testing.T) {
	v, err := httpapi.DecodeJSON([]byte(`{"shape":[1],"dtype":"s64","data":[3]}`))
	require.NoError(t, err)
	assert.Equal(t, tensor.Int64, v.(*tensor.Dense).Dtype())
	out, err := httpapi.EncodeJSON(tensor.New(tensor.WithShape(2), tensor.WithBacking([]int{4, -5})))
	require.NoError(t, err)
	assert.Equal(t, `{"shape":[2],"dtype":"int64","data":[4,-5]}`, string(out))
}

// The binary layout is the one the package doc gives, byte for byte.
func TestEncodeBinaryLayout(t *testing.T) {
	d := tensor.New(tensor.WithShape(1, 2), tensor.WithBacking([]int16{1, -2}))
	b, err := httpapi.EncodeBinary(d)
	require.NoError(t, err)
	want := []byte{'E', 'N', 'X', 'T', 1, 's', 16, 2, 1, 0, 0, 0, 2, 0, 0, 0, 0x01, 0x00, 0xfe, 0xff}
	assert.Equal(t, want, b)
}

// Tensors that are not laid out as rows (a transposed view) are written
// in logical order.
func TestEncodeTransposedTensor(t *testing.T) {
	d := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	require.NoError(t, d.T())
	out, err := httpapi.EncodeJSON(d)
	require.NoError(t, err)
	assert.Equal(t, `{"shape":[3,2],"dtype":"float32","data":[1,4,2,5,3,6]}`, string(out))
	bin, err := httpapi.EncodeBinary(d)
	require.NoError(t, err)
	back, err := httpapi.DecodeBinary(bin)
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 4, 2, 5, 3, 6}, back.Data())
}

// Containers nest; maps come out in sorted key order.
func TestJSONContainers(t *testing.T) {
	in := `{"tuple":[{"map":{"z":{"shape":[1],"dtype":"uint8","data":[1]},"a":{"tuple":[{"shape":[1],"dtype":"bool","data":[true]}]}}},{"shape":[1],"dtype":"int8","data":[-1]}]}`
	v, err := httpapi.DecodeJSON([]byte(in))
	require.NoError(t, err)
	tup := v.(batch.Tuple)
	require.Len(t, tup, 2)
	require.IsType(t, batch.Map{}, tup[0])
	out, err := httpapi.EncodeJSON(v)
	require.NoError(t, err)
	assert.Equal(t, `{"tuple":[{"map":{"a":{"tuple":[{"shape":[1],"dtype":"bool","data":[true]}]},"z":{"shape":[1],"dtype":"uint8","data":[1]}}},{"shape":[1],"dtype":"int8","data":[-1]}]}`, string(out))

	_, err = httpapi.EncodeBinary(v)
	require.ErrorIs(t, err, httpapi.ErrNotTensor)
	_, err = httpapi.EncodeJSON([]int{1})
	require.ErrorIs(t, err, httpapi.ErrNotTensor)
}

// Malformed bodies fail with the right kind and a message that says
// where, without allocating what a header claims.
func TestDecodeErrors(t *testing.T) {
	deep := strings.Repeat(`{"tuple":[`, 20) + `{"shape":[1],"dtype":"int8","data":[1]}` + strings.Repeat(`]}`, 20)
	for _, tc := range []struct {
		body string
		kind error
		text string
	}{
		{`[1,2]`, httpapi.ErrMalformed, "want an object"},
		{`null`, httpapi.ErrMalformed, "want an object, got null"},
		{`{"tuple":[1]}`, httpapi.ErrMalformed, "body.tuple[0]"},
		{`{"tuple":[], "map":{}}`, httpapi.ErrMalformed, "no other field"},
		{deep, httpapi.ErrMalformed, "nested deeper than 16"},
		{`{"shape":[1],"dtype":7,"data":[1]}`, httpapi.ErrDType, "want a string"},
		{`{"shape":"1","dtype":"int8","data":[1]}`, httpapi.ErrShape, "want an array of non-negative integers"},
		{`{"shape":[1.5],"dtype":"int8","data":[1]}`, httpapi.ErrShape, "want an array of non-negative integers"},
		{`{"shape":[65536,65536,65536],"dtype":"int8","data":[1]}`, httpapi.ErrShape, "more than 2147483648 elements"},
		{`{"shape":[1073741824],"dtype":"float64","data":[1]}`, httpapi.ErrLength, "has 1 elements; shape [1073741824] needs 1073741824"},
		{`{"shape":[` + strings.TrimSuffix(strings.Repeat("1,", 33), ",") + `],"dtype":"int8","data":[1]}`, httpapi.ErrShape, "rank 33, limit 32"},
		{`{"shape":[1],"dtype":"int8","data":{}}`, httpapi.ErrMalformed, "want a flat array"},
		{`{"shape":[1],"dtype":"int8","data":[null]}`, httpapi.ErrValue, "null is not a valid int8"},
		{`{"shape":[1],"dtype":"float32","data":[1e39]}`, httpapi.ErrValue, "1e39 is not a valid float32 (out of range)"},
		{`{"shape":[1],"dtype":"float32","data":["nan"]}`, httpapi.ErrValue, `"nan" is not a valid float32`},
		{`{"shape":[1],"dtype":"bool","data":[1]}`, httpapi.ErrValue, "1 is not a valid bool (true or false)"},
		{`{"shape":[2],"dtype":"uint32","data":[1,-1]}`, httpapi.ErrValue, "body.data[1]: -1 is not a valid uint32"},
	} {
		_, err := httpapi.DecodeJSON([]byte(tc.body))
		require.ErrorIs(t, err, tc.kind, tc.body)
		assert.Contains(t, err.Error(), tc.text, tc.body)
	}

	header := func(kind, bits, rank byte, dims ...uint32) []byte {
		b := []byte{'E', 'N', 'X', 'T', 1, kind, bits, rank}
		for _, d := range dims {
			b = binary.LittleEndian.AppendUint32(b, d)
		}
		return b
	}
	for _, tc := range []struct {
		body []byte
		kind error
		text string
	}{
		{[]byte("ENX"), httpapi.ErrMalformed, "shorter than the 8-byte header"},
		{[]byte("ENXT\x02f\x20\x00"), httpapi.ErrMalformed, "version 2"},
		{header('f', 16, 1, 1), httpapi.ErrDType, "kind 'f' with 16 bits"},
		{header('f', 32, 33), httpapi.ErrShape, "rank 33"},
		{header('f', 32, 2, 1), httpapi.ErrMalformed, "header of a rank-2 tensor"},
		{header('f', 32, 3, 65536, 65536, 65536), httpapi.ErrShape, "more than 2147483648 elements"},
		{append(header('f', 64, 1, 1<<28), 0), httpapi.ErrLength, "1 bytes of data; shape [268435456] of float64 needs 2147483648"},
		{append(header('b', 8, 1, 2), 1, 2), httpapi.ErrValue, "bool element 1 is byte 2"},
	} {
		_, err := httpapi.DecodeBinary(tc.body)
		require.ErrorIs(t, err, tc.kind, "%q", tc.body)
		assert.Contains(t, err.Error(), tc.text, "%q", tc.body)
	}
}

// FuzzDecodeJSON: no input panics, and whatever decodes encodes to JSON
// that decodes to the same encoding.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"shape":[2,2],"dtype":"float32","data":[1,2,3,4]}`,
		`{"tuple":[{"shape":[1],"dtype":"int8","data":[1]},{"map":{"a":{"shape":[1],"dtype":"bool","data":[true]}}}]}`,
		`{"shape":[1],"dtype":"float64","data":["NaN"]}`,
		`{"shape":[1],"dtype":"float64","data":["\"x"]}`,
		`{"shape":[0],"dtype":"uint8","data":[ ]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := httpapi.DecodeJSON(body)
		if err != nil {
			return
		}
		out, err := httpapi.EncodeJSON(v)
		require.NoError(t, err)
		v2, err := httpapi.DecodeJSON(out)
		require.NoError(t, err, "%s", out)
		out2, err := httpapi.EncodeJSON(v2)
		require.NoError(t, err)
		require.Equal(t, string(out), string(out2))
	})
}

// FuzzDecodeBinary: no input panics, and whatever decodes encodes back
// to the same bytes.
func FuzzDecodeBinary(f *testing.F) {
	f.Add([]byte("ENXT\x01f\x20\x01\x01\x00\x00\x00\x00\x00\x80\x3f"))
	f.Add([]byte("ENXT\x01b\x08\x02\x01\x00\x00\x00\x02\x00\x00\x00\x01\x00"))
	f.Add([]byte("ENXT\x01u\x08\x00\x07"))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := httpapi.DecodeBinary(body)
		if err != nil {
			return
		}
		out, err := httpapi.EncodeBinary(d)
		require.NoError(t, err)
		require.True(t, bytes.Equal(body, out), "%x != %x", body, out)
	})
}

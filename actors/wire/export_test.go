package wire

import "gorgonia.org/tensor"

// ErgoCanDecode exposes the structure check to the external tests.
var ErgoCanDecode = ergoCanDecode

// The former Marshal and Unmarshal, through ergo's etf package: the
// references that the external tests compare the direct ones with.
func (o Options) MarshalViaETF(v any) ([]byte, error)   { return o.marshalViaETF(v) }
func (o Options) UnmarshalViaETF(b []byte) (any, error) { return o.unmarshalViaETF(b) }

// NewDense exposes the construction of decoded tensors.
func NewDense(dt tensor.Dtype, dims []int, raw []byte) *tensor.Dense { return newDense(dt, dims, raw) }

// SkipAt exposes the structure walk: the end of the term at b[p].
func SkipAt(b []byte, p int) (int, bool) { return skipAt(b, p, 0) }

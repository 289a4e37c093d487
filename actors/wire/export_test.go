package wire

// ErgoCanDecode exposes the structure check to the external tests.
var ErgoCanDecode = ergoCanDecode

// The former Marshal and Unmarshal, through ergo's etf package: the
// references that the external tests compare the direct ones with.
func (o Options) MarshalViaETF(v any) ([]byte, error)   { return o.marshalViaETF(v) }
func (o Options) UnmarshalViaETF(b []byte) (any, error) { return o.unmarshalViaETF(b) }

// SkipAt exposes the structure walk: the end of the term at b[p].
func SkipAt(b []byte, p int) (int, bool) { return skipAt(b, p, 0) }

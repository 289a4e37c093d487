package httpapi

import (
	"strconv"

	"gorgonia.org/tensor"
)

// dtypeInfo names one element type on the wire: its JSON name, and its
// kind and bit width in the binary header (Nx's {kind, bits} types, with
// 'b' for booleans, which Nx lacks).
type dtypeInfo struct {
	name string
	dt   tensor.Dtype
	kind byte
	bits uint8
}

// dtypes are the element types requests and responses may carry, in the
// order the package doc lists them.
var dtypes = []dtypeInfo{
	{"float32", tensor.Float32, 'f', 32},
	{"float64", tensor.Float64, 'f', 64},
	{"int8", tensor.Int8, 's', 8},
	{"int16", tensor.Int16, 's', 16},
	{"int32", tensor.Int32, 's', 32},
	{"int64", tensor.Int64, 's', 64},
	{"uint8", tensor.Uint8, 'u', 8},
	{"uint16", tensor.Uint16, 'u', 16},
	{"uint32", tensor.Uint32, 'u', 32},
	{"uint64", tensor.Uint64, 'u', 64},
	{"bool", tensor.Bool, 'b', 8},
}

// dtypeNames maps every accepted JSON name, Nx's short names ("f32",
// "s64", "u8") included, to its type.
var dtypeNames = func() map[string]*dtypeInfo {
	m := map[string]*dtypeInfo{}
	for i := range dtypes {
		d := &dtypes[i]
		m[d.name] = d
		if d.kind != 'b' {
			m[string(d.kind)+strconv.Itoa(int(d.bits))] = d
		}
	}
	return m
}()

// dtypeByName returns the type a JSON dtype names.
func dtypeByName(name string) (*dtypeInfo, bool) {
	d, ok := dtypeNames[name]
	return d, ok
}

// dtypeByCode returns the type of a binary header's kind and bits.
func dtypeByCode(kind byte, bits uint8) (*dtypeInfo, bool) {
	for i := range dtypes {
		if dtypes[i].kind == kind && dtypes[i].bits == bits {
			return &dtypes[i], true
		}
	}
	return nil, false
}

// dtypeOf returns the wire type of a gorgonia dtype. Go's int and uint
// travel as int64 and uint64 on 64-bit platforms (their memory is laid
// out the same), so they come back as those.
func dtypeOf(dt tensor.Dtype) (*dtypeInfo, bool) {
	switch {
	case dt == tensor.Int && strconv.IntSize == 64:
		dt = tensor.Int64
	case dt == tensor.Uint && strconv.IntSize == 64:
		dt = tensor.Uint64
	}
	for i := range dtypes {
		if dtypes[i].dt == dt {
			return &dtypes[i], true
		}
	}
	return nil, false
}

// dtypeList is the list of JSON names for error messages.
func dtypeList() string {
	s := ""
	for i, d := range dtypes {
		if i > 0 {
			s += ", "
		}
		s += d.name
	}
	return s
}

// size is the width of one element in bytes.
func (d *dtypeInfo) size() int { return int(d.bits) / 8 }

package httpapi

import (
	"encoding/binary"
	"fmt"

	"gorgonia.org/tensor"
)

// BinaryContentType is the media type of the binary tensor format.
const BinaryContentType = "application/x-ergonx-tensor"

// binaryMagic opens every binary tensor.
const binaryMagic = "ENXT"

// binaryVersion is the version of the format this package writes and
// reads.
const binaryVersion = 1

// binaryFixedHeader is the size of the header before the dimensions.
const binaryFixedHeader = 8

// DecodeBinary decodes one tensor in the binary format (see the package
// doc) into a *tensor.Dense that owns new memory. Errors wrap
// ErrMalformed (header), ErrDType, ErrShape, ErrLength or ErrValue (a
// bool byte other than 0 or 1).
func DecodeBinary(body []byte) (*tensor.Dense, error) {
	if len(body) < binaryFixedHeader {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(body), binaryFixedHeader)
	}
	if string(body[:4]) != binaryMagic {
		return nil, fmt.Errorf("%w: the body does not start with %q", ErrMalformed, binaryMagic)
	}
	if body[4] != binaryVersion {
		return nil, fmt.Errorf("%w: version %d; this server reads version %d", ErrMalformed, body[4], binaryVersion)
	}
	info, ok := dtypeByCode(body[5], body[6])
	if !ok {
		return nil, fmt.Errorf("%w: kind %q with %d bits is not supported; supported: %s", ErrDType, body[5], body[6], dtypeList())
	}
	rank := int(body[7])
	if rank > MaxRank {
		return nil, fmt.Errorf("%w: rank %d, limit %d", ErrShape, rank, MaxRank)
	}
	header := binaryFixedHeader + 4*rank
	if len(body) < header {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header of a rank-%d tensor", ErrMalformed, len(body), header, rank)
	}
	dims := make([]int, rank)
	for i := range dims {
		d := binary.LittleEndian.Uint32(body[binaryFixedHeader+4*i:])
		if uint64(d) > MaxElements {
			return nil, fmt.Errorf("%w: axis %d is %d, limit %d elements", ErrShape, i, d, int64(MaxElements))
		}
		dims[i] = int(d)
	}
	elems, err := checkShape(dims)
	if err != nil {
		return nil, err
	}
	data := body[header:]
	if want := elems * info.size(); len(data) != want {
		return nil, fmt.Errorf("%w: %d bytes of data; shape %v of %s needs %d", ErrLength, len(data), dims, info.name, want)
	}
	back, mem := newBacking(info, elems)
	if info.dt == tensor.Bool {
		for i, c := range data {
			if c > 1 {
				return nil, fmt.Errorf("%w: bool element %d is byte %d, want 0 or 1", ErrValue, i, c)
			}
		}
	}
	copy(mem, data)
	if !hostLittleEndian {
		swapBytes(mem, info.size())
	}
	return newTensor(dims, back), nil
}

// EncodeBinary encodes one tensor in the binary format. Anything but a
// *tensor.Dense is an error wrapping ErrNotTensor.
func EncodeBinary(c any) ([]byte, error) {
	d, ok := c.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%w; got %T (ask for %s to get tuples and maps)", ErrNotTensor, c, JSONContentType)
	}
	raw, info, err := hostBytes(d)
	if err != nil {
		return nil, err
	}
	dims := d.Shape()
	if len(dims) > 255 {
		return nil, fmt.Errorf("%w: rank %d does not fit the header", ErrShape, len(dims))
	}
	out := make([]byte, binaryFixedHeader+4*len(dims), binaryFixedHeader+4*len(dims)+len(raw))
	copy(out, binaryMagic)
	out[4] = binaryVersion
	out[5] = info.kind
	out[6] = info.bits
	out[7] = byte(len(dims))
	for i, n := range dims {
		binary.LittleEndian.PutUint32(out[binaryFixedHeader+4*i:], uint32(n))
	}
	start := len(out)
	out = append(out, raw...)
	if !hostLittleEndian {
		swapBytes(out[start:], info.size())
	}
	return out, nil
}

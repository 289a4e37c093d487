package digits

// A small reader and writer of the safetensors format
// (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length n, n bytes of JSON header, then the tensors' raw little-endian data.
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets relative to the start of the data), plus an optional
// "__metadata__" object of strings. The offsets must tile the data exactly:
// no gaps, no overlaps, nothing after the last tensor.
//
// It lives here rather than in a library because the only Go module the
// proxy has (github.com/nlpodyssey/safetensors) has no tagged release and
// reports every problem as an untyped string, while Load must tell a
// truncated file from a corrupt one from a wrong dtype, each with errors.Is.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
)

// maxHeaderLen bounds the JSON header Load reads. This model's header is
// under a kilobyte; anything near the bound is not one of its files, and the
// bound stops a garbage length from making Load allocate gigabytes.
const maxHeaderLen = 1 << 20

// metadataKey is the header entry that holds free-form string metadata.
const metadataKey = "__metadata__"

// stTensor is one tensor of a safetensors file.
type stTensor struct {
	name  string
	dtype string
	shape []int
	data  []byte // little-endian, row-major
}

// stHeaderEntry is the JSON form of one tensor in the header.
type stHeaderEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// dtypeSizes gives the element size in bytes of every dtype the format
// defines, so that a file of another dtype fails with ErrDType and a clear
// message rather than as corrupt.
var dtypeSizes = map[string]uint64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// writeSafetensors writes the tensors, in the given order, and the metadata
// as one safetensors file. The header's keys are sorted (encoding/json sorts
// map keys) and padded with spaces to a multiple of 8 bytes so that the data
// is aligned, as the reference implementation does; the same tensors and
// metadata always give the same bytes.
func writeSafetensors(w io.Writer, tensors []stTensor, metadata map[string]string) error {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header[metadataKey] = metadata
	}
	var offset uint64
	for _, t := range tensors {
		end := offset + uint64(len(t.data))
		header[t.name] = stHeaderEntry{DType: t.dtype, Shape: t.shape, DataOffsets: []uint64{offset, end}}
		offset = end
	}
	js, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("digits: encoding the safetensors header: %w", err)
	}
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, strings.Repeat(" ", pad)...)
	}
	buf := make([]byte, 0, 8+len(js)+int(offset))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(js)))
	buf = append(buf, js...)
	for _, t := range tensors {
		buf = append(buf, t.data...)
	}
	_, err = w.Write(buf)
	return err
}

// readSafetensors reads one whole safetensors file from r, up to EOF, and
// checks its structure: the header, the dtypes and that the offsets tile
// the data. It returns the tensors by name and the metadata.
//
// src names the file in error messages ("weights file", or "weights file
// " + path).
func readSafetensors(r io.Reader, src string) (map[string]stTensor, map[string]string, error) {
	var lenBuf [8]byte
	if n, err := io.ReadFull(r, lenBuf[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, nil, weightsError(ErrTruncated, "", src+" is empty: the file is truncated")
		}
		if isShortRead(err) {
			return nil, nil, weightsError(ErrTruncated, "", fmt.Sprintf("%s ends after %d bytes, inside the 8-byte header length: the file is truncated", src, n))
		}
		return nil, nil, fmt.Errorf("digits: reading weights: %w", err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > maxHeaderLen {
		return nil, nil, weightsError(ErrCorrupt, "", fmt.Sprintf("%s starts with a header length of %d bytes, more than the %d this model's weights can need: the file is not a safetensors file", src, hlen, maxHeaderLen))
	}
	hdr := make([]byte, hlen)
	if n, err := io.ReadFull(r, hdr); err != nil {
		if !isShortRead(err) {
			return nil, nil, fmt.Errorf("digits: reading weights: %w", err)
		}
		// A file whose first 8 bytes are not a length at all usually
		// reads as a length larger than what follows; tell it from a
		// real header cut short by the '{' every header starts with.
		if n > 0 && hdr[0] != '{' {
			return nil, nil, weightsError(ErrCorrupt, "", src+" does not start with a safetensors header: the file is not a safetensors file")
		}
		return nil, nil, weightsError(ErrTruncated, "", fmt.Sprintf("%s ends after %d bytes, inside its header, which runs to byte %d: the file is truncated", src, 8+n, 8+hlen))
	}

	tensors, metadata, dataLen, err := parseHeader(hdr, src)
	if err != nil {
		return nil, nil, err
	}

	// Read the data through a LimitReader into a growing buffer rather than
	// allocating dataLen up front: a header may claim any size, and only a
	// file that really holds the bytes should cost the memory.
	var data bytes.Buffer
	got, err := data.ReadFrom(io.LimitReader(r, int64(min(dataLen, 1<<62))))
	if err != nil {
		return nil, nil, fmt.Errorf("digits: reading weights: %w", err)
	}
	total := 8 + hlen + dataLen
	if uint64(got) < dataLen {
		return nil, nil, weightsError(ErrTruncated, "", fmt.Sprintf("%s ends after %d of %d bytes: the file is truncated", src, 8+hlen+uint64(got), total))
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return nil, nil, weightsError(ErrCorrupt, "", fmt.Sprintf("%s goes on after the %d bytes its header describes: the file is damaged or has something appended", src, total))
	}
	all := data.Bytes()
	for name, t := range tensors {
		t.data = all[t.data0:t.data1]
		tensors[name] = t
	}
	return toTensors(tensors), metadata, nil
}

// parsedTensor is a header entry checked against the format, before its
// data is read.
type parsedTensor struct {
	stTensor
	data0, data1 uint64
}

func toTensors(p map[string]parsedTensor) map[string]stTensor {
	out := make(map[string]stTensor, len(p))
	for name, t := range p {
		out[name] = t.stTensor
	}
	return out
}

// parseHeader decodes and checks the JSON header. It returns the tensors
// (without data), the metadata, and the length of the data section.
func parseHeader(hdr []byte, src string) (map[string]parsedTensor, map[string]string, uint64, error) {
	corrupt := func(format string, args ...any) error {
		return weightsError(ErrCorrupt, "", src+" header "+fmt.Sprintf(format, args...)+": the file is not a valid safetensors file")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, 0, corrupt("does not start with '{'")
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &entries); err != nil {
		return nil, nil, 0, corrupt("is not a JSON object (%v)", err)
	}
	var metadata map[string]string
	tensors := make(map[string]parsedTensor, len(entries))
	for name, raw := range entries {
		if name == metadataKey {
			if err := json.Unmarshal(raw, &metadata); err != nil {
				return nil, nil, 0, corrupt("has a %s entry that is not an object of strings (%v)", metadataKey, err)
			}
			continue
		}
		var e stHeaderEntry
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, nil, 0, corrupt("entry %q is not {dtype, shape, data_offsets} (%v)", name, err)
		}
		if e.DType == "" || e.Shape == nil || len(e.DataOffsets) != 2 {
			return nil, nil, 0, corrupt("entry %q lacks dtype, shape or a [begin, end] data_offsets", name)
		}
		size, ok := dtypeSizes[e.DType]
		if !ok {
			return nil, nil, 0, weightsError(ErrDType, name, fmt.Sprintf("%s: tensor %q has dtype %q, which safetensors does not define; want F32", src, name, e.DType))
		}
		elems := uint64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, nil, 0, corrupt("gives tensor %q the negative shape %v", name, e.Shape)
			}
			hi, lo := bits.Mul64(elems, uint64(d))
			if hi != 0 {
				return nil, nil, 0, corrupt("gives tensor %q the impossibly large shape %v", name, e.Shape)
			}
			elems = lo
		}
		hi, nbytes := bits.Mul64(elems, size)
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if hi != 0 || end < begin || end-begin != nbytes {
			return nil, nil, 0, corrupt("gives tensor %q data_offsets %v, which do not hold the %d×%s of shape %v", name, e.DataOffsets, elems, e.DType, e.Shape)
		}
		tensors[name] = parsedTensor{stTensor: stTensor{name: name, dtype: e.DType, shape: e.Shape}, data0: begin, data1: end}
	}

	// The offsets must tile [0, dataLen) in some order of the tensors.
	order := make([]parsedTensor, 0, len(tensors))
	for _, t := range tensors {
		order = append(order, t)
	}
	slices.SortFunc(order, func(a, b parsedTensor) int {
		return cmp.Or(cmp.Compare(a.data0, b.data0), cmp.Compare(a.data1, b.data1))
	})
	var dataLen uint64
	for _, t := range order {
		if t.data0 != dataLen {
			return nil, nil, 0, corrupt("leaves a gap or an overlap at tensor %q (data_offsets begin at %d, previous tensor ends at %d)", t.name, t.data0, dataLen)
		}
		dataLen = t.data1
	}
	return tensors, metadata, dataLen, nil
}

// isShortRead reports whether err from io.ReadFull means the input ended.
func isShortRead(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

package httpapi

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"unsafe"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// JSONContentType is the media type of JSON bodies.
const JSONContentType = "application/json"

// DecodeJSON decodes a JSON container (see the package doc): a tensor
// object {"shape", "dtype", "data"} becomes a *tensor.Dense that owns new
// memory, {"tuple": [...]} a batch.Tuple and {"map": {...}} a batch.Map.
// Errors wrap ErrMalformed, ErrDType, ErrShape, ErrLength or ErrValue and
// name the place in the body ("tuple[1].data[7]").
func DecodeJSON(body []byte) (any, error) {
	return decodeJSON(body, "body", 0)
}

func decodeJSON(raw []byte, path string, depth int) (any, error) {
	if depth >= MaxDepth {
		return nil, fmt.Errorf("%w: %s: containers nested deeper than %d", ErrMalformed, path, MaxDepth)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, path, jsonErr(err))
	}
	if obj == nil {
		return nil, fmt.Errorf("%w: %s: want an object, got null", ErrMalformed, path)
	}
	if t, ok := obj["tuple"]; ok {
		if len(obj) != 1 {
			return nil, fmt.Errorf("%w: %s: a tuple is {\"tuple\": [...]} with no other field", ErrMalformed, path)
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(t, &elems); err != nil || elems == nil {
			return nil, fmt.Errorf("%w: %s.tuple: want an array of containers", ErrMalformed, path)
		}
		out := make(batch.Tuple, len(elems))
		for i, e := range elems {
			v, err := decodeJSON(e, fmt.Sprintf("%s.tuple[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	if m, ok := obj["map"]; ok {
		if len(obj) != 1 {
			return nil, fmt.Errorf("%w: %s: a map is {\"map\": {...}} with no other field", ErrMalformed, path)
		}
		var elems map[string]json.RawMessage
		if err := json.Unmarshal(m, &elems); err != nil || elems == nil {
			return nil, fmt.Errorf("%w: %s.map: want an object of containers", ErrMalformed, path)
		}
		out := make(batch.Map, len(elems))
		for _, k := range slices.Sorted(maps.Keys(elems)) {
			v, err := decodeJSON(elems[k], fmt.Sprintf("%s.map[%q]", path, k), depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	return decodeJSONTensor(obj, path)
}

// decodeJSONTensor decodes a tensor object.
func decodeJSONTensor(obj map[string]json.RawMessage, path string) (*tensor.Dense, error) {
	for k := range obj {
		if k != "shape" && k != "dtype" && k != "data" {
			return nil, fmt.Errorf("%w: %s: unknown field %q: a tensor is {\"shape\", \"dtype\", \"data\"}, "+
				"a tuple {\"tuple\": [...]}, a map {\"map\": {...}}", ErrMalformed, path, k)
		}
	}
	for _, k := range []string{"shape", "dtype", "data"} {
		if _, ok := obj[k]; !ok {
			return nil, fmt.Errorf("%w: %s: missing field %q: a tensor is {\"shape\", \"dtype\", \"data\"}", ErrMalformed, path, k)
		}
	}
	var name string
	if err := json.Unmarshal(obj["dtype"], &name); err != nil {
		return nil, fmt.Errorf("%w: %s.dtype: want a string such as \"float32\"", ErrDType, path)
	}
	info, ok := dtypeByName(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s.dtype: %q is not supported; supported: %s", ErrDType, path, name, dtypeList())
	}
	var dims []int
	if err := json.Unmarshal(obj["shape"], &dims); err != nil || dims == nil {
		return nil, fmt.Errorf("%w: %s.shape: want an array of non-negative integers, such as [1, 64]", ErrShape, path)
	}
	elems, err := checkShape(dims)
	if err != nil {
		return nil, fmt.Errorf("%s.shape: %w", path, err)
	}
	data := obj["data"]
	count, err := scanArray(data, path+".data", nil)
	if err != nil {
		return nil, err
	}
	if count != elems {
		return nil, fmt.Errorf("%w: %s.data has %d elements; shape %v needs %d", ErrLength, path, count, dims, elems)
	}
	back, err := parseData(info, data, elems, path+".data")
	if err != nil {
		return nil, err
	}
	return newTensor(dims, back), nil
}

// jsonErr shortens encoding/json's messages, which name Go types.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return "want an object, got a JSON " + te.Value
	}
	return err.Error()
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanArray calls fn (when not nil) with every element of the JSON array
// raw, as its raw token, and returns how many there are. raw has been
// checked by encoding/json, so it is valid JSON; the scanner only has to
// find the elements. Nested arrays and objects are refused: data is flat.
func scanArray(raw []byte, path string, fn func(i int, tok []byte) error) (int, error) {
	malformed := func(what string) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformed, path, what)
	}
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return 0, malformed("want a flat array of elements in row-major order")
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return 0, nil
	}
	n := 0
	for i < len(raw) {
		start := i
		switch raw[i] {
		case '"':
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
			i++ // the closing quote
		case '[', '{':
			return n, malformed(fmt.Sprintf("element %d is an array or object; data is a flat array of elements in row-major order (flatten nested lists)", n))
		default:
			for i < len(raw) && raw[i] != ',' && raw[i] != ']' && !isSpace(raw[i]) {
				i++
			}
		}
		if i > len(raw) {
			break
		}
		if fn != nil {
			if err := fn(n, raw[start:i]); err != nil {
				return n, err
			}
		}
		n++
		i = skipSpace(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
			continue
		}
		if i < len(raw) && raw[i] == ']' {
			return n, nil
		}
		break
	}
	return n, malformed("unterminated array")
}

// parseData parses the n elements of the JSON array raw into a new slice
// of info's Go type.
func parseData(info *dtypeInfo, raw []byte, n int, path string) (any, error) {
	switch info.dt {
	case tensor.Float32:
		return fill(raw, n, path, info, func(s string) (float32, error) {
			f, err := parseFloat(s, 32)
			return float32(f), err
		})
	case tensor.Float64:
		return fill(raw, n, path, info, func(s string) (float64, error) { return parseFloat(s, 64) })
	case tensor.Int8:
		return fill(raw, n, path, info, func(s string) (int8, error) { v, err := strconv.ParseInt(s, 10, 8); return int8(v), err })
	case tensor.Int16:
		return fill(raw, n, path, info, func(s string) (int16, error) { v, err := strconv.ParseInt(s, 10, 16); return int16(v), err })
	case tensor.Int32:
		return fill(raw, n, path, info, func(s string) (int32, error) { v, err := strconv.ParseInt(s, 10, 32); return int32(v), err })
	case tensor.Int64:
		return fill(raw, n, path, info, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
	case tensor.Uint8:
		return fill(raw, n, path, info, func(s string) (uint8, error) { v, err := strconv.ParseUint(s, 10, 8); return uint8(v), err })
	case tensor.Uint16:
		return fill(raw, n, path, info, func(s string) (uint16, error) { v, err := strconv.ParseUint(s, 10, 16); return uint16(v), err })
	case tensor.Uint32:
		return fill(raw, n, path, info, func(s string) (uint32, error) { v, err := strconv.ParseUint(s, 10, 32); return uint32(v), err })
	case tensor.Uint64:
		return fill(raw, n, path, info, func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) })
	case tensor.Bool:
		return fill(raw, n, path, info, func(s string) (bool, error) {
			switch s {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return false, strconv.ErrSyntax
		})
	}
	return nil, fmt.Errorf("%w: %s", ErrDType, info.name)
}

// fill parses every element of raw with parse.
func fill[T any](raw []byte, n int, path string, info *dtypeInfo, parse func(string) (T, error)) ([]T, error) {
	out := make([]T, n)
	_, err := scanArray(raw, path, func(i int, tok []byte) error {
		if i >= n {
			return fmt.Errorf("%w: %s has more than %d elements", ErrLength, path, n)
		}
		// The string does not outlive the call: strconv copies what it
		// keeps in its errors.
		v, err := parse(unsafe.String(unsafe.SliceData(tok), len(tok)))
		if err != nil {
			return fmt.Errorf("%w: %s[%d]: %s is not a valid %s%s", ErrValue, path, i, tok, info.name, valueHint(info, err))
		}
		out[i] = v
		return nil
	})
	return out, err
}

// valueHint explains a refused element.
func valueHint(info *dtypeInfo, err error) string {
	if errors.Is(err, strconv.ErrRange) {
		return " (out of range)"
	}
	switch info.kind {
	case 's', 'u':
		return " (integers only, in decimal)"
	case 'f':
		return " (a JSON number, or \"NaN\", \"Infinity\", \"-Infinity\")"
	case 'b':
		return " (true or false)"
	}
	return ""
}

// parseFloat parses a JSON number, or one of the strings "NaN",
// "Infinity" and "-Infinity" that JSON has no numbers for.
func parseFloat(s string, bits int) (float64, error) {
	switch s {
	case `"NaN"`:
		return math.NaN(), nil
	case `"Infinity"`:
		return math.Inf(1), nil
	case `"-Infinity"`:
		return math.Inf(-1), nil
	}
	if len(s) > 0 && s[0] == '"' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(s, bits)
}

// EncodeJSON encodes a container (a *tensor.Dense, a batch.Tuple or a
// batch.Map, nested freely) as the JSON the package doc describes. Floats
// are written in the shortest form that reads back to the same value;
// NaN and infinities as the strings "NaN", "Infinity" and "-Infinity".
// Anything else is an error wrapping ErrNotTensor.
func EncodeJSON(c any) ([]byte, error) {
	return appendJSON(nil, c, 0)
}

func appendJSON(b []byte, c any, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return nil, fmt.Errorf("%w: containers nested deeper than %d", ErrNotTensor, MaxDepth)
	}
	switch v := c.(type) {
	case *tensor.Dense:
		return appendJSONTensor(b, v)
	case batch.Tuple:
		b = append(b, `{"tuple":[`...)
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, "]}"...), nil
	case batch.Map:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `{"map":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			kb, _ := json.Marshal(k) // a string always marshals
			b = append(append(b, kb...), ':')
			var err error
			if b, err = appendJSON(b, v[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, "}}"...), nil
	}
	return nil, fmt.Errorf("%w: %T is not a container of tensors", ErrNotTensor, c)
}

// appendJSONTensor writes {"shape":[...],"dtype":"...","data":[...]}.
func appendJSONTensor(b []byte, d *tensor.Dense) ([]byte, error) {
	raw, info, err := hostBytes(d)
	if err != nil {
		return nil, err
	}
	b = append(b, `{"shape":[`...)
	for i, n := range d.Shape() {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	b = append(b, `],"dtype":"`...)
	b = append(b, info.name...)
	b = append(b, `","data":[`...)
	es := info.size()
	for i := 0; i+es <= len(raw); i += es {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendElement(b, info, raw[i:i+es])
	}
	return append(b, "]}"...), nil
}

// appendElement writes one element held in host byte order.
func appendElement(b []byte, info *dtypeInfo, e []byte) []byte {
	ne := binary.NativeEndian
	switch info.dt {
	case tensor.Float32:
		return appendFloat(b, float64(math.Float32frombits(ne.Uint32(e))), 32)
	case tensor.Float64:
		return appendFloat(b, math.Float64frombits(ne.Uint64(e)), 64)
	case tensor.Int8:
		return strconv.AppendInt(b, int64(int8(e[0])), 10)
	case tensor.Int16:
		return strconv.AppendInt(b, int64(int16(ne.Uint16(e))), 10)
	case tensor.Int32:
		return strconv.AppendInt(b, int64(int32(ne.Uint32(e))), 10)
	case tensor.Int64:
		return strconv.AppendInt(b, int64(ne.Uint64(e)), 10)
	case tensor.Uint8:
		return strconv.AppendUint(b, uint64(e[0]), 10)
	case tensor.Uint16:
		return strconv.AppendUint(b, uint64(ne.Uint16(e)), 10)
	case tensor.Uint32:
		return strconv.AppendUint(b, uint64(ne.Uint32(e)), 10)
	case tensor.Uint64:
		return strconv.AppendUint(b, ne.Uint64(e), 10)
	case tensor.Bool:
		return strconv.AppendBool(b, e[0] != 0)
	}
	panic("httpapi: appendElement of unsupported dtype " + info.name)
}

// appendFloat writes f in the shortest form that parses back to the same
// value at its width, or as a string JSON accepts for NaN and infinities.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

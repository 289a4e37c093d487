package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
)

// oipType is a datatype of the protocol and the element type it is.
type oipType struct {
	oip  string
	info *dtypeInfo
}

// oipTypes are the protocol's datatypes this server reads and writes, in
// the specification's order.
var oipTypes = func() []oipType {
	var out []oipType
	for _, n := range [][2]string{
		{"BOOL", "bool"}, {"UINT8", "uint8"}, {"UINT16", "uint16"}, {"UINT32", "uint32"}, {"UINT64", "uint64"},
		{"INT8", "int8"}, {"INT16", "int16"}, {"INT32", "int32"}, {"INT64", "int64"}, {"FP32", "float32"}, {"FP64", "float64"},
	} {
		info, _ := dtypeByName(n[1])
		out = append(out, oipType{oip: n[0], info: info})
	}
	return out
}()

// oipUnsupported are the protocol's datatypes this server refuses, with
// what to send instead.
var oipUnsupported = map[string]string{
	"FP16":  "send FP32",
	"BF16":  "send FP32",
	"BYTES": "the servings here take numeric tensors",
}

func oipTypeByName(name string) (*dtypeInfo, error) {
	for _, t := range oipTypes {
		if t.oip == name {
			return t.info, nil
		}
	}
	if hint, ok := oipUnsupported[name]; ok {
		return nil, fmt.Errorf("%w: datatype %s is not supported by this server (%s); supported: %s", ErrDType, name, hint, oipTypeList())
	}
	return nil, fmt.Errorf("%w: datatype %q is not a datatype of the protocol; supported: %s", ErrDType, name, oipTypeList())
}

func oipTypeOf(dt tensor.Dtype) (oipType, bool) {
	info, ok := dtypeOf(dt)
	if !ok {
		return oipType{}, false
	}
	for _, t := range oipTypes {
		if t.info == info {
			return t, true
		}
	}
	return oipType{}, false
}

func oipTypeList() string {
	names := make([]string, len(oipTypes))
	for i, t := range oipTypes {
		names[i] = t.oip
	}
	return strings.Join(names, ", ")
}

// inferRequest is the protocol's $inference_request. Fields this server
// does not know (such as "model_name", which Triton's clients send) are
// ignored, as the protocol's extensions may add some.
type inferRequest struct {
	ID         string          `json:"id"`
	Parameters inferParameters `json:"parameters"`
	Inputs     []inferInput    `json:"inputs"`
	Outputs    []requestOutput `json:"outputs"`

	// decoded holds the inputs' tensors, in the order of Inputs.
	decoded []*tensor.Dense
}

// inferParameters are the parameters this server reads; others are
// ignored.
type inferParameters struct {
	BinaryDataSize     *int64  `json:"binary_data_size"`
	BinaryData         *bool   `json:"binary_data"`
	BinaryDataOutput   *bool   `json:"binary_data_output"`
	SharedMemoryRegion *string `json:"shared_memory_region"`
	Classification     *int64  `json:"classification"`
}

type inferInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters inferParameters `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type requestOutput struct {
	Name       string          `json:"name"`
	Parameters inferParameters `json:"parameters"`
}

// decodeInferRequest reads a request body: the JSON object, then, when
// headerLength (the Inference-Header-Content-Length header) is given,
// the binary tensors after it, in the order of the inputs that have a
// binary_data_size.
func decodeInferRequest(body []byte, headerLength string) (*inferRequest, error) {
	header, rest := body, []byte(nil)
	if headerLength != "" {
		n, err := strconv.Atoi(strings.TrimSpace(headerLength))
		if err != nil || n < 0 || n > len(body) {
			return nil, fmt.Errorf("%w: %s %q: want the length of the JSON object at the start of the body (0 to %d)",
				ErrMalformed, InferenceHeaderContentLength, headerLength, len(body))
		}
		header, rest = body[:n], body[n:]
	}
	var req inferRequest
	if err := json.Unmarshal(header, &req); err != nil {
		hint := ""
		if headerLength == "" && bytes.IndexByte(body, 0) >= 0 {
			hint = fmt.Sprintf(" (binary tensors need the %s header)", InferenceHeaderContentLength)
		}
		return nil, fmt.Errorf("%w: the inference request is not a JSON object of the protocol: %v%s", ErrMalformed, jsonErr(err), hint)
	}
	if len(req.Inputs) == 0 {
		return nil, fmt.Errorf("%w: the request has no \"inputs\"", ErrMalformed)
	}
	if err := req.Parameters.refuseUnsupported("the request"); err != nil {
		return nil, err
	}
	req.decoded = make([]*tensor.Dense, len(req.Inputs))
	for i := range req.Inputs {
		in := &req.Inputs[i]
		d, err := in.decode(&rest)
		if err != nil {
			return nil, err
		}
		req.decoded[i] = d
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes of binary data after the last input's binary_data_size", ErrLength, len(rest))
	}
	for i := range req.Outputs {
		if err := req.Outputs[i].Parameters.refuseUnsupported(fmt.Sprintf("output %q", req.Outputs[i].Name)); err != nil {
			return nil, err
		}
	}
	return &req, nil
}

// refuseUnsupported refuses the parameters of extensions this server
// does not implement, rather than answering as if they were not there.
func (p inferParameters) refuseUnsupported(where string) error {
	switch {
	case p.SharedMemoryRegion != nil:
		return fmt.Errorf("%w: %s: shared memory (shared_memory_region) is not supported; send the data in the body", ErrMalformed, where)
	case p.Classification != nil:
		return fmt.Errorf("%w: %s: the classification extension is not supported; ask for the output tensor", ErrMalformed, where)
	}
	return nil
}

// decode reads one input: its binary data from the front of *rest, or
// its JSON data.
func (in *inferInput) decode(rest *[]byte) (*tensor.Dense, error) {
	where := fmt.Sprintf("input %q", in.Name)
	if in.Name == "" {
		return nil, fmt.Errorf("%w: an input without a name", ErrMalformed)
	}
	if err := in.Parameters.refuseUnsupported(where); err != nil {
		return nil, err
	}
	info, err := oipTypeByName(in.Datatype)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if in.Shape == nil {
		return nil, fmt.Errorf("%w: %s: no shape", ErrShape, where)
	}
	dims := make([]int, len(in.Shape))
	for i, n := range in.Shape {
		if n < 0 || n > MaxElements {
			return nil, fmt.Errorf("%w: %s: shape %v: axis %d is %d", ErrShape, where, in.Shape, i, n)
		}
		dims[i] = int(n)
	}
	elems, err := checkShape(dims)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if size := in.Parameters.BinaryDataSize; size != nil {
		if len(in.Data) > 0 && string(in.Data) != "null" {
			return nil, fmt.Errorf("%w: %s has both data and binary_data_size", ErrMalformed, where)
		}
		want := int64(elems * info.size())
		if *size != want {
			return nil, fmt.Errorf("%w: %s: binary_data_size %d; shape %v of %s needs %d bytes", ErrLength, where, *size, dims, in.Datatype, want)
		}
		if int64(len(*rest)) < want {
			return nil, fmt.Errorf("%w: %s: binary_data_size %d, but only %d bytes of binary data are left in the body", ErrLength, where, want, len(*rest))
		}
		raw := (*rest)[:want]
		*rest = (*rest)[want:]
		return decodeRaw(info, dims, raw, where)
	}
	if len(in.Data) == 0 || string(in.Data) == "null" {
		return nil, fmt.Errorf("%w: %s has no data (and no binary_data_size)", ErrMalformed, where)
	}
	flat, count, err := flattenData(in.Data, where+" data")
	if err != nil {
		return nil, err
	}
	if count != elems {
		return nil, fmt.Errorf("%w: %s: data has %d elements; shape %v needs %d", ErrLength, where, count, dims, elems)
	}
	back, err := parseData(info, flat, elems, where+" data")
	if err != nil {
		return nil, err
	}
	return newTensor(dims, back), nil
}

// decodeRaw builds a tensor from little-endian row-major bytes.
func decodeRaw(info *dtypeInfo, dims []int, raw []byte, where string) (*tensor.Dense, error) {
	back, mem := newBacking(info, len(raw)/max(info.size(), 1))
	if info.dt == tensor.Bool {
		for i, c := range raw {
			if c > 1 {
				return nil, fmt.Errorf("%w: %s: BOOL element %d is byte %d, want 0 or 1", ErrValue, where, i, c)
			}
		}
	}
	copy(mem, raw)
	if !hostLittleEndian {
		swapBytes(mem, info.size())
	}
	return newTensor(dims, back), nil
}

// flattenData turns the protocol's tensor data, a flat or nested JSON
// array in row-major order, into one flat JSON array, and counts its
// elements. raw is valid JSON (encoding/json checked it).
func flattenData(raw []byte, where string) ([]byte, int, error) {
	out := make([]byte, 0, len(raw))
	out = append(out, '[')
	n, depth := 0, 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == ',' || isSpace(c):
		case c == '{':
			return nil, 0, fmt.Errorf("%w: %s: an object among the elements; data is an array of elements, nested or flat", ErrMalformed, where)
		default:
			if depth == 0 {
				return nil, 0, fmt.Errorf("%w: %s: want an array of elements in row-major order", ErrMalformed, where)
			}
			start := i
			if c == '"' {
				for i++; i < len(raw) && raw[i] != '"'; i++ {
					if raw[i] == '\\' {
						i++
					}
				}
			} else {
				for i+1 < len(raw) && raw[i+1] != ',' && raw[i+1] != ']' && !isSpace(raw[i+1]) {
					i++
				}
			}
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, raw[start:min(i+1, len(raw))]...)
			n++
		}
	}
	return append(out, ']'), n, nil
}

// input checks a request's tensors against the model and makes the
// serving's input of them: the tensor of a one-input model, else a
// batch.Map by name.
func (m *oipModel) input(req *inferRequest) (any, error) {
	got := map[string]*tensor.Dense{}
	for i, in := range req.Inputs {
		if _, dup := got[in.Name]; dup {
			return nil, fmt.Errorf("%w: input %q given twice", ErrMalformed, in.Name)
		}
		got[in.Name] = req.decoded[i]
	}
	out := batch.Map{}
	for _, spec := range m.inputs {
		d, ok := got[spec.Name]
		if !ok {
			return nil, fmt.Errorf("%w: the model takes %s; input %q is missing", ErrMalformed, m.inputNames(), spec.Name)
		}
		delete(got, spec.Name)
		if spec.DType.Type != nil {
			want, _ := oipTypeOf(spec.DType)
			have, _ := oipTypeOf(d.Dtype())
			if want.info != have.info {
				return nil, fmt.Errorf("%w: input %q: the model takes %s, got %s", ErrDType, spec.Name, want.oip, have.oip)
			}
		}
		shape := []int(d.Shape())
		if spec.Shape != nil && !rowFits(shape, spec.Shape) {
			return nil, fmt.Errorf("%w: input %q: the model takes shape %v (-1: any length), got %v", ErrShape, spec.Name, spec.Shape, shape)
		}
		if m.unbatched {
			raw, info, err := hostBytes(d)
			if err != nil {
				return nil, err
			}
			if d, err = decodeRawHost(info, append([]int{1}, shape...), raw); err != nil {
				return nil, err
			}
		} else if len(shape) == 0 {
			return nil, fmt.Errorf("%w: input %q: a scalar; the first axis of every input counts the rows of the batch", ErrShape, spec.Name)
		}
		out[spec.Name] = d
	}
	if len(got) > 0 {
		name := slices.Sorted(maps.Keys(got))[0]
		return nil, fmt.Errorf("%w: input %q: the model takes %s", ErrMalformed, name, m.inputNames())
	}
	if len(m.inputs) == 1 {
		return out[m.inputs[0].Name], nil
	}
	return out, nil
}

func (m *oipModel) inputNames() string {
	names := make([]string, len(m.inputs))
	for i, t := range m.inputs {
		names[i] = strconv.Quote(t.Name)
	}
	return strings.Join(names, ", ")
}

// namedOutput is one output tensor of an answer, and whether it goes as
// binary data.
type namedOutput struct {
	name   string
	d      *tensor.Dense
	binary bool
}

// outputsOf names the tensors of a serving's result and keeps those the
// request asked for, in its order.
func (m *oipModel) outputsOf(result any, req *inferRequest) ([]namedOutput, error) {
	var all []namedOutput
	name := func(i int) string {
		if i < len(m.outputs) {
			return m.outputs[i].Name
		}
		return "output" + strconv.Itoa(i)
	}
	notTensors := func(v any) error {
		return &requestError{status: http.StatusInternalServerError, reason: ReasonInternal,
			err: fmt.Errorf("httpapi: the model's result is %T; the protocol carries tensors, a map of tensors or a tuple of tensors", v)}
	}
	switch v := result.(type) {
	case *tensor.Dense:
		all = []namedOutput{{name: name(0), d: v}}
	case batch.Tuple:
		for i, e := range v {
			d, ok := e.(*tensor.Dense)
			if !ok {
				return nil, notTensors(e)
			}
			all = append(all, namedOutput{name: name(i), d: d})
		}
	case batch.Map:
		keys := slices.Sorted(maps.Keys(v))
		if m.outputs != nil {
			keys = keys[:0]
			for _, o := range m.outputs {
				if _, ok := v[o.Name]; ok {
					keys = append(keys, o.Name)
				}
			}
		}
		for _, k := range keys {
			d, ok := v[k].(*tensor.Dense)
			if !ok {
				return nil, notTensors(v[k])
			}
			all = append(all, namedOutput{name: k, d: d})
		}
	default:
		return nil, notTensors(result)
	}
	if m.unbatched {
		for i := range all {
			s := all[i].d.Shape()
			if len(s) == 0 || s[0] != 1 {
				return nil, &requestError{status: http.StatusInternalServerError, reason: ReasonInternal,
					err: fmt.Errorf("httpapi: output %q of an unbatched model has shape %v; want a first axis of 1", all[i].name, []int(s))}
			}
			raw, _, err := hostBytes(all[i].d)
			if err != nil {
				return nil, err
			}
			info, _ := dtypeOf(all[i].d.Dtype())
			d, err := decodeRawHost(info, []int(s[1:]), raw)
			if err != nil {
				return nil, err
			}
			all[i].d = d
		}
	}
	defaultBinary := req.Parameters.BinaryDataOutput != nil && *req.Parameters.BinaryDataOutput
	if len(req.Outputs) == 0 {
		for i := range all {
			all[i].binary = defaultBinary
		}
		return all, nil
	}
	out := make([]namedOutput, 0, len(req.Outputs))
	for _, ro := range req.Outputs {
		i := slices.IndexFunc(all, func(o namedOutput) bool { return o.name == ro.Name })
		if i < 0 {
			names := make([]string, len(all))
			for j, o := range all {
				names[j] = strconv.Quote(o.name)
			}
			return nil, fmt.Errorf("%w: output %q: the model gives %s", ErrMalformed, ro.Name, strings.Join(names, ", "))
		}
		o := all[i]
		o.binary = defaultBinary
		if ro.Parameters.BinaryData != nil {
			o.binary = *ro.Parameters.BinaryData
		}
		out = append(out, o)
	}
	return out, nil
}

// decodeRawHost builds a tensor of new memory from host-order bytes.
func decodeRawHost(info *dtypeInfo, dims []int, raw []byte) (*tensor.Dense, error) {
	back, mem := newBacking(info, len(raw)/max(info.size(), 1))
	copy(mem, raw)
	return newTensor(dims, back), nil
}

// encodeInferResponse writes the $inference_response object, followed by
// the binary outputs' data; it returns the body and the length of its
// JSON part.
func encodeInferResponse(model string, req *inferRequest, outs []namedOutput) ([]byte, int, error) {
	b := []byte(`{"model_name":`)
	b = strconv.AppendQuote(b, model)
	if req.ID != "" {
		idb, _ := json.Marshal(req.ID)
		b = append(append(b, `,"id":`...), idb...)
	}
	b = append(b, `,"outputs":[`...)
	var blobs [][]byte
	for i, o := range outs {
		raw, info, err := hostBytes(o.d)
		if err != nil {
			return nil, 0, err
		}
		t, ok := oipTypeOf(o.d.Dtype())
		if !ok {
			return nil, 0, fmt.Errorf("%w: output %q of %v", ErrDType, o.name, o.d.Dtype())
		}
		if i > 0 {
			b = append(b, ',')
		}
		nb, _ := json.Marshal(o.name)
		b = append(append(append(b, `{"name":`...), nb...), `,"datatype":"`...)
		b = append(b, t.oip...)
		b = append(b, `","shape":[`...)
		for j, n := range o.d.Shape() {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		b = append(b, ']')
		if o.binary {
			blob := raw
			if !hostLittleEndian {
				blob = slices.Clone(raw)
				swapBytes(blob, info.size())
			}
			blobs = append(blobs, blob)
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(len(blob)), 10)
			b = append(b, "}}"...)
			continue
		}
		b = append(b, `,"data":[`...)
		es := info.size()
		for j := 0; j+es <= len(raw); j += es {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendElement(b, info, raw[j:j+es])
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}"...)
	jsonLen := len(b)
	if len(blobs) == 0 {
		return append(b, '\n'), len(b) + 1, nil
	}
	for _, blob := range blobs {
		b = append(b, blob...)
	}
	return b, jsonLen, nil
}

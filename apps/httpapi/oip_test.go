package httpapi_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// specModel is the model of the protocol specification's examples: two
// inputs, input0 (UINT32, [2, 2]) and input1 (BOOL, [3]), and one output,
// output0 (FP32, [3, 2]); not batched, since the inputs have no common
// first axis. Row j of output0 is [j+1, j+1.1] when input1[j] is true,
// zeros when it is false: the specification's answer for three trues.
func specModel() (*serving.Serving, httpapi.Serving) {
	s := serving.JIT(func(in any) (any, error) {
		m := in.(batch.Map)
		flags := m["input1"].(*tensor.Dense)
		rows := flags.Shape()[0]
		bs := flags.Data().([]bool)
		out := make([]float32, rows*3*2)
		for r := 0; r < rows; r++ {
			for j := 0; j < 3; j++ {
				if bs[r*3+j] {
					out[r*6+2*j] = float32(float64(j + 1))
					out[r*6+2*j+1] = float32(float64(j+1) + 0.1)
				}
			}
		}
		return tensor.New(tensor.WithShape(rows, 3, 2), tensor.WithBacking(out)), nil
	})
	return s, httpapi.Serving{Name: "mymodel", Model: &httpapi.Model{
		Unbatched: true,
		Inputs: []httpapi.TensorSpec{
			{Name: "input0", DType: tensor.Uint32, Shape: []int{2, 2}},
			{Name: "input1", DType: tensor.Bool, Shape: []int{3}},
		},
		Outputs: []httpapi.TensorSpec{{Name: "output0", DType: tensor.Float32, Shape: []int{3, 2}}},
	}}
}

func startSpecModel(t *testing.T) string {
	t.Helper()
	nd := testnode.Start(t, testnode.Options{})
	s, hs := specModel()
	startServing(t, nd, serving.Options{Name: "mymodel", Serving: s, BatchSize: 4})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{hs}})
	return srv.URL
}

// The inference request of the specification (Open Inference Protocol,
// HTTP/REST, "Inference Request Examples"), as written there. Its input1
// has shape [3] but one element: the server refuses it and says why.
const specRequest = `{
  "id" : "42",
  "inputs" : [
    {
      "name" : "input0",
      "shape" : [ 2, 2 ],
      "datatype" : "UINT32",
      "data" : [ 1, 2, 3, 4 ]
    },
    {
      "name" : "input1",
      "shape" : [ 3 ],
      "datatype" : "BOOL",
      "data" : [ true ]
    }
  ],
  "outputs" : [
    {
      "name" : "output0"
    }
  ]
}`

// The specification's response to it (the comma it lacks after "id"
// added), for a model that returns that [3, 2] FP32 tensor.
const specResponse = `{
  "id" : "42",
  "outputs" : [
    {
      "name" : "output0",
      "shape" : [ 3, 2 ],
      "datatype"  : "FP32",
      "data" : [ 1.0, 1.1, 2.0, 2.1, 3.0, 3.1 ]
    }
  ]
}`

func TestOIPSpecificationJSONExample(t *testing.T) {
	base := startSpecModel(t)
	url := base + "/v2/models/mymodel/infer"

	r := do(t, nil, "POST", url, "application/json", []byte(specRequest))
	require.Equal(t, http.StatusBadRequest, r.status, "body %s", r.body)
	assert.JSONEq(t, `{"error":"httpapi: data length does not match the shape: input \"input1\": data has 1 elements; shape [3] needs 3"}`, string(r.body))

	// With the three elements its shape says, the answer is the
	// specification's.
	fixed := bytes.Replace([]byte(specRequest), []byte(`"data" : [ true ]`), []byte(`"data" : [ true, true, true ]`), 1)
	r = do(t, nil, "POST", url, "application/json", fixed)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(r.body, &got))
	assert.Equal(t, "mymodel", got["model_name"])
	delete(got, "model_name")
	gotJSON, _ := json.Marshal(got)
	assert.JSONEq(t, specResponse, string(gotJSON))
}

// The example of Triton's binary tensor data extension, as written
// there: both inputs as binary data after the JSON object, and output0
// asked for as binary data.
func TestOIPSpecificationBinaryExample(t *testing.T) {
	base := startSpecModel(t)
	header := []byte(`{
  "model_name" : "mymodel",
  "inputs" : [
    {
      "name" : "input0",
      "shape" : [ 2, 2 ],
      "datatype" : "UINT32",
      "parameters" : {
        "binary_data_size" : 16
      }
    },
    {
      "name" : "input1",
      "shape" : [ 3 ],
      "datatype" : "BOOL",
      "parameters" : {
        "binary_data_size" : 3
      }
    }
  ],
  "outputs" : [
    {
      "name" : "output0",
      "parameters" : {
        "binary_data" : true
      }
    }
  ]
}`)
	body := append([]byte{}, header...)
	for _, v := range []uint32{1, 2, 3, 4} {
		body = binary.LittleEndian.AppendUint32(body, v)
	}
	body = append(body, 1, 0, 1) // input1: true, false, true
	require.Len(t, body, len(header)+19, "the example's 19 bytes of binary data")

	r := do(t, nil, "POST", base+"/v2/models/mymodel/infer", "application/octet-stream", body,
		httpapi.InferenceHeaderContentLength, strconv.Itoa(len(header)))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
	n, err := strconv.Atoi(r.header.Get(httpapi.InferenceHeaderContentLength))
	require.NoError(t, err)
	require.Equal(t, n+24, len(r.body), "the JSON object, then 24 bytes of output0")
	assert.JSONEq(t, `{"model_name":"mymodel","outputs":[{"name":"output0","shape":[3,2],"datatype":"FP32","parameters":{"binary_data_size":24}}]}`,
		string(r.body[:n]))
	want := []float32{1, 1.1, 0, 0, 3, 3.1} // the second row: input1[1] is false
	got := make([]float32, 6)
	for i := range got {
		got[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.body[n+4*i:]))
	}
	assert.Equal(t, want, got)
}

// The digits model over the protocol: batched rows, nested or flat data,
// JSON or binary, give exactly the model's logits.
func TestOIPInferDigits(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startDigits(t, nd, "digits", m)
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow, Model: &httpapi.Model{
		Inputs:  []httpapi.TensorSpec{{Name: "images", DType: tensor.Float32, Shape: []int{-1, 64}}},
		Outputs: []httpapi.TensorSpec{{Name: "logits", DType: tensor.Float32, Shape: []int{-1, 10}}},
	}}}})
	x := images(t, rows[3], rows[4])
	want := predict(t, m, x)
	data := x.Data().([]float32)
	url := srv.URL + "/v2/models/digits/infer"

	type output struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int     `json:"shape"`
		Data     []float32 `json:"data"`
	}
	var resp struct {
		ModelName string   `json:"model_name"`
		Outputs   []output `json:"outputs"`
	}
	nested, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{
		"name": "images", "datatype": "FP32", "shape": []int{2, 64}, "data": [][]float32{data[:64], data[64:]}}}})
	r := do(t, nil, "POST", url, "application/json", nested)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.NoError(t, json.Unmarshal(r.body, &resp))
	assert.Equal(t, "digits", resp.ModelName)
	require.Len(t, resp.Outputs, 1)
	assert.Equal(t, output{Name: "logits", Datatype: "FP32", Shape: []int{2, 10}, Data: want}, resp.Outputs[0])

	// Binary in, and every output binary (binary_data_output).
	header, _ := json.Marshal(map[string]any{
		"parameters": map[string]any{"binary_data_output": true},
		"inputs": []any{map[string]any{"name": "images", "datatype": "FP32", "shape": []int{2, 64},
			"parameters": map[string]any{"binary_data_size": 2 * 64 * 4}}}})
	body := append([]byte{}, header...)
	for _, f := range data {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(f))
	}
	r = do(t, nil, "POST", url, "", body, httpapi.InferenceHeaderContentLength, strconv.Itoa(len(header)))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	n, err := strconv.Atoi(r.header.Get(httpapi.InferenceHeaderContentLength))
	require.NoError(t, err)
	require.Equal(t, n+2*10*4, len(r.body))
	got := make([]float32, 20)
	for i := range got {
		got[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.body[n+4*i:]))
	}
	assert.Equal(t, want, got)
}

// Every datatype the protocol names and this server supports goes
// through an echoing model unchanged, in JSON and in binary, extremes
// included.
func TestOIPDatatypesRoundTrip(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	startServing(t, nd, serving.Options{Name: "echo", Serving: echoServing(), BatchSize: 8})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "echo"}}})
	url := srv.URL + "/v2/models/echo/infer"

	cases := []struct {
		datatype string
		data     string // JSON
		raw      []byte // little-endian
	}{
		{"BOOL", `[true,false]`, []byte{1, 0}},
		{"UINT8", `[0,255]`, []byte{0, 255}},
		{"UINT16", `[0,65535]`, []byte{0, 0, 255, 255}},
		{"UINT32", `[0,4294967295]`, []byte{0, 0, 0, 0, 255, 255, 255, 255}},
		{"UINT64", `[0,18446744073709551615]`, append(make([]byte, 8), 255, 255, 255, 255, 255, 255, 255, 255)},
		{"INT8", `[-128,127]`, []byte{0x80, 0x7f}},
		{"INT16", `[-32768,32767]`, []byte{0, 0x80, 0xff, 0x7f}},
		{"INT32", `[-2147483648,2147483647]`, []byte{0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x7f}},
		{"INT64", `[-9223372036854775808,9223372036854775807]`, []byte{0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"FP32", `[-1.5,3.4028235e+38]`, binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, math.Float32bits(-1.5)), math.Float32bits(math.MaxFloat32))},
		{"FP64", `[-1.5,1.7976931348623157e+308]`, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, math.Float64bits(-1.5)), math.Float64bits(math.MaxFloat64))},
	}
	for _, c := range cases {
		t.Run(c.datatype, func(t *testing.T) {
			body := fmt.Sprintf(`{"inputs":[{"name":"input0","shape":[2],"datatype":%q,"data":%s}]}`, c.datatype, c.data)
			r := do(t, nil, "POST", url, "application/json", []byte(body))
			require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
			assert.JSONEq(t, fmt.Sprintf(`{"model_name":"echo","outputs":[{"name":"output0","datatype":%q,"shape":[2],"data":%s}]}`,
				c.datatype, c.data), string(r.body))

			header := fmt.Sprintf(`{"inputs":[{"name":"input0","shape":[2],"datatype":%q,"parameters":{"binary_data_size":%d}}],`+
				`"outputs":[{"name":"output0","parameters":{"binary_data":true}}]}`, c.datatype, len(c.raw))
			r = do(t, nil, "POST", url, "application/octet-stream", append([]byte(header), c.raw...),
				httpapi.InferenceHeaderContentLength, strconv.Itoa(len(header)))
			require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
			n, err := strconv.Atoi(r.header.Get(httpapi.InferenceHeaderContentLength))
			require.NoError(t, err)
			assert.JSONEq(t, fmt.Sprintf(`{"model_name":"echo","outputs":[{"name":"output0","datatype":%q,"shape":[2],"parameters":{"binary_data_size":%d}}]}`,
				c.datatype, len(c.raw)), string(r.body[:n]))
			assert.Equal(t, c.raw, r.body[n:])
		})
	}
}

// Errors answer the protocol's error object, {"error": "..."}, alone,
// with a status that says whose fault it is.
func TestOIPErrors(t *testing.T) {
	base := startSpecModel(t)
	url := base + "/v2/models/mymodel/infer"
	ok := `{"name":"input0","shape":[2,2],"datatype":"UINT32","data":[1,2,3,4]}`
	flags := `{"name":"input1","shape":[3],"datatype":"BOOL","data":[true,true,true]}`
	cases := []struct {
		name, body string
		header     []string
		status     int
		err        string
	}{
		{"FP16 is not supported", `{"inputs":[{"name":"input0","shape":[1],"datatype":"FP16","data":[1]}]}`, nil, 400,
			`input "input0": httpapi: bad dtype: datatype FP16 is not supported by this server (send FP32); supported: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP32, FP64`},
		{"BF16 is not supported", `{"inputs":[{"name":"input0","shape":[1],"datatype":"BF16","data":[1]}]}`, nil, 400,
			`input "input0": httpapi: bad dtype: datatype BF16 is not supported by this server (send FP32); supported: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP32, FP64`},
		{"BYTES is not supported", `{"inputs":[{"name":"input0","shape":[1],"datatype":"BYTES","data":["a"]}]}`, nil, 400,
			`input "input0": httpapi: bad dtype: datatype BYTES is not supported by this server (the servings here take numeric tensors); supported: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP32, FP64`},
		{"a missing input", `{"inputs":[` + ok + `]}`, nil, 400,
			`httpapi: malformed body: the model takes "input0", "input1"; input "input1" is missing`},
		{"an input of another type", `{"inputs":[` + ok + `,{"name":"input1","shape":[3],"datatype":"UINT8","data":[1,1,1]}]}`, nil, 400,
			`httpapi: bad dtype: input "input1": the model takes BOOL, got UINT8`},
		{"an input of another shape", `{"inputs":[{"name":"input0","shape":[4],"datatype":"UINT32","data":[1,2,3,4]},` + flags + `]}`, nil, 400,
			`httpapi: bad shape: input "input0": the model takes shape [2 2] (-1: any length), got [4]`},
		{"an unknown output", `{"inputs":[` + ok + `,` + flags + `],"outputs":[{"name":"output9"}]}`, nil, 400,
			`httpapi: malformed body: output "output9": the model gives "output0"`},
		{"a value out of range", `{"inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","data":[1,2,3,-4]},` + flags + `]}`, nil, 400,
			`httpapi: bad value: input "input0" data[3]: -4 is not a valid uint32 (integers only, in decimal)`},
		{"no inputs", `{"inputs":[]}`, nil, 400, `httpapi: malformed body: the request has no "inputs"`},
		{"not JSON", `{"inputs":`, nil, 400,
			`httpapi: malformed body: the inference request is not a JSON object of the protocol: invalid JSON at byte 10: unexpected end of JSON input`},
		{"a header length past the body", `{}`, []string{httpapi.InferenceHeaderContentLength, "99"}, 400,
			`httpapi: malformed body: Inference-Header-Content-Length "99": want the length of the JSON object at the start of the body (0 to 2)`},
		{"binary data missing", `{"inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}},` + flags + `]}`,
			[]string{httpapi.InferenceHeaderContentLength, "-"}, 400, ""},
		{"shared memory is not supported", `{"inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","parameters":{"shared_memory_region":"r"}}]}`, nil, 400,
			`httpapi: malformed body: input "input0": shared memory (shared_memory_region) is not supported; send the data in the body`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.header) == 2 && c.header[1] == "-" {
				c.header[1] = strconv.Itoa(len(c.body))
			}
			r := do(t, nil, "POST", url, "application/json", []byte(c.body), c.header...)
			require.Equal(t, c.status, r.status, "body %s", r.body)
			var e map[string]string
			require.NoError(t, json.Unmarshal(r.body, &e), "body %s", r.body)
			require.Len(t, e, 1, "the error object has one field, error: %s", r.body)
			if c.err != "" {
				assert.Equal(t, c.err, e["error"])
			} else {
				assert.NotEmpty(t, e["error"])
			}
		})
	}

	r := do(t, nil, "POST", base+"/v2/models/nobody/infer", "application/json", []byte(`{"inputs":[]}`))
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.JSONEq(t, `{"error":"httpapi: no model named \"nobody\" here; the models are the servings of GET /v1/servings"}`, string(r.body))

	r = do(t, nil, "GET", url, "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "POST", r.header.Get("Allow"))
	assert.JSONEq(t, `{"error":"GET /v2/models/mymodel/infer: method not allowed; use POST"}`, string(r.body))
}

// Health, server and model metadata, model readiness.
func TestOIPHealthAndMetadata(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	s, hs := specModel()
	startServing(t, nd, serving.Options{Name: "mymodel", Serving: s, BatchSize: 4})
	h, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{hs, {Name: "down", Row: digitsRow}}})

	get := func(path string) response { return do(t, nil, "GET", srv.URL+path, "", nil) }
	r := get("/v2/health/live")
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"live":true}`, string(r.body))

	r = get("/v2")
	assert.Equal(t, http.StatusOK, r.status)
	var meta struct {
		Name       string   `json:"name"`
		Version    string   `json:"version"`
		Extensions []string `json:"extensions"`
	}
	require.NoError(t, json.Unmarshal(r.body, &meta))
	assert.Equal(t, "ergonx", meta.Name)
	assert.NotEmpty(t, meta.Version)
	assert.Equal(t, []string{"binary_tensor_data"}, meta.Extensions)

	r = get("/v2/models/mymodel")
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"name":"mymodel","platform":"ergonx",
		"inputs":[{"name":"input0","datatype":"UINT32","shape":[2,2]},{"name":"input1","datatype":"BOOL","shape":[3]}],
		"outputs":[{"name":"output0","datatype":"FP32","shape":[3,2]}]}`, string(r.body))

	// The defaults of a serving without a Model: one input of its Row.
	r = get("/v2/models/down")
	assert.JSONEq(t, `{"name":"down","platform":"ergonx",
		"inputs":[{"name":"input0","datatype":"FP32","shape":[-1,64]}],
		"outputs":[{"name":"output0","datatype":"","shape":[-1]}]}`, string(r.body))

	r = get("/v2/models/mymodel/ready")
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"name":"mymodel","ready":true}`, string(r.body))
	r = get("/v2/models/down/ready")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"name":"down","ready":false}`, string(r.body))
	r = get("/v2/models/nobody/ready")
	assert.Equal(t, http.StatusNotFound, r.status)

	// "down" does not run: the server is not ready until it does.
	r = get("/v2/health/ready")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"ready":false}`, string(r.body))
	startServing(t, nd, serving.Options{Name: "down", Serving: echoServing()})
	r = get("/v2/health/ready")
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"ready":true}`, string(r.body))
	h.SetDraining(true)
	assert.Equal(t, http.StatusServiceUnavailable, get("/v2/health/ready").status)
}

// Model options that cannot work are refused by NewHandler.
func TestOIPInvalidModels(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	for name, m := range map[string]*httpapi.Model{
		"no inputs":       {Inputs: []httpapi.TensorSpec{}},
		"an unnamed":      {Inputs: []httpapi.TensorSpec{{}}},
		"a name twice":    {Inputs: []httpapi.TensorSpec{{Name: "a"}, {Name: "a"}}},
		"an unknown type": {Outputs: []httpapi.TensorSpec{{Name: "a", DType: tensor.Complex64}}},
	} {
		_, err := httpapi.NewHandler(nd, httpapi.Options{Logger: quiet, Servings: []httpapi.Serving{{Name: "s", Model: m}}})
		assert.ErrorIs(t, err, httpapi.ErrInvalidOptions, name)
	}
}

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/internal/testnode"
)

// lookTool finds a program the test needs. CI installs it (.ci/run), so
// there a missing one fails the test; elsewhere the test is skipped and
// says what to install.
func lookTool(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs it (%s)", name, install)
		}
		t.Skipf("%s is not installed (%s); CI runs this test", name, install)
	}
	return path
}

// A client that is not ours: Python's standard library speaking the
// Open Inference Protocol to the digits model gets the model's logits,
// in JSON and in binary, and the protocol's errors.
func TestOIPPythonClient(t *testing.T) {
	python := lookTool(t, "python3", "apt-get install -y python3")
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startDigits(t, nd, "digits", m)
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow, Model: &httpapi.Model{
		Inputs:  []httpapi.TensorSpec{{Name: "images", DType: tensor.Float32, Shape: []int{-1, 64}}},
		Outputs: []httpapi.TensorSpec{{Name: "logits", DType: tensor.Float32, Shape: []int{-1, 10}}},
	}}}})
	x := images(t, rows[0], rows[1], rows[2])
	want := predict(t, m, x)
	data := x.Data().([]float32)
	in, _ := json.Marshal(map[string]any{"url": srv.URL, "model": "digits",
		"images": [][]float32{data[:64], data[64:128], data[128:]}})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/oip_client.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "python: %s", stderr.String())

	var got struct {
		Live     []json.RawMessage             `json:"live"`
		Ready    []json.RawMessage             `json:"ready"`
		Server   struct{ Extensions []string } `json:"server"`
		Metadata json.RawMessage               `json:"metadata"`
		JSON     struct {
			Status   int       `json:"status"`
			ID       string    `json:"id"`
			Shape    []int     `json:"shape"`
			Datatype string    `json:"datatype"`
			Logits   []float32 `json:"logits"`
		} `json:"json"`
		Binary struct {
			Status      int       `json:"status"`
			ContentType string    `json:"content_type"`
			Shape       []int     `json:"shape"`
			Logits      []float32 `json:"logits"`
		} `json:"binary"`
		FP16 []json.RawMessage `json:"fp16"`
	}
	require.NoError(t, json.Unmarshal(out, &got), "python printed %s", out)
	assert.JSONEq(t, `200`, string(got.Live[0]))
	assert.JSONEq(t, `{"live":true}`, string(got.Live[1]))
	assert.JSONEq(t, `{"ready":true}`, string(got.Ready[1]))
	assert.Equal(t, []string{"binary_tensor_data"}, got.Server.Extensions)
	assert.JSONEq(t, `{"name":"digits","platform":"ergonx","inputs":[{"name":"images","datatype":"FP32","shape":[-1,64]}],
		"outputs":[{"name":"logits","datatype":"FP32","shape":[-1,10]}]}`, string(got.Metadata))

	assert.Equal(t, 200, got.JSON.Status)
	assert.Equal(t, "py-1", got.JSON.ID)
	assert.Equal(t, []int{3, 10}, got.JSON.Shape)
	assert.Equal(t, "FP32", got.JSON.Datatype)
	assert.Equal(t, want, got.JSON.Logits, "JSON logits differ from model.Predict")

	assert.Equal(t, 200, got.Binary.Status)
	assert.Equal(t, "application/octet-stream", got.Binary.ContentType)
	assert.Equal(t, []int{3, 10}, got.Binary.Shape)
	assert.Equal(t, want, got.Binary.Logits, "binary logits differ from model.Predict")

	assert.JSONEq(t, `400`, string(got.FP16[0]))
	var fp16 map[string]string
	require.NoError(t, json.Unmarshal(got.FP16[1], &fp16))
	assert.Equal(t, map[string]string{"error": `input "images": httpapi: bad dtype: datatype FP16 is not supported by this server (send FP32); ` +
		`supported: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP32, FP64`}, fp16)
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// A JSON request for held-out images gets exactly the logits the model
// computes for them.
func TestPredictJSONDigits(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startDigits(t, nd, "digits", m)
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow}}})

	x := images(t, rows[0], rows[1], rows[2])
	r := do(t, nil, "POST", predictURL(srv, "digits"), "application/json", tensorJSON([]int{3, 64}, x.Data().([]float32)))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	var got jsonTensor
	require.NoError(t, json.Unmarshal(r.body, &got))
	assert.Equal(t, []int{3, digits.Classes}, got.Shape)
	assert.Equal(t, "float32", got.DType)
	assert.Equal(t, predict(t, m, x), got.Data, "logits differ from model.Predict")
}

// The binary format in and out gives the same logits, bit for bit, and
// each format can be asked for whatever the request's format.
func TestPredictBinaryDigits(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startDigits(t, nd, "digits", m)
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow}}})

	x := images(t, rows[5], rows[6])
	want := predict(t, m, x)
	bin := binaryTensor([]int{2, 64}, x.Data().([]float32))
	require.Len(t, bin, 16+2*64*4, "header of a rank-2 tensor is 16 bytes")

	r := do(t, nil, "POST", predictURL(srv, "digits"), httpapi.BinaryContentType, bin)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, httpapi.BinaryContentType, r.header.Get("Content-Type"))
	assert.Equal(t, binaryTensor([]int{2, digits.Classes}, want), r.body)

	// Binary in, JSON out.
	r = do(t, nil, "POST", predictURL(srv, "digits"), "application/octet-stream", bin, "Accept", "application/json")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var got jsonTensor
	require.NoError(t, json.Unmarshal(r.body, &got))
	assert.Equal(t, want, got.Data)

	// JSON in, binary out, chosen by q-value.
	r = do(t, nil, "POST", predictURL(srv, "digits"), "application/json", tensorJSON([]int{2, 64}, x.Data().([]float32)),
		"Accept", "application/json;q=0.5, application/x-ergonx-tensor")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, httpapi.BinaryContentType, r.header.Get("Content-Type"))
	assert.Equal(t, binaryTensor([]int{2, digits.Classes}, want), r.body)
}

// Many HTTP clients at once, each with its own images: every one gets
// exactly its own rows, whatever batches they shared.
func TestPredictConcurrentClientsGetTheirOwnRows(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startServing(t, nd, serving.Options{Name: "digits", Serving: digits.Serving(m), BatchSize: 8, BatchTimeout: 2 * time.Millisecond})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow}}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	const clients, requests = 32, 8
	var wg sync.WaitGroup
	errs := make(chan error, clients*requests)
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range requests {
				n := 1 + rng.IntN(3)
				picked := make([]*tensor.Dense, n)
				for i := range picked {
					picked[i] = rows[rng.IntN(len(rows))]
				}
				x := images(t, picked...)
				binary := rng.IntN(2) == 0
				var r response
				var err error
				if binary {
					r, err = doE(client, "POST", predictURL(srv, "digits"), httpapi.BinaryContentType, binaryTensor([]int{n, 64}, x.Data().([]float32)))
				} else {
					r, err = doE(client, "POST", predictURL(srv, "digits"), "application/json", tensorJSON([]int{n, 64}, x.Data().([]float32)))
				}
				if err != nil {
					errs <- err
					return
				}
				if r.status != http.StatusOK {
					errs <- fmt.Errorf("status %d: %s", r.status, r.body)
					return
				}
				out, err := m.Predict(x)
				if err != nil {
					errs <- err
					return
				}
				want := out.Data().([]float32)
				var got []float32
				if binary {
					d, err := httpapi.DecodeBinary(r.body)
					if err != nil {
						errs <- err
						return
					}
					got = d.Data().([]float32)
				} else {
					var jt jsonTensor
					if err := json.Unmarshal(r.body, &jt); err != nil {
						errs <- err
						return
					}
					got = jt.Data
				}
				if !assert.ObjectsAreEqual(want, got) {
					errs <- fmt.Errorf("client %d: got rows %v, want %v", c, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, err := serving.GetStats(nd, "digits")
	require.NoError(t, err)
	assert.Equal(t, uint64(clients*requests), st.Requests)
	assert.Less(t, st.Batches, st.Requests, "requests shared batches")
}

// Bad input gets 400 with the reason before it reaches the serving, and
// the reason text says what is wrong.
func TestPredictBadInputIs400WithTheReason(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, _ := heldOut(t)
	startDigits(t, nd, "digits", m)
	startServing(t, nd, serving.Options{Name: "echo", Serving: echoServing(), BatchSize: 4})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{
		{Name: "digits", Row: digitsRow},
		{Name: "echo"}, // no row: only the codec's and the serving's checks
	}})
	zeros := func(n int) string { return strings.TrimSuffix(strings.Repeat("0,", n), ",") }

	for _, tc := range []struct {
		name, serving, contentType, body string
		reason, text                     string
	}{
		{"unknown dtype", "digits", "application/json", `{"shape":[1,64],"dtype":"float16","data":[` + zeros(64) + `]}`,
			"bad_dtype", `"float16" is not supported`},
		{"dtype the serving does not take", "digits", "application/json", `{"shape":[1,64],"dtype":"float64","data":[` + zeros(64) + `]}`,
			"bad_dtype", `serving "digits" takes float32 rows; got float64`},
		{"row shape the serving does not take", "digits", "application/json", `{"shape":[2,32],"dtype":"float32","data":[` + zeros(64) + `]}`,
			"bad_shape", `serving "digits" takes rows of float32[64], a tensor of shape [n, 64]; got shape [2 32]`},
		{"rank 1 for a serving of rows of 64", "digits", "application/json", `{"shape":[64],"dtype":"float32","data":[` + zeros(64) + `]}`,
			"bad_shape", `got shape [64]`},
		{"scalar", "echo", "application/json", `{"shape":[],"dtype":"float32","data":[1]}`,
			"bad_shape", "requests need a first axis"},
		{"negative axis", "echo", "application/json", `{"shape":[-1,2],"dtype":"float32","data":[1,2]}`,
			"bad_shape", "axis 0 is -1"},
		{"tuple for a serving of one tensor", "digits", "application/json",
			`{"tuple":[{"shape":[1,64],"dtype":"float32","data":[` + zeros(64) + `]}]}`,
			"bad_shape", "got a tuple"},
		{"too few elements", "digits", "application/json", `{"shape":[1,64],"dtype":"float32","data":[` + zeros(63) + `]}`,
			"bad_length", "body.data has 63 elements; shape [1 64] needs 64"},
		{"too many elements", "echo", "application/json", `{"shape":[1,2],"dtype":"float32","data":[1,2,3]}`,
			"bad_length", "has 3 elements; shape [1 2] needs 2"},
		{"a string element", "digits", "application/json", `{"shape":[1,64],"dtype":"float32","data":["x",` + zeros(63) + `]}`,
			"bad_value", `body.data[0]: "x" is not a valid float32`},
		{"a fraction for an integer", "echo", "application/json", `{"shape":[2],"dtype":"int32","data":[1,1.5]}`,
			"bad_value", "body.data[1]: 1.5 is not a valid int32 (integers only"},
		{"out of range", "echo", "application/json", `{"shape":[1],"dtype":"uint8","data":[256]}`,
			"bad_value", "256 is not a valid uint8 (out of range)"},
		{"nested data", "echo", "application/json", `{"shape":[1,2],"dtype":"float32","data":[[1,2]]}`,
			"malformed", "flatten nested lists"},
		{"not JSON", "digits", "application/json", `{"shape":[1,64],`, "malformed", "invalid JSON"},
		{"unknown field", "echo", "application/json", `{"shape":[1],"dtype":"float32","data":[1],"names":["x"]}`,
			"malformed", `unknown field "names"`},
		{"missing field", "echo", "application/json", `{"shape":[1],"data":[1]}`, "malformed", `missing field "dtype"`},
		{"no rows", "digits", "application/json", `{"shape":[0,64],"dtype":"float32","data":[]}`,
			"bad_input", "empty batch"},
		{"binary: not the format", "digits", httpapi.BinaryContentType, "PNG\x00\x01\x02\x03\x04", "malformed", `does not start with "ENXT"`},
		{"binary: short data", "digits", httpapi.BinaryContentType, string(binaryTensor([]int{1, 64}, make([]float32, 64))[:100]),
			"bad_length", "84 bytes of data; shape [1 64] of float32 needs 256"},
		{"binary: unknown type", "digits", httpapi.BinaryContentType, "ENXT\x01c\x40\x01\x01\x00\x00\x00" + strings.Repeat("\x00", 8),
			"bad_dtype", "kind 'c' with 64 bits is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, nil, "POST", predictURL(srv, tc.serving), tc.contentType, []byte(tc.body))
			require.Equal(t, http.StatusBadRequest, r.status, "body %s", r.body)
			e := r.err(t)
			assert.Equal(t, tc.reason, e.Reason)
			assert.Contains(t, e.Error, tc.text)
			assert.Equal(t, tc.serving, e.Serving)
		})
	}
}

// A serving that declares no row can still tell input errors from its
// own: IsInputError turns a failed batch into a 400.
func TestPredictIsInputErrorGives400(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, _ := heldOut(t)
	startDigits(t, nd, "digits", m)
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{
		Name:         "digits",
		IsInputError: func(err error) bool { return errors.Is(err, digits.ErrShape) },
	}}})
	r := do(t, nil, "POST", predictURL(srv, "digits"), "", tensorJSON([]int{1, 32}, make([]float32, 32)))
	require.Equal(t, http.StatusBadRequest, r.status, "body %s", r.body)
	assert.Equal(t, "bad_input", r.err(t).Reason)
	assert.Contains(t, r.err(t).Error, "Predict input has shape (1, 32)")
}

// Every other status code of the predict route, each for its cause.
func TestPredictStatusCodes(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startDigits(t, nd, "digits", m)
	startDigits(t, nd, "stopped", m)
	slow := newGate()
	defer slow.open()
	startServing(t, nd, serving.Options{Name: "slow", Serving: slow.serving(), BatchSize: 1})
	startServing(t, nd, serving.Options{Name: "failing", BatchSize: 1, Serving: serving.JIT(func(any) (any, error) {
		return nil, errors.New("the model crashed")
	})})
	_, srv := newServer(t, nd, httpapi.Options{MaxBodyBytes: 4096, Servings: []httpapi.Serving{
		{Name: "digits", Row: digitsRow}, {Name: "stopped"}, {Name: "never-started"}, {Name: "slow"}, {Name: "failing"},
	}})
	body := tensorJSON([]int{1, 64}, rows[0].Data().([]float32))

	t.Run("404 unknown serving", func(t *testing.T) {
		r := do(t, nil, "POST", predictURL(srv, "nope"), "application/json", body)
		require.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, errBody{Error: `httpapi: no serving named "nope" here; see GET /v1/servings`, Reason: "unknown_serving"}, r.err(t))
	})
	t.Run("503 stopped serving", func(t *testing.T) {
		require.NoError(t, serving.Stop(t.Context(), nd, "stopped"))
		r := do(t, nil, "POST", predictURL(srv, "stopped"), "application/json", body)
		require.Equal(t, http.StatusServiceUnavailable, r.status, "body %s", r.body)
		assert.Equal(t, "serving_unavailable", r.err(t).Reason)
		assert.Contains(t, r.err(t).Error, "no serving process")
	})
	t.Run("503 listed serving never started", func(t *testing.T) {
		r := do(t, nil, "POST", predictURL(srv, "never-started"), "application/json", body)
		require.Equal(t, http.StatusServiceUnavailable, r.status, "body %s", r.body)
		assert.Equal(t, "serving_unavailable", r.err(t).Reason)
	})
	t.Run("504 deadline passed", func(t *testing.T) {
		start := time.Now()
		r := do(t, nil, "POST", predictURL(srv, "slow"), "application/json", body, "X-Request-Timeout", "30ms")
		require.Equal(t, http.StatusGatewayTimeout, r.status, "body %s", r.body)
		assert.Equal(t, "deadline_exceeded", r.err(t).Reason)
		assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
		slow.open() // let the serving finish the batch nobody waits for
	})
	t.Run("500 failed batch", func(t *testing.T) {
		r := do(t, nil, "POST", predictURL(srv, "failing"), "application/json", body)
		require.Equal(t, http.StatusInternalServerError, r.status, "body %s", r.body)
		assert.Equal(t, "batch_failed", r.err(t).Reason)
		assert.Contains(t, r.err(t).Error, "the model crashed")
	})
	t.Run("400 bad timeout", func(t *testing.T) {
		r := do(t, nil, "POST", predictURL(srv, "digits"), "application/json", body, "X-Request-Timeout", "250")
		require.Equal(t, http.StatusBadRequest, r.status)
		assert.Equal(t, "bad_timeout", r.err(t).Reason)
		assert.Contains(t, r.err(t).Error, "want a positive Go duration")
	})
	t.Run("413 body too large", func(t *testing.T) {
		r := do(t, nil, "POST", predictURL(srv, "digits"), "application/json", []byte(strings.Repeat(" ", 5000)))
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		assert.Equal(t, "body_too_large", r.err(t).Reason)
	})
	t.Run("415 unsupported media type", func(t *testing.T) {
		r := do(t, nil, "POST", predictURL(srv, "digits"), "application/x-www-form-urlencoded", body)
		require.Equal(t, http.StatusUnsupportedMediaType, r.status)
		assert.Equal(t, "unsupported_media_type", r.err(t).Reason)
	})
	t.Run("406 not acceptable", func(t *testing.T) {
		r := do(t, nil, "POST", predictURL(srv, "digits"), "application/json", body, "Accept", "text/html")
		require.Equal(t, http.StatusNotAcceptable, r.status)
		assert.Equal(t, "not_acceptable", r.err(t).Reason)
	})
	t.Run("405 method not allowed", func(t *testing.T) {
		r := do(t, nil, "GET", predictURL(srv, "digits"), "", nil)
		require.Equal(t, http.StatusMethodNotAllowed, r.status)
		assert.Equal(t, "POST", r.header.Get("Allow"))
		assert.Equal(t, "method_not_allowed", r.err(t).Reason)
	})
	t.Run("404 no route", func(t *testing.T) {
		r := do(t, nil, "GET", srv.URL+"/v2/models", "", nil)
		require.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "not_found", r.err(t).Reason)
	})
}

// A client that gives up takes its rows out of the serving: nothing is
// left waiting there.
func TestPredictClientDisconnectCancelsTheCall(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	g := newGate()
	defer g.open()
	startServing(t, nd, serving.Options{Name: "slow", Serving: g.serving(), BatchSize: 1})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "slow"}}})

	// The first request occupies the only partition; the second waits in
	// the queue until its client goes away.
	first := make(chan response, 1)
	go func() {
		r, err := doE(nil, "POST", predictURL(srv, "slow"), "", tensorJSON([]int{1, 1}, []float32{1}))
		assert.NoError(t, err)
		first <- r
	}()
	g.waitStarted(t)
	ctx, cancel := context.WithCancel(t.Context())
	second := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", predictURL(srv, "slow"), strings.NewReader(string(tensorJSON([]int{1, 1}, []float32{2}))))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		second <- err
	}()
	waitFor(t, "the second request to queue", func() bool {
		st, err := serving.GetStats(nd, "slow")
		return err == nil && st.QueuedBatches == 1
	})
	cancel()
	require.ErrorIs(t, recv(t, second, "the cancelled request"), context.Canceled)
	waitFor(t, "the cancelled rows to leave the serving", func() bool {
		st, err := serving.GetStats(nd, "slow")
		return err == nil && st.QueuedBatches == 0 && st.Cancelled == 1
	})
	g.open()
	assert.Equal(t, http.StatusOK, recv(t, first, "the first answer").status)
}

// Containers travel as {"tuple": [...]} and {"map": {...}}; a result that
// is not tensors comes as {"value": ...}; a container cannot be written
// in binary.
func TestPredictContainersAndValues(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	// x -> {a*2, b*10}, for tuples and maps alike.
	scale := func(v any, k int) any {
		d := v.(*tensor.Dense)
		var s any
		switch d.Dtype() {
		case tensor.Float32:
			s = float32(k)
		case tensor.Float64:
			s = float64(k)
		case tensor.Int64:
			s = int64(k)
		}
		out, err := d.MulScalar(s, true)
		if err != nil {
			panic(err)
		}
		return out
	}
	startServing(t, nd, serving.Options{Name: "pair", BatchSize: 8, BatchTimeout: time.Millisecond,
		Serving: serving.JIT(func(in any) (any, error) {
			switch c := in.(type) {
			case batch.Tuple:
				return batch.Tuple{scale(c[0], 2), scale(c[1], 10)}, nil
			case batch.Map:
				return batch.Map{"a": scale(c["a"], 2), "b": scale(c["b"], 10)}, nil
			}
			return nil, fmt.Errorf("pair: got %T", in)
		})})
	m, rows := heldOut(t)
	startServing(t, nd, serving.Options{Name: "classes", BatchSize: 8, BatchTimeout: time.Millisecond,
		Serving: digits.Serving(m).ClientPostprocessing(func(out, _, _ any) (any, error) {
			return digits.Argmax(out.(*tensor.Dense))
		})})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "pair"}, {Name: "classes", Row: digitsRow}}})

	tuple := `{"tuple":[{"shape":[2,1],"dtype":"float32","data":[1,2]},{"shape":[2],"dtype":"int64","data":[3,4]}]}`
	r := do(t, nil, "POST", predictURL(srv, "pair"), "", []byte(tuple))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.JSONEq(t, `{"tuple":[{"shape":[2,1],"dtype":"float32","data":[2,4]},{"shape":[2],"dtype":"int64","data":[30,40]}]}`, string(r.body))

	mp := `{"map":{"b":{"shape":[1],"dtype":"float64","data":[0.5]},"a":{"shape":[1,2],"dtype":"float32","data":["NaN","-Infinity"]}}}`
	r = do(t, nil, "POST", predictURL(srv, "pair"), "", []byte(mp))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.Equal(t, `{"map":{"a":{"shape":[1,2],"dtype":"float32","data":["NaN","-Infinity"]},"b":{"shape":[1],"dtype":"float64","data":[5]}}}`+"\n", string(r.body))

	r = do(t, nil, "POST", predictURL(srv, "pair"), "", []byte(tuple), "Accept", httpapi.BinaryContentType)
	require.Equal(t, http.StatusNotAcceptable, r.status, "body %s", r.body)
	assert.Equal(t, "not_acceptable", r.err(t).Reason)

	x := images(t, rows[0], rows[1])
	classes, err := m.Classify(x)
	require.NoError(t, err)
	r = do(t, nil, "POST", predictURL(srv, "classes"), "", tensorJSON([]int{2, 64}, x.Data().([]float32)))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.JSONEq(t, fmt.Sprintf(`{"value":[%d,%d]}`, classes[0], classes[1]), string(r.body))
}

// GET /v1/servings lists the servings with their statistics; /healthz
// says ok while the process serves; /readyz says which listed servings
// are down, and draining once the handler drains.
func TestServingsHealthzAndReadyz(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startDigits(t, nd, "digits", m)
	h, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow}, {Name: "elsewhere"}}})
	r := do(t, nil, "POST", predictURL(srv, "digits"), "", tensorJSON([]int{1, 64}, rows[0].Data().([]float32)))
	require.Equal(t, http.StatusOK, r.status)

	r = do(t, nil, "GET", srv.URL+"/v1/servings", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var list struct {
		Servings []struct {
			Name  string `json:"name"`
			Local bool   `json:"local"`
			Row   *struct {
				DType string `json:"dtype"`
				Shape []int  `json:"shape"`
			} `json:"row"`
			Stats *struct {
				BatchSize           int     `json:"batch_size"`
				BatchTimeoutSeconds float64 `json:"batch_timeout_seconds"`
				Requests            uint64  `json:"requests"`
				Rows                uint64  `json:"rows"`
			} `json:"stats"`
		} `json:"servings"`
	}
	require.NoError(t, json.Unmarshal(r.body, &list), "body %s", r.body)
	require.Len(t, list.Servings, 2)
	d := list.Servings[0]
	assert.Equal(t, "digits", d.Name)
	assert.True(t, d.Local)
	require.NotNil(t, d.Row)
	assert.Equal(t, "float32", d.Row.DType)
	assert.Equal(t, []int{64}, d.Row.Shape)
	require.NotNil(t, d.Stats)
	assert.Equal(t, 16, d.Stats.BatchSize)
	assert.Equal(t, 0.001, d.Stats.BatchTimeoutSeconds)
	assert.Equal(t, uint64(1), d.Stats.Requests)
	assert.Equal(t, uint64(1), d.Stats.Rows)
	e := list.Servings[1]
	assert.Equal(t, "elsewhere", e.Name)
	assert.False(t, e.Local)
	assert.Nil(t, e.Stats)

	r = do(t, nil, "GET", srv.URL+"/v1/servings/digits", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `"name":"digits"`)
	r = do(t, nil, "GET", srv.URL+"/v1/servings/nope", "", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "unknown_serving", r.err(t).Reason)

	r = do(t, nil, "GET", srv.URL+"/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ok"}`, string(r.body))
	r = do(t, nil, "GET", srv.URL+"/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "a listed serving runs nowhere")
	assert.JSONEq(t, `{"status":"not_ready","servings":{"digits":"local","elsewhere":"down"}}`, string(r.body))
	startDigits(t, nd, "elsewhere", m)
	r = do(t, nil, "GET", srv.URL+"/readyz", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ready","servings":{"digits":"local","elsewhere":"local"}}`, string(r.body))
	h.SetDraining(true)
	r = do(t, nil, "GET", srv.URL+"/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"status":"draining","servings":{"digits":"local","elsewhere":"local"}}`, string(r.body))
	r = do(t, nil, "GET", srv.URL+"/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.status, "a draining process is alive")
}

// NewHandler refuses options that cannot work.
func TestNewHandlerRejectsInvalidOptions(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	for name, opts := range map[string]httpapi.Options{
		"no name":      {Servings: []httpapi.Serving{{}}},
		"twice":        {Servings: []httpapi.Serving{{Name: "a"}, {Name: "a"}}},
		"bad row type": {Servings: []httpapi.Serving{{Name: "a", Row: &httpapi.Row{DType: tensor.Complex64}}}},
		"bad row axis": {Servings: []httpapi.Serving{{Name: "a", Row: &httpapi.Row{Shape: []int{-2}}}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := httpapi.NewHandler(nd, opts)
			require.ErrorIs(t, err, httpapi.ErrInvalidOptions)
		})
	}
	// Two handlers cannot share a registry's metric names, but each has
	// its own by default.
	h1, err := httpapi.NewHandler(nd, httpapi.Options{})
	require.NoError(t, err)
	defer h1.Close()
	h2, err := httpapi.NewHandler(nd, httpapi.Options{})
	require.NoError(t, err)
	defer h2.Close()
	_, err = httpapi.NewHandler(nd, httpapi.Options{Registry: h1.Registry()})
	require.ErrorIs(t, err, httpapi.ErrInvalidOptions)
}

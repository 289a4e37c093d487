package httpapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/serving"
)

// A handler without a node serves the servings started without one: a
// typed serving of []float32 rows takes the request's rows (a batch the
// codecs decoded) and answers the tensor of their output rows; an input
// of another dtype is the caller's fault (400).
func TestHandlerWithoutANodeServesATypedServing(t *testing.T) {
	const name = "typed-sum"
	sum := serving.NewBatchFunc(func(_ context.Context, rows [][]float32) ([][]float32, error) {
		out := make([][]float32, len(rows))
		for i, r := range rows {
			var s float32
			for _, x := range r {
				s += x
			}
			out[i] = []float32{s, float32(len(r))}
		}
		return out, nil
	})
	h, err := serving.Start(nil, serving.Options{Name: name, Serving: sum.Serving(), BatchSize: 8})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Stop(context.Background()) })

	_, srv := newServer(t, nil, httpapi.Options{Servings: []httpapi.Serving{{Name: name}}})
	url := srv.URL + "/v1/servings/" + name + "/predict"
	r := do(t, nil, http.MethodPost, url, httpapi.JSONContentType,
		[]byte(`{"shape":[2,3],"dtype":"float32","data":[1,2,3,4,5,6]}`))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.JSONEq(t, `{"shape":[2,2],"dtype":"float32","data":[6,3,15,3]}`, string(r.body))

	r = do(t, nil, http.MethodPost, url, httpapi.JSONContentType,
		[]byte(`{"shape":[1,3],"dtype":"int64","data":[1,2,3]}`))
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	e := r.err(t)
	assert.Equal(t, httpapi.ReasonBadInput, e.Reason)
	assert.Contains(t, e.Error, serving.ErrRowType.Error())

	// Stats and readiness read the serving without a node.
	r = do(t, nil, http.MethodGet, srv.URL+"/v1/servings/"+name, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.body), `"local":true`)
	r = do(t, nil, http.MethodGet, srv.URL+"/readyz", "", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.JSONEq(t, `{"status":"ready","servings":{"typed-sum":"local"}}`, string(r.body))

}

package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/internal/version"
	"github.com/ergonx/ergonx/serving"
)

// The OpenAPI document is valid OpenAPI 3, documents every route of the
// handler's mux and no other, and each documented route is served.
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	ctx := context.Background()
	nd := testnode.Start(t, testnode.Options{})
	startServing(t, nd, serving.Options{Name: "echo", Serving: echoServing(), BatchSize: 4})
	h, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "echo"}}})

	r := do(t, nil, "GET", srv.URL+"/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, httpapi.OpenAPI(), r.body)
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(ctx), "not valid OpenAPI 3")
	assert.Equal(t, version.Version, doc.Info.Version)

	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(documented)
	var routes []string
	for _, p := range h.Routes() {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			continue // the 405 answers and the 404 of "/"
		}
		routes = append(routes, method+" "+strings.TrimSuffix(path, "{$}"))
	}
	slices.Sort(routes)
	assert.Equal(t, routes, documented, "the mux's routes and the document's differ")

	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		url := srv.URL + strings.ReplaceAll(path, "{name}", "echo")
		r := do(t, nil, method, url, "application/json", []byte("{}"))
		assert.NotEqual(t, http.StatusMethodNotAllowed, r.status, op)
		assert.NotContains(t, string(r.body), `"reason":"not_found"`, op)
	}
}

// The answers of the read routes, and of both predict APIs, are what
// the document says they are.
func TestOpenAPIDescribesTheAnswers(t *testing.T) {
	ctx := context.Background()
	nd := testnode.Start(t, testnode.Options{})
	startServing(t, nd, serving.Options{Name: "echo", Serving: echoServing(), BatchSize: 4})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "echo"}}})
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	require.NoError(t, err)
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)

	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/servings", ""},
		{"GET", "/v1/servings/echo", ""},
		{"GET", "/v1/servings/nobody", ""},
		{"GET", "/v1/live", ""},
		{"GET", "/healthz", ""},
		{"GET", "/v2", ""},
		{"GET", "/v2/health/live", ""},
		{"GET", "/v2/health/ready", ""},
		{"GET", "/v2/models/echo", ""},
		{"GET", "/v2/models/echo/ready", ""},
		{"POST", "/v1/servings/echo/predict", `{"shape":[1,2],"dtype":"float32","data":[1,2]}`},
		{"POST", "/v1/servings/echo/predict", `{"shape":[1,2],"dtype":"float32","data":[1]}`},
		{"POST", "/v2/models/echo/infer", `{"id":"1","inputs":[{"name":"input0","shape":[1,2],"datatype":"INT32","data":[1,2]}]}`},
		{"POST", "/v2/models/echo/infer", `{"inputs":[{"name":"input0","shape":[1,2],"datatype":"FP16","data":[1,2]}]}`},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			require.NoError(t, err)
			if c.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			route, params, err := router.FindRoute(req)
			require.NoError(t, err)
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
			if c.body != "" {
				if !strings.Contains(c.body, "FP16") { // FP16 is refused: the document does not list it
					require.NoError(t, openapi3filter.ValidateRequest(ctx, in))
				}
				req.Body = io.NopCloser(strings.NewReader(c.body))
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
				Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body))}
			assert.NoError(t, openapi3filter.ValidateResponse(ctx, out), "status %d, body %s", resp.StatusCode, body)
		})
	}
}

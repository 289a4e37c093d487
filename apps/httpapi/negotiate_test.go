package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// Accept picks the answer's format by RFC 9110's rules: the most
// specific matching range gives a type its q, q=0 refuses it even under
// a wildcard, the request's format wins ties.
func TestAcceptNegotiation(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	startServing(t, nd, serving.Options{Name: "echo", Serving: echoServing(), BatchSize: 4})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "echo"}}})
	jsonBody := tensorJSON([]int{1, 2}, []float32{1, 2})
	binBody := binaryTensor([]int{1, 2}, []float32{1, 2})

	cases := []struct {
		name, contentType, accept string
		status                    int
		want                      string // Content-Type of the answer
	}{
		{"no Accept: the request's format (JSON)", "application/json", "", 200, httpapi.JSONContentType},
		{"no Accept: the request's format (binary)", httpapi.BinaryContentType, "", 200, httpapi.BinaryContentType},
		{"*/*: the request's format", httpapi.BinaryContentType, "*/*", 200, httpapi.BinaryContentType},
		{"q=0 refuses a type under */*", httpapi.BinaryContentType, "application/x-ergonx-tensor;q=0, application/octet-stream;q=0, */*", 200, httpapi.JSONContentType},
		{"q=0 refuses JSON under */*", "application/json", "application/json;q=0, */*", 200, httpapi.BinaryContentType},
		{"the most specific range gives the q", "application/json", "application/*;q=0.2, application/json;q=0.1", 200, httpapi.BinaryContentType},
		{"the highest q wins", "application/json", "application/json;q=0.5, application/x-ergonx-tensor", 200, httpapi.BinaryContentType},
		{"types are case-insensitive", httpapi.BinaryContentType, "APPLICATION/JSON", 200, httpapi.JSONContentType},
		{"octet-stream is answered as asked", "application/json", "application/octet-stream", 200, "application/octet-stream"},
		{"nothing acceptable", "application/json", "text/html", 406, httpapi.JSONContentType},
		{"every offer refused", "application/json", "application/json;q=0", 406, httpapi.JSONContentType},
		{"a malformed q", "application/json", "application/json;q=abc", 406, httpapi.JSONContentType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := jsonBody
			if c.contentType == httpapi.BinaryContentType {
				body = binBody
			}
			var header []string
			if c.accept != "" {
				header = []string{"Accept", c.accept}
			}
			r := do(t, nil, "POST", predictURL(srv, "echo"), c.contentType, body, header...)
			require.Equal(t, c.status, r.status, "body %s", r.body)
			assert.Equal(t, c.want, r.header.Get("Content-Type"))
			if c.status == http.StatusOK && c.want != httpapi.JSONContentType {
				assert.Equal(t, binBody, r.body)
			}
			if c.status == http.StatusNotAcceptable {
				assert.Equal(t, "not_acceptable", r.err(t).Reason)
			}
		})
	}
}

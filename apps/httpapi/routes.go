package httpapi

import (
	"fmt"
	"net/http"
	"slices"
)

// recordingMux is an http.ServeMux that remembers its patterns, so that
// the handler can list its routes (Handler.Routes) and a test can hold
// the OpenAPI document to them.
type recordingMux struct {
	*http.ServeMux
	patterns []string
}

func (m *recordingMux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, f)
}

func (m *recordingMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// Routes returns the handler's routes as http.ServeMux patterns
// ("POST /v1/servings/{name}/predict"), sorted; patterns without a
// method are those that answer the other methods with 405, and "/" the
// JSON 404 of every other path.
func (h *Handler) Routes() []string {
	return slices.Sorted(slices.Values(h.patterns))
}

// methodNotAllowed is the error of a 405.
func methodNotAllowed(r *http.Request, allow string) error {
	return fmt.Errorf("httpapi: %s %s: method not allowed; use %s", r.Method, r.URL.Path, allow)
}

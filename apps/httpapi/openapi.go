package httpapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPIDocument is the OpenAPI 3 description of the handler's routes,
// served at GET /openapi.json. A test holds it to the mux's routes:
// every route documented, every documented route served.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3 description of the HTTP API (a copy).
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

// registerOpenAPI adds GET /openapi.json to mux.
func (h *Handler) registerOpenAPI(mux *recordingMux) {
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", JSONContentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
		_, _ = w.Write(openAPIDocument)
	})
	mux.HandleFunc("/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, "", &requestError{status: http.StatusMethodNotAllowed, reason: ReasonMethodNotAllowed,
			err: methodNotAllowed(r, "GET, HEAD")})
	})
}

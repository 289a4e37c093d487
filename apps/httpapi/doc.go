// Package httpapi is the HTTP/JSON inference API of an ergonx node: a
// predict route per serving with JSON and binary tensor bodies, the
// servings' statistics, Prometheus metrics, a health check, the Open
// Inference Protocol (KServe v2, Triton's HTTP/REST API), a live page and
// the API's OpenAPI description.
//
// Handler is a plain http.Handler for the servings of a node, for any
// HTTP server (httptest, your own mux). App is the ergo application that
// serves one: its process owns an http.Server, which listens when the
// application starts and drains in-flight requests when it stops.
// `ergonx serve` runs it for the digits model.
//
//	h, err := httpapi.NewHandler(nd, httpapi.Options{Servings: []httpapi.Serving{{
//		Name: "digits",
//		Row:  &httpapi.Row{DType: tensor.Float32, Shape: []int{64}},
//	}}})
//	defer h.Close()
//	http.ListenAndServe("127.0.0.1:8080", h)
//
//	app, err := httpapi.Start(nd, httpapi.AppOptions{Addr: "127.0.0.1:8080", Handler: opts})
//	defer app.Stop(ctx)
//
// # Routes
//
//	POST /v1/servings/{name}/predict   run a request on the serving {name}
//	GET  /v1/servings                  the servings, with their statistics
//	GET  /v1/servings/{name}           one serving
//	GET  /metrics                      Prometheus metrics (text format)
//	GET  /healthz                      200 {"status":"ok"} while the process serves (liveness)
//	GET  /readyz                       200 {"status":"ready","servings":{...}} when not draining and every
//	                                   listed serving runs here ("local") or elsewhere ("remote");
//	                                   503 with "not_ready" or "draining" otherwise (readiness)
//	GET  /                             the live page (see "Live page")
//	GET  /v1/live                      the live page's figures, as JSON
//	GET  /openapi.json                 the OpenAPI 3 description of every route here
//
//	GET  /v2                           Open Inference Protocol: server metadata
//	GET  /v2/health/live               200 {"live":true}
//	GET  /v2/health/ready              200 {"ready":true}; 503 while a serving does not run or the server drains
//	GET  /v2/models/{name}             the model's metadata: its input and output tensors (Serving.Model)
//	GET  /v2/models/{name}/ready       200 {"name":..., "ready":true}; 503 when it does not run
//	POST /v2/models/{name}/infer       inference, JSON or the binary tensor data extension
//
// Handler.Routes lists them; OpenAPI returns the document.
//
// A predict request is one batch of rows for the serving: the first axis
// of every tensor counts rows, and the answer holds the serving's output
// rows for them, exactly as serving.BatchedRun returns them. The serving
// batches them with other callers' rows; requests larger than its batch
// size are split and the rows come back in order.
//
//	$ curl -s http://127.0.0.1:8080/v1/servings/digits/predict -H 'Content-Type: application/json' \
//	    -d '{"shape":[1,64],"dtype":"float32","data":[0,0,0.1875,0.75,0.5,0.0625,0,0,0,0,0.875,1,1,0.9375,0.0625,0,0,0.1875,0.9375,0.125,0.0625,0.75,0.25,0,0,0.375,0.5625,0,0,0.4375,0.5,0,0,0.4375,0.5,0,0,0.3125,0.5,0,0,0.25,0.75,0,0,0.5625,0.375,0,0,0,0.9375,0.6875,0.5625,1,0.125,0,0,0,0.1875,0.6875,0.9375,0.4375,0,0]}'
//	{"shape":[1,10],"dtype":"float32","data":[16.258905,-7.36801,1.1079159,-3.1834502,-3.7877407,-1.0008867,1.9365869,-0.35454464,1.8370146,0.33698773]}
//
// (the first held-out image, a 0, as `ergonx serve` prints it; logit 0 is
// the largest). curl's -d alone sends a form: the Content-Type header is
// needed. The other routes:
//
//	$ curl -s http://127.0.0.1:8080/v1/servings
//	{"servings":[{"name":"digits","row":{"dtype":"float32","shape":[64]},"local":true,"stats":{"batch_size":64,
//	  "batch_timeout_seconds":0.005,"partitions":1,"stacked_rows":0,"queued_batches":0,"queued_rows":0,
//	  "busy_partitions":0,"waiting":0,"stopped":false,"requests":1,"batches":1,"rows":1,"failed_batches":0,"cancelled":0}}]}
//	$ curl -s http://127.0.0.1:8080/metrics | grep '^ergonx_http_requests_total'
//	ergonx_http_requests_total{code="200",serving="digits"} 1
//	$ curl -s http://127.0.0.1:8080/healthz
//	{"status":"ok"}
//
// A deadline, and what a request that misses it gets:
//
//	$ curl -s http://127.0.0.1:8080/v1/servings/digits/predict -H 'Content-Type: application/json' \
//	    -H 'X-Request-Timeout: 1ns' -d '{"shape":[1,64], ...}'
//	{"error":"httpapi: the request's deadline (1ns) passed before serving \"digits\" answered: context deadline exceeded","reason":"deadline_exceeded","serving":"digits"}
//
// # JSON bodies
//
// A tensor is an object with its shape, its dtype and its elements in
// row-major order, as one flat array:
//
//	{"shape": [2, 3], "dtype": "float32", "data": [1, 2, 3, 4, 5, 6]}
//
// dtype is one of float32, float64, int8, int16, int32, int64, uint8,
// uint16, uint32, uint64 and bool (Nx's names f32, s64, u8... are
// accepted too). Floats are JSON numbers, or the strings "NaN",
// "Infinity" and "-Infinity"; integers are JSON integers in range; bools
// are true and false. Responses use the same form, and write floats in
// the shortest form that reads back to the same value.
//
// Containers of tensors (Nx's tuples and maps, batch.Tuple and
// batch.Map) nest tensors, up to 16 deep:
//
//	{"tuple": [ <container>, <container>, ... ]}
//	{"map": {"key": <container>, ...}}
//
// A serving whose client postprocessing returns something else (a Go
// value, not tensors) answers {"value": <that value as JSON>}.
//
// # Binary bodies
//
// The binary format carries one tensor with a small header, all integers
// little-endian. Its media type is application/x-ergonx-tensor;
// application/octet-stream is accepted as a synonym.
//
//	offset  size   field
//	0       4      magic: the bytes "ENXT"
//	4       1      version: 1
//	5       1      kind: 'f' float, 's' signed integer, 'u' unsigned integer, 'b' bool
//	6       1      bits per element: 8, 16, 32 or 64 (bool: 8, one byte 0 or 1)
//	7       1      rank r, 0 to 32
//	8       4·r    the dimensions, uint32 each
//	8+4·r   ...    the elements in row-major order, little-endian: exactly
//	               product(dimensions) × bits/8 bytes
//
// So a [1, 64] float32 request is 16 bytes of header ("ENXT", 1, 'f', 32,
// 2, then 1 and 64 as uint32) and 256 bytes of data. DecodeBinary and
// EncodeBinary read and write it; from Python, struct.pack("<64f", ...)
// or numpy's arr.astype("<f4").tobytes() is the data.
//
//	$ printf 'ENXT\x01f\x20\x02\x01\x00\x00\x00\x40\x00\x00\x00' > req.bin
//	$ python3 -c 'import sys,struct; sys.stdout.buffer.write(struct.pack("<64f", *[0.0]*64))' >> req.bin
//	$ curl -s --data-binary @req.bin -H 'Content-Type: application/x-ergonx-tensor' \
//	    http://127.0.0.1:8080/v1/servings/digits/predict | xxd
//	00000000: 454e 5854 0166 2002 0100 0000 0a00 0000  ENXT.f .........
//	00000010: 00b8 e03e 923b c8bf 2236 1ebe 8d77 70be  ...>.;.."6...wp.
//	...
//
// The answer is a [1, 10] float32 tensor in the same format; add
// -H 'Accept: application/json' to get it as JSON.
//
// # Headers
//
// Content-Type picks the request's format (none means JSON). Accept picks
// the response's: application/json or application/x-ergonx-tensor (or
// application/octet-stream), by q-value; */* or no Accept answers in the
// request's format. A result that is not one tensor cannot be written in
// binary: 406.
//
// X-Request-Timeout sets the request's deadline as a Go duration
// ("250ms", "2s"): it becomes the deadline of the serving call's context,
// so rows still waiting in the serving are taken out when it passes and
// the answer is 504. Options.DefaultTimeout applies without the header,
// Options.MaxTimeout caps it. A client that disconnects cancels its
// request the same way.
//
// # Status codes
//
// Every error answers a JSON body {"error": "<what happened>", "reason":
// "<reason>", "serving": "<name>"}; reason is one of the Reason constants.
//
//	200                        the output rows
//	400 malformed              the body is not JSON of this form, or not a binary tensor
//	400 bad_dtype              unknown dtype, or not the dtype the serving's Row declares
//	400 bad_shape              negative axis, no first axis (a scalar), or not the serving's row shape
//	400 bad_length             data does not hold product(shape) elements
//	400 bad_value              an element that is not of the dtype (1.5 for int32, "x", null, out of range)
//	400 bad_input              the serving refused the input: serving.ErrEmptyBatch (0 rows),
//	                           ErrNotBatch, a ClientPreprocessing error, Serving.IsInputError
//	400 bad_timeout            X-Request-Timeout is not a positive Go duration
//	404 unknown_serving        no serving of that name in Options.Servings
//	404 not_found              no such route
//	405 method_not_allowed     (with Allow)
//	406 not_acceptable         Accept names no format this route writes
//	413 body_too_large         over Options.MaxBodyBytes (32 MiB by default)
//	415 unsupported_media_type Content-Type is neither JSON nor binary
//	429 overloaded             the serving's queue is full (serving.ErrOverloaded); Retry-After says
//	                           when its queue should have room again
//	499 client_closed          the client went away first (recorded only; nobody reads it)
//	500 batch_failed           the batch holding the rows failed (*serving.DownError)
//	500 internal               anything else, such as a result that cannot be encoded
//	503 serving_unavailable    the serving is listed but does not run: stopped, stopping, never
//	                           started, or no member of its process group answers (serving.ErrNoProc)
//	503 node_down              the node serving the request went down (serving.ErrNodeDown)
//	503 shutdown_timeout       the serving stopped while the batch ran (serving.ErrShutdownTimeout)
//	503 busy                   Options.MaxConcurrent requests in progress already; Retry-After: 1
//	504 deadline_exceeded      the X-Request-Timeout deadline passed first
//
// 404 and 503 are told apart by the handler's list: BatchedRun gives
// serving.ErrNoProc both for a name nobody serves and for a serving that
// stopped, but only names in Options.Servings are ever called, so a
// listed name that does not answer is a serving that is down (503), and
// any other name is unknown (404). A listed serving that does not run on
// the handler's node is looked for in the cluster (serving.BatchedRun
// with a plain name), so a node can serve HTTP for servings elsewhere.
//
// # Metrics
//
// GET /metrics serves the handler's registry (its own unless
// Options.Registry is given) in Prometheus' text format. Every series
// has a serving label. The handler's own series count its requests:
//
//	ergonx_http_requests_total{serving,code}          counter   predict requests answered
//	ergonx_http_errors_total{serving,reason}          counter   predict errors, by reason
//	ergonx_http_request_duration_seconds{serving}     histogram request latency, errors included
//	ergonx_http_requests_in_flight{serving}           gauge     requests being answered
//
// requests for unknown servings count under serving="(unknown)"
// (UnknownServingLabel; request paths never become labels). Beside them,
// a metrics.Collector (package metrics, which a Go program without HTTP
// registers itself) reports the listed servings on the handler's node:
// their batches (ergonx_batch_size_rows, ergonx_batch_padding_rows_total,
// ergonx_batch_queue_wait_seconds, ergonx_batch_execution_seconds, by
// serving and batch key) and their state at scrape time (ergonx_serving_up,
// ergonx_serving_batch_size, ergonx_serving_batch_timeout_seconds,
// ergonx_serving_stacked_rows, ergonx_serving_requests_total and the
// rest): see package metrics for the list.
//
// # Open Inference Protocol
//
// The /v2 routes speak the Open Inference Protocol's HTTP/REST API
// (KServe's "V2 protocol", Triton's HTTP API), so that clients written
// for it — Triton's tritonclient, perf_analyzer, KServe's clients, any
// HTTP client — call ergonx servings. A serving is a model of the same
// name; Serving.Model names its input and output tensors (by default one
// input "input0" of the serving's Row and one output "output0"). The
// inputs' first axis counts rows, as in the protocol, and the rows are
// batched with every other caller's; Model.Unbatched takes each request
// as one row instead (Triton's max_batch_size 0).
//
//	$ curl -s http://127.0.0.1:8080/v2/models/digits/infer -H 'Content-Type: application/json' \
//	    -d '{"inputs":[{"name":"images","shape":[1,64],"datatype":"FP32","data":[[0,0,0.1875, ...]]}]}'
//	{"model_name":"digits","outputs":[{"name":"logits","datatype":"FP32","shape":[1,10],"data":[16.258905,...]}]}
//
// Datatypes: BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32,
// INT64, FP32, FP64; FP16, BF16 and BYTES are refused with 400. Data is
// a flat or nested JSON array in row-major order. With the binary tensor
// data extension, an input with "parameters": {"binary_data_size": n}
// sends its n bytes (little-endian, row-major; BOOL one byte 0 or 1)
// after the JSON object, whose length the Inference-Header-Content-Length
// header gives; an output asked for with "binary_data": true (or every
// output, with the request's "binary_data_output": true) comes back the
// same way, in an application/octet-stream answer. The request's "id" is
// returned; shared memory and the classification extension are refused.
// Errors answer the protocol's {"error": "..."} with the status of the
// table below, and count in the same metrics as predict requests.
//
// # Live page
//
// GET / is a page that shows, per serving, its throughput (requests,
// rows and batches per second over the last 5 s, from the serving's own
// counters: every caller counts, not only HTTP), the p50 and p99 latency
// of the HTTP requests this handler answered in the last 10 s, the queue
// depth (rows stacked and queued), busy partitions and a histogram of the
// batch sizes executed since the handler started. It polls GET /v1/live
// every second (?interval=MS changes it) and loads nothing from anywhere
// else: the page is one HTML file embedded in the binary.
//
// # Shutdown
//
// App.Stop closes the listener (new connections are refused), lets every
// in-flight request finish and answer, bounded by
// AppOptions.ShutdownTimeout or Stop's context, closes the connections
// still busy after that, then stops the application. Stopping the
// application through ergo (an exit signal to its process, the node
// stopping) drains the same way, capped at 4.5 s because ergo waits 5 s
// for an application's child. Prefer App.Stop to nd.ApplicationStop,
// which in ergo v1.999.224 can dereference nil (see App.Stop). Servings
// are not stopped: they belong to the node.
package httpapi

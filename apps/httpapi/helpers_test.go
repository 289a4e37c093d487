package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/require"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// quiet is the handlers' logger: tests print nothing.
var quiet = slog.New(slog.DiscardHandler)

// waitLimit bounds every wait of the tests.
const waitLimit = 20 * time.Second

// digitsRow is what the digits serving takes.
var digitsRow = &httpapi.Row{DType: tensor.Float32, Shape: []int{digits.Pixels}}

// heldOut returns the model and its held-out images as [1, 64] rows.
func heldOut(t testing.TB) (*digits.Model, []*tensor.Dense) {
	t.Helper()
	m, err := digits.Pretrained()
	require.NoError(t, err)
	_, test, err := digits.Split(digits.SplitSeed)
	require.NoError(t, err)
	rows := make([]*tensor.Dense, test.Len())
	for i := range rows {
		r, err := batch.SliceRows(test.X, i, 1)
		require.NoError(t, err)
		rows[i] = r.(*tensor.Dense)
	}
	return m, rows
}

// images stacks rows into one [n, 64] tensor with memory of its own.
func images(t testing.TB, rows ...*tensor.Dense) *tensor.Dense {
	t.Helper()
	var data []float32
	for _, r := range rows {
		data = append(data, r.Data().([]float32)...)
	}
	return tensor.New(tensor.WithShape(len(rows), digits.Pixels), tensor.WithBacking(data))
}

// predict runs the model directly, for the expected answers.
func predict(t testing.TB, m *digits.Model, x *tensor.Dense) []float32 {
	t.Helper()
	out, err := m.Predict(x)
	require.NoError(t, err)
	return append([]float32(nil), out.Data().([]float32)...)
}

// startServing starts a serving on nd, stopped when the test ends.
func startServing(t testing.TB, nd node.Node, opts serving.Options) {
	t.Helper()
	_, err := serving.Start(nd, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = serving.Stop(context.Background(), nd, opts.Name) })
}

// startDigits starts the digits serving under name.
func startDigits(t testing.TB, nd node.Node, name string, m *digits.Model) {
	startServing(t, nd, serving.Options{Name: name, Serving: digits.Serving(m), BatchSize: 16, BatchTimeout: time.Millisecond})
}

// newServer serves a new handler on loopback for the test.
func newServer(t testing.TB, nd node.Node, opts httpapi.Options) (*httpapi.Handler, *httptest.Server) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	h, err := httpapi.NewHandler(nd, opts)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = h.Close()
	})
	return h, srv
}

// gate is a serving whose executions announce themselves and wait until
// the test releases them; it returns its input unchanged.
type gate struct {
	started chan int // the size of every batch that starts executing
	release chan struct{}
}

// newGate returns a closed gate. Tests defer g.open(): deferred calls
// run before the cleanups, so that no server or serving waits at its
// cleanup on an execution the gate holds.
func newGate() *gate {
	return &gate{started: make(chan int, 64), release: make(chan struct{})}
}

func (g *gate) serving() *serving.Serving {
	return serving.JIT(func(in any) (any, error) {
		d := in.(*tensor.Dense)
		g.started <- d.Shape()[0]
		<-g.release
		return d, nil
	})
}

// echoServing returns its input.
func echoServing() *serving.Serving {
	return serving.JIT(func(in any) (any, error) { return in, nil })
}

// open releases every execution, now and later.
func (g *gate) open() {
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

// waitStarted waits for an execution to start.
func (g *gate) waitStarted(t testing.TB) int {
	t.Helper()
	select {
	case n := <-g.started:
		return n
	case <-time.After(waitLimit):
		dumpAndFail(t, "no execution started")
		return 0
	}
}

// waitFor polls cond until it holds, failing the test after waitLimit:
// for states that announce themselves nowhere (a request stacked in a
// serving).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			dumpAndFail(t, "timed out waiting for "+what)
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond) // a poll interval, not a synchronisation
	}
}

// recv waits for a value on ch, failing the test after waitLimit.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		dumpAndFail(t, "timed out waiting for "+what)
		var zero T
		return zero
	}
}

func dumpAndFail(t testing.TB, msg string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Fatalf("%s; goroutines:\n%s", msg, buf)
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errBody is the JSON error body.
type errBody struct {
	Error   string `json:"error"`
	Reason  string `json:"reason"`
	Serving string `json:"serving"`
}

func (r response) err(t testing.TB) errBody {
	t.Helper()
	var e errBody
	require.NoError(t, json.Unmarshal(r.body, &e), "body %s", r.body)
	return e
}

// do sends a request and reads the whole answer.
func do(t testing.TB, c *http.Client, method, url, contentType string, body []byte, header ...string) response {
	t.Helper()
	r, err := doE(c, method, url, contentType, body, header...)
	require.NoError(t, err)
	return r
}

func doE(c *http.Client, method, url, contentType string, body []byte, header ...string) (response, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// jsonTensor is a tensor body, parsed with encoding/json alone so that
// the tests do not check the package's codec against itself.
type jsonTensor struct {
	Shape []int     `json:"shape"`
	DType string    `json:"dtype"`
	Data  []float32 `json:"data"`
}

// tensorJSON writes the JSON body of a float32 tensor by hand.
func tensorJSON(shape []int, data []float32) []byte {
	b, _ := json.Marshal(jsonTensor{Shape: shape, DType: "float32", Data: data})
	return b
}

// binaryTensor writes the binary body of a float32 tensor by hand, from
// the layout in the package doc.
func binaryTensor(shape []int, data []float32) []byte {
	var b bytes.Buffer
	b.WriteString("ENXT")
	b.Write([]byte{1, 'f', 32, byte(len(shape))})
	for _, n := range shape {
		b.Write(le32(uint32(n)))
	}
	for _, f := range data {
		b.Write(le32(math.Float32bits(f)))
	}
	return b.Bytes()
}

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

// predictURL is the predict route of serving name.
func predictURL(srv *httptest.Server, name string) string {
	return srv.URL + "/v1/servings/" + name + "/predict"
}

// isConnRefused tells whether err is a refused connection.
func isConnRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// A serving whose queue is full answers 429 with Retry-After (the
// serving's own estimate, in whole seconds), reason "overloaded"; once
// its queue has room, the next request is served.
func TestOverloadedServingAnswers429WithRetryAfter(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	g := newGate()
	defer g.open()
	startServing(t, nd, serving.Options{Name: "slow", Serving: g.serving(), BatchSize: 1, MaxQueue: 1})
	_, srv := newServer(t, nd, httpapi.Options{Servings: []httpapi.Serving{{Name: "slow"}}})
	body := tensorJSON([]int{1, 1}, []float32{1})

	first := make(chan response, 2)
	for range 2 {
		go func() { first <- do(t, nil, "POST", predictURL(srv, "slow"), "", body) }()
	}
	g.waitStarted(t) // one runs; the other waits in the queue, which is then full
	waitFor(t, "a row in the queue", func() bool {
		st, err := serving.GetStats(nd, "slow")
		return err == nil && st.QueuedRows+st.StackedRows == 1
	})
	r := do(t, nil, "POST", predictURL(srv, "slow"), "", body)
	require.Equal(t, http.StatusTooManyRequests, r.status, "body %s", r.body)
	assert.Equal(t, "overloaded", r.err(t).Reason)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Contains(t, r.err(t).Error, "overloaded")

	g.open()
	for range 2 {
		require.Equal(t, http.StatusOK, recv(t, first, "a queued answer").status)
	}
	r = do(t, nil, "POST", predictURL(srv, "slow"), "", body)
	require.Equal(t, http.StatusOK, r.status)
}

// Beyond MaxConcurrent requests in progress, a request gets 503 "busy"
// with Retry-After: 1 at once, on our routes and the Open Inference
// Protocol's.
func TestBusyAnswers503WithRetryAfter(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	g := newGate()
	defer g.open()
	startServing(t, nd, serving.Options{Name: "slow", Serving: g.serving(), BatchSize: 1})
	_, srv := newServer(t, nd, httpapi.Options{MaxConcurrent: 1, Servings: []httpapi.Serving{{Name: "slow"}}})
	held := make(chan response, 1)
	go func() { held <- do(t, nil, "POST", predictURL(srv, "slow"), "", tensorJSON([]int{1, 1}, []float32{1})) }()
	g.waitStarted(t)

	r := do(t, nil, "POST", predictURL(srv, "slow"), "", tensorJSON([]int{1, 1}, []float32{2}))
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "busy", r.err(t).Reason)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	infer := `{"inputs":[{"name":"input0","shape":[1,1],"datatype":"FP32","data":[3]}]}`
	r = do(t, nil, "POST", srv.URL+"/v2/models/slow/infer", "application/json", []byte(infer))
	require.Equal(t, http.StatusServiceUnavailable, r.status, "body %s", r.body)
	assert.Equal(t, "1", r.header.Get("Retry-After"))

	g.open()
	require.Equal(t, http.StatusOK, recv(t, held, "the held answer").status)
	r = do(t, nil, "POST", predictURL(srv, "slow"), "", tensorJSON([]int{1, 1}, []float32{4}))
	require.Equal(t, http.StatusOK, r.status, "room again")
}

// inFlight reads ergonx_http_requests_in_flight, summed over servings.
func inFlight(t testing.TB, h *httpapi.Handler) int {
	mfs, err := h.Registry().Gather()
	require.NoError(t, err)
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "ergonx_http_requests_in_flight" {
			for _, m := range mf.GetMetric() {
				n += m.GetGauge().GetValue()
			}
		}
	}
	return int(n)
}

// heapInUse is the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Slow clients cost memory for what they send, not for what they claim:
// 40 connections whose headers claim a 32 MiB body (the largest allowed)
// and that then send 1 KiB and stall hold less than 8 MiB in all (sizing
// buffers by the claim took 1.3 GB); BodyTimeout then cuts every one.
// A claim over MaxBodyBytes is refused with 413 before anything is read,
// and a client that trickles its headers is cut by ReadHeaderTimeout.
func TestSlowClientsCostBoundedMemory(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	startServing(t, nd, serving.Options{Name: "echo", Serving: echoServing(), BatchSize: 1})
	app := startApp(t, nd, httpapi.AppOptions{
		ReadHeaderTimeout: 300 * time.Millisecond,
		Handler: httpapi.Options{
			BodyTimeout: 500 * time.Millisecond,
			Servings:    []httpapi.Serving{{Name: "echo"}},
		},
	})
	addr := app.Addr().String()
	before := heapInUse()

	const clients = 40
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = fmt.Fprintf(c, "POST /v1/servings/echo/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: %d\r\n\r\n%s", httpapi.DefaultMaxBodyBytes, strings.Repeat(" ", 1024))
		require.NoError(t, err)
		conns[i] = c
	}
	waitFor(t, "every slow request in its handler", func() bool {
		return inFlight(t, app.Handler()) == clients
	})
	held := heapInUse()
	t.Logf("heap in use: %d KiB before, %d KiB with %d slow clients", before>>10, held>>10, clients)
	assert.Less(t, held, before+8<<20, "slow clients hold memory for what they claim")

	// Every slow body is cut: the server closes each connection (after a
	// 400 or without an answer).
	for i, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(waitLimit)))
		_, err := io.ReadAll(c)
		require.NoError(t, err, "connection %d: the server closes it", i)
	}

	// A claim over the limit: 413 at once.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /v1/servings/echo/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n\r\n", httpapi.DefaultMaxBodyBytes+1)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

	// Slowloris: a header line and nothing more.
	s, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer s.Close()
	_, err = io.WriteString(s, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(waitLimit)))
	start := time.Now()
	_, err = io.ReadAll(s)
	require.NoError(t, err, "the server closes a connection whose headers never end")
	assert.Less(t, time.Since(start), waitLimit)
}

// With a ShutdownDelay, a stopping server answers /readyz 503 while its
// listener still accepts, for the delay, and only then refuses.
func TestShutdownDelayFailsReadinessBeforeTheListenerCloses(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	startServing(t, nd, serving.Options{Name: "echo", Serving: echoServing(), BatchSize: 1})
	closed := make(chan struct{})
	defer httpapi.SetTestHookShutdown(func() { close(closed) })()
	app := startApp(t, nd, httpapi.AppOptions{ShutdownDelay: 300 * time.Millisecond,
		Handler: httpapi.Options{Servings: []httpapi.Serving{{Name: "echo"}}}})
	base := "http://" + app.Addr().String()
	require.Equal(t, http.StatusOK, do(t, fresh(), "GET", base+"/readyz", "", nil).status)

	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(context.Background()) }()
	waitFor(t, "readiness to fail", func() bool {
		r, err := doE(fresh(), "GET", base+"/readyz", "", nil)
		return err == nil && r.status == http.StatusServiceUnavailable
	})
	select {
	case <-closed:
		t.Fatal("the listener closed before the delay")
	default:
	}
	r := do(t, fresh(), "GET", base+"/healthz", "", nil)
	assert.Equal(t, http.StatusOK, r.status, "still alive, still accepting")
	recv(t, closed, "the listener to close after the delay")
	require.NoError(t, recv(t, stopped, "Stop"))
}

// recorder passes every message it gets to a channel.
type recorder struct{ got chan etf.Term }

func (r *recorder) Init(gen.Process, ...etf.Term) error { return nil }
func (r *recorder) HandleMessage(_ gen.Process, _ etf.Pid, msg etf.Term) string {
	r.got <- msg
	return ""
}
func (r *recorder) Terminate(gen.Process, string) {}

// The HTTP application's process survives any term sent to it (ergo's
// gen.Server died on an empty tuple, leaving the HTTP server with no
// process behind it), and keeps serving.
func TestStrayTermsToTheHTTPApplicationHarmNothing(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startDigits(t, nd, "digits", m)
	app := startApp(t, nd, httpapi.AppOptions{Handler: httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow}}}})
	base := "http://" + app.Addr().String()
	info, err := nd.ApplicationInfo(httpapi.Name)
	require.NoError(t, err)
	appProc := nd.ProcessByPid(info.PID)
	require.NotNil(t, appProc)
	children, err := appProc.Children()
	require.NoError(t, err)
	require.Len(t, children, 1)
	child := children[0]

	rec := &recorder{got: make(chan etf.Term, 16)}
	from, err := nd.Spawn("", gen.ProcessOptions{}, actors.NewActor(rec))
	require.NoError(t, err)
	defer from.Kill()
	for _, term := range []etf.Term{etf.Tuple{}, etf.List{etf.Atom("x")}, etf.Tuple{etf.Atom("$gen_call")},
		etf.Tuple{etf.Atom("$gen_cast")}, 42, []byte("junk"), etf.Tuple{etf.Atom("EXIT"), from.Self(), "nope"}} {
		require.NoError(t, from.Send(child, term))
	}
	// A call after them is answered once they are handled (one sender's
	// messages arrive in order).
	ref := from.MakeRef()
	require.NoError(t, from.Send(child, etf.Tuple{etf.Atom("$gen_call"), etf.Tuple{from.Self(), ref}, etf.Atom("ping")}))
	assert.Equal(t, etf.Tuple{ref, etf.Atom("badarg")}, recv(t, rec.got, "the answer to the call"))
	require.NotNil(t, nd.ProcessByPid(child), "the process lives")
	r := do(t, fresh(), "POST", base+"/v1/servings/digits/predict", "", tensorJSON([]int{1, 64}, rows[0].Data().([]float32)))
	require.Equal(t, http.StatusOK, r.status)
}

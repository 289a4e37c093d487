package httpapi_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/internal/testnode"
	"github.com/ergonx/ergonx/serving"
)

// startApp starts the HTTP application on a free loopback port; the test
// stops it at its end if it still runs.
func startApp(t testing.TB, nd node.Node, opts httpapi.AppOptions) *httpapi.App {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	if opts.Handler.Logger == nil {
		opts.Handler.Logger = quiet
	}
	app, err := httpapi.Start(nd, opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, app.Stop(context.Background())) })
	return app
}

// appNames lists the names of nd's loaded and running applications.
func appNames(nd node.Node) (loaded, running []string) {
	for _, a := range nd.LoadedApplications() {
		loaded = append(loaded, a.Name)
	}
	for _, a := range nd.WhichApplications() {
		running = append(running, a.Name)
	}
	return loaded, running
}

// fresh is a client whose every request opens a new connection.
func fresh() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// The application serves the API on a real listener with the node.
func TestAppServesDigits(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	m, rows := heldOut(t)
	startDigits(t, nd, "digits", m)
	app := startApp(t, nd, httpapi.AppOptions{Handler: httpapi.Options{Servings: []httpapi.Serving{{Name: "digits", Row: digitsRow}}}})
	require.NotNil(t, app.Addr())
	base := "http://" + app.Addr().String()
	_, running := appNames(nd)
	assert.Contains(t, running, httpapi.Name)

	r := do(t, fresh(), "GET", base+"/healthz", "", nil)
	require.Equal(t, http.StatusOK, r.status)

	x := images(t, rows[10], rows[11])
	r = do(t, fresh(), "POST", base+"/v1/servings/digits/predict", "application/json", tensorJSON([]int{2, 64}, x.Data().([]float32)))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var got jsonTensor
	require.NoError(t, json.Unmarshal(r.body, &got))
	assert.Equal(t, predict(t, m, x), got.Data)
}

// App.Stop drains: the listener closes at once (new connections are
// refused, /readyz says draining), the request in flight completes with
// 200, then the application stops and unloads.
func TestAppStopDrainsInFlightRequests(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	g := newGate()
	defer g.open()
	startServing(t, nd, serving.Options{Name: "slow", Serving: g.serving(), BatchSize: 1})
	closed := make(chan struct{})
	defer httpapi.SetTestHookShutdown(func() { close(closed) })()
	app := startApp(t, nd, httpapi.AppOptions{ShutdownTimeout: time.Minute,
		Handler: httpapi.Options{Servings: []httpapi.Serving{{Name: "slow"}}}})
	base := "http://" + app.Addr().String()
	h := app.Handler()

	inFlight := make(chan response, 1)
	go func() {
		r, err := doE(fresh(), "POST", base+"/v1/servings/slow/predict", "", tensorJSON([]int{1, 2}, []float32{3, 4}))
		assert.NoError(t, err)
		inFlight <- r
	}()
	g.waitStarted(t)

	stopped := make(chan error, 1)
	go func() { stopped <- app.Stop(context.Background()) }()
	recv(t, closed, "the listener to close")

	_, err := doE(fresh(), "GET", base+"/healthz", "", nil)
	assert.True(t, isConnRefused(err), "a new connection after shutdown: want refused, got %v", err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v with a request in flight", err)
	default:
	}

	g.open()
	r := recv(t, inFlight, "the in-flight answer")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	assert.JSONEq(t, `{"shape":[1,2],"dtype":"float32","data":[3,4]}`, string(r.body))
	require.NoError(t, recv(t, stopped, "Stop"))

	assert.Nil(t, app.Addr())
	assert.Nil(t, app.Handler())
	loaded, _ := appNames(nd)
	assert.NotContains(t, loaded, httpapi.Name)
	require.NoError(t, app.Stop(context.Background()), "stopping twice")
}

// appProcess returns the process of the running HTTP application.
func appProcess(t testing.TB, nd node.Node) gen.Process {
	t.Helper()
	for _, a := range nd.WhichApplications() {
		if a.Name == httpapi.Name {
			p := nd.ProcessByPid(a.PID)
			require.NotNil(t, p)
			return p
		}
	}
	t.Fatalf("%s is not running", httpapi.Name)
	return nil
}

// Stopping the application through ergo (an exit signal to its process,
// as ApplicationStop sends) drains the same way; starting it again
// listens anew.
func TestAppExitSignalDrainsAndRestarts(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	g := newGate()
	defer g.open()
	startServing(t, nd, serving.Options{Name: "slow", Serving: g.serving(), BatchSize: 1})
	closed := make(chan struct{}, 2)
	defer httpapi.SetTestHookShutdown(func() { closed <- struct{}{} })()
	app := startApp(t, nd, httpapi.AppOptions{Handler: httpapi.Options{Servings: []httpapi.Serving{{Name: "slow"}}}})
	base := "http://" + app.Addr().String()

	inFlight := make(chan response, 1)
	go func() {
		r, err := doE(fresh(), "POST", base+"/v1/servings/slow/predict", "", tensorJSON([]int{1, 1}, []float32{7}))
		assert.NoError(t, err)
		inFlight <- r
	}()
	g.waitStarted(t)
	p := appProcess(t, nd)
	require.NoError(t, p.Exit("shutdown"))
	recv(t, closed, "the listener to close")
	select {
	case <-p.Context().Done():
		t.Fatal("the application ended with a request in flight")
	default:
	}
	g.open()
	r := recv(t, inFlight, "the in-flight answer")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	recv(t, p.Context().Done(), "the application to end")
	_, running := appNames(nd)
	assert.NotContains(t, running, httpapi.Name)
	assert.Nil(t, app.Addr())

	_, err := nd.ApplicationStart(httpapi.Name)
	require.NoError(t, err)
	require.NotNil(t, app.Addr())
	r = do(t, fresh(), "POST", "http://"+app.Addr().String()+"/v1/servings/slow/predict", "", tensorJSON([]int{1, 1}, []float32{8}))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
}

// A drain that outlasts its bound cuts the connections still busy, and
// Stop says so; the application is stopped all the same.
func TestAppStopTimeoutCutsInFlightRequests(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	g := newGate()
	defer g.open()
	startServing(t, nd, serving.Options{Name: "slow", Serving: g.serving(), BatchSize: 1})
	app := startApp(t, nd, httpapi.AppOptions{Handler: httpapi.Options{Servings: []httpapi.Serving{{Name: "slow"}}}})
	base := "http://" + app.Addr().String()

	inFlight := make(chan error, 1)
	go func() {
		_, err := doE(fresh(), "POST", base+"/v1/servings/slow/predict", "", tensorJSON([]int{1, 1}, []float32{7}))
		inFlight <- err
	}()
	g.waitStarted(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := app.Stop(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "requests still in flight when the shutdown timed out were cut")
	assert.Error(t, recv(t, inFlight, "the cut request"), "the client sees its connection closed")
	_, running := appNames(nd)
	assert.NotContains(t, running, httpapi.Name)
}

// Start reports what keeps the server from starting and leaves nothing
// behind.
func TestStartErrors(t *testing.T) {
	nd := testnode.Start(t, testnode.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	_, err = httpapi.Start(nd, httpapi.AppOptions{Addr: ln.Addr().String()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "address already in use")

	_, err = httpapi.Start(nd, httpapi.AppOptions{Addr: "127.0.0.1:0",
		Handler: httpapi.Options{Servings: []httpapi.Serving{{Name: "a"}, {Name: "a"}}}})
	require.ErrorIs(t, err, httpapi.ErrInvalidOptions)

	loaded, _ := appNames(nd)
	assert.False(t, slices.Contains(loaded, httpapi.Name), "loaded: %v", loaded)
}

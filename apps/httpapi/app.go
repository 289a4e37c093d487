package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/lib"
	"github.com/ergo-services/ergo/node"
	"golang.org/x/net/netutil"

	"github.com/ergonx/ergonx/actors"
)

// Name is the application's name on the node.
const Name = "ergonx_http"

// Defaults of AppOptions.
const (
	DefaultAddr              = "127.0.0.1:8080"
	DefaultShutdownTimeout   = 4 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	// DefaultMaxConnections bounds the connections served at once.
	DefaultMaxConnections = 8192
	// DefaultMaxHeaderBytes bounds a request's header block.
	DefaultMaxHeaderBytes = 64 << 10
)

// ergoChildWait is how long ergo v1.999.224's gen.Application waits for
// each child to end when it stops.
const ergoChildWait = 5 * time.Second

// ergoDrainLimit bounds the drain that runs when ergo stops the
// application (an exit signal, the node stopping). ergo
// v1.999.224's gen.Application waits 5 s for each child to end; past
// that it gives up on stopping, the application keeps running, and when
// the child ends later a permanent application takes the node down. So
// the child must be gone within 5 s, with a margin. App.Stop drains
// before asking ergo, for as long as its context allows.
const ergoDrainLimit = 4500 * time.Millisecond

// AppOptions configure the HTTP application. Every field may be left
// zero for its default; Handler.Servings lists what it serves.
type AppOptions struct {
	// Addr is the TCP address to listen on. "" means DefaultAddr
	// (loopback only); ":8080" listens on every interface; port 0 picks
	// a free port (App.Addr tells which).
	Addr string

	// Listener, when set, is used instead of listening on Addr, for the
	// application's first start only (it is closed when the application
	// stops). The application owns it.
	Listener net.Listener

	// Handler configures the Handler the application serves. The
	// application builds a new one at every start and closes it at stop.
	Handler Options

	// ShutdownTimeout bounds how long stopping waits for in-flight
	// requests; connections still busy then are closed. 0 means
	// DefaultShutdownTimeout; negative means no bound in App.Stop (its
	// context decides). When ergo stops the application (an exit signal,
	// the node stopping), the drain is capped at 4.5 s whatever this says,
	// because ergo gives an application's child 5 s to end.
	ShutdownTimeout time.Duration

	// ReadHeaderTimeout and IdleTimeout are those of http.Server: a
	// client that trickles its headers (slowloris) is cut after the
	// first, an idle keep-alive connection after the second. 0 means
	// DefaultReadHeaderTimeout and DefaultIdleTimeout. The body's own
	// bound is Handler.BodyTimeout.
	ReadHeaderTimeout, IdleTimeout time.Duration

	// MaxHeaderBytes bounds a request's header block (http.Server's). 0
	// means DefaultMaxHeaderBytes.
	MaxHeaderBytes int

	// MaxConnections bounds the connections served at once; more wait in
	// the listener's backlog until one closes. With ReadHeaderTimeout and
	// Handler.BodyTimeout it bounds what slow clients can hold. 0 means
	// DefaultMaxConnections; negative means no bound.
	MaxConnections int

	// ShutdownDelay is how long a stopping server keeps its listener open
	// while GET /readyz already answers 503, so that load balancers take
	// it out of rotation before connections are refused. It counts within
	// the shutdown's own bound. 0 means none.
	ShutdownDelay time.Duration
}

// App is the ergo application that serves a Handler over HTTP: its one
// child, a gen.Server process, owns an http.Server. An App's methods are
// safe for concurrent use. The server listens when the application
// starts and shuts down gracefully when it stops:
// the listener closes at once (new connections are refused), idle
// connections close, in-flight requests run to their answers, bounded by
// AppOptions.ShutdownTimeout, and GET /readyz answers 503 meanwhile.
//
// Start starts one; NewApp returns one to load and start yourself
// (nd.ApplicationLoad, then nd.ApplicationStart with the start type you
// want).
type App struct {
	gen.Application

	nd   node.Node
	opts AppOptions

	mu       sync.Mutex  // guards the fields below
	loaded   bool        // between Load and App.Stop's unload
	proc     gen.Process // the application's process, from its last start
	listener net.Listener
	pending  *running // opened by Start, taken by the server process's Init
	run      *running // the running server, nil while the application is stopped

	done     chan struct{} // closed when the application's process ends
	doneOnce sync.Once
}

var _ gen.ApplicationBehavior = (*App)(nil)

// testHookShutdown, when set (by tests, before the application starts),
// runs once a server's listener is closed at shutdown.
var testHookShutdown func()

// NewApp returns the HTTP application for nd. Nothing runs until the
// application is loaded and started. The server listens when the
// application's child starts; ergo v1.999.224 reports a child that fails
// to start (the address in use) only as a failed start ("panic") and logs
// the cause, so prefer Start, which listens first and returns the error.
func NewApp(nd node.Node, opts AppOptions) *App {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxHeaderBytes == 0 {
		opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	a := &App{nd: nd, opts: opts, listener: opts.Listener, done: make(chan struct{})}
	a.opts.Listener = nil
	return a
}

// Start starts the HTTP application on nd as a permanent application
// (if its server fails, the node stops, as OTP does): it listens, then
// loads and starts the application. Errors (the address in use, invalid
// handler options) come back here, with nothing left running. Stop it
// with App.Stop.
func Start(nd node.Node, opts AppOptions) (*App, error) {
	a := NewApp(nd, opts)
	run, err := a.open()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.pending = run
	a.mu.Unlock()
	if _, err := nd.ApplicationLoad(a); err != nil {
		a.discardPending()
		return nil, fmt.Errorf("httpapi: load on %s: %w", nd.Name(), err)
	}
	if _, err := nd.ApplicationStartPermanent(Name); err != nil {
		a.discardPending()
		_ = nd.ApplicationUnload(Name)
		return nil, fmt.Errorf("httpapi: start on %s: %w", nd.Name(), err)
	}
	return a, nil
}

// Load describes the application: one child, the server process.
func (a *App) Load(...etf.Term) (gen.ApplicationSpec, error) {
	a.mu.Lock()
	a.loaded = true
	a.mu.Unlock()
	return gen.ApplicationSpec{
		Name:        Name,
		Description: "ergonx HTTP inference API",
		Version:     "v1",
		Children:    []gen.ApplicationChildSpec{{Child: actors.NewActor(&server{app: a})}},
	}, nil
}

// Start is called by ergo once the application's child runs (the server
// is already listening then), with the application's process, which
// App.Stop signals.
func (a *App) Start(p gen.Process, _ ...etf.Term) {
	a.mu.Lock()
	a.proc = p
	a.mu.Unlock()
	go func() {
		<-p.Context().Done()
		a.doneOnce.Do(func() { close(a.done) })
	}()
}

// Done is closed when the application's process ends: after Stop, or
// when it stopped by itself (its server failed, the node stopped). A
// program that serves HTTP until told to stop watches it to learn that
// it no longer serves.
func (a *App) Done() <-chan struct{} { return a.done }

// Addr returns the address the server listens on, or nil while the
// application is not running.
func (a *App) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run == nil {
		return nil
	}
	return a.run.ln.Addr()
}

// Handler returns the running server's handler, or nil while the
// application is not running.
func (a *App) Handler() *Handler {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.run == nil {
		return nil
	}
	return a.run.h
}

// Stop stops the application gracefully: it closes the listener (new
// connections are refused), waits for in-flight requests to be answered
// until ctx ends (bounded by AppOptions.ShutdownTimeout when ctx has no
// deadline), closes the connections still open then, stops the
// application's process and unloads the application. The error reports a
// drain cut short; the application is stopped either way. Stopping an
// application that is not loaded (Stop already ran) returns nil.
//
// Prefer Stop to nd.ApplicationStop: in ergo v1.999.224, ApplicationStop
// reads the application's process after signalling it, which races with
// the process clearing it as it ends, and dereferences nil when the
// application ends first (which it does at once when nothing is in
// flight). Stop signals the process itself and waits for it to end.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	run, loaded, proc := a.run, a.loaded, a.proc
	a.mu.Unlock()
	if !loaded {
		return nil
	}
	var drainErr error
	if run != nil {
		if _, ok := ctx.Deadline(); !ok && a.opts.ShutdownTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, a.opts.ShutdownTimeout)
			defer cancel()
		}
		drainErr = run.drain(ctx)
	}
	if proc != nil && proc.Context().Err() == nil {
		// The application stops its child (already drained: it ends at
		// once) and then itself; its context ends after both.
		if err := proc.Exit("normal"); err != nil && !errors.Is(err, lib.ErrProcessUnknown) && !errors.Is(err, lib.ErrProcessTerminated) {
			return fmt.Errorf("httpapi: stop on %s: %w", a.nd.Name(), err)
		}
		select {
		case <-proc.Context().Done():
		case <-time.After(2 * ergoChildWait):
			return fmt.Errorf("httpapi: stop on %s: the application did not end within %v", a.nd.Name(), 2*ergoChildWait)
		}
	}
	if err := a.nd.ApplicationUnload(Name); err != nil && !errors.Is(err, lib.ErrAppUnknown) {
		return fmt.Errorf("httpapi: unload on %s: %w", a.nd.Name(), err)
	}
	a.mu.Lock()
	a.loaded, a.proc = false, nil
	a.mu.Unlock()
	return drainErr
}

// running is one start of the server: the listener, the handler and the
// http.Server, and the goroutine that serves.
type running struct {
	ln     net.Listener
	h      *Handler
	srv    *http.Server
	served chan struct{} // closed when Serve has returned
	delay  time.Duration // AppOptions.ShutdownDelay

	drainMu  sync.Mutex // serialises drain; guards the fields below
	drained  bool
	drainErr error
}

// open listens and builds the handler and the server, for one start.
func (a *App) open() (*running, error) {
	a.mu.Lock()
	ln := a.listener
	a.listener = nil
	a.mu.Unlock()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", a.opts.Addr); err != nil {
			return nil, fmt.Errorf("httpapi: %w", err)
		}
	}
	h, err := NewHandler(a.nd, a.opts.Handler)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	if a.opts.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, a.opts.MaxConnections)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: a.opts.ReadHeaderTimeout,
		IdleTimeout:       a.opts.IdleTimeout,
		MaxHeaderBytes:    a.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
	}
	if hook := testHookShutdown; hook != nil {
		// Shutdown runs these once it has closed the listeners.
		srv.RegisterOnShutdown(hook)
	}
	return &running{ln: ln, h: h, srv: srv, served: make(chan struct{}), delay: a.opts.ShutdownDelay}, nil
}

// discardPending closes what Start opened if no server took it.
func (a *App) discardPending() {
	a.mu.Lock()
	run := a.pending
	a.pending = nil
	a.mu.Unlock()
	if run != nil {
		_ = run.ln.Close()
		_ = run.h.Close()
	}
}

// serve runs the server on its own goroutine. If Serve fails (not
// because of a shutdown), the server process is told, and stops with
// the error.
func (r *running) serve(sp gen.Process) {
	self := sp.Self()
	go func() {
		err := r.srv.Serve(r.ln)
		close(r.served)
		if !errors.Is(err, http.ErrServerClosed) {
			_ = sp.Send(self, serveFailed{err: err})
		}
	}()
}

// drain shuts the server down gracefully, waiting for in-flight requests
// until ctx ends, then closes what is left. Later calls return the first
// one's result at once.
func (r *running) drain(ctx context.Context) error {
	r.drainMu.Lock()
	defer r.drainMu.Unlock()
	if r.drained {
		return r.drainErr
	}
	r.h.SetDraining(true)
	if r.delay > 0 {
		// Readiness fails from now on; the listener stays open meanwhile.
		timer := time.NewTimer(r.delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
	}
	err := r.srv.Shutdown(ctx)
	if err != nil {
		// Close cuts the connections still busy; their handlers see their
		// requests' contexts end.
		_ = r.srv.Close()
		err = fmt.Errorf("httpapi: requests still in flight when the shutdown timed out were cut: %w", err)
	}
	// Shutdown closed the listener, so Serve has returned or will at once.
	<-r.served
	r.drained, r.drainErr = true, err
	return err
}

// serveFailed tells the server process that Serve failed.
type serveFailed struct{ err error }

// server is the application's child: the process that owns the running
// http.Server. It traps exits, so that the application's exit signal
// arrives as a message and the in-flight requests can drain before it
// ends. It runs on actors.Actor, not ergo's gen.Server, which any node
// could kill by sending it an empty tuple — leaving the HTTP server
// running with no process behind it (tests.TestErgoGenServerDiesOnAnEmptyTuple).
type server struct {
	app *App

	// The process's own, set by Init.
	run    *running
	parent etf.Pid // the application's process
	failed bool    // Serve failed: the application must learn of the exit
}

var _ actors.Behavior = (*server)(nil)

// Init takes the server Start opened, or opens one (when the application
// is started again, or by someone other than Start), and serves.
func (s *server) Init(sp gen.Process, _ ...etf.Term) error {
	sp.SetTrapExit(true)
	a := s.app
	a.mu.Lock()
	run := a.pending
	a.pending = nil
	a.mu.Unlock()
	if run == nil {
		var err error
		if run, err = a.open(); err != nil {
			return err
		}
	}
	s.run, s.failed = run, false
	if p := sp.Parent(); p != nil {
		s.parent = p.Self()
	}
	a.mu.Lock()
	a.run = run
	a.mu.Unlock()
	run.serve(sp)
	return nil
}

// HandleMessage drains and stops on an exit signal, and stops when Serve
// failed. Anything else is ignored.
func (s *server) HandleMessage(sp gen.Process, _ etf.Pid, msg etf.Term) string {
	switch m := msg.(type) {
	case gen.MessageExit:
		s.stop(sp)
		return m.Reason
	case serveFailed:
		s.run.h.log.Error("httpapi: the HTTP server failed; stopping", "error", m.err)
		s.failed = true
		return "httpapi: serve: " + m.err.Error()
	}
	return ""
}

// Terminate drains, however the process ends (an exit signal, a kill,
// the node stopping), and releases the handler.
func (s *server) Terminate(sp gen.Process, _ string) { s.stop(sp) }

// stop drains the server within ergo's limit and releases it. It runs on
// the process and may run twice (HandleInfo, then Terminate).
func (s *server) stop(sp gen.Process) {
	run := s.run
	if run == nil {
		return
	}
	if !s.failed && s.parent != (etf.Pid{}) {
		// The application is ending (it signalled this exit, or the node
		// stops): it needs no exit signal back. ergo would send one over
		// the link as this process ends, reading the application's
		// fields while the application clears them as it ends too, a
		// data race inside ergo.
		_ = sp.Unlink(s.parent)
	}
	limit := ergoDrainLimit
	if t := s.app.opts.ShutdownTimeout; t > 0 && t < limit {
		limit = t
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	if err := run.drain(ctx); err != nil {
		run.h.log.Warn("httpapi: shutdown", "error", err)
	}
	cancel()
	_ = run.h.Close()
	a := s.app
	a.mu.Lock()
	if a.run == run {
		a.run = nil
	}
	a.mu.Unlock()
	s.run = nil
}

package serving

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
)

// server is the serving actor: the gen.Server registered under the
// serving's name, child of the serving's supervisor after the task
// supervisor. It owns the engine's life: Init computes the partitions,
// initialises the module for Process and builds the engine; an exit
// signal (or any end of the process) shuts the engine down the way Nx's
// terminate does. Callers on the node reach the engine through the
// process's behaviour, without a message (see the package doc).
type server struct {
	gen.Server
	cfg    *config
	tasks  *taskSupRef
	engine atomic.Pointer[engine] // nil until Init has finished
}

// taskSupRef passes the task supervisor started for the same supervisor
// run to the serving actor started after it.
type taskSupRef struct {
	ts atomic.Pointer[actors.TaskSupervisor]
}

var _ gen.ServerBehavior = (*server)(nil)

// Init runs inside the supervisor's start: an error here fails Start.
func (s *server) Init(sp *gen.ServerProcess, _ ...etf.Term) error {
	// Exit signals arrive as messages, so that running batches can finish.
	sp.SetTrapExit(true)
	partitions, err := s.cfg.partitionOptions()
	if err != nil {
		return err
	}
	state, err := callInit(s.cfg.serving.module, Process, s.cfg.serving.arg, partitions)
	if err != nil {
		return err
	}
	ts := s.tasks.ts.Load()
	if ts == nil {
		return fmt.Errorf("serving %q: internal error: no task supervisor", s.cfg.name)
	}
	e := newEngine(engineConfig{
		node:            sp.NodeName(),
		name:            s.cfg.name,
		serving:         s.cfg.serving,
		batchSize:       s.cfg.batchSize,
		batchTimeout:    s.cfg.batchTimeout,
		shutdownTimeout: s.cfg.shutdown,
		partitions:      partitions,
		clock:           s.cfg.clock,
		runner:          ts,
	}, state)
	s.engine.Store(e)
	register(sp.NodeName(), s.cfg.name, e)
	if err := s.joinGroup(sp, len(partitions)); err != nil {
		e.shutdown()
		return err
	}
	// However the process ends (even killed while busy, when ergo may not
	// call Terminate in time), its context is cancelled: the engine then
	// stops taking requests and answers the stacked and queued ones.
	go func() {
		<-sp.Context().Done()
		e.shutdown()
	}()
	return nil
}

// HandleInfo handles the shutdown exit signal from the supervisor: the
// engine answers stacked and queued callers with ErrNoProc and waits for
// the running batches (at most Shutdown), then the process exits.
// Batches report to the engine directly, so waiting here blocks nothing
// they need.
func (s *server) HandleInfo(_ *gen.ServerProcess, msg etf.Term) gen.ServerStatus {
	if m, ok := msg.(gen.MessageExit); ok {
		if e := s.engine.Load(); e != nil {
			e.shutdown()
		}
		return gen.ServerStatusStopWithReason(m.Reason)
	}
	slog.Warn("serving: unknown message", "serving", s.cfg.name, "message", fmt.Sprint(msg))
	return gen.ServerStatusOK
}

// Terminate shuts the engine down if the process ends another way (a
// panic, a kill, the node stopping).
func (s *server) Terminate(_ *gen.ServerProcess, _ string) {
	if e := s.engine.Load(); e != nil {
		e.shutdown()
	}
}

// joinGroup makes the serving a member of the process group of its name,
// partitions × weight times, when the node has a scope; the engine leaves
// the group when it starts to stop, before anything else, so that remote
// callers stop picking it.
func (s *server) joinGroup(sp *gen.ServerProcess, partitions int) error {
	if s.cfg.node == nil {
		return nil
	}
	scope := pg.Lookup(s.cfg.node, pg.DefaultScope)
	if scope == nil {
		return nil // no runtime application: a local serving only
	}
	pids := make([]etf.Pid, max(1, partitions*s.cfg.weight))
	for i := range pids {
		pids[i] = sp.Self()
	}
	if err := scope.Join(s.cfg.name, pids...); err != nil {
		return fmt.Errorf("serving %q: join its process group: %w", s.cfg.name, err)
	}
	s.engine.Load().onStop = func() {
		if err := scope.Leave(s.cfg.name, pids...); err != nil && !errors.Is(err, pg.ErrStopped) && !errors.Is(err, pg.ErrNotJoined) {
			slog.Warn("serving: leave process group", "serving", s.cfg.name, "error", err)
		}
	}
	return nil
}

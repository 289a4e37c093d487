package serving

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/internal/safelog"
)

// server is the serving actor: the process registered under the
// serving's name, child of the serving's supervisor after the task
// supervisor. It owns the engine's life: Init computes the partitions,
// initialises the module for Process and builds the engine; an exit
// signal (or any end of the process) shuts the engine down the way Nx's
// terminate does. Callers on the node reach the engine through the
// process's behaviour, without a message (see the package doc).
type server struct {
	cfg    *config
	ref    *startRef
	engine atomic.Pointer[engine] // nil until Init has finished
}

// startRef passes the task supervisor started for the same supervisor run
// to the serving actor started after it, and the actor's engine to Start.
type startRef struct {
	ts     atomic.Pointer[actors.TaskSupervisor]
	engine atomic.Pointer[engine]
}

// It runs on actors.Actor, not ergo's gen.Server, which any node can kill
// by sending it an empty tuple.
var _ actors.Behavior = (*server)(nil)

// Init runs inside the supervisor's start: an error here fails Start.
func (s *server) Init(sp gen.Process, _ ...etf.Term) error {
	// Exit signals arrive as messages, so that running batches can finish.
	sp.SetTrapExit(true)
	ts := s.ref.ts.Load()
	if ts == nil {
		return fmt.Errorf("serving %q: internal error: no task supervisor", s.cfg.name)
	}
	e, err := s.cfg.build(sp.NodeName(), ts)
	if err != nil {
		return err
	}
	s.engine.Store(e)
	s.ref.engine.Store(e)
	register(sp.NodeName(), s.cfg.name, e)
	if err := s.joinGroup(sp, len(e.partitions)); err != nil {
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

// HandleMessage handles the shutdown exit signal from the supervisor: the
// engine answers stacked and queued callers with ErrNoProc and waits for
// the running batches (at most Shutdown), then the process exits.
// Batches report to the engine directly, so waiting here blocks nothing
// they need.
func (s *server) HandleMessage(_ gen.Process, _ etf.Pid, msg etf.Term) string {
	if m, ok := msg.(gen.MessageExit); ok {
		if e := s.engine.Load(); e != nil {
			e.shutdown()
		}
		return m.Reason
	}
	safelog.Warn("serving.unknown", "serving: unknown message", "serving", s.cfg.name, "message", safelog.T(msg))
	return ""
}

// Terminate shuts the engine down if the process ends another way (a
// panic, a kill, the node stopping).
func (s *server) Terminate(_ gen.Process, _ string) {
	if e := s.engine.Load(); e != nil {
		e.shutdown()
	}
}

// joinGroup puts the serving in the process group of its name (Nx v0.10
// and later) and in NxSharedGroup (Nx v0.5 to v0.9), partitions × weight
// times each, when its node runs the cluster application; without it the
// serving is local only. It leaves them when it starts to stop.
func (s *server) joinGroup(sp gen.Process, partitions int) error {
	if s.cfg.node == nil {
		return nil
	}
	groups := []string{s.cfg.name}
	if s.cfg.name != NxSharedGroup {
		groups = append(groups, NxSharedGroup)
	}
	if s.cfg.serving.rowwise() {
		// Callers on other nodes may send several callers' rows in one
		// request (endpoint_combine.go).
		groups = append(groups, rowsGroup(s.cfg.name))
	}
	m, err := joinGroups(s.cfg.node, sp, partitions*s.cfg.weight, groups...)
	if err != nil {
		return fmt.Errorf("serving %q: %w", s.cfg.name, err)
	}
	if m != nil {
		s.engine.Load().onStop = m.leave
	}
	return nil
}

// build computes the partitions, initialises the module for Process and
// returns the serving's engine, whose tasks run on runner; node is the
// node's name ("" for a serving without a node).
func (c *config) build(node string, runner taskRunner) (*engine, error) {
	partitions, err := c.partitionOptions()
	if err != nil {
		return nil, err
	}
	var hooks *hookRouter
	if len(c.serving.hooks) > 0 {
		hooks = newHookRouter(len(partitions))
		partitions = hooks.withHooks(partitions, c.serving.hooks)
	}
	// The computations' context ends when the engine has shut down.
	ctx, cancel := context.WithCancel(context.Background())
	for i := range partitions {
		partitions[i].Context = ctx
	}
	state, err := callInit(c.serving.module, Process, c.serving.arg, partitions)
	if err != nil {
		cancel()
		return nil, err
	}
	return newEngine(engineConfig{
		cancelExecs:     cancel,
		node:            node,
		name:            c.name,
		serving:         c.serving,
		batchSize:       c.batchSize,
		batchTimeout:    c.batchTimeout,
		shutdownTimeout: c.shutdown,
		partitions:      partitions,
		clock:           c.clock,
		runner:          runner,
		maxQueue:        c.queueBound(len(partitions)),
		keys:            c.keys,
		hooks:           hooks,
	}, state), nil
}

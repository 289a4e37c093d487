package serving

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
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
	tasks  *taskSupRef
	engine atomic.Pointer[engine] // nil until Init has finished
}

// taskSupRef passes the task supervisor started for the same supervisor
// run to the serving actor started after it.
type taskSupRef struct {
	ts atomic.Pointer[actors.TaskSupervisor]
}

// It runs on actors.Actor, not ergo's gen.Server, which any node can kill
// by sending it an empty tuple.
var _ actors.Behavior = (*server)(nil)

// Init runs inside the supervisor's start: an error here fails Start.
func (s *server) Init(sp gen.Process, _ ...etf.Term) error {
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
	slog.Warn("serving: unknown message", "serving", s.cfg.name, "message", fmt.Sprint(msg))
	return ""
}

// Terminate shuts the engine down if the process ends another way (a
// panic, a kill, the node stopping).
func (s *server) Terminate(_ gen.Process, _ string) {
	if e := s.engine.Load(); e != nil {
		e.shutdown()
	}
}

// membership keeps a serving in the process group of its name,
// partitions × weight times, on its node's scope. If the scope restarts
// (it starts empty), the serving joins the new one; when the serving
// starts to stop, it leaves first, so that remote callers stop picking it.
type membership struct {
	nd    node.Node
	group string
	pids  []etf.Pid
	done  chan struct{} // closed when the serving starts to stop

	mu    sync.Mutex
	scope *pg.Scope // guarded by mu: the scope joined, nil while none
}

// rescanScope is how often a serving looks for its node's scope while
// there is none (the runtime application is restarting it).
const rescanScope = 100 * time.Millisecond

// joinGroup starts the serving's membership when its node runs the
// runtime application (a scope or a serving endpoint); without it the
// serving is local only.
func (s *server) joinGroup(sp gen.Process, partitions int) error {
	if s.cfg.node == nil {
		return nil
	}
	scope := pg.Lookup(s.cfg.node, pg.DefaultScope)
	if scope == nil && endpointOf(sp.NodeName()) == nil {
		return nil // no runtime application: a local serving only
	}
	m := &membership{nd: s.cfg.node, group: s.cfg.name, done: make(chan struct{})}
	m.pids = make([]etf.Pid, max(1, partitions*s.cfg.weight))
	for i := range m.pids {
		m.pids[i] = sp.Self()
	}
	if scope != nil {
		if err := scope.Join(m.group, m.pids...); err != nil {
			return fmt.Errorf("serving %q: join its process group: %w", s.cfg.name, err)
		}
		m.scope = scope
	}
	go m.keep()
	s.engine.Load().onStop = m.leave
	return nil
}

// keep rejoins whenever the scope joined ends, until the serving stops.
func (m *membership) keep() {
	for {
		m.mu.Lock()
		scope := m.scope
		m.mu.Unlock()
		if scope != nil {
			select {
			case <-scope.Done():
			case <-m.done:
				return
			}
		}
		// No scope: wait for the runtime application's next one.
		ticker := time.NewTicker(rescanScope)
		for {
			next := pg.Lookup(m.nd, pg.DefaultScope)
			if next != nil && next != scope && next.Join(m.group, m.pids...) == nil {
				m.mu.Lock()
				m.scope = next
				m.mu.Unlock()
				break
			}
			select {
			case <-ticker.C:
			case <-m.done:
				ticker.Stop()
				return
			}
		}
		ticker.Stop()
	}
}

// leave leaves the group; it runs once, when the serving starts to stop.
func (m *membership) leave() {
	close(m.done)
	m.mu.Lock()
	scope := m.scope
	m.scope = nil
	m.mu.Unlock()
	if scope == nil {
		return
	}
	if err := scope.Leave(m.group, m.pids...); err != nil && !errors.Is(err, pg.ErrStopped) && !errors.Is(err, pg.ErrNotJoined) {
		slog.Warn("serving: leave process group", "serving", m.group, "error", err)
	}
}

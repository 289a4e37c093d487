package serving

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/actors/pg"
)

// NxSharedGroup is the process group that Nx v0.5 to v0.9 servings join
// and their callers pick members from, whatever the serving's name (in
// scope pg.DefaultScope, Nx's Nx.Serving.PG). Nx v0.10 and later use a
// group named after the serving instead. An ergonx serving joins both, so
// that callers of every Nx generation find it.
const NxSharedGroup = "Elixir.Nx.Serving"

// EndpointGroup is the process group every serving endpoint joins. Its
// members tell a caller which nodes of the cluster are ergonx nodes
// (reached through their endpoint and ergonx's own protocol) and which
// are Erlang or Elixir nodes (reached through Nx's protocol).
const EndpointGroup = "ergonx.endpoints"

// membership keeps a process in process groups of its node's scope: a
// serving in the group of its name and in NxSharedGroup, partitions ×
// weight times each; an endpoint once in EndpointGroup. If the scope
// restarts (it starts empty), the process joins the new one; when it
// starts to stop, it leaves first, so that remote callers stop picking it.
type membership struct {
	nd     gen.Core
	groups []string
	pids   []etf.Pid
	done   chan struct{} // closed when the process starts to stop

	mu    sync.Mutex
	scope *pg.Scope // guarded by mu: the scope joined, nil while none
}

// rescanScope is how often a member looks for its node's scope while
// there is none (the cluster application is restarting it).
const rescanScope = 100 * time.Millisecond

// joinGroups makes sp a member of groups, count times each, on nd's
// default scope, and keeps it there until leave. Without a scope (the
// node does not run the cluster application) it returns nil: the process
// stays local.
func joinGroups(nd gen.Core, sp gen.Process, count int, groups ...string) (*membership, error) {
	scope := pg.Lookup(nd, pg.DefaultScope)
	if scope == nil && endpointOf(sp.NodeName()) == nil {
		return nil, nil // no cluster application: local only
	}
	m := &membership{nd: nd, groups: groups, done: make(chan struct{})}
	m.pids = make([]etf.Pid, max(1, count))
	for i := range m.pids {
		m.pids[i] = sp.Self()
	}
	if scope != nil {
		if err := m.joinAll(scope); err != nil {
			return nil, err
		}
		m.scope = scope
	}
	go m.keep()
	return m, nil
}

// joinAll joins every group on scope; on failure it leaves what it joined.
func (m *membership) joinAll(scope *pg.Scope) error {
	for i, g := range m.groups {
		if err := scope.Join(g, m.pids...); err != nil {
			for _, joined := range m.groups[:i] {
				_ = scope.Leave(joined, m.pids...)
			}
			return fmt.Errorf("join process group %q: %w", g, err)
		}
	}
	return nil
}

// keep rejoins whenever the scope joined ends, until leave.
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
		// No scope: wait for the cluster application's next one.
		ticker := time.NewTicker(rescanScope)
		for {
			next := pg.Lookup(m.nd, pg.DefaultScope)
			if next != nil && next != scope && m.joinAll(next) == nil {
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

// leave leaves the groups; it runs once, when the process starts to stop.
func (m *membership) leave() {
	close(m.done)
	m.mu.Lock()
	scope := m.scope
	m.scope = nil
	m.mu.Unlock()
	if scope == nil {
		return
	}
	for _, g := range m.groups {
		if err := scope.Leave(g, m.pids...); err != nil && !errors.Is(err, pg.ErrStopped) && !errors.Is(err, pg.ErrNotJoined) {
			slog.Warn("serving: leave process group", "group", g, "error", err)
		}
	}
}

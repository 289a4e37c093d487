package erldist

import (
	"sync"
	"time"
)

// Stopping a node while its peers still talk to it. ergo v1.999.224
// stops a node by cancelling its processes' contexts, each cleaning
// itself up on its own goroutine, while the node's connections still
// route what arrives: its core reads the mailbox of the process a message
// is addressed to without the lock that process's cleanup clears it
// under (node/core.go:764 against :501), a data race the race detector
// reports now and then. Checking the node's context before routing
// leaves a window; a gate on each connection closes it: Quiesce shuts
// them and waits for the routing under way to end, after which nothing
// arriving is routed, and only then is the node stopped
// (actors.StopNode).

// routeGate counts the control messages being routed on a connection
// and, once shut, admits no more.
type routeGate struct {
	mu       sync.Mutex
	shut     bool
	inflight int
	drained  chan struct{} // closed when inflight reaches 0 after shut
}

// enter admits one control message's routing; false once shut.
func (g *routeGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		return false
	}
	g.inflight++
	return true
}

// leave ends a routing that enter admitted.
func (g *routeGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.inflight == 0 && g.drained != nil {
		close(g.drained)
		g.drained = nil
	}
}

// close shuts the gate and waits, at most limit, for the routings under
// way (a routing does not block, but a limit keeps a stop from hanging
// on a bug).
func (g *routeGate) close(limit time.Duration) {
	g.mu.Lock()
	g.shut = true
	if g.inflight == 0 {
		g.mu.Unlock()
		return
	}
	if g.drained == nil {
		g.drained = make(chan struct{})
	}
	drained := g.drained
	g.mu.Unlock()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
	}
}

// quiesceLimit bounds Quiesce's wait for routings under way.
const quiesceLimit = 2 * time.Second

// Quiesce stops the connections of the node named nodeName from routing
// what they receive, and returns once nothing they received is being
// routed. Call it right before stopping the node (actors.StopNode does).
// It applies to the node's connections of the moment: a node started
// later under that name has connections of its own.
func Quiesce(nodeName string) {
	st := stateOf(nodeName)
	st.mu.Lock()
	conns := make([]*conn, 0, len(st.conns))
	for _, c := range st.conns {
		conns = append(conns, c)
	}
	st.mu.Unlock()
	deadline := time.Now().Add(quiesceLimit)
	for _, c := range conns {
		c.gate.close(time.Until(deadline))
	}
}

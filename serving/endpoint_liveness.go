package serving

import (
	"fmt"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"
)

// Liveness: no caller waits without bound on a node that stopped
// answering. A node that is frozen (SIGSTOP, a machine swapping to
// death) keeps its connection open, so no DOWN ever comes; a DOWN can
// also be lost (ergo drops messages at a full mailbox). So while calls
// wait on a node, the endpoint watches it: after LivenessQuiet without
// any message from it, it sends a probe — the gen_server call
// {is_auth, Node} to its net_kernel, which every Erlang and ergonx node
// answers — and a node that does not answer within LivenessTimeout is
// taken as down: its waiting calls fail with ErrNodeDown and it is
// ejected from member choice (endpoint_dispatch.go) until it answers a
// probe again, which goes on every LivenessQuiet while it is ejected.
//
// A caller on a frozen node's serving thus waits at most about
// LivenessQuiet + LivenessTimeout + livenessTick (3.25 s) after the last
// sign of life of that node, however long its own context is.
const (
	// LivenessQuiet is how long a node with waiting calls may stay
	// silent before it is probed.
	LivenessQuiet = time.Second
	// LivenessTimeout is how long a probed node has to answer.
	LivenessTimeout = 2 * time.Second
	// livenessTick is how often the endpoint looks.
	livenessTick = 250 * time.Millisecond
)

// peerHealth is what the endpoint knows of a node it calls. Guarded by
// the endpoint's mu.
type peerHealth struct {
	lastHeard time.Time // last message from the node (or first call to it)
	probe     etf.Ref   // the probe waiting for an answer, if probeSent is set
	probeSent time.Time
	ejected   bool // no answer to a probe: not picked while others are healthy
}

// heardLocked records a sign of life from node: a message from its
// endpoint or an answer to a probe. An ejected node is back. ep.mu must
// be held.
func (ep *endpoint) heardLocked(node string, now time.Time) {
	h := ep.health[node]
	if h == nil {
		return
	}
	h.lastHeard = now
	h.probeSent = time.Time{}
	h.ejected = false
	if ep.outstanding[node] == 0 {
		delete(ep.health, node)
	}
}

// watchHealthLocked starts watching node's health when a call to it
// begins. ep.mu must be held.
func (ep *endpoint) watchHealthLocked(node string) {
	if ep.health[node] == nil {
		ep.health[node] = &peerHealth{lastHeard: time.Now()} // read only when needed: not per call
	}
}

// ejectedLocked reports whether node failed its last probe. ep.mu must be
// held.
func (ep *endpoint) ejectedLocked(node string) bool {
	h := ep.health[node]
	return h != nil && h.ejected
}

// livenessLoop checks the watched nodes every livenessTick until the
// endpoint stops.
func (ep *endpoint) livenessLoop(done <-chan struct{}) {
	tick := time.NewTicker(livenessTick)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			ep.checkLiveness(now)
		}
	}
}

// checkLiveness probes silent nodes and gives up on nodes that did not
// answer their probe.
func (ep *endpoint) checkLiveness(now time.Time) {
	type probe struct {
		node string
		ref  etf.Ref
	}
	var probes []probe
	var failed []*remoteCall
	var errs []error
	ep.mu.Lock()
	for node, h := range ep.health {
		switch {
		case !h.probeSent.IsZero() && now.Sub(h.probeSent) >= LivenessTimeout:
			h.ejected = true
			h.probeSent = time.Time{}
			h.lastHeard = now // probe again after LivenessQuiet
			calls := ep.takeNodeLocked(node)
			err := fmt.Errorf("%w: node %s answered no liveness probe within %v; it is frozen or cut off",
				ErrNodeDown, node, LivenessTimeout)
			for _, c := range calls {
				failed = append(failed, c)
				errs = append(errs, err)
			}
		case h.probeSent.IsZero() && now.Sub(h.lastHeard) >= LivenessQuiet:
			h.probe = ep.proc.MakeRef()
			h.probeSent = now
			ep.probes[h.probe] = node
			probes = append(probes, probe{node, h.probe})
		}
	}
	// Forget answered probes' refs that are stale.
	for ref, node := range ep.probes {
		if h := ep.health[node]; h == nil || h.probe != ref || h.probeSent.IsZero() {
			delete(ep.probes, ref)
		}
	}
	ep.mu.Unlock()
	for i, c := range failed {
		c.fail(errs[i])
	}
	for _, p := range probes {
		// net_kernel answers {Ref, yes} (or no, for a stranger): any
		// answer is a sign of life.
		_ = ep.proc.Send(gen.ProcessID{Name: "net_kernel", Node: p.node},
			etf.Tuple{etf.Atom("$gen_call"), etf.Tuple{ep.self, p.ref}, etf.Tuple{etf.Atom("is_auth"), etf.Atom(ep.node)}})
	}
}

// probeAnswered handles {Ref, Answer}, the reply to a probe. It reports
// whether ref was a probe of ours.
func (ep *endpoint) probeAnswered(ref etf.Ref) bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	node, ok := ep.probes[ref]
	if !ok {
		return false
	}
	delete(ep.probes, ref)
	ep.heardLocked(node, time.Now())
	return true
}

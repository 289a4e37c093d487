package serving

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/gen"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/internal/cowmap"
	"github.com/ergonx/ergonx/internal/safelog"
)

// EndpointName is the registered name of a node's serving endpoint: the
// process through which servings on other nodes are called and through
// which this node's servings are called from elsewhere. The runtime
// application (apps/cluster) starts it; StartEndpoint does too.
const EndpointName = "ergonx_serving"

// endpointMailbox is the endpoint's mailbox: ergo's maximum. ergo drops
// what arrives at a full mailbox silently (remote senders never learn);
// a request or reply lost that way would leave its caller waiting for its
// context. Messages carry many requests each (see outbox), so this many
// messages is far beyond any backlog the endpoint lets build up.
const endpointMailbox = 65535

// endpoint is a node's side of distributed servings. As a caller it sends
// requests to the endpoints of other nodes and waits for their replies; as
// a server it runs requests from other nodes on its local servings and
// sends the replies back.
//
// Messages between endpoints carry lists of requests or replies: a send
// takes everything queued for its destination while the previous send
// was in progress (see outbox). Under load that turns thousands of
// requests a second into a few hundred messages, which is what ergo's
// distribution (one encoder and one connection handler per peer, for
// order) can carry.
//
// The endpoint is safe for concurrent use.
type endpoint struct {
	proc gen.Process // the endpoint's process: sender of every message
	node string
	self etf.Pid

	mu sync.Mutex // guards the fields below
	// ids draws request ids (see newIDLocked): random, so that no peer
	// can answer for a call it did not get; ergo's refs would repeat every
	// 262,144 anyway.
	ids     *rand.ChaCha8
	pending map[uint64]*remoteCall
	// outstanding counts the pending calls per node, for load-aware
	// dispatch (endpoint_dispatch.go).
	outstanding map[string]int
	// health watches the nodes calls wait on; probes maps the reference
	// of each probe in flight to its node (endpoint_liveness.go).
	health       map[string]*peerHealth
	probes       map[etf.Ref]string
	livenessDone chan struct{}
	// watching holds the reference of our monitor of each peer's
	// endpoint. Only a DOWN with that reference fails the calls waiting
	// on the peer: any other DOWN is a stray (Nx #1251).
	watching map[string]etf.Ref
	// early holds DOWNs of our endpoint monitors that arrived before the
	// caller that set the monitor up recorded its reference (a peer that
	// cannot be reached answers at once); bounded, oldest dropped.
	early     map[etf.Ref]gen.MessageDown
	earlyRefs []etf.Ref
	stopped   bool
	// groups keeps the endpoint in EndpointGroup (nil without a scope).
	groups *membership
	// nxArity: which Nx nodes take __distributed_batched_run__/3.
	nxArity nxArity

	// Callers and the serving side each have a lock of their own, apart
	// from mu, which every call takes (measured: contention on one lock
	// was a third of the cluster path's wait at 256 callers).
	outMu     sync.RWMutex
	outboxes  map[outboxKey]*outbox              // destination node and tag → queued items
	combiners cowmap.Map[combinerKey, *combiner] // destination node and serving → calls to combine
	// scope is the process-group scope calls last used (lookupScope).
	scope atomic.Pointer[pg.Scope]
	// holdRound, set by tests before any call, replaces a combiner's
	// yield before each round (endpoint_combine.go).
	holdRound func(*combiner)
	runMu     sync.Mutex
	running   map[runKey]context.CancelFunc // remote requests being served here; nil once stopped
}

// remoteCall is one request this node sent and waits for.
type remoteCall struct {
	node  string
	reply chan remoteReply // capacity 1: the endpoint never blocks on a caller
	// abort, if set, is called when the call fails from the endpoint's
	// side (its node went down or stopped answering) instead of sending
	// to reply: Nx-protocol calls wait on their spawn, not on reply.
	abort func(error)
	// stream, for a streaming call, receives its events and its end
	// instead of reply.
	stream *remoteStream
	// callers is the number of callers whose rows the call carries (a
	// combined request, endpoint_combine.go); 0 means 1.
	callers int
}

// weight is what the call counts for in load-aware dispatch: its callers.
func (c *remoteCall) weight() int { return max(c.callers, 1) }

// fail ends the call with err.
func (c *remoteCall) fail(err error) {
	if c.stream != nil {
		c.stream.finish(remoteReply{err: err})
		return
	}
	if c.abort != nil {
		c.abort(err)
		return
	}
	c.reply <- remoteReply{err: err}
}

// remoteReply is the answer to a remoteCall, or one event of a stream.
type remoteReply struct {
	result any
	err    error
	event  *wireEvent
}

// runKey names a request being served here on behalf of another node.
type runKey struct {
	from etf.Pid
	id   uint64
}

func newEndpoint(proc gen.Process) *endpoint {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails on Linux (and panics if it cannot)
	return &endpoint{
		proc:         proc,
		node:         proc.NodeName(),
		self:         proc.Self(),
		ids:          rand.NewChaCha8(seed),
		pending:      map[uint64]*remoteCall{},
		outstanding:  map[string]int{},
		health:       map[string]*peerHealth{},
		probes:       map[etf.Ref]string{},
		livenessDone: make(chan struct{}),
		watching:     map[string]etf.Ref{},
		early:        map[etf.Ref]gen.MessageDown{},
		outboxes:     map[outboxKey]*outbox{},
		running:      map[runKey]context.CancelFunc{},
	}
}

// endpointServer is the endpoint's process. It runs on actors.Actor, not
// ergo's gen.Server, which any node could kill by sending an empty tuple.
type endpointServer struct {
	ep atomic.Pointer[endpoint]
}

var _ actors.Behavior = (*endpointServer)(nil)

// EndpointChildSpec returns a child spec for a node's serving endpoint,
// registered as EndpointName, for a place in a supervision tree.
func EndpointChildSpec() gen.SupervisorChildSpec {
	return gen.SupervisorChildSpec{
		Name:    EndpointName,
		Child:   actors.NewActor(&endpointServer{}),
		Options: gen.ProcessOptions{MailboxSize: endpointMailbox},
	}
}

// StartEndpoint starts the serving endpoint on nd (the runtime
// application does this for you).
func StartEndpoint(nd interface {
	Spawn(string, gen.ProcessOptions, gen.ProcessBehavior, ...etf.Term) (gen.Process, error)
}) (gen.Process, error) {
	return nd.Spawn(EndpointName, gen.ProcessOptions{MailboxSize: endpointMailbox}, actors.NewActor(&endpointServer{}))
}

func (s *endpointServer) Init(sp gen.Process, _ ...etf.Term) error {
	ep := newEndpoint(sp)
	s.ep.Store(ep)
	registerEndpoint(ep.node, ep)
	// Callers elsewhere learn from this group that this node speaks
	// ergonx's endpoint protocol (see nxclient.go).
	m, err := joinGroups(sp, sp, 1, EndpointGroup)
	if err != nil {
		unregisterEndpoint(ep.node, ep)
		return fmt.Errorf("serving endpoint on %s: %w", ep.node, err)
	}
	ep.groups = m
	go ep.livenessLoop(ep.livenessDone)
	return nil
}

// HandleMessage dispatches the endpoint protocol. It never blocks:
// requests run on their own goroutines and replies go to channels of
// capacity 1.
func (s *endpointServer) HandleMessage(_ gen.Process, _ etf.Pid, msg etf.Term) string {
	ep := s.ep.Load()
	switch m := msg.(type) {
	case etf.Tuple:
		if ref, ok := probeReply(m); ok && ep.probeAnswered(ref) {
			return ""
		}
		if err := ep.handle(m); err != nil {
			safelog.Warn("serving.endpoint.malformed", "serving endpoint: dropping a malformed message", "node", ep.node, "error", err)
		}
	case gen.MessageDown:
		ep.peerDown(m)
	default:
		// Unrelated messages never reach a caller (Nx issue #1251): callers
		// wait on their own channels, keyed by our own request ids.
		safelog.Warn("serving.endpoint.unknown", "serving endpoint: unknown message", "node", ep.node, "message", safelog.T(msg))
	}
	return ""
}

// Terminate fails every call still waiting and cancels remote requests
// being served.
func (s *endpointServer) Terminate(_ gen.Process, reason string) {
	if ep := s.ep.Load(); ep != nil {
		ep.stop(reason)
	}
}

// stop ends the endpoint: waiting callers get ErrNodeDown-like errors.
func (ep *endpoint) stop(reason string) {
	unregisterEndpoint(ep.node, ep)
	if ep.groups != nil {
		ep.groups.leave()
	}
	ep.mu.Lock()
	ep.stopped = true
	pending := ep.pending
	ep.pending = map[uint64]*remoteCall{}
	ep.outstanding = map[string]int{}
	ep.health = map[string]*peerHealth{}
	ep.mu.Unlock()
	ep.runMu.Lock()
	running := ep.running
	ep.running = nil
	ep.runMu.Unlock()
	close(ep.livenessDone)
	for _, c := range pending {
		c.fail(fmt.Errorf("%w: the serving endpoint of node %s stopped (%s)", ErrNoEndpoint, ep.node, reason))
	}
	for _, cancel := range running {
		cancel()
	}
}

// probeReply reads {Ref, Answer}, a gen_server reply.
func probeReply(m etf.Tuple) (etf.Ref, bool) {
	if len(m) != 2 {
		return etf.Ref{}, false
	}
	ref, ok := m[0].(etf.Ref)
	return ref, ok
}

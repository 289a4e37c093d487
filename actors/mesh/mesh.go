package mesh

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ergo-services/ergo/gen"
	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/actors/pg"
)

// Defaults of Options' zero fields.
const (
	// DefaultName is the mesh's registered name on every ergonx node.
	DefaultName = "ergonx_mesh"
	// DefaultScanInterval is how often the mesh lists the connected nodes
	// and the process groups' nodes. It is also the resolution of the
	// backoff.
	DefaultScanInterval = 100 * time.Millisecond
	// DefaultMinBackoff is the wait before the first attempt to reconnect
	// to a node that went down.
	DefaultMinBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the wait between attempts: a restarted node
	// is reconnected at most about this long (plus a scan) after it
	// listens again.
	DefaultMaxBackoff = 2 * time.Second
	// DefaultForgetAfter is how long a node that went down is retried
	// before it is forgotten: long enough for a crashed node to be
	// restarted by hand or by its orchestrator, short enough that a node
	// removed for good stops costing attempts.
	DefaultForgetAfter = 10 * time.Minute
	// DefaultMaxNodes bounds the nodes remembered.
	DefaultMaxNodes = 1024
	// DefaultGrace is the Grace used when it and MaxBackoff are zero:
	// time for the node that dials first to make four attempts (100, 300,
	// 700 and 1,500 ms after a drop).
	DefaultGrace = DefaultMaxBackoff
)

// Options configures Start and ChildSpec. The zero value is the default
// mesh. Fields are read once, at start.
type Options struct {
	// Name is the registered name of the mesh on its node, and of the
	// meshes on other nodes that it sends its lists to. "" means
	// DefaultName. At most 255 characters (it travels as an atom).
	Name string
	// Scope is the name of the process-group scope whose members' nodes
	// the mesh learns of. "" means pg.DefaultScope; a node without that
	// scope just learns nothing from it.
	Scope string
	// ScanInterval: see DefaultScanInterval. Zero means the default.
	ScanInterval time.Duration
	// MinBackoff: see DefaultMinBackoff. Zero means the default.
	MinBackoff time.Duration
	// MaxBackoff: see DefaultMaxBackoff. Zero means the default; a value
	// under MinBackoff is raised to it.
	MaxBackoff time.Duration
	// ForgetAfter: see DefaultForgetAfter. Zero means the default.
	ForgetAfter time.Duration
	// MaxNodes: see DefaultMaxNodes. Zero means the default.
	MaxNodes int
	// Grace is how long a node waits before it dials a node whose name
	// sorts before its own (which dials first; see the package doc).
	// Zero means MaxBackoff.
	Grace time.Duration
}

// ErrName is returned by Start and ChildSpec for a Name that cannot be an
// atom.
var ErrName = errors.New("mesh: name is not a valid atom")

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if !utf8.ValidString(o.Name) || utf8.RuneCountInString(o.Name) > 255 {
		return o, fmt.Errorf("%w: %q", ErrName, o.Name)
	}
	if o.Scope == "" {
		o.Scope = pg.DefaultScope
	}
	if o.ScanInterval <= 0 {
		o.ScanInterval = DefaultScanInterval
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.ForgetAfter <= 0 {
		o.ForgetAfter = DefaultForgetAfter
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = DefaultMaxNodes
	}
	if o.Grace <= 0 {
		o.Grace = o.MaxBackoff
	}
	return o, nil
}

// Peer is what the mesh knows of one node.
type Peer struct {
	Node      string
	Connected bool
	// Learned is set for a node known only by name (from a peer's list
	// or a group), never seen connected.
	Learned bool
	// Since is when the node went down, or was learned of; zero while it
	// is connected. It is forgotten at Since + ForgetAfter.
	Since time.Time
	// Next is when the next connection attempt is due; zero while the
	// node is connected.
	Next time.Time
	// Attempts counts the connection attempts since Since.
	Attempts int
	// Dialing is set while an attempt is under way.
	Dialing bool
}

// Mesh is a handle on a running mesh process. It is safe for concurrent
// use; its methods never wait for a connection attempt.
type Mesh struct {
	name     string
	proc     gen.Process
	stop     chan struct{} // closed by Stop
	stopOnce sync.Once
	done     chan struct{} // closed when the process's loop has returned
	requests chan func(*book)

	mu   sync.Mutex
	view []Peer // guarded by mu: the book as of the last change
}

// Start starts a mesh registered as opts.Name on nd. It fails with
// lib.ErrTaken if the name is in use.
func Start(nd node.Node, opts Options) (*Mesh, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	srv := &server{nd: nd, opts: o}
	if _, err := nd.Spawn(o.Name, processOptions(), srv); err != nil {
		return nil, fmt.Errorf("mesh: start %q on %s: %w", o.Name, nd.Name(), err)
	}
	return srv.handle.Load(), nil
}

// ChildSpec returns a supervisor child spec that runs a mesh on nd, for a
// place in a supervision tree (after the process-group scope, whose
// members it learns of). A restarted mesh starts with an empty book and
// fills it from the connected nodes at once; find the running one with
// Lookup.
func ChildSpec(nd node.Node, opts Options) (gen.SupervisorChildSpec, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return gen.SupervisorChildSpec{}, err
	}
	return gen.SupervisorChildSpec{Name: o.Name, Child: &server{nd: nd, opts: o}, Options: processOptions()}, nil
}

// mailboxSize leaves room for a burst of node events and peers' lists;
// the mesh scans anyway, so a lost message costs at most a scan's delay.
const mailboxSize = 1024

func processOptions() gen.ProcessOptions {
	return gen.ProcessOptions{MailboxSize: mailboxSize}
}

// Lookup returns the running mesh registered as name ("" for DefaultName)
// on the node of c, or nil.
func Lookup(c gen.Core, name string) *Mesh {
	if name == "" {
		name = DefaultName
	}
	p := c.ProcessByName(name)
	if p == nil {
		return nil
	}
	srv, ok := p.Behavior().(*server)
	if !ok {
		return nil
	}
	return srv.handle.Load()
}

// Name returns the mesh's registered name.
func (m *Mesh) Name() string { return m.name }

// Done returns a channel closed when the mesh's process has stopped.
func (m *Mesh) Done() <-chan struct{} { return m.done }

// Peers returns what the mesh knows of each node, sorted by node name.
// It never waits for the mesh.
func (m *Mesh) Peers() []Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Peer(nil), m.view...)
}

// Forget drops node from the mesh's book: it is no longer reconnected
// (until it connects again, or a peer or a group names it again). An
// attempt already under way (Peer.Dialing) cannot be called back and may
// still connect. It returns once done, or at once if the mesh has
// stopped.
func (m *Mesh) Forget(node string) {
	done := make(chan struct{})
	select {
	case m.requests <- func(b *book) { b.forget(node); close(done) }:
		<-done
	case <-m.done:
	}
}

// Stop stops the mesh and waits until its name is free. Connection
// attempts under way finish on their own (they are bounded by ergo's
// timeouts) and are ignored.
func (m *Mesh) Stop() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
	// ergo releases the name after the loop returns, before it cancels
	// the process's context.
	<-m.proc.Context().Done()
}

func (m *Mesh) publish(peers []Peer) {
	m.mu.Lock()
	m.view = peers
	m.mu.Unlock()
}

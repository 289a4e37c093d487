package serving

import (
	"context"
	"reflect"
	"unsafe"

	"github.com/ergonx/ergonx/actors/pg"

	"github.com/ergo-services/ergo/node"
)

// Target names a serving for BatchedRun: a plain name (a string),
// Local(name) or Distributed(name).
type Target interface {
	~string | LocalTarget | DistributedTarget
}

// LocalTarget is a serving that must run on the caller's node.
type LocalTarget struct{ Name string }

// DistributedTarget is a serving reached through its process group.
type DistributedTarget struct{ Name string }

// Local names a serving that must run on the caller's node: BatchedRun
// never looks for it elsewhere.
func Local(name string) LocalTarget { return LocalTarget{Name: name} }

// Distributed names a serving reached through its process group even when
// it runs on the caller's node: the request takes the distributed path
// (distributed preprocessing, the wire codec, a random member, retries).
func Distributed(name string) DistributedTarget { return DistributedTarget{Name: name} }

// CallOption changes one BatchedRun.
type CallOption func(*callOptions)

type callOptions struct {
	distPre  func(any) (any, error)
	scope    string
	waitRoom bool
	// window bounds an input stream's batches in flight (0:
	// DefaultInputWindow); an int32 next to waitRoom keeps callOptions,
	// which every BatchedRun allocates, in its size class.
	window int32
}

func (o callOptions) scopeName() string {
	if o.scope == "" {
		return pg.DefaultScope
	}
	return o.scope
}

// WithDistributedPreprocessing runs f on the input in the caller before a
// distributed call sends it (Nx's third argument of batched_run): for
// example to copy device memory to the host. Local calls do not run it.
func WithDistributedPreprocessing(f func(input any) (any, error)) CallOption {
	return func(o *callOptions) { o.distPre = f }
}

// WaitWhenFull makes a call to a serving whose queue is full (see
// Options.MaxQueue) wait for room, first come first served, until its
// context ends, instead of failing at once with ErrOverloaded. It applies
// to servings on the caller's node; a serving on another node answers
// ErrOverloaded when full.
func WaitWhenFull() CallOption {
	return func(o *callOptions) { o.waitRoom = true }
}

// WithScope looks servings up in the process-group scope named scope
// instead of pg.DefaultScope.
func WithScope(scope string) CallOption {
	return func(o *callOptions) { o.scope = scope }
}

// BatchedRun runs input on the serving named name (Nx's batched_run): the
// serving batches it with other callers' inputs and returns exactly this
// caller's rows, after client postprocessing.
//
// nd is the caller's node; nil reaches the servings started without a
// node (Start(nil, ...)) in this process, and nothing elsewhere.
//
// A plain name runs on the serving of the caller's node if there is one,
// else on a member of the serving's process group elsewhere in the
// cluster; Local(name) never leaves the node; Distributed(name) always
// takes the cluster path. A distributed call runs the client pre- and
// postprocessing on the serving's node, then the serving's distributed
// postprocessing there; it tries another member when the one it picked
// has no such serving (3 attempts), and fails with ErrNodeDown if the
// serving's node dies or disconnects before it answers.
//
// It may be called from any goroutine, including from inside an ergo
// actor's callback (which it blocks until the answer). On the local path
// the request reaches the serving without an ergo message: it is stacked
// directly on the serving's engine.
//
// It returns ErrNoProc when no serving runs under name, or when the
// serving stops before running the rows; a *DownError when the batch
// holding the rows failed (only that batch's callers get it); ctx.Err()
// when ctx ends first — the caller's rows are then taken out of the
// serving if they have not run yet. Inputs larger than the batch size are
// split across batches and the rows come back concatenated in order.
func BatchedRun[T Target](ctx context.Context, nd node.Node, name T, input any, opts ...CallOption) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var o callOptions
	if len(opts) > 0 {
		o = applyCallOptions(opts)
	}
	switch reflect.TypeFor[T]() {
	case localTargetType:
		return localBatchedRun(ctx, nd, any(name).(LocalTarget).Name, input, o)
	case distributedTargetType:
		return distributedBatchedRun(ctx, nd, any(name).(DistributedTarget).Name, input, o)
	}
	// A string, or a named string type. Not through any(name): boxing the
	// string would allocate on every call.
	n := *(*string)(unsafe.Pointer(&name))
	node := nodeName(nd)
	if registered(node, n) != nil {
		return localBatchedRun(ctx, nd, n, input, o)
	}
	if endpointOf(node) != nil {
		return distributedBatchedRun(ctx, nd, n, input, o)
	}
	return localBatchedRun(ctx, nd, n, input, o) // explains the ErrNoProc
}

// applyCallOptions gathers opts. Apart from BatchedRun: options are
// functions given a pointer, which makes their struct escape to the heap,
// and most calls pass none.
func applyCallOptions(opts []CallOption) callOptions {
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

var (
	localTargetType       = reflect.TypeFor[LocalTarget]()
	distributedTargetType = reflect.TypeFor[DistributedTarget]()
)

func localBatchedRun(ctx context.Context, nd node.Node, name string, input any, o callOptions) (any, error) {
	e, err := lookup(nd, name)
	if err != nil {
		return nil, err
	}
	return e.call(ctx, input, o)
}

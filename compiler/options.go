package compiler

import (
	"context"
	"maps"
	"sync"
)

// DefaultCompiler is the compiler used when Options.Compiler is empty.
const DefaultCompiler = "cpu"

// Options are the options a computation is compiled with (Nx's defn
// options). The zero value compiles for the default compiler with one
// partition.
type Options struct {
	// Compiler names a registered compiler. "" means DefaultCompiler.
	Compiler string

	// MaxConcurrency is how many partitions the CPU evaluator offers
	// (servings started with Partitions run one batch at a time on each).
	// 0 or less means 1.
	MaxConcurrency int

	// Device is the device a partition runs on (a GPU ordinal for the
	// CUDA compiler). Compilers that list one partition per device set it.
	Device int

	// Extra holds free-form keys for custom compilers (Nx's keyword list
	// tail). Options values are copied on write: With never changes a map
	// another Options holds.
	Extra map[string]any

	// BatchKeys are the batch keys of the serving a partition belongs to
	// (Nx's :batch_keys defn option): a serving process sets them on every
	// partition's options before its module's Init, so that a module can
	// compile one function per key. Run sets the key of its input's batch.
	// Empty outside servings.
	BatchKeys []string

	// Context is set by a serving on the options of each partition (its
	// module's Init and its compile function receive it): it ends when
	// the serving's computations are no longer wanted. For a serving
	// process, that is once the serving has stopped and its running
	// batches have finished, or once its Shutdown bound has passed with
	// batches still running (their callers have their answer then); for
	// Run, it is Run's ctx. Long computations may watch it and give up.
	// Leave it nil: outside a serving it is nil (use
	// context.Background()).
	Context context.Context

	// Hooks are functions a computation calls during an execution to emit
	// intermediate values (Nx's :hooks defn option, used by streaming
	// servings: see serving.(*Serving).Streaming). The serving sets one per
	// declared hook on every partition's options; a hook called during an
	// execution hands value — a container whose tensors keep the batch on
	// axis 0 — to the callers of the batch, each its own rows, which they
	// read later: the value must not change after the call. A hook must be
	// called before the execution returns (from any goroutine). Read them
	// with Hook. Options values are copied on write: WithHook never changes
	// a map another Options holds.
	Hooks map[string]func(value any)
}

// Hook returns the hook named name, or a function that does nothing when
// there is none, so that a computation can call its hooks whether or not
// it is served with them.
func (o Options) Hook(name string) func(value any) {
	if h := o.Hooks[name]; h != nil {
		return h
	}
	return func(any) {}
}

// Option changes Options; pass them to Resolve, SetDefaultOptions or
// serving.New.
type Option func(*Options)

// WithCompiler selects the compiler by name.
func WithCompiler(name string) Option { return func(o *Options) { o.Compiler = name } }

// WithMaxConcurrency sets MaxConcurrency.
func WithMaxConcurrency(n int) Option { return func(o *Options) { o.MaxConcurrency = n } }

// WithDevice sets Device.
func WithDevice(id int) Option { return func(o *Options) { o.Device = id } }

// With sets a free-form key.
func With(key string, value any) Option {
	return func(o *Options) {
		extra := make(map[string]any, len(o.Extra)+1)
		maps.Copy(extra, o.Extra)
		extra[key] = value
		o.Extra = extra
	}
}

// WithBatchKeys sets BatchKeys.
func WithBatchKeys(keys ...string) Option {
	return func(o *Options) { o.BatchKeys = append([]string(nil), keys...) }
}

// WithHook sets the hook named name (nil removes it).
func WithHook(name string, h func(value any)) Option {
	return func(o *Options) {
		hooks := make(map[string]func(any), len(o.Hooks)+1)
		maps.Copy(hooks, o.Hooks)
		if h == nil {
			delete(hooks, name)
		} else {
			hooks[name] = h
		}
		o.Hooks = hooks
	}
}

// Get returns the free-form key.
func (o Options) Get(key string) (any, bool) {
	v, ok := o.Extra[key]
	return v, ok
}

// CompilerName returns Compiler, or DefaultCompiler when it is empty.
func (o Options) CompilerName() string {
	if o.Compiler == "" {
		return DefaultCompiler
	}
	return o.Compiler
}

// Apply returns o changed by opts, in order.
func (o Options) Apply(opts ...Option) Options {
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

var (
	defaultsMu sync.RWMutex
	defaults   []Option // guarded by defaultsMu
)

// SetDefaultOptions replaces the program-wide default options (Nx's
// Nx.Defn.default_options/1). Resolve applies them before the options of
// each call. Set them at start-up, before servings start: servings resolve
// their options once, when they are created.
func SetDefaultOptions(opts ...Option) {
	defaultsMu.Lock()
	defer defaultsMu.Unlock()
	defaults = append([]Option(nil), opts...)
}

// DefaultOptions returns the program-wide default options applied to the
// zero Options.
func DefaultOptions() Options {
	defaultsMu.RLock()
	defer defaultsMu.RUnlock()
	return Options{}.Apply(defaults...)
}

// Resolve returns the default options merged with opts: opts win.
func Resolve(opts ...Option) Options {
	return DefaultOptions().Apply(opts...)
}

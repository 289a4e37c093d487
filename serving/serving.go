package serving

import (
	"fmt"
	"time"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// PreprocessFunc is client preprocessing: it turns a caller's input into a
// batch plus client info that PostprocessFunc receives. It runs in the
// caller's goroutine (on the serving's node for distributed calls).
type PreprocessFunc func(input any) (b *batch.Batch, info any, err error)

// PostprocessFunc is client postprocessing: it turns the caller's rows of
// the output, the execution's metadata and the client info into the
// result. It runs in the caller's goroutine.
type PostprocessFunc func(output, metadata, info any) (any, error)

// StreamPreprocessFunc is client preprocessing that turns a caller's
// input into a stream of batches (Nx's client preprocessing returning a
// stream): each batch is stacked as a request of its own, in order, with
// flow control (see BatchStream). It runs in the caller's goroutine (on
// the serving's node for distributed calls).
type StreamPreprocessFunc func(input any) (stream BatchStream, info any, err error)

// DistributedPostprocessFunc runs on the serving's node, after client
// postprocessing, before a distributed result is sent back to the caller's
// node (for example to copy device memory to the host).
type DistributedPostprocessFunc func(result any) (any, error)

// Serving describes a computation to serve: its module, the compiler
// options it is compiled with, client pre- and postprocessing and the
// options of a serving process. A Serving is immutable: every method
// returns a new value and leaves its receiver unchanged, so a Serving may
// be shared between goroutines.
type Serving struct {
	module    Module
	arg       any
	pre       PreprocessFunc
	streamPre StreamPreprocessFunc
	post      PostprocessFunc
	distPost  DistributedPostprocessFunc
	process   ProcessOptions
	defn      compiler.Options

	// streaming is set by Streaming: the serving streams (for Nx callers)
	// and hooks names the hooks its partitions get.
	streaming bool
	hooks     []string
	// batchSize is BatchSize's limit (0: none).
	batchSize int
	// misuse is the first builder call that made the Serving invalid:
	// Run, Start and the streaming calls return it (the package reports
	// builder misuse when the Serving is used, never by panicking).
	misuse error
}

// ProcessOptions are the options of a serving process that may be carried
// by the Serving itself (Nx's process_options); Start's Options override
// them. Zero fields mean "not set"; each means what the Options field of
// the same name means.
type ProcessOptions struct {
	BatchSize          int
	BatchTimeout       time.Duration
	Partitions         int
	Shutdown           time.Duration
	DistributionWeight int
	BatchKeys          []string
}

// New returns a serving whose module compiles one function per partition
// with compile and runs each batch through the partition's function (Nx's
// Nx.Serving.new/2). The compiler options are opts merged into
// compiler.DefaultOptions(). Executions report DefaultMetadata.
func New(compile CompileFunc, opts ...compiler.Option) *Serving {
	return &Serving{module: defaultModule{}, arg: compile, defn: compiler.Resolve(opts...)}
}

// JIT returns a serving that compiles fn with the compiler its options
// name (Nx.Serving.jit/2): New(func(o) { return compiler.JIT(fn, o) }, opts...).
func JIT(fn compiler.Defn, opts ...compiler.Option) *Serving {
	return New(func(o compiler.Options) (compiler.Func, error) { return compiler.JIT(fn, o) }, opts...)
}

// KeyedCompileFunc returns the compiled function of one batch key on one
// partition (see NewKeyed).
type KeyedCompileFunc func(key string, opts compiler.Options) (compiler.Func, error)

// NewKeyed returns a serving like New whose compile function also receives
// the batch key (Nx's Nx.Serving.new/2 with a two-arity function): its
// module's Init compiles one function per batch key and partition, and
// each batch runs through the function of its key (batch.Batch.Key). The
// keys are the serving's Options.BatchKeys (batch.DefaultKey alone unless
// set); opts carries them too, in BatchKeys. Use it to compile a function
// per input shape ahead of time, for example one per sequence length.
func NewKeyed(compile KeyedCompileFunc, opts ...compiler.Option) *Serving {
	return &Serving{module: keyedModule{}, arg: compile, defn: compiler.Resolve(opts...)}
}

// NewModule returns a serving run by module m, initialised with arg (Nx's
// Nx.Serving.new/3). The compiler options are opts merged into
// compiler.DefaultOptions().
func NewModule(m Module, arg any, opts ...compiler.Option) *Serving {
	return &Serving{module: m, arg: arg, defn: compiler.Resolve(opts...)}
}

func (s *Serving) clone() *Serving {
	c := *s
	return &c
}

// ClientPreprocessing returns a copy of s with client preprocessing f (nil
// restores the default, which accepts a *batch.Batch or an input stream:
// see BatchStream). It replaces a ClientStreamPreprocessing.
func (s *Serving) ClientPreprocessing(f PreprocessFunc) *Serving {
	c := s.clone()
	c.pre = f
	c.streamPre = nil
	return c
}

// ClientStreamPreprocessing returns a copy of s whose client
// preprocessing turns each input into a stream of batches (Nx's client
// preprocessing returning a stream; nil restores the default). Each
// batch of the stream must hold at most the serving's batch size rows.
// It replaces a ClientPreprocessing.
func (s *Serving) ClientStreamPreprocessing(f StreamPreprocessFunc) *Serving {
	c := s.clone()
	c.streamPre = f
	c.pre = nil
	return c
}

// ClientPostprocessing returns a copy of s with client postprocessing f
// (nil restores the default, which returns the output unchanged).
func (s *Serving) ClientPostprocessing(f PostprocessFunc) *Serving {
	c := s.clone()
	c.post = f
	return c
}

// DistributedPostprocessing returns a copy of s with distributed
// postprocessing f (nil: none).
func (s *Serving) DistributedPostprocessing(f DistributedPostprocessFunc) *Serving {
	c := s.clone()
	c.distPost = f
	return c
}

// ProcessOptions returns a copy of s carrying process options for Start.
func (s *Serving) ProcessOptions(o ProcessOptions) *Serving {
	c := s.clone()
	o.BatchKeys = append([]string(nil), o.BatchKeys...)
	c.process = o
	return c
}

// DefnOptions returns a copy of s whose compiler options are exactly opts
// applied to the zero Options: unlike New, it does not merge them into
// the defaults (as Nx's defn_options/2).
func (s *Serving) DefnOptions(opts ...compiler.Option) *Serving {
	c := s.clone()
	c.defn = compiler.Options{}.Apply(opts...)
	return c
}

// Streaming returns a copy of s that streams, with the named hooks (Nx's
// streaming/2).
//
// Go callers choose per call whether they stream (Stream, RunStream) or
// not (BatchedRun, Run), whatever the serving; Streaming does three
// things:
//
//   - every partition's compiler.Options gets a function under each hook
//     name (Options.Hooks, read with Options.Hook): a computation that
//     calls it during an execution sends its value — a container whose
//     tensors keep the batch on axis 0 — to the callers of the batch, each
//     its own rows, as StreamEvent{Hook: name} before the batch's own
//     event. Callers that do not stream ignore them.
//   - with hooks, a request is never split across executions (Nx: hooks
//     stream per execution): a request that does not fit in what is left
//     of the stack runs the stack first, and a request larger than the
//     batch size is an error (ErrBatchTooLarge), as is an input stream
//     (ErrStreamingHooks).
//   - Nx callers (Erlang and Elixir nodes) get their results as a stream,
//     as from an Nx streaming serving.
//
// Calling Streaming on a Serving that already streams makes the returned
// Serving invalid: using it fails with ErrInvalidOptions (Nx raises).
func (s *Serving) Streaming(hooks ...string) *Serving {
	c := s.clone()
	if s.streaming {
		c.misuseOnce(fmt.Errorf("%w: the serving is already marked as streaming (Streaming was called twice)", ErrInvalidOptions))
		return c
	}
	seen := map[string]bool{}
	for _, h := range hooks {
		if h == "" || seen[h] {
			c.misuseOnce(fmt.Errorf("%w: Streaming hooks must be distinct non-empty names, got %q", ErrInvalidOptions, hooks))
			return c
		}
		seen[h] = true
	}
	c.streaming = true
	c.hooks = append([]string(nil), hooks...)
	return c
}

// BatchSize returns a copy of s with a batch size (Nx's batch_size/2):
// Run splits an input larger than n rows into executions of at most n
// rows and concatenates the results, as BatchedRun does, and a serving
// process started with it batches up to n rows (Start fails with
// ErrConflictingBatchSize when Options.BatchSize says otherwise). Batches
// are not padded to n. n must be positive: otherwise using the returned
// Serving fails with ErrInvalidOptions.
func (s *Serving) BatchSize(n int) *Serving {
	c := s.clone()
	if n <= 0 {
		c.misuseOnce(fmt.Errorf("%w: BatchSize must be positive, got %d", ErrInvalidOptions, n))
		return c
	}
	c.batchSize = n
	return c
}

// misuseOnce records the first builder misuse.
func (s *Serving) misuseOnce(err error) {
	if s.misuse == nil {
		s.misuse = err
	}
}

// Hooks returns the hooks declared with Streaming.
func (s *Serving) Hooks() []string { return append([]string(nil), s.hooks...) }

// IsStreaming reports whether Streaming was called.
func (s *Serving) IsStreaming() bool { return s.streaming }

// CompilerOptions returns the compiler options the serving compiles with.
func (s *Serving) CompilerOptions() compiler.Options { return s.defn }

// moduleName names the module in errors and telemetry.
func (s *Serving) moduleName() string { return moduleName(s.module) }

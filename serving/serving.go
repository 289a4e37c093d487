package serving

import (
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
	module   Module
	arg      any
	pre      PreprocessFunc
	post     PostprocessFunc
	distPost DistributedPostprocessFunc
	process  ProcessOptions
	defn     compiler.Options
}

// ProcessOptions are the options of a serving process that may be carried
// by the Serving itself (Nx's process_options); Start's Options override
// them. Zero fields mean "not set".
type ProcessOptions struct {
	BatchSize          int
	BatchTimeout       time.Duration
	Partitions         bool
	Shutdown           time.Duration
	DistributionWeight int
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
// restores the default, which accepts a *batch.Batch only).
func (s *Serving) ClientPreprocessing(f PreprocessFunc) *Serving {
	c := s.clone()
	c.pre = f
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

// CompilerOptions returns the compiler options the serving compiles with.
func (s *Serving) CompilerOptions() compiler.Options { return s.defn }

// moduleName names the module in errors and telemetry.
func (s *Serving) moduleName() string { return moduleName(s.module) }

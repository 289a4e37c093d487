package compiler

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Defn is a numerical function: it receives a container of tensors (a
// *tensor.Dense, batch.Tuple or batch.Map) and returns one. A Defn must be
// safe to call from several goroutines at once when a serving runs it on
// several partitions.
type Defn func(input any) (output any, err error)

// Func is a Defn compiled for one partition. It accepts a *batch.Batch,
// which it materialises (padding included), or a container.
type Func func(input any) (output any, err error)

// Compiler turns numerical functions into Funcs for a device.
// Implementations must be safe for concurrent use.
type Compiler interface {
	// Name is the name the compiler is registered under.
	Name() string
	// JIT compiles fn for the partition described by opts.
	JIT(fn Defn, opts Options) (Func, error)
}

// Partitioner is implemented by compilers that can run on several
// partitions at once (Nx's __partitions_options__). Partitions returns one
// Options per partition, each a copy of opts set up for its partition.
type Partitioner interface {
	Partitions(opts Options) ([]Options, error)
}

// Errors of the registry.
var (
	// ErrUnknownCompiler is returned when no compiler has the name given.
	ErrUnknownCompiler = errors.New("compiler: unknown compiler")
	// ErrDuplicate is returned by Register for a name already taken.
	ErrDuplicate = errors.New("compiler: a compiler with this name is already registered")
	// ErrNoPartitions is returned by Partitions for a compiler that does
	// not implement Partitioner.
	ErrNoPartitions = errors.New("compiler: the compiler cannot list partitions")
)

var (
	registryMu sync.RWMutex
	registry   = map[string]Compiler{} // guarded by registryMu
)

// Register adds c to the registry under c.Name(). It fails with
// ErrDuplicate when the name is taken.
func Register(c Compiler) error {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := registry[c.Name()]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, c.Name())
	}
	registry[c.Name()] = c
	return nil
}

// Lookup returns the compiler registered under name ("" means
// DefaultCompiler).
func Lookup(name string) (Compiler, error) {
	if name == "" {
		name = DefaultCompiler
	}
	registryMu.RLock()
	defer registryMu.RUnlock()
	c, ok := registry[name]
	if !ok {
		names := make([]string, 0, len(registry))
		for n := range registry {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w %q: registered compilers are %s",
			ErrUnknownCompiler, name, strings.Join(names, ", "))
	}
	return c, nil
}

// JIT compiles fn with the compiler opts names.
func JIT(fn Defn, opts Options) (Func, error) {
	c, err := Lookup(opts.Compiler)
	if err != nil {
		return nil, err
	}
	return c.JIT(fn, opts)
}

// Partitions returns the partitions of the compiler opts names, one
// Options each. A compiler that does not implement Partitioner gives
// ErrNoPartitions.
func Partitions(opts Options) ([]Options, error) {
	c, err := Lookup(opts.Compiler)
	if err != nil {
		return nil, err
	}
	p, ok := c.(Partitioner)
	if !ok {
		return nil, fmt.Errorf("%w: %q does not implement compiler.Partitioner; "+
			"start the serving without Partitions or use a compiler that lists them", ErrNoPartitions, c.Name())
	}
	parts, err := p.Partitions(opts)
	if err != nil {
		return nil, fmt.Errorf("compiler %q: partitions: %w", c.Name(), err)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("compiler %q: partitions: %w", c.Name(), errNoPartitionsListed)
	}
	return parts, nil
}

var errNoPartitionsListed = errors.New("the compiler listed no partition (no device available?)")

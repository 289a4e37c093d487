package serving

import (
	"fmt"
	"slices"
	"time"

	"github.com/ergo-services/ergo/node"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
)

// Defaults of a serving process (Nx's).
const (
	DefaultBatchSize    = 1
	DefaultBatchTimeout = 100 * time.Millisecond
	DefaultShutdown     = 30 * time.Second
)

// CompilerPartitions, as Options.Partitions, gives a serving one
// partition per partition its compiler lists (compiler.Partitions).
const CompilerPartitions = -1

// Default bound of a serving's queue (ergonx's; Nx has none): rows for
// DefaultMaxQueueBatches full batches per partition, and never fewer than
// MinDefaultMaxQueue rows. With the CPU evaluator's two partitions and a
// batch size of 64, that is 32,768 rows: a burst of thousands of callers
// is absorbed, an open loop above capacity is not.
const (
	DefaultMaxQueueBatches = 256
	MinDefaultMaxQueue     = 16384
)

// Options start a serving process. Name and Serving are required; every
// other field may be left zero for its default. Fields left zero also
// take the value the Serving carries in its ProcessOptions; a field set
// here wins over it, except BatchSize, where two different values are an
// error (as in Nx v0.5).
type Options struct {
	// Name registers the serving process on its node; callers reach it by
	// this name. Required.
	Name string

	// Serving is what to serve. Required.
	Serving *Serving

	// BatchSize is the most rows a batch holds. Requests larger than it
	// are split across batches, in order. 0 means the Serving's BatchSize
	// if set, else DefaultBatchSize (1); a value different from the
	// Serving's BatchSize is an error (ErrConflictingBatchSize).
	BatchSize int

	// BatchKeys are the batch keys the serving accepts (Nx's
	// :batch_keys): each key has its own stack, timer and queue, a batch
	// never mixes keys, and batches of all keys share the partitions in
	// the order they became ready. A request whose batch has another key
	// (batch.Batch.Key) fails with ErrBatchKey. Every partition's
	// compiler.Options carries them (BatchKeys), so that the module can
	// compile a function per key (see NewKeyed). Empty means
	// batch.DefaultKey alone.
	BatchKeys []string

	// BatchTimeout is how long the first rows of a batch wait for more
	// before the batch runs anyway. 0 means DefaultBatchTimeout (100 ms).
	BatchTimeout time.Duration

	// Partitions is how many batches the serving runs at once, one per
	// partition. 0 means one partition; N > 0 means N partitions, each
	// compiled with the serving's compiler options; CompilerPartitions
	// means one per partition the compiler lists for those options (Nx's
	// partitions: true; the CPU evaluator lists MaxConcurrency of them, a
	// device compiler would list one per device). Other negative values
	// are an error.
	Partitions int

	// Shutdown bounds how long stopping the serving waits for running
	// batches (their callers get results); callers of batches still
	// running then get ErrShutdownTimeout. 0 means DefaultShutdown (30 s);
	// negative waits forever.
	Shutdown time.Duration

	// DistributionWeight multiplies how many times the serving joins its
	// process group (once per partition): remote callers pick members at
	// random, so a serving with weight 4 gets four times the share of one
	// with weight 1. 0 means 1; negative is an error.
	DistributionWeight int

	// MaxQueue bounds the rows waiting in the serving (stacked for the
	// next batch or queued for a partition; rows running do not count).
	// A request that would pass it fails at once with an
	// *OverloadedError (errors.Is ErrOverloaded) carrying how long to
	// back off, or waits for room if its caller asked with WaitWhenFull.
	// A request larger than MaxQueue is admitted when nothing waits.
	// 0 means DefaultMaxQueueBatches full batches per partition (at least
	// MinDefaultMaxQueue rows); negative means no bound (Nx's behaviour:
	// memory and latency then grow without end under overload).
	MaxQueue int

	// Clock is the serving's time source; nil means the wall clock. Tests
	// inject clocks whose timers fire on demand.
	Clock Clock
}

// config is Options resolved against the Serving's process options and
// the defaults.
type config struct {
	node         node.Node
	name         string
	serving      *Serving
	batchSize    int
	batchTimeout time.Duration
	partitions   int // 1 or more, or CompilerPartitions
	shutdown     time.Duration
	weight       int
	maxQueue     int // 0: the default for the partition count; negative: none
	clock        Clock
	keys         []string
}

// resolve merges o with the Serving's process options and the defaults,
// and validates the result.
func (o Options) resolve(nd node.Node) (*config, error) {
	if o.Name == "" {
		return nil, fmt.Errorf("%w: Name is required: it is the name the serving is registered under", ErrInvalidOptions)
	}
	if o.Serving == nil {
		return nil, fmt.Errorf("%w: Serving is required (serving %q)", ErrInvalidOptions, o.Name)
	}
	if err := o.Serving.misuse; err != nil {
		return nil, fmt.Errorf("serving %q: %w", o.Name, err)
	}
	p := o.Serving.process
	if o.BatchSize != 0 && p.BatchSize != 0 && o.BatchSize != p.BatchSize {
		return nil, fmt.Errorf("%w: BatchSize has been set when starting serving %q (%d) but a conflicting value "+
			"was already set on the Serving (%d); remove one of them", ErrConflictingBatchSize, o.Name, o.BatchSize, p.BatchSize)
	}
	if sb, ob := o.Serving.batchSize, first(o.BatchSize, p.BatchSize); sb != 0 && ob != 0 && sb != ob {
		return nil, fmt.Errorf("%w: the batch size set with Serving.BatchSize (%d) does not match the batch size "+
			"given to serving %q (%d); remove one of them", ErrConflictingBatchSize, sb, o.Name, ob)
	}
	keys, err := resolveKeys(o.Name, first2(o.BatchKeys, p.BatchKeys))
	if err != nil {
		return nil, err
	}
	c := &config{
		node:         nd,
		name:         o.Name,
		serving:      o.Serving,
		keys:         keys,
		batchSize:    first(o.Serving.batchSize, o.BatchSize, p.BatchSize, DefaultBatchSize),
		batchTimeout: first(o.BatchTimeout, p.BatchTimeout, DefaultBatchTimeout),
		partitions:   first(o.Partitions, p.Partitions, 1),
		shutdown:     first(o.Shutdown, p.Shutdown, DefaultShutdown),
		weight:       first(o.DistributionWeight, p.DistributionWeight, 1),
		maxQueue:     o.MaxQueue,
		clock:        o.Clock,
	}
	switch {
	case c.batchSize < 0:
		return nil, fmt.Errorf("%w: BatchSize must be positive, got %d (serving %q)", ErrInvalidOptions, c.batchSize, o.Name)
	case c.batchTimeout < 0:
		return nil, fmt.Errorf("%w: BatchTimeout must not be negative, got %v (serving %q)", ErrInvalidOptions, c.batchTimeout, o.Name)
	case len(o.Name) > 255:
		return nil, fmt.Errorf("%w: Name is %d bytes; a serving's name is its process group, an atom of at most 255 bytes",
			ErrInvalidOptions, len(o.Name))
	case c.partitions < 0 && c.partitions != CompilerPartitions:
		return nil, fmt.Errorf("%w: Partitions must be 0 (one), a positive count or CompilerPartitions (%d), got %d (serving %q)",
			ErrInvalidOptions, CompilerPartitions, c.partitions, o.Name)
	case c.weight < 0:
		return nil, fmt.Errorf("%w: DistributionWeight must be a positive integer, got %d (serving %q)", ErrInvalidOptions, c.weight, o.Name)
	}
	return c, nil
}

// resolveKeys validates batch keys: distinct and non-empty; none means
// batch.DefaultKey alone.
func resolveKeys(name string, keys []string) ([]string, error) {
	if len(keys) == 0 {
		return []string{batch.DefaultKey}, nil
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if k == "" || seen[k] {
			return nil, fmt.Errorf("%w: BatchKeys must be distinct non-empty keys, got %q (serving %q)", ErrInvalidOptions, keys, name)
		}
		seen[k] = true
	}
	return slices.Clone(keys), nil
}

// first2 returns the first non-empty slice.
func first2[T any](vs ...[]T) []T {
	for _, v := range vs {
		if len(v) > 0 {
			return v
		}
	}
	return nil
}

// first returns the first non-zero value.
func first[T comparable](vs ...T) T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return v
		}
	}
	return zero
}

// queueBound is the resolved MaxQueue for a serving with partitions
// partitions: 0 for no bound.
func (c *config) queueBound(partitions int) int {
	switch {
	case c.maxQueue < 0:
		return 0
	case c.maxQueue > 0:
		return c.maxQueue
	}
	return max(MinDefaultMaxQueue, DefaultMaxQueueBatches*c.batchSize*partitions)
}

// partitionOptions returns one compiler.Options per partition (copies of
// the serving's, or the compiler's list for CompilerPartitions), each with
// the serving's batch keys (as Nx puts :batch_keys in each partition's
// defn options).
func (c *config) partitionOptions() ([]compiler.Options, error) {
	var parts []compiler.Options
	if c.partitions == CompilerPartitions {
		var err error
		if parts, err = compiler.Partitions(c.serving.defn); err != nil {
			return nil, err
		}
	} else {
		parts = make([]compiler.Options, c.partitions)
		for i := range parts {
			parts[i] = c.serving.defn
		}
	}
	for i := range parts {
		parts[i].BatchKeys = slices.Clone(c.keys)
	}
	return parts, nil
}

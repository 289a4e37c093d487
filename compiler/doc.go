// Package compiler is the Nx.Defn side of ergonx: the options a
// computation is compiled with, the Compiler interface that turns a
// numerical function into a Func for one partition, and the CPU evaluator.
//
// A Defn is a numerical function on containers of tensors (see package
// batch). A Compiler "jits" it for one partition's Options into a Func,
// which accepts a *batch.Batch (materialised first) or a container.
// Servings ask the compiler for its partitions (Nx's
// __partitions_options__): the CPU evaluator offers MaxConcurrency of them
// (a device compiler would offer one per device), and run one batch at a
// time on each.
//
// Compilers are found by name in a registry ("cpu" is built in; register
// your own with Register). A CUDA compiler, one partition per device, is
// not built yet.
//
// Default options can be set once for the whole program, like
// Nx.Defn.default_options/1, and are merged with the options of each call.
//
// Everything in this package is safe for concurrent use.
package compiler

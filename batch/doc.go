// Package batch is Nx.Batch for Go: a lazy collection of inputs that a
// serving runs as one tensor computation.
//
// A Batch collects entries with Stack (each entry is one row: a new leading
// axis is added) and Concatenate (each entry brings the rows of its first
// axis). Entries are containers: a *tensor.Dense (gorgonia.org/tensor), a
// Tuple of containers (ordered), or a Map of containers (traversed in sorted
// key order), nested freely. Every entry of a batch has the same template:
// the same container structure and, for every tensor leaf, the same dtype
// and the same shape of one row. There is no type promotion.
//
// Nothing is copied while entries are added, merged or split: a Batch only
// records which rows of which tensors it holds. Materialize builds, for
// every leaf position, one new tensor with all rows concatenated along axis
// 0 in arrival order, followed by Padding zero rows.
//
// # Ownership
//
// Stack and Concatenate keep references to the tensors they are given. Do
// not write to such a tensor until the batch (and every batch merged from
// or split off it) has been materialised; for a serving, until the call
// that sent it has returned. Reading it is always fine. The tensors that
// Materialize, SliceRows and ConcatRows return are new values owned by the
// caller (SliceRows shares memory with its input, see its doc).
//
// # Concurrency
//
// A Batch is a value under construction: it is not safe for concurrent
// mutation. Merge and Split never modify their inputs, so batches may be
// read, merged and split from several goroutines at once.
package batch

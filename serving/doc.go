// Package serving is Nx.Serving for Go: it batches requests from many
// callers by size or timeout, runs one batched computation per free
// partition and gives each caller exactly its own rows.
//
// # Words
//
// One noun per concept, in names and docs: a caller sends a request (one
// call's input: its rows, after client preprocessing a *batch.Batch); a
// serving stacks the rows of several requests into a batch (at most the
// batch size rows, of one batch key); a batch runs as a task on a
// partition, and the task's execution (the function HandleBatch returned)
// computes the batch's output, from which every request takes its own
// rows. A request larger than the batch size is split into parts that
// run in several batches.
//
// # Typed servings
//
// NewBatchFunc makes a serving from a function over a batch of rows typed
// in Go (Row: []float32, []float64, []int64, []int32 or *tensor.Dense),
// Ray Serve's @serve.batch shape: the serving stacks the callers' rows,
// checks that the function returned one output row per row, and gives
// each caller its own. A Client[In, Out] calls it with one row (Call) or
// several (CallMany) and returns typed rows: no type assertion, locally,
// without a node, or on another node. Typed servings are Servings made
// with NewModule and client pre- and postprocessing of their own: the rest
// of the package (Start, Run, BatchedRun, telemetry) takes them as any
// other.
//
// # What client preprocessing receives
//
// Client preprocessing gets the input as it reaches the serving's node,
// which depends on the path:
//
//   - a call on the serving's process (BatchedRun, Run, Handle.BatchedRun,
//     a Client, with or without a node): the caller's value as is;
//   - over HTTP (apps/httpapi): a *batch.Batch of the request's rows (the
//     body's tensor, or tuple or map of tensors, decoded and concatenated);
//   - from another ergonx node: the caller's value through the wire codec
//     (actors/wire): tensors, batches, tuples and maps as they were sent,
//     a numeric Go slice as a 1-D *tensor.Dense, other plain values as
//     ETF carries them;
//   - from an Elixir or Erlang caller (Nx's protocol): the decoded
//     %Nx.Tensor{} (a *tensor.Dense) or container.
//
// The default preprocessing takes a *batch.Batch (and an input stream);
// from an Nx caller it takes the tensor's rows as its batch. A typed
// serving's preprocessing takes a row, a batch of rows or a tensor of
// rows, so every path reaches it.
//
// # Servings
//
// A *Serving describes what to run: New compiles one function per
// partition (Nx's Nx.Serving.new/2), JIT does so with a registered
// compiler, NewModule runs a Module of your own (Init, HandleBatch).
// ClientPreprocessing and ClientPostprocessing turn callers' inputs into
// batches and rows back into results; DistributedPostprocessing runs on
// the serving's node before a result crosses the network. A Serving is
// immutable and safe to share.
//
// Run executes a serving inline, in the calling goroutine.
//
// # Serving processes
//
// Start starts a serving and returns its *Handle (Stop, Stats, Done,
// BatchedRun, and the supervisor's process for your own supervision).
// Options.Partitions sets how many batches run at once: 0 one, N N,
// CompilerPartitions one per partition the compiler lists.
//
// Without a node (Start(nil, opts)) a serving runs in the process alone:
// no ergo node, no EPMD, no listener, no cookie; its batches run on plain
// goroutines and callers reach it by name with BatchedRun(ctx, nil, name,
// input), through its handle, or with a Client. That is all a program
// that serves within itself needs; a cluster starts a node with
// cluster.StartNode (apps/cluster) and passes it to Start.
//
// On a node, Start starts a serving process the way Nx does: a supervisor
// (Name+".Supervisor", one-for-all, no restarts, package supervisor) with
// a task supervisor (Name+".TaskSupervisor") and the serving actor
// registered as Name. The actor's Init computes the partitions and runs
// the module's Init for Process; Start returns its error, if any, with
// nothing left running. BatchedRun sends input to a serving and waits for
// its rows; Stop stops it and GetStats reports on it by name (the
// Nx-shaped layer; the handle does both too); ChildSpec places one under
// your own ergo supervisor.
//
// The batching follows Nx's state machine (state.go): rows stack until
// the batch is full or BatchTimeout passes after its first rows; a full or
// timed-out stack runs on a free partition or waits in a queue; a timer
// that fires while every partition is busy lets the stack keep growing
// until a partition frees up; a stale timer is ignored (Nx #1347); a
// request larger than the batch size is split across batches, in order
// (later Nx); each batch key has its own stack and timer (below). HandleBatch is called for each batch, never concurrently,
// and the function it returns runs as a task on the partition.
//
// # How a local call works (and why not through ergo's mailbox)
//
// Measured on the 2-core machines this project targets, a local ergo
// message round trip costs ~4.1 µs and 21 allocations and a process spawn
// 10-12 µs, while a whole request of the target workload has about 1.3 µs
// of CPU. So the local hot path uses no ergo message and no process per
// request or batch, and keeps Nx's semantics by other means:
//
//   - The serving actor owns an engine (engine.go): the state machine plus
//     the timer, HandleBatch and the tasks. Callers on the node find the
//     engine through a registry maintained by the actor (an immutable map
//     behind an atomic pointer) and stack their request under the engine's
//     lock, in their own goroutine. The request that fills a batch starts
//     it on a partition.
//   - Batches run as goroutines of the task supervisor (an ergo process
//     that tracks them and waits for them when it stops), or inline in the
//     caller whose request fills the batch when its context cannot end. A
//     task reports to the engine directly: it frees its partition, then
//     hands every caller of the batch its rows, all cut from the shared
//     output in one allocation (batch.Slicer.EachRows). A task goroutine
//     whose batch computed for long enough runs its partition's next
//     batch itself and leaves the replies to a goroutine of their own, so
//     that the partition does not wait behind the callers they wake.
//   - Callers wait on a channel of their request, together with their
//     context. The monitor semantics of Nx's callers ("the serving died")
//     come from the engine: when the actor stops — through its
//     supervisor's exit signal, a panic, a kill, or its node stopping
//     (watched through the process's context) — the engine answers every
//     stacked and queued request with ErrNoProc at once and lets running
//     batches finish and answer, bounded by Options.Shutdown; an unknown
//     name is ErrNoProc too.
//   - A caller whose context ends takes its rows out of the stack or queue
//     (they never run) and gets ctx.Err(); rows already running are
//     dropped when they arrive. Nx has no cancellation.
//   - Requests are identified by the engine's own 64-bit counter: ergo's
//     references repeat every 262,144, and mailboxes of 100 drop messages
//     silently, so neither carries a caller's identity here.
//
// A batch that fails (its function returns an error or panics, or
// HandleBatch does) fails exactly its callers with a *DownError wrapping
// the cause; the serving goes on. A request whose rows have a different
// shape from the stack runs apart, so it cannot fail the others' merge.
//
// # Distributed servings
//
// When the node runs the cluster application (apps/cluster), a serving
// joins the process group of its name (scope pg.DefaultScope, as Nx's
// Nx.Serving.PG) once per partition times DistributionWeight. BatchedRun
// with a name that has no local serving, or with Distributed(name), picks
// a random member (weighted by multiplicity) and runs the request on its
// node through the nodes' serving endpoints (endpoint_*.go):
// client pre- and postprocessing there, then the serving's distributed
// postprocessing; another member is tried when that node has no such
// serving (3 attempts, Nx's rule); a node that dies or disconnects fails
// its waiting callers with ErrNodeDown. Inputs and results cross nodes in
// Nx's own term shape (actors/wire), as binaries, in messages carrying
// every request queued for the same node. Errors keep their kind: a
// callback that fails on the serving's node gives the caller the same
// *DownError, *CallbackError, *PanicError and sentinels (errors.Is) as
// on its own node (endpoint_errors.go).
//
// Calls made at the same time from one node to a serving on another
// ergonx node travel as one request when the serving has no client or
// distributed callbacks and does not stream (it joins the marker group
// ergonx.rows:NAME to say so): their batches are merged and encoded once,
// the result decoded once and cut into each caller's rows
// (endpoint_combine.go).
//
// # Batch keys, streaming, input streams (later Nx)
//
// Options.BatchKeys gives a serving several batch keys (Nx v0.6): each
// key has its own stack, timer and queue, a batch never mixes keys, and
// ready batches of all keys take free partitions in the order they became
// ready (Nx's in_queue), so no key starves another. Every partition's
// compiler.Options carries the keys; NewKeyed compiles one function per
// key.
//
// Stream and RunStream return a result as an iterator of StreamEvents: a
// batch event per execution holding the caller's rows (in row order), each
// preceded by the hook events of its execution when the serving was made
// with Streaming(hooks...) — the computation calls compiler.Options.Hook
// and each caller gets its own rows. With hooks a request is never split
// across executions, as in Nx. Breaking out of the loop, or ctx ending,
// takes the rows that have not run out of the serving.
//
// An input can be a stream of batches (BatchStream, or a channel): each
// batch is a request of its own, pulled while fewer than InputWindow of
// them are unanswered; BatchedRun concatenates the outputs, Stream yields
// them. Serving.BatchSize makes Run split an input into executions of at
// most that many rows (Nx v0.6.2's batch_size/2).
//
// Across nodes, stream events travel as they are produced (endpoint_protocol.go),
// an input stream goes batch by batch to one member, and Nx v0.6+ callers
// of a streaming serving get Nx's own stream messages (nxhandler.go).
//
// # Telemetry
//
// AttachTelemetry receives Nx's execute, preprocessing and postprocessing
// events (start, stop, exception) with Nx's metadata, and for serving
// processes the batch's size, padding, queue wait and execution time.
package serving

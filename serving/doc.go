// Package serving is Nx.Serving for Go: it batches requests from many
// callers by size or timeout, runs one batched computation per free
// partition and gives each caller exactly its own rows.
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
// # Inline
//
// Run executes a serving in the calling goroutine, one input at a time.
//
// # Telemetry
//
// AttachTelemetry receives Nx's execute, preprocessing and postprocessing
// events (start, stop, exception) with Nx's metadata.
package serving

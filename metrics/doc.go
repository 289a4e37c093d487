// Package metrics exports the state and the batches of servings as
// Prometheus metrics, for Go programs that register them on their own
// registry: NewCollector returns one prometheus.Collector for the
// servings it names, on a node or without one. The HTTP app
// (apps/httpapi) serves the same collector on GET /metrics, beside its
// own ergonx_http_* series.
//
//	c, err := metrics.NewCollector(metrics.Options{Servings: []string{"dense"}})
//	if err != nil { ... }
//	defer c.Close()
//	registry.MustRegister(c)
//
// # Metrics
//
// Every name starts with Options.Namespace ("ergonx" unless set: one
// prefix per family of servings a program reports on separately), and
// every series has a serving label:
//
//	ergonx_batch_size_rows{serving,key}                histogram rows per executed batch
//	ergonx_batch_padding_rows_total{serving,key}       counter   padding rows added to batches
//	ergonx_batch_queue_wait_seconds{serving,key}       histogram first row's arrival to execution
//	ergonx_batch_execution_seconds{serving,key}        histogram execution time, failed ones included
//	ergonx_serving_up{serving}                         gauge     1 when the serving runs (on Options.Node)
//	ergonx_serving_batch_size{serving}                 gauge     the configured batch size
//	ergonx_serving_batch_timeout_seconds{serving}      gauge     the configured batch timeout
//	ergonx_serving_max_queue_rows{serving}             gauge     the bound on waiting rows (0: none)
//	ergonx_serving_partitions{serving}                 gauge     partitions of the serving
//	ergonx_serving_stacked_rows{serving}               gauge     rows waiting for their batch to fill
//	ergonx_serving_queued_batches{serving}             gauge     batches waiting for a partition
//	ergonx_serving_queued_rows{serving}                gauge     rows in those batches
//	ergonx_serving_busy_partitions{serving}            gauge     partitions running a batch
//	ergonx_serving_waiting_callers{serving}            gauge     callers waiting for an answer
//	ergonx_serving_requests_total{serving}             counter   requests the serving accepted (all callers)
//	ergonx_serving_batches_total{serving}              counter   batches it executed
//	ergonx_serving_rows_total{serving}                 counter   rows in them
//	ergonx_serving_failed_batches_total{serving}       counter   batches that failed
//	ergonx_serving_cancelled_requests_total{serving}   counter   requests whose callers gave up
//	ergonx_serving_rejected_requests_total{serving}    counter   requests refused with ErrOverloaded
//	ergonx_serving_streamed_requests_total{serving}    counter   requests whose callers stream
//	ergonx_serving_key_stacked_rows{serving,key}       gauge     stacked rows of one batch key
//	ergonx_serving_key_queued_rows{serving,key}        gauge     queued rows of one batch key
//
// key is the batch key (serving.Options.BatchKeys; "default" for
// servings without keys): a serving's keys are fixed when it starts, so
// the label set stays bounded. Servings that do not run report
// ergonx_serving_up 0 and no other ergonx_serving_* series.
//
// The ergonx_batch_* series come from the servings' telemetry
// (serving.AttachTelemetry: ExecuteStop and ExecuteException events,
// under an id per collector) and count every batch of the named
// servings, whoever the callers were; telemetry is process-wide and
// names servings, not nodes, so several nodes in one process with
// servings of the same name share these series. The ergonx_serving_*
// series are read from serving.GetStats at scrape time, for the servings
// on Options.Node.
//
// A Collector is safe for concurrent use.
package metrics

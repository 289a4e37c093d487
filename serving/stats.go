package serving

import "time"

// Stats is a snapshot of a running serving, for dashboards and the
// metrics endpoint. Nx has no equivalent (its issue #1005 asked for the
// queue size).
type Stats struct {
	Name         string
	BatchSize    int
	BatchTimeout time.Duration
	Partitions   int

	// StackedRows are rows waiting for the batch to fill or time out.
	StackedRows int
	// QueuedBatches (QueuedRows rows) are full or timed-out batches
	// waiting for a free partition.
	QueuedBatches, QueuedRows int
	// BusyPartitions are partitions running a batch.
	BusyPartitions int
	// Waiting is the number of callers waiting for an answer.
	Waiting int
	// WaitingForRoom is the number of callers waiting for room in the
	// queue (WaitWhenFull); MaxQueue is the bound on stacked and queued
	// rows (0: none).
	WaitingForRoom, MaxQueue int
	// Stopped is true once the serving has begun to stop.
	Stopped bool

	// Keys describes each batch key (Options.BatchKeys, in their order):
	// the stacked and queued figures above are their sums.
	Keys []KeyStats
	// Streaming is true for a serving made with Streaming; Hooks are its
	// hooks.
	Streaming bool
	Hooks     []string

	Counters
}

// KeyStats is the share of one batch key in a serving's Stats.
type KeyStats struct {
	Key string
	// StackedRows wait for the key's batch to fill or time out;
	// QueuedBatches (QueuedRows rows) of the key wait for a partition.
	StackedRows, QueuedBatches, QueuedRows int
}

// Counters count what a serving did since it started.
type Counters struct {
	// Requests accepted (a request split across batches counts once).
	Requests uint64
	// Batches executed (or failed before executing), and the rows in them.
	Batches, Rows uint64
	// FailedBatches whose callers got an error.
	FailedBatches uint64
	// Cancelled requests whose callers gave up (context ended).
	Cancelled uint64
	// Rejected requests that found the queue full (ErrOverloaded).
	Rejected uint64
	// Streamed requests whose callers stream the results (Stream; each
	// batch of an input stream counts once).
	Streamed uint64
}

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/loadgen"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// demoOptions are the flags of `ergonx demo`.
type demoOptions struct {
	callers      int
	requests     int
	batchSize    int
	batchTimeout time.Duration
	partitions   int
	progress     string
	quiet        bool
	weights      string
}

func demoCmd() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Serve the digits model with batching under concurrent load, and report",
		Long: "demo starts a node, serves the repository's handwritten-digits classifier with\n" +
			"batching, fires concurrent load from many callers (each sends one image of the\n" +
			"held-out set and checks the answer), runs the same load against an unbatched\n" +
			"serving (batch size 1), and prints throughput, latency, the batch sizes seen,\n" +
			"the speed-up of batching and the model's accuracy on the held-out images.\n" +
			"Ctrl-C stops it early with a report of what ran so far (exit code 130).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.callers, "callers", 256, "concurrent callers")
	f.IntVar(&o.requests, "requests", 200_000, "requests per run (batched, then unbatched)")
	f.IntVar(&o.batchSize, "batch-size", 64, "batch size of the batched serving")
	f.DurationVar(&o.batchTimeout, "batch-timeout", 5*time.Millisecond, "batch timeout of the batched serving")
	f.IntVar(&o.partitions, "partitions", 1, "partitions (concurrent batches) of each serving")
	progressFlags(f, &o.progress, &o.quiet)
	weightsFlag(f, &o.weights)
	return cmd
}

// validate checks the flags before anything runs or prints.
func (o demoOptions) validate() error {
	var c checks
	c.add(atLeast("callers", o.callers, 1))
	c.add(atLeast("requests", o.requests, 1))
	c.add(atLeast("batch-size", o.batchSize, 1))
	c.add(positive("batch-timeout", o.batchTimeout))
	c.add(atLeast("partitions", o.partitions, 1))
	c.add(checkProgress(o.progress))
	return c.first()
}

// servedRun is one measured run of the demo.
type servedRun struct {
	label  string
	report *loadgen.Report
	sizes  *sizeHistogram
	// per held-out image: 1 correct, -1 wrong, 0 never answered; and how
	// many times it was answered.
	correct []atomic.Int32
	served  []atomic.Int32
	stats   serving.Stats
}

func runDemo(ctx context.Context, out, errOut io.Writer, o demoOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := o.validate(); err != nil {
		return err
	}
	model, err := loadModel(o.weights)
	if err != nil {
		return err
	}
	_, test, err := digits.Split(digits.SplitSeed)
	if err != nil {
		return err
	}
	images, err := heldOutRows()
	if err != nil {
		return err
	}

	nd, err := startLocalNode("demo", false)
	if err != nil {
		return err
	}
	defer actors.StopNode(nd)

	fmt.Fprintf(out, "ergonx demo: digits classifier (64→%d→10 MLP), %d held-out images, node %s\n",
		model.Hidden(), len(images), nd.Name())
	fmt.Fprintf(out, "load: %d callers, %d requests per run, one image per request\n\n", o.callers, o.requests)

	show := showProgress(o.progress, o.quiet, errOut)
	batched, err := measure(ctx, nd, model, test, images, o, "batched", serving.Options{
		Name: "digits", BatchSize: o.batchSize, BatchTimeout: o.batchTimeout, Partitions: o.partitions,
	}, show, errOut)
	if err != nil {
		return err
	}
	runs := []*servedRun{batched}
	if !batched.report.Interrupted {
		unbatched, err := measure(ctx, nd, model, test, images, o, "unbatched", serving.Options{
			Name: "digits-unbatched", BatchSize: 1, Partitions: o.partitions,
		}, show, errOut)
		if err != nil {
			return err
		}
		runs = append(runs, unbatched)
	}
	printDemo(out, o, runs)
	if runs[len(runs)-1].report.Interrupted {
		return fmt.Errorf("%w: the report above covers the requests answered until then", errInterrupted)
	}
	return nil
}

// measure serves the model under opts and runs the demo's load on it. A
// run that ctx interrupts returns what it measured, marked in its report.
func measure(ctx context.Context, nd node.Node, model *digits.Model, test *digits.Set, images []*tensor.Dense,
	o demoOptions, label string, opts serving.Options, show bool, errOut io.Writer) (*servedRun, error) {
	opts.Serving = digits.Serving(model)
	stop, err := startServing(nd, opts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = stop(context.Background()) }()

	r := &servedRun{label: label, sizes: newSizeHistogram(opts.BatchSize),
		correct: make([]atomic.Int32, len(images)), served: make([]atomic.Int32, len(images))}
	id := "demo-" + opts.Name
	if err := serving.AttachTelemetry(id, func(ev serving.Event) {
		if ev.Batch != nil && ev.Batch.Serving == opts.Name {
			r.sizes.add(ev.Batch.Size)
		}
	}, serving.ExecuteStop); err != nil {
		return nil, err
	}
	defer func() { _ = serving.DetachTelemetry(id) }()

	b := newBar(show, errOut, o.requests, fmt.Sprintf("%-9s", label))
	rep, err := loadgen.Run(ctx, loadgen.Options{Callers: o.callers, Requests: o.requests, Progress: b.set},
		func(ctx context.Context, i int) error {
			img := i % len(images)
			in, err := batch.Concatenate(images[img])
			if err != nil {
				return err
			}
			logits, err := serving.BatchedRun(ctx, nd, opts.Name, in)
			if err != nil {
				return err
			}
			class, err := digits.Argmax(logits.(*tensor.Dense))
			if err != nil {
				return err
			}
			verdict := int32(-1)
			if class[0] == test.Labels[img] {
				verdict = 1
			}
			// Every answer for an image must agree with the first one.
			if prev := r.correct[img].Swap(verdict); prev != 0 && prev != verdict {
				return fmt.Errorf("image %d classified differently by two requests", img)
			}
			r.served[img].Add(1)
			return nil
		})
	if err != nil {
		b.end(true, 0)
		return nil, err
	}
	b.end(rep.Interrupted, rep.Requests)
	if rep.Errors > 0 {
		return nil, fmt.Errorf("%s run: %d of %d requests failed; first: %w", label, rep.Errors, rep.Requests, rep.FirstError)
	}
	r.report = rep
	if r.stats, err = serving.GetStats(nd, opts.Name); err != nil {
		return nil, err
	}
	return r, nil
}

// printDemo prints the report of the runs: both, or the batched one
// alone when Ctrl-C stopped the demo during it.
func printDemo(out io.Writer, o demoOptions, runs []*servedRun) {
	tw := tabwriter.NewWriter(out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "serving\trequests\treq/s\tp50\tp99\tmean batch\t")
	for _, r := range runs {
		mean := float64(r.stats.Rows) / float64(max(r.stats.Batches, 1))
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%.1f\t\n", r.label, r.report.Requests, r.report.Throughput(),
			ms(r.report.Percentile(50)), ms(r.report.Percentile(99)), mean)
	}
	tw.Flush()
	last := runs[len(runs)-1]
	if last.report.Interrupted {
		fmt.Fprintf(out, "\ninterrupted during the %s run after %v: a partial report (%d of %d requests answered)\n",
			last.label, last.report.Elapsed.Round(time.Millisecond), last.report.Requests, o.requests)
	}
	batched := runs[0]
	fmt.Fprintf(out, "\nbatched: batch size %d, timeout %v", o.batchSize, o.batchTimeout)
	if len(runs) == 2 {
		fmt.Fprint(out, "; unbatched: batch size 1")
	}
	fmt.Fprintln(out)
	if len(runs) == 2 && !last.report.Interrupted {
		fmt.Fprintf(out, "speed-up of batching: %.1f× (req/s batched ÷ unbatched, same run)\n",
			batched.report.Throughput()/runs[1].report.Throughput())
	}

	fmt.Fprintln(out, "\nbatch sizes (batched run):")
	batched.sizes.print(out)

	fmt.Fprintf(out, "\naccuracy on held-out data: %s\n", batched.accuracy())
}

// accuracy describes the answers of a run: correct of the images
// answered, and how often each was served.
func (r *servedRun) accuracy() string {
	correct, answered := 0, 0
	lo, hi := int32(-1), int32(0)
	for i := range r.correct {
		n := r.served[i].Load()
		if n == 0 {
			continue
		}
		answered++
		if r.correct[i].Load() == 1 {
			correct++
		}
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	if answered == 0 {
		return "no image was answered"
	}
	times := fmt.Sprintf("%d times", lo)
	switch {
	case lo == 1 && hi == 1:
		times = "once"
	case lo != hi:
		times = fmt.Sprintf("%d to %d times", lo, hi)
	}
	served := "each image served " + times
	if answered < len(r.correct) {
		served = fmt.Sprintf("%d of the %d images served, each %s", answered, len(r.correct), times)
	}
	agreed := ", all answers agreed"
	if hi == 1 {
		agreed = ""
	}
	return fmt.Sprintf("%d/%d images = %.2f %% (%s%s)", correct, answered, 100*float64(correct)/float64(answered), served, agreed)
}

// ms formats a latency: milliseconds, or microseconds below one.
func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// sizeHistogram counts batches by size in power-of-two buckets.
type sizeHistogram struct {
	limit   int
	buckets []atomic.Int64 // bucket k: sizes in [2^k, 2^(k+1)), the last: the limit itself
}

func newSizeHistogram(limit int) *sizeHistogram {
	n := 1
	for 1<<n <= limit {
		n++
	}
	return &sizeHistogram{limit: limit, buckets: make([]atomic.Int64, n+1)}
}

func (h *sizeHistogram) bucket(size int) int {
	if size >= h.limit {
		return len(h.buckets) - 1
	}
	k := 0
	for 1<<(k+1) <= size {
		k++
	}
	return k
}

func (h *sizeHistogram) add(size int) { h.buckets[h.bucket(size)].Add(1) }

func (h *sizeHistogram) print(out io.Writer) {
	var total int64
	for i := range h.buckets {
		total += h.buckets[i].Load()
	}
	for i := range h.buckets {
		n := h.buckets[i].Load()
		if n == 0 {
			continue
		}
		lo, hi := 1<<i, (1<<(i+1))-1
		label := fmt.Sprintf("%d-%d", lo, min(hi, h.limit-1))
		if i == len(h.buckets)-1 {
			label = fmt.Sprintf("%d (full)", h.limit)
		} else if lo == min(hi, h.limit-1) {
			label = fmt.Sprint(lo)
		}
		width := int(40 * n / max(total, 1))
		fmt.Fprintf(out, "  %10s  %-40s %d\n", label, strings.Repeat("█", width), n)
	}
}

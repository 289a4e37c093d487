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
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/compiler"
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
	quiet        bool
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
			"the speed-up of batching and the model's accuracy on the held-out images.",
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
	f.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	return cmd
}

// servedRun is one measured run of the demo.
type servedRun struct {
	label   string
	report  *loadgen.Report
	sizes   *sizeHistogram
	correct []atomic.Int32 // per held-out image: 1 correct, -1 wrong, 0 never answered
	stats   serving.Stats
}

func runDemo(ctx context.Context, out, errOut io.Writer, o demoOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	model, err := digits.Pretrained()
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

	nd, err := startLocalNode("demo")
	if err != nil {
		return err
	}
	defer func() { nd.Stop(); nd.Wait() }()

	fmt.Fprintf(out, "ergonx demo: digits classifier (64→%d→10 MLP), %d held-out images, node %s\n",
		model.Hidden(), len(images), nd.Name())
	fmt.Fprintf(out, "load: %d callers, %d requests per run, one image per request\n\n", o.callers, o.requests)

	batched, err := measure(ctx, nd, model, test, images, o, "batched", serving.Options{
		Name: "digits", BatchSize: o.batchSize, BatchTimeout: o.batchTimeout, Partitions: o.partitions > 1,
	}, errOut)
	if err != nil {
		return err
	}
	unbatched, err := measure(ctx, nd, model, test, images, o, "unbatched", serving.Options{
		Name: "digits-unbatched", BatchSize: 1, Partitions: o.partitions > 1,
	}, errOut)
	if err != nil {
		return err
	}
	printDemo(out, o, batched, unbatched)
	return nil
}

// measure serves the model under opts and runs the demo's load on it.
func measure(ctx context.Context, nd node.Node, model *digits.Model, test *digits.Set, images []*tensor.Dense,
	o demoOptions, label string, opts serving.Options, errOut io.Writer) (*servedRun, error) {
	opts.Serving = digits.Serving(model, compilerOptions(o.partitions)...)
	if _, err := serving.Start(nd, opts); err != nil {
		return nil, err
	}
	defer func() { _ = serving.Stop(context.Background(), nd, opts.Name) }()

	r := &servedRun{label: label, sizes: newSizeHistogram(opts.BatchSize), correct: make([]atomic.Int32, len(images))}
	id := "demo-" + opts.Name
	if err := serving.AttachTelemetry(id, func(ev serving.Event) {
		if ev.Batch != nil && ev.Batch.Serving == opts.Name {
			r.sizes.add(ev.Batch.Size)
		}
	}, serving.ExecuteStop); err != nil {
		return nil, err
	}
	defer func() { _ = serving.DetachTelemetry(id) }()

	var bar *progressbar.ProgressBar
	progress := func(int) {}
	if !o.quiet {
		bar = progressbar.NewOptions(o.requests, progressbar.OptionSetWriter(errOut),
			progressbar.OptionSetDescription(fmt.Sprintf("%-9s", label)), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		progress = func(n int) { _ = bar.Set(n) }
	}
	rep, err := loadgen.Run(ctx, loadgen.Options{Callers: o.callers, Requests: o.requests, Progress: progress},
		func(ctx context.Context, i int) error {
			img := i % len(images)
			b, err := batch.Concatenate(images[img])
			if err != nil {
				return err
			}
			logits, err := serving.BatchedRun(ctx, nd, opts.Name, b)
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
			return nil
		})
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return nil, err
	}
	if rep.Errors > 0 {
		return nil, fmt.Errorf("%s run: %d of %d requests failed; first: %w", label, rep.Errors, rep.Requests, rep.FirstError)
	}
	r.report = rep
	if r.stats, err = serving.GetStats(nd, opts.Name); err != nil {
		return nil, err
	}
	return r, nil
}

func printDemo(out io.Writer, o demoOptions, batched, unbatched *servedRun) {
	tw := tabwriter.NewWriter(out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "serving\trequests\treq/s\tp50\tp99\tmean batch\t")
	for _, r := range []*servedRun{batched, unbatched} {
		mean := float64(r.stats.Rows) / float64(max(r.stats.Batches, 1))
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%.1f\t\n", r.label, r.report.Requests, r.report.Throughput(),
			ms(r.report.Percentile(50)), ms(r.report.Percentile(99)), mean)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nbatched: batch size %d, timeout %v; unbatched: batch size 1\n", o.batchSize, o.batchTimeout)
	fmt.Fprintf(out, "speed-up of batching: %.1f× (req/s batched ÷ unbatched, same run)\n\n",
		batched.report.Throughput()/unbatched.report.Throughput())

	fmt.Fprintln(out, "batch sizes (batched run):")
	batched.sizes.print(out)

	correct, answered := 0, 0
	for i := range batched.correct {
		switch batched.correct[i].Load() {
		case 1:
			correct++
			answered++
		case -1:
			answered++
		}
	}
	fmt.Fprintf(out, "\naccuracy on held-out data: %d/%d images = %.2f %% (each image served %d+ times, all answers agreed)\n",
		correct, answered, 100*float64(correct)/float64(max(answered, 1)), o.requests/len(batched.correct))
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

// compilerOptions gives the CPU evaluator one partition per concurrent
// batch asked for.
func compilerOptions(partitions int) []compiler.Option {
	if partitions > 1 {
		return []compiler.Option{compiler.WithMaxConcurrency(partitions)}
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/chanbatch"
	"github.com/ergonx/ergonx/internal/loadgen"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// benchOptions are the flags of `ergonx bench`.
type benchOptions struct {
	target       string // "inproc" or "http"
	url          string
	model        string // "digits" or "double"
	callers      int
	rate         float64
	duration     time.Duration
	requests     int
	timeout      time.Duration
	batchSize    int
	batchTimeout time.Duration
	partitions   int
	baseline     bool
}

func benchCmd() *cobra.Command {
	o := benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate load against a serving (in process or over HTTP) and measure it",
		Long: "bench drives load against a serving and prints req/s and latency percentiles.\n" +
			"A closed loop (default) runs --callers callers, each calling again when it has\n" +
			"its answer; --rate makes an open loop that starts calls at a fixed rate whatever\n" +
			"the answers do. --target inproc serves a model in this process (--model digits:\n" +
			"the demo's classifier, one held-out image per request; --model double: x*2 on\n" +
			"one 16-float row); --target http posts the digits images to --url, e.g. an\n" +
			"`ergonx serve`'s http://127.0.0.1:8080/v1/servings/digits/predict.\n" +
			"Failed calls are reported apart and never counted in req/s or the latency\n" +
			"percentiles; any failure makes the exit code 1. Ctrl-C stops the run early\n" +
			"with a report of the calls made so far (exit code 130).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f := cmd.Flags(); f.Changed("requests") && !f.Changed("duration") {
				o.duration = 0 // --requests N alone: N calls, however long they take
			}
			return runBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "inproc", "inproc, cluster (two nodes in this process: callers on one, the serving on the other) or http")
	f.StringVar(&o.url, "url", "http://127.0.0.1:8080/v1/servings/digits/predict", "predict URL (--target http)")
	f.StringVar(&o.model, "model", "digits", "digits or double (--target inproc)")
	f.IntVar(&o.callers, "callers", 256, "concurrent callers (closed loop), or most calls in flight (open loop)")
	f.Float64Var(&o.rate, "rate", 0, "calls per second: an open loop (needs --duration)")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (0: until --requests calls are made)")
	f.IntVar(&o.requests, "requests", 0, "how many calls to make (alone: no time limit; with --duration: whichever ends first)")
	f.DurationVar(&o.timeout, "timeout", 0, "deadline of each call (0: none)")
	f.IntVar(&o.batchSize, "batch-size", 64, "batch size (--target inproc)")
	f.DurationVar(&o.batchTimeout, "batch-timeout", 5*time.Millisecond, "batch timeout (--target inproc)")
	f.IntVar(&o.partitions, "partitions", 1, "partitions (--target inproc)")
	f.BoolVar(&o.baseline, "baseline", false, "then run the same load through a hand-written channel batcher (same model, batch size and timeout) and print the ratio (--target inproc or cluster)")
	return cmd
}

// validate checks the flags before anything runs or prints.
func (o benchOptions) validate() error {
	var c checks
	c.add(oneOf("target", o.target, "inproc", "cluster", "http"))
	if o.target != "http" {
		c.add(oneOf("model", o.model, "digits", "double"))
		c.add(atLeast("batch-size", o.batchSize, 1))
		c.add(positive("batch-timeout", o.batchTimeout))
		c.add(atLeast("partitions", o.partitions, 1))
	} else if o.baseline {
		c.add(usagef("--baseline compares servings in this process with a channel batcher: use --target inproc or cluster"))
	} else if u, err := url.Parse(o.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.add(usagef("--url %q: want an http:// or https:// URL, such as http://127.0.0.1:8080/v1/servings/digits/predict", o.url))
	}
	c.add(atLeast("callers", o.callers, 1))
	c.add(atLeast("rate", o.rate, 0))
	c.add(notNegative("duration", o.duration))
	c.add(atLeast("requests", o.requests, 0))
	c.add(notNegative("timeout", o.timeout))
	switch {
	case o.rate > 0 && o.duration == 0:
		c.add(usagef("--rate %v needs a --duration: an open loop runs for a time", o.rate))
	case o.rate > 0 && o.requests > 0:
		c.add(usagef("--requests %d: an open loop (--rate) runs for --duration; drop --requests", o.requests))
	case o.duration == 0 && o.requests == 0:
		c.add(usagef("--duration 0 needs --requests N: how many calls to make"))
	}
	return c.first()
}

func runBench(ctx context.Context, out io.Writer, o benchOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := o.validate(); err != nil {
		return err
	}
	var call loadgen.Call
	var describe string
	switch o.target {
	case "inproc":
		nd, err := startLocalNode("bench", false)
		if err != nil {
			return err
		}
		defer actors.StopNode(nd)
		var stop func()
		call, describe, stop, err = inprocTarget(nd, nd, o)
		if err != nil {
			return err
		}
		defer stop()
	case "cluster":
		client, server, err := localCluster()
		if err != nil {
			return err
		}
		defer func() {
			for _, nd := range []node.Node{client, server} {
				actors.StopNode(nd)
			}
		}()
		var stop func()
		call, describe, stop, err = inprocTarget(server, client, o)
		if err != nil {
			return err
		}
		defer stop()
		if err := waitForMembers(ctx, client, "bench", 10*time.Second); err != nil {
			return err
		}
		describe = "from node " + client.Name() + " to the " + describe + " on node " + server.Name()
	case "http":
		var err error
		if call, err = httpTarget(o); err != nil {
			return err
		}
		describe = "POST " + o.url
	default:
		return fmt.Errorf("unknown --target %q: use inproc, cluster or http", o.target)
	}

	lo := loadgen.Options{Callers: o.callers, Rate: o.rate, Duration: o.duration, Requests: o.requests, Timeout: o.timeout}
	loop := fmt.Sprintf("closed loop, %d callers", o.callers)
	if o.rate > 0 {
		loop = fmt.Sprintf("open loop, %.0f req/s", o.rate)
	}
	fmt.Fprintf(out, "ergonx bench: %s; %s\n", describe, loop)
	rep, err := loadgen.Run(ctx, lo, call)
	if err != nil {
		return err
	}
	printBench(out, rep)
	if err := benchOutcome(rep); err != nil || !o.baseline {
		return err
	}

	call, describe, stop, err := baselineTarget(o)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "\nbaseline: %s; %s\n", describe, loop)
	base, err := loadgen.Run(ctx, lo, call)
	if err != nil {
		return err
	}
	printBench(out, base)
	if err := benchOutcome(base); err != nil {
		return err
	}
	if base.Throughput() > 0 {
		fmt.Fprintf(out, "\nergonx / channel batcher: %.2fx the req/s, p50 %s against %s\n", rep.Throughput()/base.Throughput(),
			ms(rep.Percentile(50)), ms(base.Percentile(50)))
	}
	return nil
}

// benchOutcome is the error a run's report ends bench with, if any.
func benchOutcome(rep *loadgen.Report) error {
	switch {
	case rep.Interrupted:
		return fmt.Errorf("%w after %v: the report above covers the calls made until then", errInterrupted, rep.Elapsed.Round(time.Millisecond))
	case rep.Errors > 0:
		return fmt.Errorf("%d of %d calls failed; first: %w", rep.Errors, rep.Requests, rep.FirstError)
	}
	return nil
}

// printBench prints a run's report: the successful calls (req/s and
// latencies count them alone), then the failed ones apart.
func printBench(out io.Writer, rep *loadgen.Report) {
	tw := tabwriter.NewWriter(out, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ok\tfailed\tdropped\treq/s\tp50\tp90\tp99\tp99.9\tmax\t")
	if rep.Succeeded() > 0 {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", rep.Succeeded(), rep.Errors, rep.Dropped, rep.Throughput(),
			ms(rep.Percentile(50)), ms(rep.Percentile(90)), ms(rep.Percentile(99)), ms(rep.Percentile(99.9)),
			ms(time.Duration(rep.Latency.Max())*time.Microsecond))
	} else {
		fmt.Fprintf(tw, "0\t%d\t%d\t0\t-\t-\t-\t-\t-\t\n", rep.Errors, rep.Dropped)
	}
	tw.Flush()
	fmt.Fprintf(out, "(req/s and latencies count the %d successful calls only, over %v)\n",
		rep.Succeeded(), rep.Elapsed.Round(time.Millisecond))
	if rep.Errors == 0 {
		return
	}
	el := rep.ErrorLatency
	fmt.Fprintf(out, "\nfailed calls: %d of %d (%.1f %%), their latency p50 %s, max %s\n", rep.Errors, rep.Requests,
		100*float64(rep.Errors)/float64(rep.Requests),
		ms(time.Duration(el.ValueAtQuantile(50))*time.Microsecond), ms(time.Duration(el.Max())*time.Microsecond))
	msgs := make([]string, 0, len(rep.ErrorCounts))
	for m := range rep.ErrorCounts {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool {
		if a, b := rep.ErrorCounts[msgs[i]], rep.ErrorCounts[msgs[j]]; a != b {
			return a > b
		}
		return msgs[i] < msgs[j]
	})
	for _, m := range msgs {
		fmt.Fprintf(out, "  %7d × %s\n", rep.ErrorCounts[m], m)
	}
}

// inprocTarget starts a serving of o.model on nd and returns a call of it
// from node from (nd itself, or another node of the cluster).
func inprocTarget(nd, from node.Node, o benchOptions) (loadgen.Call, string, func(), error) {
	opts := serving.Options{Name: "bench", BatchSize: o.batchSize, BatchTimeout: o.batchTimeout, Partitions: o.partitions}
	m, err := loadBenchModel(o.model)
	if err != nil {
		return nil, "", nil, err
	}
	inputs := m.inputs
	opts.Serving = serving.JIT(func(in any) (any, error) {
		x, ok := in.(*tensor.Dense)
		if !ok {
			return nil, fmt.Errorf("bench: the serving takes one tensor, got %T", in)
		}
		return m.fn(x)
	})
	stopServing, err := startServing(nd, opts)
	if err != nil {
		return nil, "", nil, err
	}
	stop := func() { _ = stopServing(context.Background()) }
	call := func(ctx context.Context, i int) error {
		b, err := batch.Concatenate(inputs[i%len(inputs)])
		if err != nil {
			return err
		}
		_, err = serving.BatchedRun(ctx, from, "bench", b)
		return err
	}
	describe := fmt.Sprintf("in-process serving of %s, batch size %d, timeout %v, %d partition(s)",
		o.model, o.batchSize, o.batchTimeout, max(o.partitions, 1))
	return call, describe, stop, nil
}

// benchModel is what bench computes: a batched function of a [n, width]
// float32 tensor, and the rows ([1, width]) the callers send in turn.
type benchModel struct {
	fn     func(*tensor.Dense) (*tensor.Dense, error)
	inputs []*tensor.Dense
}

// loadBenchModel loads --model: digits (the demo's classifier, its
// held-out images) or double (x*2 on one 16-float row).
func loadBenchModel(name string) (benchModel, error) {
	switch name {
	case "digits":
		model, err := digits.Pretrained()
		if err != nil {
			return benchModel{}, err
		}
		rows, err := heldOutRows()
		if err != nil {
			return benchModel{}, err
		}
		return benchModel{fn: model.Predict, inputs: rows}, nil
	case "double":
		xs := make([]float32, 16)
		for i := range xs {
			xs[i] = float32(i)
		}
		double := func(x *tensor.Dense) (*tensor.Dense, error) { return x.MulScalar(float32(2), true) }
		return benchModel{fn: double, inputs: []*tensor.Dense{tensor.New(tensor.WithShape(1, 16), tensor.WithBacking(xs))}}, nil
	}
	return benchModel{}, fmt.Errorf("unknown --model %q: use digits or double", name)
}

// baselineTarget is the same model and load through the hand-written
// channel batcher a Go developer would write instead of a serving
// (internal/chanbatch), with the same batch size and timeout.
func baselineTarget(o benchOptions) (loadgen.Call, string, func(), error) {
	m, err := loadBenchModel(o.model)
	if err != nil {
		return nil, "", nil, err
	}
	rows := make([][]float32, len(m.inputs))
	for i, in := range m.inputs {
		rows[i] = in.Data().([]float32)
	}
	b := chanbatch.New(m.fn, len(rows[0]), o.batchSize, o.batchTimeout)
	call := func(ctx context.Context, i int) error {
		_, err := b.Call(ctx, rows[i%len(rows)])
		return err
	}
	describe := fmt.Sprintf("hand-written channel batcher (internal/chanbatch) of %s, batch size %d, timeout %v",
		o.model, o.batchSize, o.batchTimeout)
	return call, describe, b.Close, nil
}

// heldOutRows returns the held-out digits images as [1,64] tensors.
func heldOutRows() ([]*tensor.Dense, error) {
	_, test, err := digits.Split(digits.SplitSeed)
	if err != nil {
		return nil, err
	}
	rows := make([]*tensor.Dense, test.Len())
	for i := range rows {
		r, err := batch.SliceRows(test.X, i, 1)
		if err != nil {
			return nil, err
		}
		rows[i] = r.(*tensor.Dense)
	}
	return rows, nil
}

// jsonTensor is the HTTP API's JSON tensor body.
type jsonTensor struct {
	Shape []int     `json:"shape"`
	DType string    `json:"dtype"`
	Data  []float32 `json:"data"`
}

// httpTarget posts held-out digits images to o.url as JSON tensors.
func httpTarget(o benchOptions) (loadgen.Call, error) {
	rows, err := heldOutRows()
	if err != nil {
		return nil, err
	}
	bodies := make([][]byte, len(rows))
	for i, r := range rows {
		if bodies[i], err = json.Marshal(jsonTensor{Shape: []int{1, 64}, DType: "float32", Data: r.Data().([]float32)}); err != nil {
			return nil, err
		}
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: o.callers + 16, MaxIdleConnsPerHost: o.callers + 16, IdleConnTimeout: time.Minute,
	}}
	return func(ctx context.Context, i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(bodies[i%len(bodies)]))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil
	}, nil
}

// localCluster starts two connected nodes with the cluster application in
// this process, resolving each other through one static registrar.
func localCluster() (client, server node.Node, err error) {
	reg := actors.NewStaticRegistrar()
	start := func(name string) (node.Node, error) {
		return startClusterNode(name+"@localhost", "ergonx-bench", node.Options{
			Registrar: reg,
			Listeners: []node.Listener{{Hostname: "127.0.0.1", ListenBegin: 15000, ListenEnd: 65000}},
		})
	}
	if server, err = start("bench-server"); err != nil {
		return nil, nil, err
	}
	if client, err = start("bench-client"); err != nil {
		server.Stop()
		return nil, nil, err
	}
	if err = client.Connect(server.Name()); err != nil {
		client.Stop()
		server.Stop()
		return nil, nil, err
	}
	return client, server, nil
}

// waitForMembers waits until group has a member in nd's process-group
// scope.
func waitForMembers(ctx context.Context, nd node.Node, group string, limit time.Duration) error {
	scope := pg.Lookup(nd, "")
	if scope == nil {
		return fmt.Errorf("node %s runs no process-group scope", nd.Name())
	}
	deadline := time.Now().Add(limit)
	for scope.Count(group) == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("no serving %q appeared in the cluster of node %s within %v", group, nd.Name(), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // polling the group, bounded
		}
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/ergo-services/ergo/node"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/internal/loadgen"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// nodeOptions are the flags of `ergonx node`.
type nodeOptions struct {
	clusterOptions
	serve        bool
	call         string
	callers      int
	requests     int
	wait         time.Duration
	batchSize    int
	batchTimeout time.Duration
	weights      string
}

func nodeCmd() *cobra.Command {
	o := nodeOptions{}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a cluster node: serve the digits model, call servings elsewhere",
		Long: "node starts a named ergo node with the ergonx runtime (process groups and the\n" +
			"serving endpoint) and joins a cluster: --connect lists nodes to connect to\n" +
			"(resolved through EPMD, which the first node on a machine starts embedded; or\n" +
			"give --peer name@host=ip:port for clusters without EPMD). --serve serves the\n" +
			"digits classifier under the name \"digits\"; --call NAME sends held-out digits\n" +
			"images to the serving NAME wherever it runs in the cluster and reports which\n" +
			"nodes answered. Without --call the node runs until interrupted (SIGINT or\n" +
			"SIGTERM, exit code 0); with --call, an interrupt stops the calls early\n" +
			"(exit code 130).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNode(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	clusterFlags(f, &o.clusterOptions, "ergonx@localhost", "listen")
	f.BoolVar(&o.serve, "serve", false, "serve the digits model as \"digits\"")
	f.StringVar(&o.call, "call", "", "call this serving with held-out images, report, and exit")
	f.IntVar(&o.callers, "callers", 32, "concurrent callers (--call)")
	f.IntVar(&o.requests, "requests", 2000, "calls (--call)")
	f.DurationVar(&o.wait, "wait", 30*time.Second, "how long --call waits for the serving to appear")
	f.IntVar(&o.batchSize, "batch-size", 64, "batch size (--serve)")
	f.DurationVar(&o.batchTimeout, "batch-timeout", 5*time.Millisecond, "batch timeout (--serve)")
	weightsFlag(f, &o.weights)
	return cmd
}

// validate checks the flags before anything runs or prints.
func (o nodeOptions) validate() error {
	var c checks
	c.add(o.clusterOptions.validate())
	if o.call != "" {
		c.add(atLeast("callers", o.callers, 1))
		c.add(atLeast("requests", o.requests, 1))
		c.add(positive("wait", o.wait))
	}
	if o.serve {
		c.add(atLeast("batch-size", o.batchSize, 1))
		c.add(positive("batch-timeout", o.batchTimeout))
	}
	return c.first()
}

func runNode(ctx context.Context, out io.Writer, o nodeOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := o.validate(); err != nil {
		return err
	}
	var model *digits.Model
	if o.serve {
		var err error
		if model, err = loadModel(o.weights); err != nil {
			return err
		}
	}
	nd, err := o.start()
	if err != nil {
		return err
	}
	defer actors.StopNode(nd)
	fmt.Fprintf(out, "node %s up\n", nd.Name())
	if err := o.join(out, nd); err != nil {
		return err
	}
	if o.serve {
		s := clusterDigits(nd, digits.Serving(model))
		stop, err := startServing(nd, serving.Options{Name: "digits", Serving: s,
			BatchSize: o.batchSize, BatchTimeout: o.batchTimeout})
		if err != nil {
			return err
		}
		defer func() { _ = stop(context.Background()) }()
		fmt.Fprintf(out, "serving \"digits\" (batch size %d, timeout %v)\n", o.batchSize, o.batchTimeout)
	}
	if o.call != "" {
		return callCluster(ctx, out, nd, o)
	}
	watchGroups(ctx, out, nd, "digits")
	return nil
}

// clusterDigits makes s tell remote callers which node answered (node
// --call reports it): the answer crosses the network as a tuple of the
// logits and the node's name. Local callers get the logits alone.
func clusterDigits(nd node.Node, s *serving.Serving) *serving.Serving {
	self := nd.Name()
	return s.DistributedPostprocessing(func(res any) (any, error) {
		return batch.Tuple{res, []byte(self)}, nil
	})
}

// watchGroups prints the members of group whenever they change, until ctx
// ends.
func watchGroups(ctx context.Context, out io.Writer, nd node.Node, group string) {
	scope := pg.Lookup(nd, "")
	members, events, cancel := scope.Monitor(group)
	defer cancel()
	fmt.Fprintf(out, "members of %q: %s\n", group, describeMembers(members))
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "stopping")
			return
		case _, ok := <-events:
			if !ok {
				return
			}
			fmt.Fprintf(out, "members of %q: %s\n", group, describeMembers(scope.Members(group)))
		}
	}
}

// describeMembers counts members per node: "a@localhost ×1, b@localhost ×4".
func describeMembers(pids []etf.Pid) string {
	if len(pids) == 0 {
		return "none"
	}
	count := map[string]int{}
	for _, p := range pids {
		count[string(p.Node)]++
	}
	nodes := make([]string, 0, len(count))
	for n := range count {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = fmt.Sprintf("%s ×%d", n, count[n])
	}
	return strings.Join(parts, ", ")
}

// callCluster sends held-out images to the serving o.call and reports.
func callCluster(ctx context.Context, out io.Writer, nd node.Node, o nodeOptions) error {
	if err := waitForMembers(ctx, nd, o.call, o.wait); err != nil {
		return err
	}
	_, test, err := digits.Split(digits.SplitSeed)
	if err != nil {
		return err
	}
	rows, err := heldOutRows()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	byNode := map[string]int{}
	correct := 0
	rep, err := loadgen.Run(ctx, loadgen.Options{Callers: o.callers, Requests: o.requests}, func(ctx context.Context, i int) error {
		img := i % len(rows)
		b, err := batch.Concatenate(rows[img])
		if err != nil {
			return err
		}
		res, err := serving.BatchedRun(ctx, nd, o.call, b)
		if err != nil {
			return err
		}
		who := nd.Name() + " (local)"
		if t, ok := res.(batch.Tuple); ok && len(t) == 2 {
			res = t[0]
			if name, ok := t[1].([]byte); ok {
				who = string(name)
			}
		}
		logits, ok := res.(*tensor.Dense)
		if !ok {
			return fmt.Errorf("unexpected result %T", res)
		}
		class, err := digits.Argmax(logits)
		if err != nil {
			return err
		}
		mu.Lock()
		byNode[who]++
		if class[0] == test.Labels[img] {
			correct++
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "called %q %d times from %s: %.0f req/s, p50 %s, p99 %s, %d errors\n",
		o.call, rep.Requests, nd.Name(), rep.Throughput(), ms(rep.Percentile(50)), ms(rep.Percentile(99)), rep.Errors)
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		fmt.Fprintf(out, "  answered by %s: %d\n", n, byNode[n])
	}
	fmt.Fprintf(out, "accuracy: %d/%d = %.2f %%\n", correct, rep.Succeeded(), 100*float64(correct)/float64(max(rep.Succeeded(), 1)))
	if rep.Interrupted {
		return fmt.Errorf("%w after %d of %d calls", errInterrupted, rep.Requests, o.requests)
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d calls failed; first: %w", rep.Errors, rep.FirstError)
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ergo-services/ergo/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors"
	"github.com/ergonx/ergonx/apps/cluster"
	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/batch"
	"github.com/ergonx/ergonx/models/digits"
	"github.com/ergonx/ergonx/serving"
)

// serveOptions are the flags of `ergonx serve`.
type serveOptions struct {
	listen          string
	batchSize       int
	batchTimeout    time.Duration
	partitions      int
	shutdownTimeout time.Duration
	requestTimeout  time.Duration
	maxBody         int64
	maxConcurrent   int
	maxQueue        int
	shutdownDelay   time.Duration
	weights         string
	cluster         clusterOptions // a cluster node when cluster.name is set
}

func serveCmd() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the digits model over HTTP/JSON with batching",
		Long: "serve starts a node with the cluster application, serves the repository's\n" +
			"handwritten-digits classifier under the name \"digits\" (rows of 64 float32\n" +
			"pixels in [0, 1] → 10 logits), and runs the HTTP inference application:\n" +
			"POST /v1/servings/digits/predict (JSON or application/x-ergonx-tensor),\n" +
			"the Open Inference Protocol (KServe v2 / Triton HTTP: POST /v2/models/digits/infer),\n" +
			"a live page (GET /), GET /v1/servings, GET /metrics (Prometheus), GET /healthz,\n" +
			"GET /readyz (every serving up, not draining)\n" +
			"and GET /openapi.json.\n" +
			"--name makes the node part of a cluster (with --cookie, --connect, --peer), so\n" +
			"that `ergonx node` processes can call its serving and it can call theirs.\n" +
			"SIGINT or SIGTERM stops it gracefully: in-flight requests finish first.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), cmd.OutOrStdout(), o, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", httpapi.DefaultAddr, "TCP address to listen on (port 0: any free port)")
	f.IntVar(&o.batchSize, "batch-size", 64, "batch size of the digits serving")
	f.DurationVar(&o.batchTimeout, "batch-timeout", 5*time.Millisecond, "batch timeout of the digits serving")
	f.IntVar(&o.partitions, "partitions", 1, "partitions (concurrent batches) of the digits serving")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", httpapi.DefaultShutdownTimeout, "how long stopping waits for in-flight requests")
	f.DurationVar(&o.requestTimeout, "request-timeout", 0, "deadline of requests without an X-Request-Timeout header (0: none)")
	f.Int64Var(&o.maxBody, "max-body", httpapi.DefaultMaxBodyBytes, "largest request body in bytes")
	f.IntVar(&o.maxConcurrent, "max-concurrent", httpapi.DefaultMaxConcurrent, "predict requests in progress at once; more get 503 busy")
	f.IntVar(&o.maxQueue, "max-queue", 0, "rows waiting in the serving before requests get 429 (0: the serving's default)")
	f.DurationVar(&o.shutdownDelay, "shutdown-delay", 0, "how long /readyz fails before the listener closes when stopping")
	weightsFlag(f, &o.weights)
	clusterFlags(f, &o.cluster, "", "node-port")
	return cmd
}

// validate checks the flags before anything runs or prints.
func (o serveOptions) validate() error {
	var c checks
	c.add(checkListen("listen", o.listen))
	c.add(atLeast("batch-size", o.batchSize, 1))
	c.add(positive("batch-timeout", o.batchTimeout))
	c.add(atLeast("partitions", o.partitions, 1))
	c.add(positive("shutdown-timeout", o.shutdownTimeout))
	c.add(notNegative("request-timeout", o.requestTimeout))
	c.add(atLeast("max-body", o.maxBody, 1))
	c.add(atLeast("max-concurrent", o.maxConcurrent, 1))
	c.add(atLeast("max-queue", o.maxQueue, 0))
	c.add(notNegative("shutdown-delay", o.shutdownDelay))
	if o.cluster.name != "" {
		c.add(o.cluster.validate())
	} else if len(o.cluster.connect) > 0 || len(o.cluster.peers) > 0 || o.cluster.port != 0 {
		c.add(usagef("--connect, --peer and --node-port need --name: the node's name in the cluster"))
	}
	return c.first()
}

// digitsModel is how the Open Inference Protocol routes describe the
// digits serving.
var digitsModel = &httpapi.Model{
	Inputs:  []httpapi.TensorSpec{{Name: "images", DType: tensor.Float32, Shape: []int{-1, digits.Pixels}}},
	Outputs: []httpapi.TensorSpec{{Name: "logits", DType: tensor.Float32, Shape: []int{-1, digits.Classes}}},
}

// testHookServeNode, when set by a test, receives serve's node once it
// serves.
var testHookServeNode func(node.Node)

// runServe serves until ctx ends, then stops gracefully: the HTTP
// application drains its in-flight requests, then the serving and the
// node stop. ready, when not nil, is called with the base URL once the
// server listens.
func runServe(ctx context.Context, out io.Writer, o serveOptions, ready func(url string)) (err error) {
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
	example, label, err := exampleBody()
	if err != nil {
		return err
	}

	var nd node.Node
	if o.cluster.name != "" {
		nd, err = o.cluster.start()
	} else {
		nd, err = startLocalNode("serve", true)
	}
	if err != nil {
		return err
	}
	defer actors.StopNode(nd)
	if err := o.cluster.join(out, nd); err != nil {
		return err
	}

	const name = "digits"
	s := digits.Serving(model)
	if o.cluster.name != "" {
		s = clusterDigits(nd, s)
	}
	stopServing, err := startServing(nd, serving.Options{
		Name:         name,
		Serving:      s,
		BatchSize:    o.batchSize,
		BatchTimeout: o.batchTimeout,
		Partitions:   o.partitions,
		MaxQueue:     o.maxQueue,
	})
	if err != nil {
		return err
	}
	defer func() {
		// After the HTTP drain: the requests in flight needed the serving.
		stopCtx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout+serving.DefaultShutdown)
		defer cancel()
		if stopErr := stopServing(stopCtx); stopErr != nil && err == nil {
			err = stopErr
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	app, err := httpapi.Start(nd, httpapi.AppOptions{
		Addr:            o.listen,
		ShutdownTimeout: o.shutdownTimeout,
		ShutdownDelay:   o.shutdownDelay,
		Handler: httpapi.Options{
			Servings: []httpapi.Serving{{
				Name: name,
				Row:  &httpapi.Row{DType: tensor.Float32, Shape: []int{digits.Pixels}},
				IsInputError: func(err error) bool {
					return errors.Is(err, digits.ErrShape) || errors.Is(err, digits.ErrDType)
				},
				Model: digitsModel,
			}},
			Registry:       reg,
			DefaultTimeout: o.requestTimeout,
			MaxBodyBytes:   o.maxBody,
			MaxConcurrent:  o.maxConcurrent,
		},
	})
	if err != nil {
		return err
	}

	if hook := testHookServeNode; hook != nil {
		hook(nd)
	}
	url := "http://" + app.Addr().String()
	printServe(out, o, nd.Name(), url, example, label)
	if ready != nil {
		ready(url)
	}

	// The serving, the cluster application's supervisor and the HTTP
	// application: if one of them ends, part of serve is gone, and
	// answering 503 forever would hide it.
	died := watchProcesses(nd, name, cluster.SupervisorName)
	select {
	case <-ctx.Done():
	case what := <-died:
		_ = app.Stop(context.Background())
		return fmt.Errorf("serve: %s; exiting", what)
	case <-app.Done():
		return fmt.Errorf("serve: the HTTP application stopped; exiting")
	}
	fmt.Fprintln(out, "\nshutting down: finishing the requests in flight")
	if err := app.Stop(context.Background()); err != nil {
		return err
	}
	fmt.Fprintln(out, "stopped")
	return nil
}

// exampleBody is the JSON request of the first held-out image, and the
// digit it shows.
func exampleBody() (string, int, error) {
	_, test, err := digits.Split(digits.SplitSeed)
	if err != nil {
		return "", 0, err
	}
	row, err := batch.SliceRows(test.X, 0, 1)
	if err != nil {
		return "", 0, err
	}
	body, err := httpapi.EncodeJSON(row)
	if err != nil {
		return "", 0, err
	}
	return string(body), test.Labels[0], nil
}

func printServe(out io.Writer, o serveOptions, node, url, example string, label int) {
	fmt.Fprintf(out, "ergonx serve: digits classifier on %s (node %s)\n", url, node)
	fmt.Fprintf(out, "  batch size %d, batch timeout %v, %d partition(s)\n\n", o.batchSize, o.batchTimeout, max(o.partitions, 1))
	fmt.Fprintf(out, "  GET  %s/                            the live page\n", url)
	fmt.Fprintf(out, "  POST %s/v1/servings/digits/predict   JSON or %s\n", url, httpapi.BinaryContentType)
	fmt.Fprintf(out, "  POST %s/v2/models/digits/infer       Open Inference Protocol (KServe v2, Triton)\n", url)
	fmt.Fprintf(out, "  GET  %s/v1/servings\n", url)
	fmt.Fprintf(out, "  GET  %s/metrics\n", url)
	fmt.Fprintf(out, "  GET  %s/healthz\n", url)
	fmt.Fprintf(out, "  GET  %s/openapi.json\n\n", url)
	fmt.Fprintf(out, "Try it with a held-out image of a %d (the answer is its 10 logits):\n", label)
	fmt.Fprintf(out, "  curl -s %s/v1/servings/digits/predict -H 'Content-Type: application/json' \\\n", url)
	fmt.Fprintf(out, "    -d '%s'\n\n", example)
	fmt.Fprintln(out, "Ctrl-C stops the server; requests in flight finish first.")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/ergonx/ergonx/actors/pg"
	"github.com/ergonx/ergonx/apps/httpapi"
	"github.com/ergonx/ergonx/apps/runtime"
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
}

func serveCmd() *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the digits model over HTTP/JSON with batching",
		Long: "serve starts a node with the runtime application, serves the repository's\n" +
			"handwritten-digits classifier under the name \"digits\" (rows of 64 float32\n" +
			"pixels in [0, 1] → 10 logits), and runs the HTTP inference application:\n" +
			"POST /v1/servings/digits/predict (JSON or application/x-ergonx-tensor),\n" +
			"GET /v1/servings, GET /metrics (Prometheus), GET /healthz.\n" +
			"SIGINT or SIGTERM stops it gracefully: in-flight requests finish first.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, cmd.OutOrStdout(), o, nil)
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
	return cmd
}

// runServe serves until ctx ends, then stops gracefully: the HTTP
// application drains its in-flight requests, then the serving and the
// node stop. ready, when not nil, is called with the base URL once the
// server listens.
func runServe(ctx context.Context, out io.Writer, o serveOptions, ready func(url string)) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	model, err := digits.Pretrained()
	if err != nil {
		return err
	}
	example, label, err := exampleBody()
	if err != nil {
		return err
	}

	nd, err := startLocalNode("serve")
	if err != nil {
		return err
	}
	defer func() { nd.Stop(); nd.Wait() }()
	if err := runtime.Start(nd, pg.Options{}); err != nil {
		return err
	}

	const name = "digits"
	if _, err := serving.Start(nd, serving.Options{
		Name:         name,
		Serving:      digits.Serving(model, compilerOptions(o.partitions)...),
		BatchSize:    o.batchSize,
		BatchTimeout: o.batchTimeout,
		Partitions:   o.partitions > 1,
	}); err != nil {
		return err
	}
	defer func() {
		// After the HTTP drain: the requests in flight needed the serving.
		stopCtx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout+serving.DefaultShutdown)
		defer cancel()
		if stopErr := serving.Stop(stopCtx, nd, name); stopErr != nil && err == nil {
			err = stopErr
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	app, err := httpapi.Start(nd, httpapi.AppOptions{
		Addr:            o.listen,
		ShutdownTimeout: o.shutdownTimeout,
		Handler: httpapi.Options{
			Servings: []httpapi.Serving{{
				Name: name,
				Row:  &httpapi.Row{DType: tensor.Float32, Shape: []int{digits.Pixels}},
				IsInputError: func(err error) bool {
					return errors.Is(err, digits.ErrShape) || errors.Is(err, digits.ErrDType)
				},
			}},
			Registry:       reg,
			DefaultTimeout: o.requestTimeout,
			MaxBodyBytes:   o.maxBody,
		},
	})
	if err != nil {
		return err
	}

	url := "http://" + app.Addr().String()
	printServe(out, o, nd.Name(), url, example, label)
	if ready != nil {
		ready(url)
	}

	<-ctx.Done()
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
	fmt.Fprintf(out, "  POST %s/v1/servings/digits/predict   JSON or %s\n", url, httpapi.BinaryContentType)
	fmt.Fprintf(out, "  GET  %s/v1/servings\n", url)
	fmt.Fprintf(out, "  GET  %s/metrics\n", url)
	fmt.Fprintf(out, "  GET  %s/healthz\n\n", url)
	fmt.Fprintf(out, "Try it with a held-out image of a %d (the answer is its 10 logits):\n", label)
	fmt.Fprintf(out, "  curl -s %s/v1/servings/digits/predict -H 'Content-Type: application/json' \\\n", url)
	fmt.Fprintf(out, "    -d '%s'\n\n", example)
	fmt.Fprintln(out, "Ctrl-C stops the server; requests in flight finish first.")
}

package metrics_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/ergonx/ergonx/metrics"
	"github.com/ergonx/ergonx/serving"
)

// A Go program registers the servings' collector on its own registry.
func ExampleNewCollector() {
	double := serving.NewBatchFunc(func(_ context.Context, rows [][]float32) ([][]float32, error) {
		out := make([][]float32, len(rows))
		for i, r := range rows {
			out[i] = []float32{2 * r[0]}
		}
		return out, nil
	})
	h, err := serving.Start(nil, serving.Options{Name: "double", Serving: double.Serving(), BatchSize: 8})
	if err != nil {
		panic(err)
	}
	defer h.Stop(context.Background())

	c, err := metrics.NewCollector(metrics.Options{Servings: []string{"double"}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	if _, err := double.Client(h).Call(context.Background(), []float32{21}); err != nil {
		panic(err)
	}
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if name := f.GetName(); name == "ergonx_serving_batch_size" || name == "ergonx_serving_batch_timeout_seconds" {
			var sb strings.Builder
			_, _ = expfmt.MetricFamilyToText(&sb, f)
			for _, line := range strings.Split(sb.String(), "\n") {
				if line != "" && !strings.HasPrefix(line, "#") {
					fmt.Println(line)
				}
			}
		}
	}
	// Output:
	// ergonx_serving_batch_size{serving="double"} 8
	// ergonx_serving_batch_timeout_seconds{serving="double"} 0.1
}

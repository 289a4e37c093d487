// Command ergonx runs ergonx: a demo of batched serving on a real model
// (demo), an HTTP inference server (serve), a load generator (bench), a
// cluster node (node) and the model's training (train).
//
//	go run ./cmd/ergonx demo
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ergonx:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ergonx",
		Short: "Batched tensor serving for Go on an Erlang-style actor runtime",
		Long: "ergonx batches requests from many callers into one tensor computation per\n" +
			"partition and hands each caller exactly its own rows, on ergo actors that\n" +
			"can spread over a cluster of nodes.",
		SilenceUsage: true,
	}
	root.AddCommand(demoCmd())
	root.AddCommand(serveCmd())
	root.AddCommand(trainCmd())
	root.AddCommand(benchCmd())
	root.AddCommand(nodeCmd())
	return root
}

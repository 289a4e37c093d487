// Command ergonx runs ergonx: a demo of batched serving on a real model
// (demo), an HTTP inference server (serve), a load generator (bench), a
// cluster node (node) and the model's training (train).
//
//	go run ./cmd/ergonx demo
//
// Every command checks its flags before it prints anything or starts
// anything, prints one line on stderr when it fails, and exits with one
// of the codes exitOK, exitFailure, exitUsage and exitInterrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ergonx/ergonx/internal/version"
)

// Exit codes, the same for every command (listed in `ergonx --help`).
const (
	exitOK          = 0   // done
	exitFailure     = 1   // something failed while running (bench: some calls failed)
	exitUsage       = 2   // a bad flag, flag value or argument: nothing ran
	exitInterrupted = 130 // SIGINT or SIGTERM stopped demo, bench, node --call or train early
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs the command line args and returns the exit code. The first
// SIGINT or SIGTERM ends the command's context (demo and bench print a
// partial report, serve and node stop gracefully); a second one kills
// the process, as the signal's default does.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // the next signal kills: no waiting for a drain that hangs
	}()
	root := rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	return report(stderr, cmd, err)
}

// report prints err as one line on stderr and returns its exit code.
func report(stderr io.Writer, cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	where := "ergonx"
	if cmd != nil {
		where = cmd.CommandPath()
	}
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
	code := exitFailure
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		code = exitUsage
		msg += " (see '" + where + " --help')"
	case errors.Is(err, errInterrupted):
		code = exitInterrupted
	}
	fmt.Fprintf(stderr, "%s: %s\n", where, msg)
	return code
}

const rootLong = `ergonx batches requests from many callers into one tensor computation per
partition and hands each caller exactly its own rows, on ergo actors that
can spread over a cluster of nodes.

Exit codes:
  0    done
  1    something failed while running (bench: some calls failed)
  2    a bad flag, flag value or argument; nothing ran
  130  SIGINT/SIGTERM stopped demo, bench, node --call or train early
       (demo and bench print a partial report first); serve and a node
       without --call stop gracefully on it and exit 0`

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ergonx",
		Short:         "Batched tensor serving for Go on an Erlang-style actor runtime",
		Long:          rootLong,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true, // report prints every error, once
		// Runnable so that an unknown command reaches Args, which says so
		// in one line (cobra's own message spans several).
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			hint := ""
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				hint = " (did you mean " + s[0] + "?)"
			}
			return usagef("unknown command %q%s", args[0], hint)
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	root.AddCommand(demoCmd())
	root.AddCommand(serveCmd())
	root.AddCommand(trainCmd())
	root.AddCommand(benchCmd())
	root.AddCommand(nodeCmd())
	return root
}

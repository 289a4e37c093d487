package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ergonx/ergonx/models/digits"
)

type trainOptions struct {
	out      string
	seed     uint64
	hidden   int
	epochs   int
	progress string
	quiet    bool
}

func trainCmd() *cobra.Command {
	o := trainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train the digits classifier and write its weights (safetensors)",
		Long: "train trains the two-layer MLP on the handwritten digits shipped in the\n" +
			"repository (deterministically: the same flags give the same weights, bit for\n" +
			"bit) and writes its weights in safetensors format. With the default flags it\n" +
			"reproduces models/digits/digits.safetensors, the weights demo and serve use;\n" +
			"serve, demo and node take other weights with --weights FILE.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "digits.safetensors", "file to write the weights to")
	f.Uint64Var(&o.seed, "seed", digits.DefaultSeed, "random seed")
	f.IntVar(&o.hidden, "hidden", digits.DefaultHidden, "hidden units")
	f.IntVar(&o.epochs, "epochs", digits.DefaultEpochs, "passes over the training set")
	progressFlags(f, &o.progress, &o.quiet)
	return cmd
}

// validate checks the flags before anything runs or prints.
func (o trainOptions) validate() error {
	var c checks
	if o.out == "" {
		c.add(usagef("--out \"\": name the file to write the weights to"))
	}
	c.add(atLeast("hidden", o.hidden, 1))
	if o.hidden > digits.MaxHidden {
		c.add(usagef("--hidden %d: at most %d", o.hidden, digits.MaxHidden))
	}
	c.add(atLeast("epochs", o.epochs, 1))
	c.add(checkProgress(o.progress))
	return c.first()
}

func runTrain(ctx context.Context, out, errOut io.Writer, o trainOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := o.validate(); err != nil {
		return err
	}
	opts := digits.TrainOptions{Seed: o.seed, Hidden: o.hidden, Epochs: o.epochs}
	b := newBar(showProgress(o.progress, o.quiet, errOut), errOut, o.epochs, "training")
	epochs := 0
	opts.Progress = func(e digits.Epoch) {
		epochs = e.Epoch
		b.describe(fmt.Sprintf("training (loss %.3f)", e.Loss))
		b.set(e.Epoch)
	}
	// Train takes no context and a second or so: an interrupt is noticed
	// when it returns, and then nothing is written.
	model, rep, err := digits.Train(opts)
	b.end(ctx.Err() != nil, epochs)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: no weights written", errInterrupted)
	}
	if err := model.SaveFile(o.out); err != nil {
		return err
	}
	fmt.Fprintf(out, "trained 64→%d→10 in %v: %d epochs on %d images, loss %.4f\n",
		model.Hidden(), rep.Duration.Round(1e6), rep.Options.Epochs, rep.TrainSize, rep.Loss)
	fmt.Fprintf(out, "accuracy: train %.2f %%, held-out %.2f %% (%d/%d)\n",
		100*rep.TrainAccuracy, 100*rep.TestAccuracy, rep.TestCorrect, rep.TestSize)
	fmt.Fprintf(out, "weights written to %s (serve them: ergonx serve --weights %s)\n", o.out, o.out)
	return nil
}

package main

import (
	"fmt"
	"io"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/ergonx/ergonx/models/digits"
)

type trainOptions struct {
	out    string
	seed   uint64
	hidden int
	epochs int
	quiet  bool
}

func trainCmd() *cobra.Command {
	o := trainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train the digits classifier and write its weights (safetensors)",
		Long: "train trains the two-layer MLP on the handwritten digits shipped in the\n" +
			"repository (deterministically: the same flags give the same weights, bit for\n" +
			"bit) and writes its weights in safetensors format. With the default flags it\n" +
			"reproduces models/digits/digits.safetensors, the weights demo and serve use.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "digits.safetensors", "file to write the weights to")
	f.Uint64Var(&o.seed, "seed", digits.DefaultSeed, "random seed")
	f.IntVar(&o.hidden, "hidden", digits.DefaultHidden, "hidden units")
	f.IntVar(&o.epochs, "epochs", digits.DefaultEpochs, "passes over the training set")
	f.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	return cmd
}

func runTrain(out, errOut io.Writer, o trainOptions) error {
	opts := digits.TrainOptions{Seed: o.seed, Hidden: o.hidden, Epochs: o.epochs}
	var bar *progressbar.ProgressBar
	if !o.quiet {
		bar = progressbar.NewOptions(o.epochs, progressbar.OptionSetWriter(errOut),
			progressbar.OptionSetDescription("training"), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
		opts.Progress = func(e digits.Epoch) {
			bar.Describe(fmt.Sprintf("training (loss %.3f)", e.Loss))
			_ = bar.Set(e.Epoch)
		}
	}
	model, rep, err := digits.Train(opts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	if err := model.SaveFile(o.out); err != nil {
		return err
	}
	fmt.Fprintf(out, "trained 64→%d→10 in %v: %d epochs on %d images, loss %.4f\n",
		model.Hidden(), rep.Duration.Round(1e6), rep.Options.Epochs, rep.TrainSize, rep.Loss)
	fmt.Fprintf(out, "accuracy: train %.2f %%, held-out %.2f %% (%d/%d)\n",
		100*rep.TrainAccuracy, 100*rep.TestAccuracy, rep.TestCorrect, rep.TestSize)
	fmt.Fprintf(out, "weights written to %s\n", o.out)
	return nil
}

// Command gen trains the digits model with the default options and writes
// its weights, reproducing the committed models/digits/digits.safetensors
// bit for bit. Run it through `go generate ./models/digits`.
//
//	go run ./internal/gen [-o digits.safetensors] [-seed 1] [-hidden 32] [-epochs 40]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ergonx/ergonx/models/digits"
)

func main() {
	out := flag.String("o", "digits.safetensors", "path of the weights file to write")
	var opts digits.TrainOptions
	flag.Uint64Var(&opts.Seed, "seed", digits.DefaultSeed, "training seed")
	flag.IntVar(&opts.Hidden, "hidden", digits.DefaultHidden, "hidden units")
	flag.IntVar(&opts.Epochs, "epochs", digits.DefaultEpochs, "passes over the training set")
	flag.Parse()

	m, rep, err := digits.Train(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := m.SaveFile(*out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "wrote %s: held-out accuracy %.4f (%d/%d), train %.4f, loss %.4f, %v\n",
		*out, rep.TestAccuracy, rep.TestCorrect, rep.TestSize, rep.TrainAccuracy, rep.Loss, rep.Duration.Round(1e6))
}

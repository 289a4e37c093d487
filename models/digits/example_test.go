package digits_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"

	"github.com/ergonx/ergonx/models/digits"
	"gorgonia.org/tensor"
)

// The pretrained model on the held-out images it never saw in training.
func ExamplePretrained() {
	m, err := digits.Pretrained()
	if err != nil {
		log.Fatal(err)
	}
	_, test, err := digits.Split(digits.SplitSeed)
	if err != nil {
		log.Fatal(err)
	}
	acc, err := m.Accuracy(test.X, test.Labels)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("held-out accuracy: %.4f on %d images\n", acc, test.Len())
	// Output:
	// held-out accuracy: 0.9944 on 360 images
}

// Predict scores a batch; Argmax turns each row of logits into a digit.
func ExampleModel_Predict() {
	m, err := digits.Pretrained()
	if err != nil {
		log.Fatal(err)
	}
	_, test, err := digits.Split(digits.SplitSeed)
	if err != nil {
		log.Fatal(err)
	}
	batch := tensor.New(tensor.WithShape(5, digits.Pixels),
		tensor.WithBacking(test.X.Float32s()[:5*digits.Pixels]))

	logits, err := m.Predict(batch)
	if err != nil {
		log.Fatal(err)
	}
	pred, err := digits.Argmax(logits)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("logits shape:", logits.Shape())
	fmt.Println("predicted:   ", pred)
	fmt.Println("labels:      ", test.Labels[:5])
	// Output:
	// logits shape: (5, 10)
	// predicted:    [0 6 8 2 1]
	// labels:       [0 6 8 2 1]
}

// Training is deterministic: the same options give the same weights, and so
// the same held-out score, on every platform.
func ExampleTrain() {
	m, rep, err := digits.Train(digits.TrainOptions{Hidden: 16, Epochs: 5})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("hidden %d, %d epochs: held-out %d/%d\n", m.Hidden(), rep.Options.Epochs, rep.TestCorrect, rep.TestSize)
	// Output:
	// hidden 16, 5 epochs: held-out 353/360
}

// A truncated weights file says what is wrong and what to do; errors.Is
// tells the kinds of failure apart.
func ExampleLoad_truncated() {
	m, err := digits.Pretrained()
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		log.Fatal(err)
	}
	file := buf.Bytes()

	_, err = digits.Load(bytes.NewReader(file[:len(file)/2]))
	fmt.Println(err)
	fmt.Println("truncated:", errors.Is(err, digits.ErrTruncated))
	// Output:
	// digits: weights file ends after 5192 of 10384 bytes: the file is truncated; retrain with `ergonx train` (or `go generate ./models/digits`) or restore the file
	// truncated: true
}

// Save and Load round-trip a model through the safetensors format.
func ExampleModel_Save() {
	m, _, err := digits.Train(digits.TrainOptions{Hidden: 8, Epochs: 1})
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		log.Fatal(err)
	}
	back, err := digits.Load(&buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("hidden units:", back.Hidden())
	fmt.Println("seed:", back.Metadata()["seed"])
	// Output:
	// hidden units: 8
	// seed: 1
}

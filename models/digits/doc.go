// Package digits is a small real model for ergonx to serve: a two-layer
// perceptron that reads 8×8 images of handwritten digits and scores the
// digits 0–9, with its data set, its training, and its weights, all in the
// repository: nothing is downloaded to train, load or serve it.
//
// # The model
//
// logits = relu(x·W1 + b1)·W2 + b2, float32 throughout: 64 inputs (pixels
// scaled to [0, 1]), Hidden() = 32 ReLU units by default, 10 logits.
// Predict takes a batch, an [N, 64] gorgonia tensor, and returns the [N, 10]
// logits as a new tensor; rows are independent, so a serving may stack the
// rows of many callers into one call and hand each caller its own rows back.
// Classify and Argmax turn logits into digits, and Accuracy scores a model
// on labelled data. A *Model is read-only and safe for concurrent use.
//
// # The data and its licence
//
// digits.csv.gz, embedded in the package, is the test set of the UCI
// "Optical Recognition of Handwritten Digits" data set (E. Alpaydin and
// C. Kaynak, 1998, https://doi.org/10.24432/C50P49): 1,797 images written by
// 13 people, each 32×32 bitmap reduced to 8×8 counts of "on" pixels (0..16).
// The file is scikit-learn's copy (sklearn/datasets/data/digits.csv.gz, the
// data of sklearn.datasets.load_digits), unchanged. The data set is licensed
// under Creative Commons Attribution 4.0 (CC BY 4.0); digits.csv.gz.license
// holds the attribution, the source and the file's checksum. The weights are
// derived from it and carry the same attribution in their metadata.
//
// Dataset returns all examples; Split(seed) a seeded 80/20 split. Train
// always trains on Split(SplitSeed)'s 1,437 training examples and measures
// on its 360 held-out ones, which nothing in training ever sees.
//
// # Training and reproducibility
//
// Train is mini-batch SGD with momentum on the softmax cross-entropy, in
// pure Go on one goroutine; with the defaults it takes a fraction of a second
// and reaches about 99 % held-out accuracy. It is deterministic to the bit on
// every platform (see Train for how), so the committed weights can be
// checked: digits.safetensors is exactly what Train(TrainOptions{}) saves,
// and a test says so. To reproduce or retrain:
//
//	go generate ./models/digits          # rewrites models/digits/digits.safetensors
//	ergonx train                         # the CLI calls the same Train
//
// # Weights files
//
// Weights are stored in the safetensors format of Hugging Face: an 8-byte
// little-endian header length, a JSON header giving each tensor's dtype,
// shape and data offsets plus string metadata, then the raw little-endian
// data. The four tensors are named and shaped as PyTorch's nn.Linear stores
// them (fc1.weight [H, 64], fc1.bias, fc2.weight [10, H], fc2.bias), so other
// tools can read the file. Pretrained loads the embedded file; Save, SaveFile,
// Load and LoadFile write and read others. A file that is truncated, not
// safetensors, or saved for another model gives a *FormatError that says what
// is wrong and how to fix it, and errors.Is tells the kinds apart:
// ErrTruncated, ErrCorrupt, ErrMissingTensor, ErrUnknownTensor, ErrDType,
// ErrShape.
package digits

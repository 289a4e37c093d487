package digits

import "errors"

// The kinds of error that Load, LoadFile and Predict return, to test with
// errors.Is. The errors themselves are *FormatError values whose messages
// say what was found and what to do.
var (
	// ErrTruncated: the weights file ends before the length its header
	// (or its first 8 bytes) announce. Load and LoadFile return it.
	ErrTruncated = errors.New("digits: weights file is truncated")

	// ErrCorrupt: the weights file is not a well-formed safetensors file
	// (its header is not the JSON object the format requires, its data
	// offsets do not tile the data, or bytes follow the last tensor), or a
	// weight is NaN or infinite. Load and LoadFile return it.
	ErrCorrupt = errors.New("digits: weights file is corrupt")

	// ErrDType: a weights tensor is not F32 (Load, LoadFile), or Predict's
	// input is not a float32 tensor.
	ErrDType = errors.New("digits: wrong dtype")

	// ErrShape: a weights tensor's shape does not fit the model (Load,
	// LoadFile), or Predict's input is not an [N, 64] matrix.
	ErrShape = errors.New("digits: wrong shape")

	// ErrMissingTensor: the weights file lacks one of the four tensors of
	// the model. Load and LoadFile return it.
	ErrMissingTensor = errors.New("digits: weights tensor missing")

	// ErrUnknownTensor: the weights file holds a tensor besides the four of
	// the model, so it was saved for another model. Load and LoadFile
	// return it.
	ErrUnknownTensor = errors.New("digits: unknown weights tensor")
)

// FormatError is the error Load, LoadFile and Predict return for a bad
// weights file or a bad input. Its message says what was wrong and what to
// do; Kind is one of ErrTruncated, ErrCorrupt, ErrDType, ErrShape,
// ErrMissingTensor and ErrUnknownTensor, which errors.Is finds through Unwrap.
type FormatError struct {
	// Kind is the sentinel error this is an instance of.
	Kind error
	// Tensor names the tensor concerned ("fc1.weight", …, or "input" for
	// Predict's argument); it is empty when the file as a whole is at fault.
	Tensor string
	msg    string
}

// Error returns the full message.
func (e *FormatError) Error() string { return e.msg }

// Unwrap returns e.Kind.
func (e *FormatError) Unwrap() error { return e.Kind }

// fixWeights is what every weights-file error tells the reader to do.
const fixWeights = "retrain with `ergonx train` (or `go generate ./models/digits`) or restore the file"

func weightsError(kind error, tensorName, what string) *FormatError {
	return &FormatError{Kind: kind, Tensor: tensorName, msg: "digits: " + what + "; " + fixWeights}
}

func inputError(kind error, what string) *FormatError {
	return &FormatError{Kind: kind, Tensor: "input", msg: "digits: " + what}
}

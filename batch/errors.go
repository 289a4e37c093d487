package batch

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Each is returned wrapped with the
// details of the failing call, so test them with errors.Is.
var (
	// ErrEmpty is returned by Materialize for a batch without entries
	// (padding alone is not enough) and by Merge/Split callers that need
	// rows.
	ErrEmpty = errors.New("batch: cannot materialise a batch without entries")

	// ErrIncompatible is returned by Stack, Concatenate and Merge when
	// entries (or batches) differ in container structure, dtype or row
	// shape. The error is an *IncompatibleError holding both templates.
	ErrIncompatible = errors.New("batch: incompatible tensors/containers")

	// ErrScalar is returned by Concatenate for a scalar (0-d) tensor: a
	// scalar has no first axis to concatenate along. Stack it instead.
	ErrScalar = errors.New("batch: cannot concatenate scalar tensor")

	// ErrEmptyContainer is returned by Stack and Concatenate for a
	// container that holds no tensor at all.
	ErrEmptyContainer = errors.New("batch: cannot have an empty container in a batch")

	// ErrUnequalRows is returned by Concatenate when the tensors inside
	// one container entry have different first-axis lengths.
	ErrUnequalRows = errors.New("batch: concatenate expects all tensors in the same container to have the same value for first axis")

	// ErrInvalidSplit is returned by Split for n <= 0.
	ErrInvalidSplit = errors.New("batch: split needs a positive number of rows")

	// ErrInvalidPad is returned by Pad for n < 0.
	ErrInvalidPad = errors.New("batch: pad needs a non-negative number of rows")

	// ErrKeyMismatch is returned by Merge for batches with different keys.
	ErrKeyMismatch = errors.New("batch: cannot merge batches with different batch keys")

	// ErrUnsupported is returned for a value that is not a container: not
	// a *tensor.Dense, a Tuple, a Map or (for Stack) a Go number.
	ErrUnsupported = errors.New("batch: unsupported value")

	// ErrRows is returned by SliceRows and ConcatRows for row ranges or
	// parts that do not fit the container.
	ErrRows = errors.New("batch: rows out of range")
)

// IncompatibleError reports two templates that cannot be in one batch.
// It matches ErrIncompatible with errors.Is.
type IncompatibleError struct {
	// Op is the operation that failed: "stack", "concatenate" or "merge".
	Op string
	// Want is the template everything must match: the head of the list,
	// or the batch's existing template.
	Want *Template
	// Got is the template that did not match.
	Got *Template
	// Index is the position of the offending entry in the call's list, or
	// -1 when the head of the list did not match the batch itself.
	Index int
}

func (e *IncompatibleError) Error() string {
	switch {
	case e.Op == "merge":
		return fmt.Sprintf("batch: cannot merge batches due to incompatible templates %s and %s: "+
			"merge only batches whose entries have the same container structure, dtype and row shape", e.Want, e.Got)
	case e.Index < 0:
		return fmt.Sprintf("batch: cannot %s: incompatible tensors/containers: the batch has template %s "+
			"but the head of the list has template %s; every entry of a batch must have the same "+
			"container structure, dtype and row shape", e.Op, e.Want, e.Got)
	default:
		return fmt.Sprintf("batch: cannot %s: incompatible tensors/containers: the head of the list has template %s "+
			"but list element %d has template %s; every entry of a batch must have the same "+
			"container structure, dtype and row shape", e.Op, e.Want, e.Index, e.Got)
	}
}

// Is makes errors.Is(err, ErrIncompatible) true.
func (e *IncompatibleError) Is(target error) bool { return target == ErrIncompatible }

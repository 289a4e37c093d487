package supervisor

import (
	"errors"
	"fmt"

	"github.com/ergo-services/ergo/lib"
)

var (
	// ErrNameTaken is returned (wrapped) by Start when the supervisor's
	// name is registered already, and carried by a *StartError when a
	// child's name is. It wraps ergo's lib.ErrTaken, so errors.Is matches
	// either.
	ErrNameTaken error = nameTakenError{}

	// ErrInvalidSpec is wrapped by the error Start returns for a Spec it
	// cannot run (a child without Start, a duplicate name, a negative
	// duration...); the message says which field.
	ErrInvalidSpec = errors.New("supervisor: invalid spec")

	// ErrNotSupervisor is returned by Stop for a process that does not run
	// this package's behaviour.
	ErrNotSupervisor = errors.New("supervisor: process is not a supervisor of this package")
)

// nameTakenError is ErrNameTaken: a type rather than fmt.Errorf, so that
// its message does not repeat ergo's.
type nameTakenError struct{}

func (nameTakenError) Error() string { return "supervisor: name is taken" }
func (nameTakenError) Unwrap() error { return lib.ErrTaken }

// StartError says that a supervisor could not start one of its children.
// Start returns it when the initial start fails; by then every child
// started before the failing one has been stopped in reverse order, with
// its shutdown time, and the supervisor has exited.
type StartError struct {
	// Child is the failing child's registered name ("" when it has none).
	Child string
	// Index is the child's position in Spec.Children.
	Index int
	// Err is why: the error returned by the child's Init (ergo reports a
	// panic in Init as an error "panic"), ErrNameTaken, or a recovered
	// panic of ChildSpec.Start.
	Err error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("supervisor: start child %s: %v", childID(e.Child, e.Index), e.Err)
}

// Unwrap returns e.Err.
func (e *StartError) Unwrap() error { return e.Err }

package gcsafety

import (
	"errors"
	"fmt"
)

// ErrNotValid is wrapped by every error about a handle that names no live
// registration: errors.Is(err, ErrNotValid) holds for a released, invalidated,
// forged or zero handle, and for a handle whose manager is closed (with
// ErrClosed). The more specific ErrReleased, ErrInvalidated and ErrInvalidHandle
// wrap it in turn, so errors.Is(err, ErrNotValid) and errors.Is(err,
// ErrReleased) both hold for a stale handle (on every supported Go version:
// the chain has a single Unwrap at each step).
var ErrNotValid = errors.New("gcsafety: object not valid for access")

// ErrReleased: the handle was issued once and has since been unregistered
// (GCS_ERROR_RELEASED). It wraps ErrNotValid.
var ErrReleased error = &notValidError{"gcsafety: object released"}

// ErrInvalidated: the handle was invalidated, by Invalidate or by a panic
// during an access, and refuses accesses until it is unregistered
// (GCS_ERROR_INVALIDATED). It wraps ErrNotValid.
var ErrInvalidated error = &notValidError{"gcsafety: object invalidated"}

// ErrInvalidHandle: the value is 0, forged, or was never issued by the
// library (GCS_ERROR_INVALID_HANDLE). It wraps ErrNotValid.
var ErrInvalidHandle error = &notValidError{"gcsafety: invalid handle"}

// ErrPanic is wrapped by the error SafeAccess (and Handle.Access) return
// when the function they ran panicked: the panic was recovered and the handle
// invalidated. The message contains "panic during object access".
var ErrPanic = errors.New("gcsafety: panic during object access")

// ErrClosed is wrapped by the errors of a manager's methods after Close, and
// of calls on handles whose manager is closed (GCS_ERROR_SHUT_DOWN).
var ErrClosed = errors.New("gcsafety: manager closed")

// notValidError is a sentinel beneath ErrNotValid.
type notValidError struct{ msg string }

func (e *notValidError) Error() string { return e.msg }
func (e *notValidError) Unwrap() error { return ErrNotValid }

// The operations named in errors.
const (
	opAccess     = "access"
	opUnregister = "unregister"
	opInvalidate = "invalidate"
	opCleanup    = "add a cleanup to"
	opInfo       = "describe"
)

// handleError is a call on a handle that the library refused. Its message
// is built from the operation, the handle and the GcsResult (never from
// gcs_last_error, which belongs to whichever OS thread the goroutine ran on).
type handleError struct {
	op     string
	handle Handle
	result result
}

func (e *handleError) Error() string {
	if e.op == opAccess {
		return fmt.Sprintf("gcsafety: object %v not valid for access: %v", e.handle, e.result)
	}
	return fmt.Sprintf("gcsafety: cannot %s object %v: %v", e.op, e.handle, e.result)
}

// Unwrap gives the sentinel of the result, if it has one.
func (e *handleError) Unwrap() error {
	switch e.result {
	case resultReleased:
		return ErrReleased
	case resultInvalidated:
		return ErrInvalidated
	case resultInvalidHandle:
		return ErrInvalidHandle
	case resultShutDown:
		return ErrClosed
	case resultTimeout:
		return ErrTimeout
	}
	return nil
}

// Is makes a handle whose manager is closed match ErrNotValid as well as
// ErrClosed: every refused handle matches ErrNotValid.
func (e *handleError) Is(target error) bool {
	return target == ErrNotValid && e.result == resultShutDown
}

// handleErr is nil for resultOK, else the error of op on h.
func handleErr(op string, h Handle, r result) error {
	if r == resultOK {
		return nil
	}
	return &handleError{op: op, handle: h, result: r}
}

// panicError is an access whose function panicked.
type panicError struct {
	handle Handle
	value  any
}

func (e *panicError) Error() string {
	return fmt.Sprintf("gcsafety: panic during object access (object %v, now invalidated): %v", e.handle, e.value)
}

func (e *panicError) Unwrap() error { return ErrPanic }

// closedError is a manager method called after Close, or on a manager that
// could not be created.
type closedError struct{ reason string }

func (e *closedError) Error() string { return "gcsafety: manager closed: " + e.reason }
func (e *closedError) Unwrap() error { return ErrClosed }

// errClosed is what the methods of a closed manager return.
var errClosed error = &closedError{"Close was called"}

// registerError is a registration the library refused.
type registerError struct {
	what   string
	result result
}

func (e *registerError) Error() string {
	return fmt.Sprintf("gcsafety: cannot register %s: %v", e.what, e.result)
}

func (e *registerError) Unwrap() error {
	if e.result == resultShutDown {
		return ErrClosed
	}
	return nil
}

package gcsafety

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// Handle names one registration, forever: an opaque 64-bit value issued by
// the library (index and generation, salted), never a pointer. 0 is never
// issued. Any value is safe to pass to every function: a stale, forged or zero
// handle gives an error wrapping ErrNotValid. A handle identifies its manager,
// so the Handle methods need none.
type Handle uint64

// Valid reports whether accesses of h would be accepted now (a snapshot:
// another goroutine may unregister it right after). gcs_is_valid.
func (h Handle) Valid() bool {
	return isValid(h)
}

// String formats h as the library's messages do, 0x followed by 16 hex digits.
func (h Handle) String() string {
	return fmt.Sprintf("0x%016x", uint64(h))
}

// Register registers a GstObject (a GstElement, GstPad, GstBus, ...) with
// the library's default manager and returns its handle (gcs_register). The
// registration takes its own reference: a floating reference is sunk (the
// registration then owns the object), otherwise a reference is added; it is
// dropped exactly once, when the handle is released. obj must be a C pointer
// (transfer none), never a pointer to Go memory. A value that is not a
// GstObject is refused with an error (the default manager checks GTypes).
// typeName may be "" (the GType name is used).
func Register(obj unsafe.Pointer, typeName string) (Handle, error) {
	return registerDefault(kindGstObject, obj, typeName)
}

// RegisterMiniObject registers a GstMiniObject (GstSample, GstBuffer,
// GstCaps, GstEvent, ...) with the default manager: the registration adds a
// reference (gst_mini_object_ref) and drops it when the handle is released.
// obj must be a C pointer; typeName may be "" (the GType name is used).
func RegisterMiniObject(obj unsafe.Pointer, typeName string) (Handle, error) {
	return registerDefault(kindMiniObject, obj, typeName)
}

func registerDefault(kind objectKind, obj unsafe.Pointer, typeName string) (Handle, error) {
	if err := checkNames(typeName, ""); err != nil {
		return 0, err
	}
	h, r := registerC(nil, kind.c(), obj, typeName, "", 0)
	if r != resultOK {
		return 0, &registerError{what: fmt.Sprintf("%s %p", kind, obj), result: r}
	}
	return h, nil
}

// Access runs fn with the registered object while h is live (the access
// begins and ends on the table's words with no cgo call on the success path,
// as gcs_access_begin_inline does; see table.go): the object cannot be released
// before fn returns, whatever other goroutines do, and obj is valid only
// until then (transfer none). For a Go value registered with a manager, obj
// is not a pointer (it is the registration's token) and must not be used:
// use the value itself. An error returned by fn is returned
// unchanged; a panic in fn is recovered, the handle invalidated, and an error
// wrapping ErrPanic returned; a refused handle gives an error wrapping
// ErrNotValid (and ErrReleased, ErrInvalidated, ErrInvalidHandle or
// ErrClosed), without calling fn.
func (h Handle) Access(fn func(obj unsafe.Pointer) error) (err error) {
	if fn == nil {
		return errNilFunc
	}
	obj, access, fast := fastBegin(h)
	if !fast {
		var r result
		if obj, r = accessBeginObject(h); r != resultOK {
			return handleErr(opAccess, h, r)
		}
	}
	completed := false
	defer func() {
		if !completed {
			err = accessPanicked(nil, h, recover())
		}
		// An access begun by the library may still end on the fast path.
		if !access.fastEnd() && !fastEnd(h) {
			accessEnd(h)
		}
	}()
	err = fn(obj)
	completed = true
	return err
}

// Unregister unregisters h (gcs_unregister): new accesses are refused at
// once, and the registration is released (its cleanups run, its reference
// is dropped) when the last access in flight ends, on the goroutine that ends
// it, or here if none is. It never blocks on accesses and may be called inside
// an access of h. A second call returns an error wrapping ErrReleased.
func (h Handle) Unregister() error {
	return handleErr(opUnregister, h, unregister(h))
}

// Invalidate makes h refuse new accesses, as Unregister does, but keeps the
// registration until it is unregistered (gcs_invalidate). Invalidating an
// invalidated handle returns an error wrapping ErrInvalidated.
func (h Handle) Invalidate() error {
	return handleErr(opInvalidate, h, invalidate(h))
}

// accessPanicked invalidates h, whose access function panicked with value.
func accessPanicked(c *goCounters, h Handle, value any) error {
	invalidate(h)
	if c != nil {
		c.panicsRecovered.Add(1)
	}
	return &panicError{handle: h, value: value}
}

var errNilFunc = errors.New("gcsafety: the function is nil")

// objectKind is a GcsObjectKind the package registers.
type objectKind int

const (
	kindGstObject objectKind = iota
	kindMiniObject
)

func (k objectKind) String() string {
	if k == kindMiniObject {
		return "GstMiniObject"
	}
	return "GstObject"
}

// checkNames refuses names the library would see truncated.
func checkNames(typeName, instanceName string) error {
	if strings.IndexByte(typeName, 0) >= 0 {
		return fmt.Errorf("gcsafety: the type name %q contains a NUL byte", typeName)
	}
	if strings.IndexByte(instanceName, 0) >= 0 {
		return fmt.Errorf("gcsafety: the instance name %q contains a NUL byte", instanceName)
	}
	return nil
}

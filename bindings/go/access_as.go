package gcsafety

import (
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// AccessAs runs fn with the C object of h, made into the binding's own type
// by wrap, while h is live: Handle.Access with the object handed back as,
// say, a go-gst *gst.Element. wrap is a function of the binding that wraps a
// C pointer, for go-gst v1:
//
//	err := gcsafety.AccessAs(h, gst.FromGstElementUnsafeNone, func(e *gst.Element) error {
//		return e.SetState(gst.StatePlaying)
//	})
//
// and for gotk4, func(p unsafe.Pointer) *gtk.Widget wrapping coreglib.Take(p).
//
// The wrapper is borrowed: the object is guaranteed alive only until fn
// returns, so the wrapper must not escape fn (stored, sent on a channel,
// captured by a goroutine) unless wrap took a reference of its own, as
// go-gst's FromGstElementUnsafeNone and gotk4's Take do (dropped by a
// finalizer); a wrapper made without a reference dangles once fn returns.
// An error returned by fn is returned unchanged; a panic in wrap or fn is
// recovered, the handle invalidated and an error wrapping ErrPanic returned;
// a refused handle gives an error wrapping ErrNotValid without calling
// either. A weak handle's object is held for the duration of fn. For the
// handle of a Go value (RegisterValue), use AccessValue: its object is not a
// C pointer.
func AccessAs[T any](h Handle, wrap func(obj unsafe.Pointer) T, fn func(T) error) error {
	if wrap == nil || fn == nil {
		return errNilFunc
	}
	return h.Access(func(obj unsafe.Pointer) error {
		return fn(wrap(obj))
	})
}

// AccessValue runs fn with the Go value registered under h (RegisterValue,
// or RegisterObject of a plain Go value) while h is live, as SafeAccess
// does, the value given to fn as a T: the typed form of a closure over the
// value. A handle that is not a Go value's, a value that is not a T, or a
// value the manager no longer holds (after SetSafeFinalizer) gives an error
// without calling fn; other errors and panics are as for Handle.Access.
func AccessValue[T any](h Handle, fn func(T) error) error {
	if fn == nil {
		return errNilFunc
	}
	return h.Access(func(obj unsafe.Pointer) error {
		value, ok := goValueOf(h, obj)
		if !ok {
			return fmt.Errorf("gcsafety: object %v is not a Go value held by its manager", h)
		}
		t, ok := value.(T)
		if !ok {
			var want T
			return fmt.Errorf("gcsafety: object %v is a %T, not a %T", h, value, any(want))
		}
		return fn(t)
	})
}

// goValueOf is the Go value whose registration token (the object of its
// GCS_KIND_POINTER registration) is obj, if h is a Go value's handle.
func goValueOf(h Handle, obj unsafe.Pointer) (value any, ok bool) {
	defer func() {
		if recover() != nil { // not a cgo.Handle: a C object's handle
			value, ok = nil, false
		}
	}()
	gv, isValue := cgo.Handle(uintptr(obj) >> goValueShift).Value().(*goValue)
	if !isValue {
		return nil, false
	}
	x := &gv.manager.values
	x.mu.Lock()
	defer x.mu.Unlock()
	if gv.handle != h || gv.value == nil {
		return nil, false
	}
	return gv.value, true
}

package gcsafety

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"unsafe"
)

// RegisterOptions are the options of a registration. The zero value is a
// plain registration: the GType name (or the Go type) as type name, no
// instance name, no size, a strong reference, no state change, no stack.
type RegisterOptions struct {
	// TypeName is the name the registration is reported under (statistics
	// per type, logs, Info, leak reports). "": the GType name, or the Go
	// type of a Go value.
	TypeName string
	// InstanceName names this object in logs, Info and leak reports, as
	// GStreamer names elements ("src", "decoder"). "": none.
	InstanceName string
	// Size is the memory the object holds, in bytes, counted in
	// Stats.TrackedBytes until the registration is released (negative
	// counts as 0).
	Size int64
	// SetNullState sets a GstElement to GST_STATE_NULL immediately before
	// the registration drops its reference (GCS_REGISTER_SET_NULL_STATE),
	// whether or not other references remain: the cure for GStreamer's
	// "Trying to dispose element ..., but it is in PLAYING instead of the
	// NULL state". Only for GstElements (a GstObject that is not one is left
	// alone); an error for other objects and for Weak. The state change runs
	// on the goroutine that releases the registration (the one that ends the
	// last access, or unregisters), which must not be one of the element's
	// own streaming threads (a pad probe, a bus sync handler).
	SetNullState bool
	// Weak holds the GObject through a GWeakRef instead of a reference
	// (GCS_KIND_WEAK_GOBJECT): the registration does not keep it alive; each
	// access holds it for its own duration, and once the object is finalized
	// elsewhere the handle reports ErrReleased. GObjects only.
	Weak bool
	// CaptureStack records the goroutine's stack at registration, reported
	// by Info, LiveHandles and the leak report (it costs a few
	// microseconds). GCS_DEBUG=stacks turns it on for every registration of
	// the process's managers. For a registration with the library's default
	// manager (the package-level RegisterGObject), the library is also asked
	// to record its own backtrace (GCS_REGISTER_CAPTURE_STACK, tens of
	// microseconds), printed in its GCS_LEAKS=1 report at Shutdown.
	CaptureStack bool
}

// ObjectKind is what a registration holds (GcsObjectKind).
type ObjectKind int

// The kinds of registrations.
const (
	// KindGstObject: a GstObject, referenced with gst_object_ref_sink.
	KindGstObject ObjectKind = iota
	// KindGObject: any other GObject (a GTK widget, a GIO object),
	// referenced with g_object_ref_sink.
	KindGObject
	// KindMiniObject: a GstMiniObject (GstBuffer, GstSample, GstCaps, ...).
	KindMiniObject
	// KindPointer: a Go value registered with a manager (or a C pointer
	// with its own release function, from C).
	KindPointer
	// KindWeakGObject: a GObject held through a GWeakRef (RegisterOptions.Weak).
	KindWeakGObject
)

// String names the kind.
func (k ObjectKind) String() string {
	switch k {
	case KindGstObject:
		return "GstObject"
	case KindGObject:
		return "GObject"
	case KindMiniObject:
		return "GstMiniObject"
	case KindPointer:
		return "pointer"
	case KindWeakGObject:
		return "weak GObject"
	}
	return fmt.Sprintf("ObjectKind(%d)", int(k))
}

// ErrNotUnderstood is wrapped by the error of a registration whose value
// looks like the wrapper of a Go GObject binding (it has one of the methods
// Unsafe, Native, GstObject, GstMiniObject or Instance) but whose C object
// cannot be found: a method with another signature, a nil pointer, or a
// pointer to something that is neither a GObject nor a GstMiniObject. Such a
// value is never registered as a Go value (that would guard nothing):
// register the C pointer with RegisterGObject or RegisterMiniObject, or the
// Go value itself with RegisterValue.
var ErrNotUnderstood = errors.New("gcsafety: value not understood as a GObject wrapper")

// wrapperMethods are the methods through which Go GObject bindings give
// their C pointer, in the order they are tried:
//   - GstObject() unsafe.Pointer, GstMiniObject() unsafe.Pointer: this
//     package's own convention;
//   - Unsafe() unsafe.Pointer: go-glib v1 (github.com/go-gst/go-glib/glib),
//     so every go-gst v1 object, which embeds a *glib.Object;
//   - Native() uintptr: gotk4 (github.com/diamondburned/gotk4/pkg/core/glib),
//     reached through glib.BaseObject(o), and gotk3; Native() unsafe.Pointer
//     (older go-glib) is accepted too;
//   - Instance() *C.GstXxx: go-gst v1 elements, buffers, caps, ..., whose
//     result is a pointer to a cgo type (found by reflection).
var wrapperMethods = [...]string{"GstObject", "GstMiniObject", "Unsafe", "Native", "Instance"}

// wrapperPointer is the C object a binding's wrapper gives, if obj is one:
// ok reports that obj has one of the wrapperMethods; err that it has one
// but no usable C pointer came of it. The pointer is returned as an
// integer: it is C memory, made a pointer only in C.
func wrapperPointer(obj any) (ptr uintptr, method string, ok bool, err error) {
	defer func() {
		// A binding's method may panic (on a nil receiver, say).
		if r := recover(); r != nil {
			ptr, ok = 0, true
			err = fmt.Errorf("%w: the method %s of %T panicked: %v", ErrNotUnderstood, method, obj, r)
		}
	}()
	// The common method sets, without reflection.
	switch o := obj.(type) {
	case interface{ GstObject() unsafe.Pointer }:
		method = "GstObject"
		return nonNil(uintptr(o.GstObject()), obj, method)
	case interface{ GstMiniObject() unsafe.Pointer }:
		method = "GstMiniObject"
		return nonNil(uintptr(o.GstMiniObject()), obj, method)
	case interface{ Unsafe() unsafe.Pointer }:
		method = "Unsafe"
		return nonNil(uintptr(o.Unsafe()), obj, method)
	case interface{ Native() uintptr }:
		method = "Native"
		return nonNil(o.Native(), obj, method)
	case interface{ Native() unsafe.Pointer }:
		method = "Native"
		return nonNil(uintptr(o.Native()), obj, method)
	}
	// Go values of types already found to have none of the methods (a
	// program's own types, registered again and again) skip reflection.
	typ := reflect.TypeOf(obj)
	if _, plain := plainTypes.Load(typ); plain {
		return 0, "", false, nil
	}
	v := reflect.ValueOf(obj)
	for _, name := range wrapperMethods {
		m := v.MethodByName(name)
		if !m.IsValid() {
			continue
		}
		t := m.Type()
		if t.NumIn() != 0 || t.NumOut() != 1 {
			return 0, name, true, fmt.Errorf("%w: %T has a method %s with the signature %v, not one that returns a pointer", ErrNotUnderstood, obj, name, t)
		}
		switch out := t.Out(0); out.Kind() {
		case reflect.Ptr, reflect.UnsafePointer:
			// A pointer to a C type: Instance() *C.GstElement.
			method = name
			return nonNil(m.Call(nil)[0].Pointer(), obj, name)
		case reflect.Uintptr:
			method = name
			return nonNil(uintptr(m.Call(nil)[0].Uint()), obj, name)
		default:
			return 0, name, true, fmt.Errorf("%w: the method %s of %T returns %v, not a pointer", ErrNotUnderstood, name, obj, out)
		}
	}
	plainTypes.Store(typ, struct{}{})
	return 0, "", false, nil
}

// plainTypes holds the reflect.Types that have none of the wrapperMethods
// (a method set never changes, so a type is looked at once).
var plainTypes sync.Map

func nonNil(p uintptr, obj any, method string) (uintptr, string, bool, error) {
	if p == 0 {
		return 0, method, true, fmt.Errorf("%w: the method %s of %T gave a nil pointer", ErrNotUnderstood, method, obj)
	}
	return p, method, true, nil
}

// Register registers obj with its options and returns its handle: the
// general form of RegisterObject, for any of the values it takes.
//
// obj is either a C object or a Go value:
//   - an unsafe.Pointer: a GstObject, as with RegisterObject;
//   - the wrapper of a Go GObject binding, recognised by its method giving
//     the C pointer: Unsafe() unsafe.Pointer (go-glib v1, so every go-gst v1
//     object), Native() uintptr (gotk4, gotk3), GstObject() unsafe.Pointer,
//     GstMiniObject() unsafe.Pointer, or a pointer-typed Instance() (go-gst
//     v1 elements and mini objects, through reflection). The C object's kind
//     (GstObject, other GObject, GstMiniObject) is read from its GType
//     (gcs_object_kind), and the registration holds a reference to it
//     (sinking a floating one) until the handle is released; the wrapper
//     itself is not kept. A value with one of these methods whose C object
//     cannot be found is refused with an error wrapping ErrNotUnderstood;
//   - any other Go value, kept alive by the manager until the handle is
//     released (as RegisterValue).
//
// To say which without any guessing, use RegisterGObject, RegisterMiniObject
// or RegisterValue.
func (m *GCSafetyManager) Register(obj any, opts RegisterOptions) (Handle, error) {
	if obj == nil {
		return 0, fmt.Errorf("gcsafety: cannot register a nil value")
	}
	if p, ok := obj.(unsafe.Pointer); ok {
		if opts.Weak {
			return m.registerC(cKindWeakGObject, uintptr(p), opts, "an unsafe.Pointer")
		}
		return m.registerC(cKindGstObject, uintptr(p), opts, "an unsafe.Pointer")
	}
	p, method, ok, err := wrapperPointer(obj)
	if err != nil {
		return 0, err
	}
	if !ok {
		return m.RegisterValue(obj, opts)
	}
	what := fmt.Sprintf("%T (through its %s method)", obj, method)
	kind, r := objectKindOf(p)
	if r != resultOK {
		return 0, fmt.Errorf("%w: %s gave %#x, which is neither a GObject nor a GstMiniObject: %v", ErrNotUnderstood, what, p, r)
	}
	if opts.Weak {
		if kind == cKindMiniObject {
			return 0, fmt.Errorf("gcsafety: cannot register %s weakly: a GstMiniObject has no weak reference", what)
		}
		kind = cKindWeakGObject
	}
	return m.registerC(kind, p, opts, what)
}

// RegisterGObject registers a GObject (a GstObject such as a GstElement,
// or any other GObject: a GTK widget, a GIO object), given as a C pointer
// (transfer none; never a pointer to Go memory). The registration sinks a
// floating reference or adds one, and drops it when the handle is released;
// with opts.Weak it holds a GWeakRef instead. opts.SetNullState needs a
// GstElement. With EnableStateChecking, a pointer that is not a GObject is
// refused before any reference is taken (GCS_ERROR_WRONG_TYPE); without it,
// the caller vouches for it.
func (m *GCSafetyManager) RegisterGObject(obj unsafe.Pointer, opts RegisterOptions) (Handle, error) {
	kind, err := gobjectKind(uintptr(obj), opts)
	if err != nil {
		return 0, err
	}
	return m.registerC(kind, uintptr(obj), opts, "GObject")
}

// gobjectKind is the kind of a GObject registration with opts: weak, a
// GstObject for SetNullState (which is for GstElements: checked here, as
// the manager may not check GTypes), else any GObject.
func gobjectKind(p uintptr, opts RegisterOptions) (cObjectKind, error) {
	switch {
	case opts.Weak:
		return cKindWeakGObject, nil
	case opts.SetNullState:
		if p == 0 {
			return 0, fmt.Errorf("gcsafety: cannot register a nil GObject")
		}
		if kind, r := objectKindOf(p); r != resultOK || kind != cKindGstObject {
			return 0, fmt.Errorf("gcsafety: SetNullState is for GstElements, and the object %#x is not a GstObject", p)
		}
		return cKindGstObject, nil
	}
	return cKindGObject, nil
}

// RegisterMiniObject registers a GstMiniObject (GstBuffer, GstSample,
// GstCaps, GstEvent, ...), given as a C pointer (transfer none): the
// registration adds a reference (gst_mini_object_ref) and drops it when the
// handle is released. opts.Weak and opts.SetNullState are errors here.
func (m *GCSafetyManager) RegisterMiniObject(obj unsafe.Pointer, opts RegisterOptions) (Handle, error) {
	return m.registerC(cKindMiniObject, uintptr(obj), opts, "GstMiniObject")
}

// RegisterValue registers a Go value, whatever its methods: the manager
// keeps it alive until the handle is released (through a runtime/cgo.Handle
// that is the GCS_KIND_POINTER object of the registration), unless
// SetSafeFinalizer is called on it. Use it for a Go value that Register
// would take for a binding's wrapper. opts.Weak and opts.SetNullState are
// errors here.
func (m *GCSafetyManager) RegisterValue(obj any, opts RegisterOptions) (Handle, error) {
	if obj == nil {
		return 0, fmt.Errorf("gcsafety: cannot register a nil value")
	}
	if opts.Weak || opts.SetNullState {
		return 0, fmt.Errorf("gcsafety: cannot register a Go value (%T) with Weak or SetNullState: they are for GObjects", obj)
	}
	if err := checkNames(opts.TypeName, opts.InstanceName); err != nil {
		return 0, err
	}
	if m.closed.Load() {
		return 0, m.closedErr
	}
	h, err := m.registerGoValue(obj, opts.TypeName, opts.InstanceName, sizeBytes(opts.Size))
	if err == nil && m.captureStack(opts) {
		recordStack(h)
	}
	return h, err
}

// RegisterGObject registers a GObject with the library's default manager,
// as GCSafetyManager.RegisterGObject does (the default manager checks
// GTypes unless configured otherwise from C).
func RegisterGObject(obj unsafe.Pointer, opts RegisterOptions) (Handle, error) {
	kind, err := gobjectKind(uintptr(obj), opts)
	if err != nil {
		return 0, err
	}
	return registerWith(nil, nil, kind, uintptr(obj), opts, "GObject")
}

// registerC registers the C object p of kind with m.
func (m *GCSafetyManager) registerC(kind cObjectKind, p uintptr, opts RegisterOptions, what string) (Handle, error) {
	if m.closed.Load() {
		return 0, m.closedErr
	}
	h, err := registerWith(m, m.c, kind, p, opts, what)
	runtime.KeepAlive(m) // m.c is freed once m is unreachable
	return h, err
}

// registerWith registers the C object p with manager c (nil: the default
// one); m is its Go manager (nil for the default one).
func registerWith(m *GCSafetyManager, c cManager, kind cObjectKind, p uintptr, opts RegisterOptions, what string) (Handle, error) {
	if err := checkNames(opts.TypeName, opts.InstanceName); err != nil {
		return 0, err
	}
	if opts.Weak && opts.SetNullState {
		return 0, fmt.Errorf("gcsafety: cannot register %s with both Weak and SetNullState", what)
	}
	if opts.Weak && kind == cKindMiniObject {
		return 0, fmt.Errorf("gcsafety: cannot register %s weakly: a GstMiniObject has no weak reference", what)
	}
	if opts.SetNullState && kind != cKindGstObject {
		return 0, fmt.Errorf("gcsafety: SetNullState is for GstElements, and %s is a %v", what, ObjectKind(kind))
	}
	capture := opts.CaptureStack || (m != nil && m.captureStack(opts))
	// The library's own backtrace is printed only in its leak report of the
	// default manager (GCS_LEAKS=1 at Shutdown); it costs tens of
	// microseconds, so only the default manager's registrations ask for it.
	h, r := registerFull(c, kind, p, opts, capture && m == nil)
	if r != resultOK {
		return 0, &registerError{what: fmt.Sprintf("%s %#x", what, p), result: r}
	}
	if capture {
		recordStack(h)
	}
	return h, nil
}

// captureStack reports whether a registration with opts records its stack.
func (m *GCSafetyManager) captureStack(opts RegisterOptions) bool {
	return opts.CaptureStack || m.env.stacks
}

// sizeBytes is a size in bytes, negative counting as 0.
func sizeBytes(size int64) uint64 {
	if size < 0 {
		return 0
	}
	return uint64(size)
}

// Package gcsafety is the Go binding of the gcsafety library: GStreamer and
// GObject objects, and Go values, are named by opaque 64-bit handles, and an
// access through a handle keeps its object alive, whatever other goroutines
// or C threads do. It keeps the API of the original Go design
// (GCSafetyManager, MemoryManager, ObjectLifecycleManager, BufferPool), so
// code written against it moves over by changing an import, and it adds the
// low-level Handle API, one to one with the C ABI.
//
// The library is found with pkg-config (gcsafety.pc): in a source tree,
// scripts/install.sh --uninstalled writes target/pkgconfig/gcsafety.pc, and
//
//	PKG_CONFIG_PATH=$PWD/target/pkgconfig go test -race ./...
//
// runs this package's tests from bindings/go.
//
// # Handles, not pointers
//
// A Handle crosses cgo as an integer: no Go pointer is ever stored in C
// memory. An access is gcs_access_begin, the function, gcs_access_end,
// ended by a defer: two cgo calls, no call from C into Go, no allocation.
// Every method is safe for concurrent use, and any value is a safe handle: a
// stale, forged or zero one gives an error wrapping ErrNotValid (and
// ErrReleased, ErrInvalidated or ErrInvalidHandle beneath it), never a crash.
// Error messages are made from the call and its GcsResult, never from
// gcs_last_error, which belongs to whichever OS thread a goroutine last ran
// on.
//
// # C objects and Go values
//
// An unsafe.Pointer registers that GstObject: the registration holds its own
// reference (sinking a floating one) and drops it exactly once, at release.
// The wrapper of a Go GObject binding registers its C object the same way:
// GCSafetyManager.Register recognises go-glib v1's Unsafe() unsafe.Pointer
// (embedded in every go-gst v1 object), gotk4's and gotk3's Native() uintptr,
// GstObject() and GstMiniObject() unsafe.Pointer, and a pointer-typed
// Instance() (go-gst v1 elements and mini objects), and reads the object's
// kind from its GType (gcs_object_kind): a GstObject, another GObject (a GTK
// widget) or a GstMiniObject. A value with one of these methods whose C object
// cannot be found is refused with an error wrapping ErrNotUnderstood, never
// registered as a Go value, which would guard nothing. RegisterGObject,
// RegisterMiniObject and RegisterValue say what is registered without any
// guessing. RegisterOptions carries the type and instance names, the size,
// SetNullState (a GstElement is set to GST_STATE_NULL before the final unref),
// Weak (a GWeakRef instead of a reference) and CaptureStack. AccessAs hands
// the object back inside an access as the binding's type, AccessValue a Go
// value.
//
// Any other value is a Go value. The package keeps it in a runtime/cgo.Handle
// whose number is the object of a GCS_KIND_POINTER registration, made a
// pointer in C, never in Go (unsafe.Pointer(uintptr(h)) is fatal under
// -race), and shifted left by 3 bits there: the library reads bit 0 of a
// stored object as its weak-reference tag. The registration's release
// function is an exported Go function that deletes the cgo.Handle. It runs
// on the goroutine that releases the registration, inside that goroutine's
// cgo call: UnregisterObject, Close, or the gcs_access_end of the last
// access in flight after an unregister. So the access path calls into Go only
// in that last case, and, as the package sets no library finalizer, the
// release never runs on a thread C created (unless C code of the program
// unregisters the handle itself). A Go value is thus alive exactly as long
// as its registration, until SetSafeFinalizer hands it to the garbage
// collector.
//
// # Cleanups and finalizers
//
// AddCleanupCallback registers the Go function through gcs_add_cleanup, with
// a cgo.Handle as user_data and an exported Go trampoline: the library runs
// it exactly once at release, on the releasing goroutine, after the accesses
// in flight, with no lock held (it may call the manager). A panic in it is
// recovered (one crossing C frames would kill the process) and counted in
// Stats.CleanupFailures.
//
// SetSafeFinalizer drops the manager's reference to the Go value and asks the
// runtime to report when the value is unreachable: runtime.AddCleanup from Go
// 1.24, runtime.SetFinalizer before (at most one per object, shared by every
// manager that watches it). Then the Go side unregisters the registration if
// it is still live, and runs the function on a goroutine of its own, with
// FinalizerTimeout watched and panics retried MaxFinalizerRetries times. The
// library's own finalizers (gcs_set_finalizer) are not used: they run on a
// library thread, which would make every Go finalizer a call from a C-created
// thread, and they would also run at an explicit UnregisterObject, whereas the
// original design's finalizer runs only when the collector finds the object
// unreachable. FinalizersRun, FinalizerFailures and FinalizerTimeouts, like
// the counts of failed and panicking access functions, are kept by the Go
// side and added to the library's statistics in GetStats.
//
// # Managers
//
// Each manager is a C GcsManager with its own configuration (zero durations
// and counts mean the library's defaults; bools are taken literally) and
// statistics. Close closes it (gcs_manager_close) without waiting for
// accesses in flight; the C manager is freed once the Go manager is
// unreachable, so statistics stay exact after Close and a manager that was
// never closed does not leak. With MemoryManagerConfig.MemoryLimit, the
// library calls back (on the registering goroutine, rate-limited) when the
// tracked bytes exceed the limit, and the package starts a garbage
// collection, so the finalizers of unreachable Go wrappers release C memory
// the Go collector cannot see.
//
// # Diagnostics
//
// Handle.Info describes a handle (state, kind, names, accesses in flight,
// age); LiveHandles lists a manager's unreleased registrations, oldest first,
// with the registration stack of those that recorded one, and WriteLeakReport
// prints them; Prometheus exports the statistics in the Prometheus text
// format (served over HTTP by the package gcsafety.dev/gcsafety/metrics,
// kept apart so that gcsafety does not link net/http); UnregisterSync waits for a release; Shutdown ends
// the library's state at the end of a program.
//
// The library applies its environment switches to its default manager only;
// the package applies them to every manager it creates too, read at creation:
// GCS_DEBUG=state and GCS_DEBUG=finalizers turn on LogStateChanges and
// LogFinalizers, GCS_DEBUG=stacks (or all) records the stack of every
// registration, and GCS_LEAKS=1 makes Close write the manager's leak report to
// stderr, or the collector's free of a manager never closed (the library
// writes the default manager's at Shutdown).
//
// # Go versions
//
// The module says go 1.19 (Debian stable's Go) and builds with every later
// release; the only difference is the runtime.AddCleanup / SetFinalizer
// choice above, made by build tags. AccessAs and AccessValue are generic
// functions, which Go 1.18 and later have.
package gcsafety

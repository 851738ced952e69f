package gcsafety

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// GCSafetyConfig configures a GCSafetyManager. Zero durations and a zero
// MaxFinalizerRetries mean the library's defaults (gcs_config_init); bools
// are taken literally, so the zero config turns state checking and finalizer
// safety off: set them as the original design's examples do.
type GCSafetyConfig struct {
	// CleanupInterval is how often the retained states of released handles
	// are swept (lazily, at registration). 0: 30 s.
	CleanupInterval time.Duration
	// StateRetention is how long a released handle's state is kept, so that
	// it is reported as released (ErrReleased) rather than unknown. 0: 5 min.
	StateRetention time.Duration
	// FinalizerTimeout: a safe finalizer running longer is counted in
	// Stats.FinalizerTimeouts (it cannot be stopped). 0: 5 s.
	FinalizerTimeout time.Duration

	// EnableStateChecking validates the GType of C objects at registration:
	// a pointer that is not a GstObject (or GstMiniObject) is refused
	// before any reference is taken. Without it the caller vouches for them.
	EnableStateChecking bool
	// EnableFinalizerSafety runs safe finalizers with FinalizerTimeout
	// watched and retries after a panic. Without it, a safe finalizer runs
	// once (a panic is still recovered and counted).
	EnableFinalizerSafety bool

	// MaxFinalizerRetries is how often a panicking safe finalizer is retried
	// (with EnableFinalizerSafety). 0: 3; negative: none; at most 1000.
	MaxFinalizerRetries int

	// LogStateChanges logs registrations, invalidations and releases: to
	// the GStreamer debug category "gcsafety" (level DEBUG) once GStreamer
	// is initialised, else to stderr.
	LogStateChanges bool
	// LogFinalizers logs safe finalizer runs, failures and timeouts (with
	// the standard log package).
	LogFinalizers bool
}

// GCSafetyManager tracks objects by handle, in its own C GcsManager (its
// configuration and statistics): C objects (GstObjects, other GObjects,
// GstMiniObjects, given as pointers or as a Go binding's wrappers)
// whose reference the registration holds, and Go values it keeps alive. All
// methods are safe for concurrent use, and none crashes on a bad handle, a
// closed manager or a double unregister: they return an error.
//
// A handle identifies its manager, so the methods taking a handle accept any
// manager's handle, as the C functions do; after Close they all return
// ErrClosed.
type GCSafetyManager struct {
	// c is the C manager: closed by Close, freed once m is unreachable
	// (freeWhenUnreachable), so a method never sees it freed and the
	// statistics stay exact after Close. Set once, at creation.
	c cManager

	closed    atomic.Bool
	closedErr error // what the methods return once closed

	finalizerTimeout    time.Duration
	maxFinalizerRetries int
	finalizerSafety     bool
	logFinalizers       bool
	logStateChanges     bool

	env         envFlags // GCS_DEBUG, GCS_LEAKS at creation
	values      valueIndex
	finalizerMu sync.Mutex // serialises SetSafeFinalizer
	counters    goCounters
	cgoHandles  atomic.Int64 // the cgo.Handles of its values and cleanups
}

// NewGCSafetyManager creates a manager (gcs_manager_new). It cannot fail:
// every config maps to a valid GcsConfig. Should the library refuse it
// anyway, the manager is returned closed, and its methods return an error
// wrapping ErrClosed that says why. Call Close when done (a manager that
// becomes unreachable without Close is closed and freed by the garbage
// collector, but the Go values registered with it keep it reachable).
func NewGCSafetyManager(config GCSafetyConfig) *GCSafetyManager {
	return newManager(config, 0)
}

func newManager(config GCSafetyConfig, memoryLimit uint64) *GCSafetyManager {
	env := readEnv()
	config.LogStateChanges = config.LogStateChanges || env.logState
	config.LogFinalizers = config.LogFinalizers || env.logFinalizers
	c := config.cConfig(memoryLimit)
	m := &GCSafetyManager{closedErr: errClosed, logStateChanges: config.LogStateChanges, env: env}
	m.finalizerTimeout, m.maxFinalizerRetries, m.finalizerSafety, m.logFinalizers = finalizerSettings(c)
	manager, r := newCManager(c)
	if r != resultOK {
		m.closedErr = &closedError{reason: fmt.Sprintf("gcs_manager_new failed: %v", r)}
		m.closed.Store(true)
		return m
	}
	m.c = manager
	if env.leaks {
		leakReports.Store(manager, true)
	}
	freeWhenUnreachable(m, manager)
	return m
}

// RegisterObject registers obj and returns its handle; typeName may be ""
// (the GType name, or the Go type, is used). It is Register with only a type
// name:
//
// An unsafe.Pointer registers that C GstObject (GCS_KIND_GST_OBJECT): the
// registration sinks a floating reference or adds one, and drops it when the
// handle is released. The wrapper of a Go GObject binding (a go-gst or
// go-glib object with Unsafe() unsafe.Pointer, a gotk4 object with Native()
// uintptr, a value with GstObject() unsafe.Pointer, GstMiniObject()
// unsafe.Pointer or a pointer-typed Instance()) registers its C object
// likewise, of the kind its GType says (GstObject, GObject, GstMiniObject);
// one whose C object cannot be found is refused with an error wrapping
// ErrNotUnderstood.
//
// Any other value is a Go value: the manager keeps it alive until the handle
// is released, through a runtime/cgo.Handle that is the GCS_KIND_POINTER
// object of the registration (unless SetSafeFinalizer is called on it).
func (m *GCSafetyManager) RegisterObject(obj any, typeName string) (Handle, error) {
	return m.register(obj, typeName, "", 0)
}

func (m *GCSafetyManager) register(obj any, typeName, instanceName string, size uint64) (Handle, error) {
	return m.Register(obj, RegisterOptions{TypeName: typeName, InstanceName: instanceName, Size: int64(size)})
}

// SafeAccess runs fn while the object of id is live, inside an access of id:
// the object cannot be released before fn returns, whatever other goroutines
// do (an UnregisterObject meanwhile takes effect when fn returns). The
// access begins and ends with atomic operations on the library's table, with
// no cgo call, unless the library must decide (a refused handle, the release
// that the last access of an unregistered handle runs): see table.go for
// what such an access is not counted in.
//
// An error returned by fn is returned unchanged and leaves the handle live.
// A panic in fn is recovered, the handle invalidated, and an error returned
// that contains "panic during object access" and wraps ErrPanic. A handle
// that is not live gives an error that contains "not valid for access" and
// wraps ErrNotValid, and ErrReleased, ErrInvalidated, ErrInvalidHandle or
// ErrClosed beneath it; fn is not called.
func (m *GCSafetyManager) SafeAccess(id Handle, fn func() error) (err error) {
	// The whole access is in this function (a helper would cost a call):
	// fn inside gcs_access_begin / gcs_access_end, with no allocation and no
	// call from C into Go.
	if m.closed.Load() {
		return handleErr(opAccess, id, resultShutDown)
	}
	if fn == nil {
		return errNilFunc
	}
	_, access, fast := fastBegin(id)
	if !fast {
		if r := accessBegin(id); r != resultOK {
			return handleErr(opAccess, id, r)
		}
	}
	completed := false
	defer func() {
		if !completed {
			// A panic (or runtime.Goexit, where recover gives nil and the
			// goroutine goes on exiting): invalidate, then end the access.
			err = accessPanicked(&m.counters, id, recover())
		}
		// An access begun by the library may still end on the fast path.
		if !access.fastEnd() && !fastEnd(id) {
			accessEnd(id)
		}
	}()
	err = fn()
	completed = true
	if err != nil {
		m.counters.callbackFailures.Add(1)
	}
	return err
}

// UnregisterObject unregisters id (gcs_unregister): accesses are refused
// from now on, and the registration is released (cleanups run, the C
// reference is dropped or the Go value let go) when the last access in
// flight ends, or now if none is. It never blocks. Unregistering again
// returns an error wrapping ErrReleased.
func (m *GCSafetyManager) UnregisterObject(id Handle) error {
	if m.closed.Load() {
		return m.closedErr
	}
	return handleErr(opUnregister, id, unregister(id))
}

// IsObjectValid reports whether accesses of id would be accepted now (a
// snapshot). False for any value that is not a live handle, and after Close.
func (m *GCSafetyManager) IsObjectValid(id Handle) bool {
	return !m.closed.Load() && isValid(id)
}

// AddCleanupCallback adds fn to the cleanups of id: it runs exactly once,
// when the registration is released (after UnregisterObject and the end of
// the accesses in flight, or at Close), on the goroutine that releases it,
// newest cleanup first, while the object is still alive. A panic in fn is
// recovered and counted in Stats.CleanupFailures. fn may call the manager's
// methods. On a handle already unregistered it returns an error wrapping
// ErrReleased, and fn is dropped.
func (m *GCSafetyManager) AddCleanupCallback(id Handle, fn func()) error {
	if fn == nil {
		return errNilFunc
	}
	if m.closed.Load() {
		return m.closedErr
	}
	return handleErr(opCleanup, id, addCleanupCallback(m, id, fn))
}

// GetStats returns the manager's statistics, also after Close (a
// registration whose access was in flight at Close counts as released when
// that access ends). A manager that could not be created has only the zero
// statistics.
func (m *GCSafetyManager) GetStats() Stats {
	var s Stats
	if m.c != nil {
		s, _ = cStats(m.c)
		runtime.KeepAlive(m)
	}
	m.counters.addTo(&s)
	s.TotalObjects, s.ActiveObjects = s.TotalRegistered, s.Active
	return s
}

// Close closes the manager (gcs_manager_close): new registrations and
// accesses are refused at once, every registration is unregistered, and
// those with no access in flight are released now, on this goroutine (their
// cleanups run here, and may call m's methods). Close does not wait for
// accesses in flight: their registrations are released when they end.
// Calling Close again returns ErrClosed. The C manager is freed
// (gcs_manager_free) once m is unreachable; GetStats works until then.
func (m *GCSafetyManager) Close() error {
	if m.env.leaks && !m.closed.Load() {
		// GCS_LEAKS=1: the library reports its default manager's leaks at
		// shutdown; a Go manager reports its own when it is closed (or, if
		// it never is, when the collector frees it: freeQueued).
		if _, first := leakReports.LoadAndDelete(m.c); first {
			m.WriteLeakReport(os.Stderr)
		}
	}
	if !m.closed.CompareAndSwap(false, true) {
		return m.closedErr
	}
	closeCManager(m.c)
	runtime.KeepAlive(m)
	return nil
}

// The C managers of unreachable GCSafetyManagers, freed one at a time by a
// single goroutine: gcs_manager_free closes a manager that was not closed
// (running its cleanups, which must not hold up the runtime's finalizer
// goroutine), and closing scans the library's whole handle table under a
// lock that closes share, so frees in parallel would only pile up threads.
var freeing struct {
	sync.Mutex
	queue   []cManager
	running bool
}

// leakReports holds the C managers created with GCS_LEAKS=1 whose leak
// report is still to be written (at Close, or at the free of a manager
// never closed).
var leakReports sync.Map

// freeLater queues c for gcs_manager_free.
func freeLater(c cManager) {
	freeing.Lock()
	defer freeing.Unlock()
	freeing.queue = append(freeing.queue, c)
	if !freeing.running {
		freeing.running = true
		go freeQueued()
	}
}

func freeQueued() {
	for {
		freeing.Lock()
		n := len(freeing.queue)
		if n == 0 {
			freeing.running = false
			freeing.Unlock()
			return
		}
		c := freeing.queue[n-1]
		freeing.queue = freeing.queue[:n-1]
		freeing.Unlock()
		if _, unreported := leakReports.LoadAndDelete(c); unreported {
			// GCS_LEAKS=1 and never closed: report before the free closes it.
			if infos, r := liveHandles(c); r == resultOK {
				writeLeakReport(os.Stderr, "a Go manager never closed", withStacks(infos))
			}
		}
		freeCManager(c)
	}
}

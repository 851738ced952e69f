// Package gsttest creates real GStreamer objects for the gcsafety tests and
// reports what happens to them (reference counts, floating flags,
// finalization), all through C: the tests check the binding against GLib
// itself, never a mock. It also has the empty cgo call the benchmarks use
// as their floor. Only tests import it.
package gsttest

/*
#cgo pkg-config: gstreamer-1.0
#include <stdlib.h>
#include <gst/gst.h>

static void gsttest_init(void) {
	gst_init(NULL, NULL);
}

static void *gsttest_element(const char *factory) {
	return gst_element_factory_make(factory, NULL);
}

static int gsttest_ref_count(void *object) {
	return (int)g_atomic_int_get((gint *)&((GObject *)object)->ref_count);
}

static int gsttest_is_floating(void *object) {
	return g_object_is_floating(object);
}

static void gsttest_ref(void *object) {
	gst_object_ref(object);
}

static void gsttest_unref(void *object) {
	gst_object_unref(object);
}

static void *gsttest_buffer(size_t size) {
	return gst_buffer_new_allocate(NULL, size, NULL);
}

static int gsttest_mini_ref_count(void *mini_object) {
	return g_atomic_int_get(&((GstMiniObject *)mini_object)->refcount);
}

static void gsttest_mini_unref(void *mini_object) {
	gst_mini_object_unref(mini_object);
}

// A weak reference that records the object's disposal (GObject notifies
// weak references when the last reference is dropped, before finalizing).
typedef struct {
	int finalized;
} GstTestWatch;

static void gsttest_notify(gpointer data, GObject *where_the_object_was) {
	(void)where_the_object_was;
	__atomic_store_n(&((GstTestWatch *)data)->finalized, 1, __ATOMIC_SEQ_CST);
}

static GstTestWatch *gsttest_watch(void *object) {
	GstTestWatch *watch = g_new0(GstTestWatch, 1);
	g_object_weak_ref(object, gsttest_notify, watch);
	return watch;
}

static int gsttest_watch_finalized(GstTestWatch *watch) {
	return __atomic_load_n(&watch->finalized, __ATOMIC_SEQ_CST);
}

// A buffer whose memory records its release: GstMiniObject's finalize
// notification on the buffer.
static void gsttest_mini_notify(gpointer data, GstMiniObject *where_the_object_was) {
	(void)where_the_object_was;
	__atomic_store_n(&((GstTestWatch *)data)->finalized, 1, __ATOMIC_SEQ_CST);
}

static GstTestWatch *gsttest_watch_mini(void *mini_object) {
	GstTestWatch *watch = g_new0(GstTestWatch, 1);
	gst_mini_object_weak_ref(mini_object, gsttest_mini_notify, watch);
	return watch;
}

static void gsttest_noop(void) {
}

// A plain GObject (not a GstObject), with one (non-floating) reference.
static void *gsttest_gobject(void) {
	return g_object_new(G_TYPE_OBJECT, NULL);
}

static void gsttest_gobject_unref(void *object) {
	g_object_unref(object);
}

// A GValue holding an int (a GLib struct that is neither a GTypeInstance
// nor a GstMiniObject: its first word is a fundamental GType). Never freed.
static void *gsttest_int_value(void) {
	GValue *value = g_new0(GValue, 1);
	g_value_init(value, G_TYPE_INT);
	g_value_set_int(value, 42);
	return value;
}

static int gsttest_set_state(void *element, int state) {
	return gst_element_set_state(element, (GstState)state);
}

static int gsttest_state(void *element) {
	return GST_STATE(element);
}

// A weak reference that records the element's state when its last
// reference is dropped (GObject notifies weak references during dispose,
// before GstElement's own dispose checks the state).
typedef struct {
	int finalized;
	int state;
} GstTestStateWatch;

static void gsttest_state_notify(gpointer data, GObject *where_the_object_was) {
	GstTestStateWatch *watch = data;
	__atomic_store_n(&watch->state, GST_STATE(where_the_object_was), __ATOMIC_SEQ_CST);
	__atomic_store_n(&watch->finalized, 1, __ATOMIC_SEQ_CST);
}

static GstTestStateWatch *gsttest_watch_state(void *element) {
	GstTestStateWatch *watch = g_new0(GstTestStateWatch, 1);
	watch->state = -1;
	g_object_weak_ref(element, gsttest_state_notify, watch);
	return watch;
}

static int gsttest_state_watch_finalized(GstTestStateWatch *watch) {
	return __atomic_load_n(&watch->finalized, __ATOMIC_SEQ_CST);
}

static int gsttest_state_watch_state(GstTestStateWatch *watch) {
	return __atomic_load_n(&watch->state, __ATOMIC_SEQ_CST);
}
*/
import "C"

import (
	"sync"
	"unsafe"
)

var initOnce sync.Once

// Init initialises GStreamer once.
func Init() {
	initOnce.Do(func() { C.gsttest_init() })
}

// NewElement makes an element of the factory ("fakesink", "identity", ...):
// a new GstElement with one floating reference, or nil.
func NewElement(factory string) unsafe.Pointer {
	Init()
	name := C.CString(factory)
	defer C.free(unsafe.Pointer(name))
	return C.gsttest_element(name)
}

// NewFakesink is NewElement("fakesink").
func NewFakesink() unsafe.Pointer {
	return NewElement("fakesink")
}

// RefCount is a GObject's ref_count. Only for an object known alive.
func RefCount(object unsafe.Pointer) int {
	return int(C.gsttest_ref_count(object))
}

// IsFloating reports a GObject's floating flag.
func IsFloating(object unsafe.Pointer) bool {
	return C.gsttest_is_floating(object) != 0
}

// Ref adds a reference to a GstObject.
func Ref(object unsafe.Pointer) { C.gsttest_ref(object) }

// Unref drops a reference to a GstObject.
func Unref(object unsafe.Pointer) { C.gsttest_unref(object) }

// NewBuffer allocates a GstBuffer of size bytes (a GstMiniObject, refcount 1).
func NewBuffer(size int) unsafe.Pointer {
	Init()
	return C.gsttest_buffer(C.size_t(size))
}

// MiniRefCount is a GstMiniObject's refcount. Only for an object known alive.
func MiniRefCount(miniObject unsafe.Pointer) int {
	return int(C.gsttest_mini_ref_count(miniObject))
}

// MiniUnref drops a reference to a GstMiniObject.
func MiniUnref(miniObject unsafe.Pointer) { C.gsttest_mini_unref(miniObject) }

// Watch records whether an object has been disposed of (its last reference
// dropped). It lives in C memory, which the notification writes; it is never
// freed (a few bytes per test).
type Watch struct {
	w *C.GstTestWatch
}

// WatchObject watches a GObject (GstObject) through a weak reference.
func WatchObject(object unsafe.Pointer) Watch {
	return Watch{C.gsttest_watch(object)}
}

// WatchMiniObject watches a GstMiniObject through a weak reference.
func WatchMiniObject(miniObject unsafe.Pointer) Watch {
	return Watch{C.gsttest_watch_mini(miniObject)}
}

// Finalized reports whether the watched object's last reference is gone.
func (w Watch) Finalized() bool {
	return C.gsttest_watch_finalized(w.w) != 0
}

// Noop is an empty cgo call: the floor of any call into C.
func Noop() { C.gsttest_noop() }

// CElement is C's GstElement: the type go-gst's Instance() methods return
// a pointer to (*C.GstElement), for test wrappers with that method set.
type CElement = C.GstElement

// CBuffer is C's GstBuffer (go-gst's (*Buffer).Instance() *C.GstBuffer).
type CBuffer = C.GstBuffer

// NewGObject makes a plain GObject (G_TYPE_OBJECT, not a GstObject) with
// one reference, which the caller owns.
func NewGObject() unsafe.Pointer {
	Init()
	return C.gsttest_gobject()
}

// UnrefGObject drops a reference to a GObject.
func UnrefGObject(object unsafe.Pointer) { C.gsttest_gobject_unref(object) }

// NewIntValue is a GValue holding an int: C memory that is not an object.
func NewIntValue() unsafe.Pointer {
	Init()
	return C.gsttest_int_value()
}

// GStreamer's element states (GstState).
const (
	StateNull    = int(C.GST_STATE_NULL)
	StateReady   = int(C.GST_STATE_READY)
	StatePaused  = int(C.GST_STATE_PAUSED)
	StatePlaying = int(C.GST_STATE_PLAYING)
)

// SetState is gst_element_set_state; it returns the GstStateChangeReturn.
func SetState(element unsafe.Pointer, state int) int {
	return int(C.gsttest_set_state(element, C.int(state)))
}

// StateChangeSuccess is GST_STATE_CHANGE_SUCCESS.
const StateChangeSuccess = int(C.GST_STATE_CHANGE_SUCCESS)

// State is GST_STATE(element), its current state.
func State(element unsafe.Pointer) int { return int(C.gsttest_state(element)) }

// StateWatch records an element's state when it is disposed of.
type StateWatch struct {
	w *C.GstTestStateWatch
}

// WatchState watches an element's disposal and its state then.
func WatchState(element unsafe.Pointer) StateWatch {
	return StateWatch{C.gsttest_watch_state(element)}
}

// Finalized reports whether the element's last reference is gone.
func (w StateWatch) Finalized() bool { return C.gsttest_state_watch_finalized(w.w) != 0 }

// StateAtDispose is the element's state when its last reference was
// dropped (-1 before).
func (w StateWatch) StateAtDispose() int { return int(C.gsttest_state_watch_state(w.w)) }

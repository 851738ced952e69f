package gcsafety

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"gcsafety.dev/gcsafety/internal/gsttest"
)

// element is a binding's wrapper of a GstElement, as go-gst has.
type element struct {
	ptr unsafe.Pointer
}

func (e *element) GstObject() unsafe.Pointer { return e.ptr }

// newElement is a fresh fakesink (floating) and a watch of its disposal.
func newElement(t *testing.T) (unsafe.Pointer, gsttest.Watch) {
	t.Helper()
	e := gsttest.NewFakesink()
	if e == nil {
		t.Fatal("cannot make a fakesink")
	}
	if !gsttest.IsFloating(e) || gsttest.RefCount(e) != 1 {
		t.Fatal("a new element is not floating with one reference")
	}
	return e, gsttest.WatchObject(e)
}

func TestRegisterFloatingElement(t *testing.T) {
	e, watch := newElement(t)
	h, err := Register(e, "")
	if err != nil {
		t.Fatal(err)
	}
	// The registration took the floating reference: it owns the element.
	if gsttest.IsFloating(e) || gsttest.RefCount(e) != 1 {
		t.Fatalf("after Register: floating %v, ref_count %d", gsttest.IsFloating(e), gsttest.RefCount(e))
	}
	err = h.Access(func(obj unsafe.Pointer) error {
		if obj != e {
			t.Errorf("Access gave %p, want %p", obj, e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Unregister(); err != nil {
		t.Fatal(err)
	}
	if !watch.Finalized() {
		t.Fatal("Unregister did not drop the only reference")
	}
	wantNotValid(t, h.Unregister(), ErrReleased)
	wantNotValid(t, h.Access(func(unsafe.Pointer) error { return nil }), ErrReleased)
}

func TestRegisterObjectKinds(t *testing.T) {
	m := newTestManager(t, safeConfig())

	// An unsafe.Pointer: the registration sinks the floating reference.
	e, watch := newElement(t)
	h1, err := m.RegisterObject(e, "Sink")
	if err != nil {
		t.Fatal(err)
	}
	// A wrapper, the element no longer floating: a reference is added.
	gsttest.Ref(e) // our own reference
	h2, err := m.RegisterObject(&element{e}, "")
	if err != nil {
		t.Fatal(err)
	}
	if gsttest.RefCount(e) != 3 {
		t.Fatalf("ref_count %d with two registrations and ours", gsttest.RefCount(e))
	}
	m.UnregisterObject(h1)
	m.UnregisterObject(h2)
	if gsttest.RefCount(e) != 1 || watch.Finalized() {
		t.Fatal("unregistering did not drop exactly the registrations' references")
	}
	gsttest.Unref(e)
	if !watch.Finalized() {
		t.Fatal("the element leaked")
	}

	// A GstBuffer is not a GstObject: refused before any reference.
	buffer := gsttest.NewBuffer(16)
	defer gsttest.MiniUnref(buffer)
	if _, err := m.RegisterObject(buffer, ""); err == nil {
		t.Fatal("a GstBuffer registered as a GstObject")
	}
	if _, err := Register(buffer, ""); err == nil {
		t.Fatal("Register accepted a GstBuffer")
	}
	if gsttest.MiniRefCount(buffer) != 1 {
		t.Fatal("a refused registration took a reference")
	}
}

// miniObject is a wrapper with a GstMiniObject method.
type miniObject struct{ ptr unsafe.Pointer }

func (b miniObject) GstMiniObject() unsafe.Pointer { return b.ptr }

func TestRegisterMiniObject(t *testing.T) {
	buffer := gsttest.NewBuffer(1024)
	watch := gsttest.WatchMiniObject(buffer)
	h, err := RegisterMiniObject(buffer, "")
	if err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t, safeConfig())
	h2, err := m.RegisterObject(miniObject{buffer}, "frame")
	if err != nil {
		t.Fatal(err)
	}
	if gsttest.MiniRefCount(buffer) != 3 {
		t.Fatalf("refcount %d, want 3", gsttest.MiniRefCount(buffer))
	}
	h.Unregister()
	m.UnregisterObject(h2)
	if gsttest.MiniRefCount(buffer) != 1 {
		t.Fatal("unregistering did not drop the references")
	}
	gsttest.MiniUnref(buffer)
	if !watch.Finalized() {
		t.Fatal("the buffer leaked")
	}
	// An element is not a mini object.
	e, _ := newElement(t)
	defer gsttest.Unref(e)
	if _, err := RegisterMiniObject(e, ""); err == nil {
		t.Fatal("RegisterMiniObject accepted a GstElement")
	}
}

// Many goroutines access an element while another unregisters it: no
// access ever sees it disposed, and it is disposed once the last ends.
func TestAccessWhileUnregistering(t *testing.T) {
	m := newTestManager(t, safeConfig())
	for round := 0; round < 20; round++ {
		e, watch := newElement(t)
		h, err := m.RegisterObject(e, "")
		if err != nil {
			t.Fatal(err)
		}
		var accesses atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					err := h.Access(func(obj unsafe.Pointer) error {
						if watch.Finalized() || gsttest.RefCount(obj) < 1 {
							t.Error("an access saw a disposed element")
						}
						accesses.Add(1)
						runtime.Gosched()
						return nil
					})
					if err != nil {
						if !errors.Is(err, ErrReleased) || !errors.Is(err, ErrNotValid) {
							t.Errorf("access: %v", err)
						}
						return
					}
				}
			}()
		}
		for accesses.Load() < 100 {
			runtime.Gosched()
		}
		if err := m.UnregisterObject(h); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if !watch.Finalized() {
			t.Fatal("the element outlived its last access")
		}
	}
}

// A forgotten UnregisterObject: the Go wrapper's safe finalizer drops the C
// reference once the collector finds the wrapper unreachable.
func TestSafeFinalizerDropsCReference(t *testing.T) {
	m := newTestManager(t, safeConfig())
	e, watch := newElement(t)
	elementHandle, err := m.RegisterObject(&element{e}, "")
	if err != nil {
		t.Fatal(err)
	}
	var cleaned atomic.Bool
	if err := m.AddCleanupCallback(elementHandle, func() { cleaned.Store(true) }); err != nil {
		t.Fatal(err)
	}
	func() {
		// The wrapper (a Go value) stands for the element.
		wrapper := &struct {
			element Handle
			name    string
			pad     [32]byte
		}{element: elementHandle, name: "sink"}
		if _, err := m.RegisterObject(wrapper, "Wrapper"); err != nil {
			t.Fatal(err)
		}
		if err := m.SetSafeFinalizer(wrapper, func() { m.UnregisterObject(elementHandle) }); err != nil {
			t.Fatal(err)
		}
	}()
	waitFor(t, "the element to be disposed", watch.Finalized)
	if !cleaned.Load() {
		t.Error("the element's cleanup did not run")
	}
	if s := m.GetStats(); s.FinalizersRun != 1 || s.Active != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// A cleanup holding a C reference of its own releases it at release.
func TestCleanupReleasesCReference(t *testing.T) {
	m := newTestManager(t, safeConfig())
	e, watch := newElement(t) // our reference (floating)
	h, err := m.RegisterObject(&payload{name: "owner"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddCleanupCallback(h, func() { gsttest.Unref(e) }); err != nil {
		t.Fatal(err)
	}
	if watch.Finalized() {
		t.Fatal("disposed too early")
	}
	m.Close() // releases the registration: the cleanup drops the reference
	if !watch.Finalized() {
		t.Fatal("Close did not run the cleanup")
	}
}

func TestCloseReleasesElements(t *testing.T) {
	m := NewGCSafetyManager(safeConfig())
	var watches []gsttest.Watch
	var handles []Handle
	for i := 0; i < 10; i++ {
		e, w := newElement(t)
		h, err := m.RegisterObject(e, "")
		if err != nil {
			t.Fatal(err)
		}
		watches, handles = append(watches, w), append(handles, h)
	}
	// One access is in flight across Close: its element lives until it ends.
	inside, leave, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- handles[0].Access(func(obj unsafe.Pointer) error {
			close(inside)
			<-leave
			if watches[0].Finalized() || gsttest.RefCount(obj) < 1 {
				return errors.New("disposed during the access")
			}
			return nil
		})
	}()
	<-inside
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for i, w := range watches[1:] {
		if !w.Finalized() {
			t.Fatalf("element %d survived Close", i+1)
		}
	}
	if watches[0].Finalized() {
		t.Fatal("Close disposed an element inside an access")
	}
	if s := m.GetStats(); s.Active != 1 {
		t.Fatalf("stats with one access in flight: %+v", s)
	}
	close(leave)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !watches[0].Finalized() {
		t.Fatal("the element outlived its last access after Close")
	}
	if s := m.GetStats(); s.Active != 0 || s.Released != 10 {
		t.Fatalf("stats after the last access: %+v", s)
	}
	for _, h := range handles {
		if err := m.SafeAccess(h, func() error { return nil }); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrNotValid) {
			t.Fatalf("SafeAccess after Close: %v", err)
		}
	}
}

// A manager dropped without Close is closed and freed by the collector.
func TestForgottenManager(t *testing.T) {
	e, watch := newElement(t)
	func() {
		m := NewGCSafetyManager(safeConfig())
		if _, err := m.RegisterObject(e, ""); err != nil {
			t.Fatal(err)
		}
	}()
	waitFor(t, "the forgotten manager's element to be disposed", watch.Finalized)
}

func TestMemoryManager(t *testing.T) {
	mm := NewMemoryManager(MemoryManagerConfig{TrackObjectLifecycle: false, MemoryLimit: 1 << 20})
	defer mm.Close()
	buffer := gsttest.NewBuffer(4 << 20)
	defer gsttest.MiniUnref(buffer)
	requests := gcRequests.Load()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	cycles := stats.NumGC

	id := mm.TrackObject(miniObject{buffer}, "GstBuffer", 4<<20)
	if !id.Valid() {
		t.Fatal("TrackObject failed")
	}
	if s := mm.GetStats(); s.TrackedBytes != 4<<20 {
		t.Fatalf("tracked %d bytes", s.TrackedBytes)
	}
	if gcRequests.Load() == requests {
		t.Fatal("crossing the memory limit did not signal pressure")
	}
	deadline := time.Now().Add(30 * time.Second)
	for runtime.ReadMemStats(&stats); stats.NumGC == cycles; runtime.ReadMemStats(&stats) {
		if time.Now().After(deadline) {
			t.Fatal("memory pressure started no garbage collection")
		}
		time.Sleep(time.Millisecond)
	}
	if err := mm.SafeObjectAccess(id, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := mm.ReleaseObject(id); err != nil {
		t.Fatal(err)
	}
	if s := mm.GetStats(); s.TrackedBytes != 0 {
		t.Fatalf("tracked %d bytes after release", s.TrackedBytes)
	}
	wantNotValid(t, mm.ReleaseObject(id), ErrReleased)
	if mm.TrackObject(nil, "", 1) != 0 {
		t.Fatal("TrackObject(nil) gave a handle")
	}
	wantNotValid(t, mm.SafeObjectAccess(0, func() error { return nil }), ErrInvalidHandle)
	mm.Close()
	if mm.TrackObject(&payload{}, "", 1) != 0 {
		t.Fatal("TrackObject after Close gave a handle")
	}
}

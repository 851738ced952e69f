package gcsafety

// Registration of the wrappers of real Go GObject bindings. The bindings'
// own modules (github.com/go-gst/go-gst, github.com/go-gst/go-glib,
// github.com/diamondburned/gotk4) cannot be downloaded here, so the types
// below copy their method sets and embedding exactly (checked against their
// sources), around real GStreamer and GLib objects from internal/gsttest:
//
//   - go-glib v1: glib.Object{GObject *C.GObject} with (*Object).Unsafe()
//     unsafe.Pointer and (*Object).Native() uintptr; glib.InitiallyUnowned
//     embeds *Object;
//   - go-gst v1: gst.Object embeds *glib.InitiallyUnowned, gst.Element
//     embeds *gst.Object and has (*Element).Instance() *C.GstElement;
//     gst.Buffer{ptr *C.GstBuffer} has only (*Buffer).Instance() *C.GstBuffer;
//   - gotk4: coreglib.Object has (*Object).Native() uintptr (and no
//     Unsafe); coreglib.InitiallyUnowned embeds *Object; generated types
//     embed InitiallyUnowned; coreglib.Value also has Native() uintptr, the
//     address of a GValue, which is not an object.

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"gcsafety.dev/gcsafety/internal/gsttest"
)

// go-glib v1.
type glibObject struct{ GObject unsafe.Pointer }

func (v *glibObject) Unsafe() unsafe.Pointer {
	if v == nil || v.GObject == nil {
		return nil
	}
	return v.GObject
}
func (v *glibObject) Native() uintptr { return uintptr(v.Unsafe()) }

type glibInitiallyUnowned struct{ *glibObject }

// go-gst v1.
type gstObject struct{ *glibInitiallyUnowned }
type gstElement struct{ *gstObject }

func (e *gstElement) Instance() *gsttest.CElement { return (*gsttest.CElement)(e.Unsafe()) }

func wrapGstElement(p unsafe.Pointer) *gstElement {
	return &gstElement{&gstObject{&glibInitiallyUnowned{&glibObject{p}}}}
}

type gstBuffer struct{ ptr *gsttest.CBuffer }

func (b *gstBuffer) Instance() *gsttest.CBuffer { return b.ptr }

// gotk4.
type gotk4Object struct {
	_   [0]func()
	box uintptr // gotk4 keeps an *intern.Box; the GObject address stands for it
}

func (v *gotk4Object) Native() uintptr {
	if v == nil {
		return 0
	}
	return v.box
}

type gotk4InitiallyUnowned struct{ *gotk4Object }
type gotk4Widget struct {
	_ [0]func()
	gotk4InitiallyUnowned
}
type gotk4Value struct{ gvalue uintptr }

func (v *gotk4Value) Native() uintptr { return v.gvalue }

// An older go-glib: (*Object).Native() unsafe.Pointer.
type oldGlibObject struct{ GObject unsafe.Pointer }

func (v *oldGlibObject) Native() unsafe.Pointer { return v.GObject }

// Values that look like wrappers but are not understood.
type nativeString struct{}

func (nativeString) Native() string { return "not a pointer" }

type instanceInt struct{}

func (instanceInt) Instance() int { return 1 }

type instanceArgs struct{}

type panicky struct{}

func (panicky) Unsafe() unsafe.Pointer { panic("a binding's bug") }

func (instanceArgs) Instance(int) unsafe.Pointer { return nil }

func TestRegisterGoGstElement(t *testing.T) {
	m := newTestManager(t, GCSafetyConfig{}) // no GType checking: the kind must come from the object
	e, watch := newElement(t)
	elem := wrapGstElement(e)
	h, err := m.Register(elem, RegisterOptions{InstanceName: "sink"})
	if err != nil {
		t.Fatal(err)
	}
	// The registration sank the floating reference: it owns the element.
	if gsttest.IsFloating(e) || gsttest.RefCount(e) != 1 {
		t.Fatalf("after Register: floating %v, ref_count %d", gsttest.IsFloating(e), gsttest.RefCount(e))
	}
	info, err := h.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != KindGstObject || info.TypeName != "GstFakeSink" || info.InstanceName != "sink" || info.State != StateLive {
		t.Fatalf("Info: %+v", info)
	}
	err = AccessAs(h, wrapGstElement, func(got *gstElement) error {
		if got.Unsafe() != e {
			t.Errorf("AccessAs gave %p, want %p", got.Unsafe(), e)
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
}

func TestRegisterWrapperKinds(t *testing.T) {
	m := newTestManager(t, GCSafetyConfig{})
	gobj := gsttest.NewGObject()
	gwatch := gsttest.WatchObject(gobj)
	buf := gsttest.NewBuffer(64)
	bwatch := gsttest.WatchMiniObject(buf)
	e, ewatch := newElement(t) // floating: the first registration sinks it

	cases := []struct {
		name string
		obj  any
		kind ObjectKind
		ptr  unsafe.Pointer
	}{
		{"go-glib Object (Unsafe)", &glibObject{gobj}, KindGObject, gobj},
		{"go-gst Element (Unsafe, Native, Instance)", wrapGstElement(e), KindGstObject, e},
		{"go-gst Buffer (Instance only)", &gstBuffer{(*gsttest.CBuffer)(buf)}, KindMiniObject, buf},
		{"gotk4 Object (Native)", &gotk4Object{box: uintptr(gobj)}, KindGObject, gobj},
		{"gotk4 widget (promoted Native)", &gotk4Widget{gotk4InitiallyUnowned: gotk4InitiallyUnowned{&gotk4Object{box: uintptr(e)}}}, KindGstObject, e},
		{"GstObject()", &element{e}, KindGstObject, e},
		{"older go-glib Object (Native() unsafe.Pointer)", &oldGlibObject{gobj}, KindGObject, gobj},
	}
	var handles []Handle
	for _, c := range cases {
		h, err := m.RegisterObject(c.obj, "")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		handles = append(handles, h)
		info, err := h.Info()
		if err != nil || info.Kind != c.kind {
			t.Fatalf("%s: kind %v (%v), want %v", c.name, info.Kind, err, c.kind)
		}
		err = h.Access(func(obj unsafe.Pointer) error {
			if obj != c.ptr {
				t.Errorf("%s: Access gave %p, want %p", c.name, obj, c.ptr)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Each registration holds a reference: ours + 3 on the GObject, 3 on
	// the element (the first sank the floating one), ours + 1 on the buffer.
	if n := gsttest.RefCount(gobj); n != 4 {
		t.Fatalf("GObject ref_count %d, want 4", n)
	}
	if n := gsttest.RefCount(e); n != 3 {
		t.Fatalf("element ref_count %d, want 3", n)
	}
	if n := gsttest.MiniRefCount(buf); n != 2 {
		t.Fatalf("buffer refcount %d, want 2", n)
	}
	for _, h := range handles {
		if err := h.Unregister(); err != nil {
			t.Fatal(err)
		}
	}
	if !ewatch.Finalized() {
		t.Fatal("the element outlived its registrations")
	}
	if gsttest.RefCount(gobj) != 1 || gsttest.MiniRefCount(buf) != 1 {
		t.Fatalf("after Unregister: ref counts %d, %d, want ours only",
			gsttest.RefCount(gobj), gsttest.MiniRefCount(buf))
	}
	gsttest.UnrefGObject(gobj)
	gsttest.MiniUnref(buf)
	if !gwatch.Finalized() || !bwatch.Finalized() || !ewatch.Finalized() {
		t.Fatal("an object outlived its last reference")
	}
}

func TestRegisterRefusesWrappersNotUnderstood(t *testing.T) {
	m := newTestManager(t, GCSafetyConfig{})
	cases := []struct {
		name string
		obj  any
		want string
	}{
		{"gotk4 Value (a GValue, not an object)", &gotk4Value{uintptr(gsttest.NewIntValue())}, "neither a GObject nor a GstMiniObject"},
		{"nil GObject", &glibObject{}, "nil pointer"},
		{"nil gotk4 Object", (*gotk4Object)(nil), "nil pointer"},
		{"Native() string", nativeString{}, "not a pointer"},
		{"Instance() int", instanceInt{}, "not a pointer"},
		{"Instance(int)", instanceArgs{}, "signature"},
		{"nil Instance()", &gstBuffer{}, "nil pointer"},
		{"panicking Unsafe()", panicky{}, "panicked: a binding's bug"},
	}
	for _, c := range cases {
		h, err := m.RegisterObject(c.obj, "")
		if err == nil {
			t.Fatalf("%s: registered as %v", c.name, h)
		}
		if !errors.Is(err, ErrNotUnderstood) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: error %q, want ErrNotUnderstood with %q", c.name, err, c.want)
		}
	}
	if s := m.GetStats(); s.TotalRegistered != 0 || m.cgoHandles.Load() != 0 {
		t.Fatalf("a refused value was registered: %+v", s)
	}
	// RegisterValue takes them as Go values, on purpose.
	h, err := m.RegisterValue(nativeString{}, RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := h.Info()
	if err != nil || info.Kind != KindPointer || info.TypeName != "gcsafety.nativeString" {
		t.Fatalf("RegisterValue: %+v, %v", info, err)
	}
	if err := AccessValue(h, func(v nativeString) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := h.Unregister(); err != nil {
		t.Fatal(err)
	}
	checkCgoHandles(t, m)
}

func TestRegisterGObjectExplicit(t *testing.T) {
	m := newTestManager(t, safeConfig())
	gobj := gsttest.NewGObject()
	watch := gsttest.WatchObject(gobj)
	h, err := m.RegisterGObject(gobj, RegisterOptions{TypeName: "Thing", Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	if gsttest.RefCount(gobj) != 2 {
		t.Fatalf("ref_count %d, want 2", gsttest.RefCount(gobj))
	}
	if s := m.GetStats(); s.TrackedBytes != 100 {
		t.Fatalf("TrackedBytes %d", s.TrackedBytes)
	}
	// A buffer is not a GObject: refused by the manager's GType check.
	buf := gsttest.NewBuffer(8)
	if _, err := m.RegisterGObject(buf, RegisterOptions{}); err == nil {
		t.Fatal("a GstBuffer registered as a GObject")
	}
	hb, err := m.RegisterMiniObject(buf, RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RegisterMiniObject(buf, RegisterOptions{Weak: true}); err == nil {
		t.Fatal("a weak mini object registration")
	}
	// SetNullState is for GstElements, checked whether the manager checks
	// GTypes or not.
	unchecked := newTestManager(t, GCSafetyConfig{})
	for _, mm := range []*GCSafetyManager{m, unchecked} {
		if _, err := mm.RegisterGObject(gobj, RegisterOptions{SetNullState: true}); err == nil || !strings.Contains(err.Error(), "not a GstObject") {
			t.Fatalf("SetNullState for a plain GObject: %v", err)
		}
		if _, err := mm.Register(&gstBuffer{(*gsttest.CBuffer)(buf)}, RegisterOptions{SetNullState: true}); err == nil || !strings.Contains(err.Error(), "is a GstMiniObject") {
			t.Fatalf("SetNullState for a buffer: %v", err)
		}
	}
	if _, err := RegisterGObject(gobj, RegisterOptions{SetNullState: true}); err == nil {
		t.Fatal("SetNullState for a plain GObject (default manager)")
	}
	if gsttest.RefCount(gobj) != 2 || gsttest.MiniRefCount(buf) != 2 {
		t.Fatal("a refused registration took a reference")
	}
	for _, x := range []Handle{h, hb} {
		if err := x.Unregister(); err != nil {
			t.Fatal(err)
		}
	}
	gsttest.MiniUnref(buf)
	gsttest.UnrefGObject(gobj)
	if !watch.Finalized() {
		t.Fatal("the GObject outlived its references")
	}
	// The default manager, through the package function.
	gobj = gsttest.NewGObject()
	h, err = RegisterGObject(gobj, RegisterOptions{InstanceName: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := h.Info(); err != nil || info.Kind != KindGObject || info.InstanceName != "default" {
		t.Fatalf("%+v %v", info, err)
	}
	if err := h.UnregisterSync(-1); err != nil {
		t.Fatal(err)
	}
	if gsttest.RefCount(gobj) != 1 {
		t.Fatalf("ref_count %d after UnregisterSync", gsttest.RefCount(gobj))
	}
	gsttest.UnrefGObject(gobj)
}

func TestRegisterSetNullState(t *testing.T) {
	m := newTestManager(t, safeConfig())
	e := gsttest.NewElement("identity")
	if e == nil {
		t.Fatal("no identity element")
	}
	watch := gsttest.WatchState(e)
	h, err := m.Register(wrapGstElement(e), RegisterOptions{SetNullState: true})
	if err != nil {
		t.Fatal(err)
	}
	err = AccessAs(h, wrapGstElement, func(el *gstElement) error {
		if r := gsttest.SetState(el.Unsafe(), gsttest.StatePlaying); r != gsttest.StateChangeSuccess {
			t.Errorf("set_state(PLAYING) returned %d", r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := gsttest.State(e); s != gsttest.StatePlaying {
		t.Fatalf("state %d, want PLAYING", s)
	}
	if err := m.UnregisterSync(h, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !watch.Finalized() {
		t.Fatal("the element outlived its only reference")
	}
	if s := watch.StateAtDispose(); s != gsttest.StateNull {
		t.Fatalf("disposed of in state %d, want NULL (%d)", s, gsttest.StateNull)
	}
	// Weak and SetNullState together make no sense.
	if _, err := m.Register(wrapGstElement(gsttest.NewFakesink()), RegisterOptions{SetNullState: true, Weak: true}); err == nil {
		t.Fatal("Weak with SetNullState accepted")
	}
}

func TestRegisterWeak(t *testing.T) {
	m := newTestManager(t, safeConfig())
	gobj := gsttest.NewGObject()
	watch := gsttest.WatchObject(gobj)
	h, err := m.Register(&gotk4Object{box: uintptr(gobj)}, RegisterOptions{Weak: true})
	if err != nil {
		t.Fatal(err)
	}
	if gsttest.RefCount(gobj) != 1 {
		t.Fatalf("a weak registration took a reference: ref_count %d", gsttest.RefCount(gobj))
	}
	if info, _ := h.Info(); info.Kind != KindWeakGObject {
		t.Fatalf("kind %v", info.Kind)
	}
	err = h.Access(func(obj unsafe.Pointer) error {
		if obj != gobj {
			t.Errorf("Access gave %p, want %p", obj, gobj)
		}
		if gsttest.RefCount(gobj) != 2 {
			t.Errorf("the access holds no reference: ref_count %d", gsttest.RefCount(gobj))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	gsttest.UnrefGObject(gobj) // the last reference: the handle dies with it
	if !watch.Finalized() {
		t.Fatal("a weak registration kept the object")
	}
	wantNotValid(t, m.SafeAccess(h, func() error { return nil }), ErrReleased)
	m.UnregisterObject(h)
}

package gcsafety_test

// Examples with real GStreamer objects, as a go-gst or gotk4 program has
// them. Those modules cannot be downloaded in this tree's tests, so the
// wrapper types below copy the method sets a program meets: Element has
// go-gst v1's (*gst.Element) Unsafe() unsafe.Pointer (from the embedded
// *glib.Object of go-glib v1), Widget has gotk4's Native() uintptr. With the
// real modules, pass their objects the same way.

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"gcsafety.dev/gcsafety"
	"gcsafety.dev/gcsafety/internal/gsttest"
)

// glibObject stands for go-glib v1's glib.Object.
type glibObject struct{ GObject unsafe.Pointer }

func (v *glibObject) Unsafe() unsafe.Pointer { return v.GObject }

// Element stands for go-gst v1's *gst.Element, which embeds a *glib.Object.
type Element struct{ *glibObject }

// elementFromPointer stands for go-gst's gst.FromGstElementUnsafeNone.
func elementFromPointer(p unsafe.Pointer) *Element { return &Element{&glibObject{p}} }

// newElement stands for gst.NewElement.
func newElement(factory string) *Element { return elementFromPointer(gsttest.NewElement(factory)) }

// Widget stands for a gotk4 object, whose glib.Object has Native() uintptr.
type Widget struct{ native uintptr }

func (w *Widget) Native() uintptr { return w.native }

var stateNames = map[int]string{
	gsttest.StateNull: "NULL", gsttest.StateReady: "READY",
	gsttest.StatePaused: "PAUSED", gsttest.StatePlaying: "PLAYING",
}

// A go-gst element registered by passing the wrapper, handed back inside the
// access, and set to NULL before the registration drops its reference: no
// "Trying to dispose element ..., but it is in PLAYING instead of the NULL
// state".
func ExampleGCSafetyManager_Register() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{EnableStateChecking: true})
	defer gsm.Close()

	identity := newElement("identity")
	watch := gsttest.WatchState(identity.Unsafe()) // records its state at dispose

	id, err := gsm.Register(identity, gcsafety.RegisterOptions{
		InstanceName: "filter",
		SetNullState: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	identity = nil // the registration owns the element now

	err = gcsafety.AccessAs(id, elementFromPointer, func(e *Element) error {
		gsttest.SetState(e.Unsafe(), gsttest.StatePlaying) // e.SetState(gst.StatePlaying)
		fmt.Println("state in the access:", stateNames[gsttest.State(e.Unsafe())])
		return nil
	})
	fmt.Println("access:", err)

	info, _ := id.Info()
	fmt.Println("registered:", info.Kind, info.TypeName, info.InstanceName)

	err = gsm.UnregisterSync(id, 30*time.Second)
	fmt.Println("unregister:", err, "disposed:", watch.Finalized(), "in state", stateNames[watch.StateAtDispose()])
	// Output:
	// state in the access: PLAYING
	// access: <nil>
	// registered: GstObject GstIdentity filter
	// unregister: <nil> disposed: true in state NULL
}

// A gotk4-style object (Native() uintptr) is registered through its GObject;
// a value that has such a method but gives no object is refused, never
// registered as a Go value. RegisterValue registers a Go value on purpose.
func ExampleGCSafetyManager_Register_wrappers() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{EnableStateChecking: true})
	defer gsm.Close()

	object := gsttest.NewGObject()
	widget := &Widget{native: uintptr(object)}
	id, err := gsm.Register(widget, gcsafety.RegisterOptions{})
	info, _ := id.Info()
	fmt.Println(err, info.Kind, info.TypeName, "references:", gsttest.RefCount(object))

	_, err = gsm.Register(&Widget{}, gcsafety.RegisterOptions{})
	fmt.Println(errors.Is(err, gcsafety.ErrNotUnderstood))

	vid, err := gsm.RegisterValue(&Widget{}, gcsafety.RegisterOptions{TypeName: "settings"})
	info, _ = vid.Info()
	fmt.Println(err, info.Kind, info.TypeName)

	gsm.UnregisterObject(id)
	fmt.Println("references after unregister:", gsttest.RefCount(object))
	gsttest.UnrefGObject(object)
	// Output:
	// <nil> GObject GObject references: 2
	// true
	// <nil> pointer settings
	// references after unregister: 1
}

// AccessAs hands the object back as the binding's type; the wrapper is
// borrowed and must not escape the function.
func ExampleAccessAs() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{EnableStateChecking: true})
	defer gsm.Close()

	id, _ := gsm.Register(newElement("fakesink"), gcsafety.RegisterOptions{InstanceName: "sink"})
	err := gcsafety.AccessAs(id, elementFromPointer, func(e *Element) error {
		fmt.Println("floating:", gsttest.IsFloating(e.Unsafe()), "references:", gsttest.RefCount(e.Unsafe()))
		return nil
	})
	fmt.Println("access:", err)

	gsm.UnregisterObject(id)
	err = gcsafety.AccessAs(id, elementFromPointer, func(e *Element) error { return nil })
	fmt.Println(errors.Is(err, gcsafety.ErrReleased))
	// Output:
	// floating: false references: 1
	// access: <nil>
	// true
}

// AccessValue hands a registered Go value back with its type.
func ExampleAccessValue() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{})
	defer gsm.Close()

	type camera struct{ name string }
	id, _ := gsm.RegisterValue(&camera{name: "front"}, gcsafety.RegisterOptions{})
	err := gcsafety.AccessValue(id, func(c *camera) error {
		fmt.Println("camera:", c.name)
		return nil
	})
	fmt.Println(err)
	err = gcsafety.AccessValue(id, func(s string) error { return nil })
	fmt.Println(err != nil)
	gsm.UnregisterObject(id)
	// Output:
	// camera: front
	// <nil>
	// true
}

// The live handles, oldest first, with their age and registration stack:
// the leak report as data (WriteLeakReport prints it).
func ExampleGCSafetyManager_LiveHandles() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{EnableStateChecking: true})
	defer gsm.Close()

	src, _ := gsm.Register(newElement("fakesrc"), gcsafety.RegisterOptions{InstanceName: "src", CaptureStack: true})
	gsm.Register(newElement("fakesink"), gcsafety.RegisterOptions{InstanceName: "sink"})

	live, _ := gsm.LiveHandles()
	for _, info := range live {
		fmt.Println(info.TypeName, info.InstanceName, info.State, "age >= 0:", info.Age >= 0)
		if info.Stack != "" {
			firstFrame, _, _ := strings.Cut(info.Stack, "\n")
			fmt.Println("  registered at", firstFrame)
		}
	}
	gsm.UnregisterObject(src)
	live, _ = gsm.LiveHandles()
	fmt.Println(len(live), "live")
	// Output:
	// GstFakeSrc src live age >= 0: true
	//   registered at gcsafety.dev/gcsafety_test.ExampleGCSafetyManager_LiveHandles
	// GstFakeSink sink live age >= 0: true
	// 1 live
}

// Info describes a handle, also after its release (for
// GCSafetyConfig.StateRetention).
func ExampleHandle_Info() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{EnableStateChecking: true})
	defer gsm.Close()

	buffer := gsttest.NewBuffer(1024)
	id, _ := gsm.RegisterMiniObject(buffer, gcsafety.RegisterOptions{Size: 1024})
	gsttest.MiniUnref(buffer) // the registration's reference keeps it

	info, _ := id.Info()
	fmt.Println(info.Kind, info.TypeName, info.Size, info.State)
	gsm.UnregisterObject(id)
	info, _ = id.Info()
	fmt.Println(info.State)
	// Output:
	// GstMiniObject GstBuffer 1024 live
	// released
}

// At the end of a program: close every manager, release what is still
// registered (reporting it with GCS_LEAKS=1) and join the library's threads.
// (Not run here: it would close the managers of the other examples; the
// package's TestShutdown runs it in a child process.)
func ExampleShutdown() {
	if err := gcsafety.Shutdown(30 * time.Second); err != nil {
		fmt.Println(err)
	}
}

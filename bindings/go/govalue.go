package gcsafety

import (
	"fmt"
	"log"
	"reflect"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
)

// A Go value registered with a manager. Its runtime/cgo.Handle is the
// object of a GCS_KIND_POINTER registration (made a pointer in C, never in
// Go); the registration's release function, gcsgoReleaseGoValue, deletes it.
// C memory thus holds an integer, and the cgo.Handle table holds the value.
type goValue struct {
	manager *GCSafetyManager
	cgo     cgo.Handle
	// addr is the address of a pointer value, to find it in
	// SetSafeFinalizer; 0 for other values.
	addr uintptr

	// Guarded by manager.values.mu.
	value    any // keeps the value alive; nil once released or watched
	handle   Handle
	released bool
}

// valueIndex finds a manager's registered pointer values by address, for
// SetSafeFinalizer. The addresses are stable (the Go heap does not move)
// and unique while listed, as each listed value is kept alive.
type valueIndex struct {
	mu     sync.Mutex
	byAddr map[uintptr][]*goValue
}

// newCgoHandle makes a cgo.Handle for one of m's values or cleanups;
// m.cgoHandles counts them, so tests check that each is deleted once.
// m is nil for a cleanup on a handle of the default manager.
func newCgoHandle(m *GCSafetyManager, v any) cgo.Handle {
	if m != nil {
		m.cgoHandles.Add(1)
	}
	return cgo.NewHandle(v)
}

func deleteCgoHandle(m *GCSafetyManager, h cgo.Handle) {
	h.Delete()
	if m != nil {
		m.cgoHandles.Add(-1)
	}
}

func (m *GCSafetyManager) registerGoValue(obj any, typeName, instanceName string, size uint64) (Handle, error) {
	v := &goValue{manager: m, value: obj, addr: pointerAddr(obj)}
	if typeName == "" {
		typeName = reflect.TypeOf(obj).String()
	}
	v.cgo = newCgoHandle(m, v)
	h, r := registerGoValue(m.c, uintptr(v.cgo), typeName, instanceName, size)
	runtime.KeepAlive(m) // m.c is freed once m is unreachable
	if r != resultOK {
		// Not registered; unless a Close racing this registration already
		// released it, the value is still ours to let go.
		v.release()
		return 0, &registerError{what: fmt.Sprintf("a Go value of type %T", obj), result: r}
	}
	m.values.add(v, h)
	return h, nil
}

// pointerAddr is the address obj points at, if it is a non-nil pointer.
func pointerAddr(obj any) uintptr {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Ptr || v.IsNil() {
		return 0
	}
	return v.Pointer()
}

func (x *valueIndex) add(v *goValue, h Handle) {
	x.mu.Lock()
	defer x.mu.Unlock()
	v.handle = h
	if v.released || v.addr == 0 {
		return
	}
	if x.byAddr == nil {
		x.byAddr = make(map[uintptr][]*goValue)
	}
	x.byAddr[v.addr] = append(x.byAddr[v.addr], v)
}

// removeLocked takes v out of the index; x.mu is held.
func (x *valueIndex) removeLocked(v *goValue) {
	list := x.byAddr[v.addr]
	for i, other := range list {
		if other == v {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(x.byAddr, v.addr)
	} else {
		x.byAddr[v.addr] = list
	}
}

// registered reports whether obj has a registration in the index.
func (x *valueIndex) registered(obj any, addr uintptr) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, v := range x.byAddr[addr] {
		if v.value == obj {
			return true
		}
	}
	return false
}

// detach stops keeping obj alive: its registrations leave the index and
// drop their reference. It returns their handles.
func (x *valueIndex) detach(obj any, addr uintptr) []Handle {
	x.mu.Lock()
	defer x.mu.Unlock()
	var handles []Handle
	for _, v := range append([]*goValue(nil), x.byAddr[addr]...) {
		if v.value == obj {
			handles = append(handles, v.handle)
			v.value = nil
			x.removeLocked(v)
		}
	}
	return handles
}

// release lets the value go and deletes its cgo.Handle, once: at the
// registration's release, or when its registration failed.
func (v *goValue) release() {
	x := &v.manager.values
	x.mu.Lock()
	if v.released {
		x.mu.Unlock()
		return
	}
	v.released = true
	if v.value != nil && v.addr != 0 {
		x.removeLocked(v)
	}
	v.value = nil
	x.mu.Unlock()
	deleteCgoHandle(v.manager, v.cgo)
}

// releaseGoValue is the registration's release (gcsgoReleaseGoValue).
func releaseGoValue(value uintptr) {
	// Nothing may panic through C; nothing here should panic at all.
	defer recoverInCallback("release of a Go value")
	cgo.Handle(value).Value().(*goValue).release()
}

// A cleanup added by AddCleanupCallback; its cgo.Handle is the user_data
// of the C cleanup gcsgo_run_cleanup.
type cleanupCallback struct {
	fn      func()
	manager *GCSafetyManager
	handle  Handle
	claimed atomic.Bool // set by whoever deletes the cgo.Handle
}

func addCleanupCallback(m *GCSafetyManager, h Handle, fn func()) result {
	cb := &cleanupCallback{fn: fn, manager: m, handle: h}
	ch := newCgoHandle(m, cb)
	r := addCleanup(h, uintptr(ch))
	if r != resultOK && cb.claimed.CompareAndSwap(false, true) {
		deleteCgoHandle(m, ch) // not kept by the library
	}
	return r
}

// runCleanup runs the cleanup (gcsgoRunCleanup): false if it panicked.
func runCleanup(callback uintptr) (ok bool) {
	defer recoverInCallback("cleanup")
	ch := cgo.Handle(callback)
	cb := ch.Value().(*cleanupCallback)
	if !cb.claimed.CompareAndSwap(false, true) {
		return true
	}
	deleteCgoHandle(cb.manager, ch)
	if panicked, value := callRecovered(cb.fn); panicked {
		if cb.manager != nil && cb.manager.logStateChanges {
			log.Printf("gcsafety: cleanup of object %v panicked: %v", cb.handle, value)
		}
		return false
	}
	return true
}

// callRecovered calls fn and recovers a panic, reporting it and its value.
func callRecovered(fn func()) (panicked bool, value any) {
	panicked = true
	defer func() {
		if panicked {
			value = recover()
		}
	}()
	fn()
	return false, nil
}

// recoverInCallback stops a panic at the C boundary: one crossing C frames
// would kill the process.
func recoverInCallback(what string) {
	if p := recover(); p != nil {
		log.Printf("gcsafety: BUG: %s panicked: %v", what, p)
	}
}

// memoryPressure is gcsgoMemoryPressure: tracked bytes went above a
// manager's limit. It starts one garbage collection at a time, in its own
// goroutine, so the finalizers of unreachable Go wrappers release the C
// memory that the Go collector cannot see. The library calls it at most
// every 100 ms per manager.
func memoryPressure(tracked uint64) {
	gcRequests.Add(1)
	if gcRunning.CompareAndSwap(false, true) {
		go func() {
			defer gcRunning.Store(false)
			runtime.GC()
		}()
	}
}

var (
	gcRunning  atomic.Bool
	gcRequests atomic.Uint64 // for tests
)

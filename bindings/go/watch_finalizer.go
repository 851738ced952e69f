//go:build !go1.24

package gcsafety

import (
	"runtime"
	"sync"
	"unsafe"
)

// Before Go 1.24, the only way to learn that an object is unreachable is
// runtime.SetFinalizer, which aborts the program if called twice on one
// object: every watch of one object shares a single finalizer. The address
// is a stable key: the object stays allocated until its finalizer has run,
// and the finalizer removes the key first.
var finalizers struct {
	sync.Mutex
	watches map[uintptr]*finalizerWatch
}

type finalizerWatch struct {
	runs []func()
}

// watchUnreachable arranges for run to be called once obj is unreachable.
func watchUnreachable(obj any, ptr unsafe.Pointer, run func()) error {
	addr := uintptr(ptr)
	finalizers.Lock()
	if w := finalizers.watches[addr]; w != nil {
		w.runs = append(w.runs, run)
		finalizers.Unlock()
		return nil
	}
	if finalizers.watches == nil {
		finalizers.watches = make(map[uintptr]*finalizerWatch)
	}
	w := &finalizerWatch{runs: []func(){run}}
	finalizers.watches[addr] = w
	finalizers.Unlock()
	// The finalizer refers to the watch, never to obj.
	runtime.SetFinalizer(obj, func(any) {
		finalizers.Lock()
		delete(finalizers.watches, addr)
		runs := w.runs
		finalizers.Unlock()
		for _, run := range runs {
			run()
		}
	})
	return nil
}

// freeWhenUnreachable frees the C manager once m is unreachable (see
// freeLater). The package sets no other finalizer on a manager.
func freeWhenUnreachable(m *GCSafetyManager, c cManager) {
	runtime.SetFinalizer(m, func(*GCSafetyManager) { freeLater(c) })
}

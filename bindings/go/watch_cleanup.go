//go:build go1.24

package gcsafety

import (
	"fmt"
	"runtime"
	"unsafe"
)

// watchUnreachable arranges for run to be called once the object at ptr is
// unreachable, with runtime.AddCleanup: any number of cleanups may watch one
// object, and a bad pointer is a recoverable panic, returned as an error.
func watchUnreachable(obj any, ptr unsafe.Pointer, run func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gcsafety: SetSafeFinalizer cannot watch %T: %v", obj, p)
		}
	}()
	runtime.AddCleanup((*byte)(ptr), func(run func()) { run() }, run)
	return nil
}

// freeWhenUnreachable frees the C manager once m is unreachable (see
// freeLater).
func freeWhenUnreachable(m *GCSafetyManager, c cManager) {
	runtime.AddCleanup(m, freeLater, c)
}

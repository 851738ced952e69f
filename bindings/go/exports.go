package gcsafety

// The Go functions C calls, through the trampolines of bridge.c. This file's
// preamble holds declarations only: cgo copies it into _cgo_export.h.

/*
#include <stdint.h>
*/
import "C"

// gcsgoReleaseGoValue is the release of a Go value's registration: it runs
// once, on the goroutine whose gcs_ call released the registration
// (UnregisterObject, the end of the last access, Close).
//
//export gcsgoReleaseGoValue
func gcsgoReleaseGoValue(value C.uintptr_t) {
	releaseGoValue(uintptr(value))
}

// gcsgoRunCleanup runs a cleanup added by AddCleanupCallback: 0 if it
// returned, 1 if it panicked (the library counts that in cleanup_failures).
//
//export gcsgoRunCleanup
func gcsgoRunCleanup(callback C.uintptr_t) C.int {
	if runCleanup(uintptr(callback)) {
		return 0
	}
	return 1
}

// gcsgoMemoryPressure is called by a registration that takes a manager's
// tracked bytes above its MemoryLimit (then at most every 100 ms while they
// stay above): it starts a garbage collection and returns at once.
//
//export gcsgoMemoryPressure
func gcsgoMemoryPressure(tracked C.uint64_t) {
	memoryPressure(uint64(tracked))
}

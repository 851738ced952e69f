package gcsafety

import (
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// payload is a Go value for registrations: pointerful and larger than the
// tiny allocator's 16 bytes, so the runtime finalizes it on its own.
type payload struct {
	name string
	next *payload
	data [64]byte
}

// waitFor runs the garbage collector until cond holds, or fails the test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// checkCgoHandles checks that m's cgo.Handles are all deleted (waiting
// for a release that another goroutine may be finishing).
func checkCgoHandles(t testing.TB, m *GCSafetyManager) {
	t.Helper()
	waitFor(t, "every cgo.Handle to be deleted", func() bool { return m.cgoHandles.Load() == 0 })
}

func safeConfig() GCSafetyConfig {
	return GCSafetyConfig{
		EnableStateChecking:   true,
		EnableFinalizerSafety: true,
		FinalizerTimeout:      30 * time.Second, // never reached unless a test means it
	}
}

// newTestManager is a manager closed when the test ends.
func newTestManager(t testing.TB, config GCSafetyConfig) *GCSafetyManager {
	t.Helper()
	m := NewGCSafetyManager(config)
	t.Cleanup(func() { m.Close() })
	return m
}

// unsafePointer spares the tests an import of unsafe in every file.
type unsafePointer = unsafe.Pointer

// libraryCountsAccesses is 1 when accesses go through the library (which
// counts them in Stats.AccessOk), 0 when they take the fast path (not
// counted: see table.go), so that expected statistics hold either way.
func libraryCountsAccesses() uint64 {
	if fastPathEnabled() {
		return 0
	}
	return 1
}

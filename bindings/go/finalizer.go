package gcsafety

import (
	"fmt"
	"log"
	"reflect"
	"runtime"
	"sync"
	"time"
)

// SetSafeFinalizer hands obj over to the Go garbage collector. obj must be a
// non-nil pointer to a Go value of non-zero size registered with this
// manager by RegisterObject (otherwise an error is returned, and nothing
// changes). From then on the manager no longer keeps obj alive; when the
// runtime finds it unreachable (runtime.AddCleanup from Go 1.24,
// runtime.SetFinalizer before), then, only if its registration is still live
// (not invalidated, unregistered, or closed with the manager), the
// registration is unregistered (its cleanups run) and fn runs once:
//
//   - on a goroutine of its own, never on the runtime's finalizer goroutine;
//   - with EnableFinalizerSafety, FinalizerTimeout is watched (an overrun is
//     counted in Stats.FinalizerTimeouts; fn cannot be stopped) and a
//     panicking fn is recovered and called again, up to MaxFinalizerRetries
//     times, until it returns: it completes at most once; if it never does,
//     Stats.FinalizerFailures counts it. Without EnableFinalizerSafety, fn is
//     called once, a panic recovered and counted the same way.
//
// So a forgotten UnregisterObject never leaks what the registration holds.
// If obj is registered several times with this manager, fn runs once, if any
// of those registrations is still live, and all of them are unregistered.
//
// fn must not refer to obj (a cleanup that keeps its object reachable never
// runs): give it what it needs, such as a C pointer or a handle. As with the
// runtime's own functions, obj should be what new or a composite literal
// returned; a tiny (under 16 bytes) pointer-free object may share its memory
// block with others and be finalized late or never. Before Go 1.24 the
// runtime.SetFinalizer rules apply in full: obj must point to the start of
// its allocation and must not have a finalizer of its own, or the runtime
// aborts the program (the package sets at most one finalizer per object,
// whatever the managers). Calling SetSafeFinalizer again on obj, without
// registering it again, returns an error.
func (m *GCSafetyManager) SetSafeFinalizer(obj any, fn func()) error {
	if fn == nil {
		return errNilFunc
	}
	if m.closed.Load() {
		return m.closedErr
	}
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Ptr || v.IsNil() {
		return fmt.Errorf("gcsafety: SetSafeFinalizer needs a non-nil Go pointer, not %T", obj)
	}
	if v.Type().Elem().Size() == 0 {
		return fmt.Errorf("gcsafety: SetSafeFinalizer: %T points to a zero-size value, which is never finalized", obj)
	}
	ptr, addr := v.UnsafePointer(), v.Pointer()

	m.finalizerMu.Lock()
	defer m.finalizerMu.Unlock()
	if !m.values.registered(obj, addr) {
		return fmt.Errorf("gcsafety: SetSafeFinalizer: %T %p is not registered with this manager (or already has a safe finalizer)", obj, obj)
	}
	f := &safeFinalizer{manager: m, fn: fn}
	if err := watchUnreachable(obj, ptr, f.unreachable); err != nil {
		return err
	}
	f.setHandles(m.values.detach(obj, addr))
	// obj must stay reachable until the registrations stopped holding it.
	runtime.KeepAlive(obj)
	return nil
}

// safeFinalizer is what SetSafeFinalizer watches for.
type safeFinalizer struct {
	manager *GCSafetyManager
	fn      func()

	mu      sync.Mutex
	handles []Handle
}

func (f *safeFinalizer) setHandles(handles []Handle) {
	f.mu.Lock()
	f.handles = handles
	f.mu.Unlock()
}

// unreachable is called by the runtime, on its finalizer goroutine, once
// the object is unreachable: the rest runs on a goroutine of its own.
func (f *safeFinalizer) unreachable() {
	go f.run()
}

func (f *safeFinalizer) run() {
	m := f.manager
	f.mu.Lock()
	handles := f.handles
	f.handles = nil
	f.mu.Unlock()

	// Unregistering is the claim: of the finalizer, UnregisterObject and
	// Close, one succeeds. fn runs if this one did on a live registration.
	claimed := false
	for _, h := range handles {
		live := isValid(h)
		if unregister(h) == resultOK && live {
			claimed = true
		}
	}
	if !claimed {
		if m.logFinalizers {
			log.Printf("gcsafety: safe finalizer of %v skipped: no live registration", handles)
		}
		return
	}
	m.counters.finalizersRun.Add(1)
	if !m.finalizerSafety {
		f.attempts(1)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.attempts(1 + m.maxFinalizerRetries)
	}()
	timer := time.NewTimer(m.finalizerTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		m.counters.finalizerTimeouts.Add(1)
		if m.logFinalizers {
			log.Printf("gcsafety: safe finalizer of %v overran %v", handles, m.finalizerTimeout)
		}
	}
}

// attempts calls fn until it returns without panicking, at most n times.
func (f *safeFinalizer) attempts(n int) {
	m := f.manager
	for i := 1; i <= n; i++ {
		panicked, value := callRecovered(f.fn)
		if !panicked {
			if m.logFinalizers {
				log.Printf("gcsafety: safe finalizer ran (attempt %d)", i)
			}
			return
		}
		if m.logFinalizers {
			log.Printf("gcsafety: safe finalizer panicked (attempt %d of %d): %v", i, n, value)
		}
	}
	m.counters.finalizerFailures.Add(1)
}

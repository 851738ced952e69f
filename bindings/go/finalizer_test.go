package gcsafety

import (
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// registerWatched registers a fresh payload, hands it to SetSafeFinalizer
// with fn, and drops it: the caller then waits for the garbage collector.
func registerWatched(t *testing.T, m *GCSafetyManager, fn func()) Handle {
	t.Helper()
	obj := &payload{name: "finalized"}
	id, err := m.RegisterObject(obj, "Watched")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetSafeFinalizer(obj, fn); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSetSafeFinalizerRuns(t *testing.T) {
	m := newTestManager(t, safeConfig())
	var ran atomic.Int32
	var cleanupBeforeFinalizer atomic.Bool
	var cleaned atomic.Bool
	id := registerWatched(t, m, func() {
		cleanupBeforeFinalizer.Store(cleaned.Load())
		ran.Add(1)
	})
	if err := m.AddCleanupCallback(id, func() { cleaned.Store(true) }); err != nil {
		t.Fatal(err)
	}
	if !m.IsObjectValid(id) {
		t.Fatal("SetSafeFinalizer unregistered the object")
	}
	waitFor(t, "the safe finalizer", func() bool { return ran.Load() == 1 })
	if m.IsObjectValid(id) {
		t.Error("the registration is still live after its finalizer")
	}
	wantNotValid(t, m.UnregisterObject(id), ErrReleased)
	if !cleanupBeforeFinalizer.Load() {
		t.Error("the cleanups had not run when the finalizer ran")
	}
	s := m.GetStats()
	if s.FinalizersRun != 1 || s.FinalizerFailures != 0 || s.Active != 0 || s.Released != 1 {
		t.Errorf("stats: %+v", s)
	}
	time.Sleep(10 * time.Millisecond)
	if ran.Load() != 1 {
		t.Fatalf("the finalizer ran %d times", ran.Load())
	}
	checkCgoHandles(t, m)
}

// The finalizer runs only if the registration is live when the object dies.
func TestSetSafeFinalizerSkipped(t *testing.T) {
	m := newTestManager(t, safeConfig())
	var ran atomic.Int32
	unregistered := registerWatched(t, m, func() { ran.Add(1) })
	invalidated := registerWatched(t, m, func() { ran.Add(1) })
	if err := m.UnregisterObject(unregistered); err != nil {
		t.Fatal(err)
	}
	if err := invalidated.Invalidate(); err != nil {
		t.Fatal(err)
	}
	// The invalidated registration is unregistered by the finalizer, which
	// does not run fn.
	waitFor(t, "the invalidated registration's release", func() bool { return m.GetStats().Active == 0 })
	checkCgoHandles(t, m)
	if ran.Load() != 0 || m.GetStats().FinalizersRun != 0 {
		t.Fatalf("finalizers of dead registrations ran (%d)", ran.Load())
	}

	// Closing the manager first: nothing runs either.
	m2 := NewGCSafetyManager(safeConfig())
	registerWatched(t, m2, func() { ran.Add(1) })
	m2.Close()
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if ran.Load() != 0 {
		t.Fatal("a finalizer ran after Close")
	}
}

func TestSetSafeFinalizerRefusals(t *testing.T) {
	m := newTestManager(t, safeConfig())
	other := newTestManager(t, safeConfig())
	obj := &payload{}
	id, err := m.RegisterObject(obj, "")
	if err != nil {
		t.Fatal(err)
	}
	zero := &struct{}{}
	if _, err := m.RegisterObject(zero, ""); err != nil {
		t.Fatal(err)
	}
	value := payload{}
	if _, err := m.RegisterObject(value, ""); err != nil {
		t.Fatal(err)
	}
	var nilPointer *payload
	for name, err := range map[string]error{
		"nil fn":           m.SetSafeFinalizer(obj, nil),
		"nil":              m.SetSafeFinalizer(nil, func() {}),
		"nil pointer":      m.SetSafeFinalizer(nilPointer, func() {}),
		"not a pointer":    m.SetSafeFinalizer(value, func() {}),
		"zero size":        m.SetSafeFinalizer(zero, func() {}),
		"unregistered":     m.SetSafeFinalizer(&payload{}, func() {}),
		"other manager":    other.SetSafeFinalizer(obj, func() {}),
		"C pointer":        m.SetSafeFinalizer(unsafePointer(obj), func() {}),
		"other type, same": m.SetSafeFinalizer(&obj.name, func() {}),
	} {
		if err == nil {
			t.Errorf("SetSafeFinalizer (%s) succeeded", name)
		}
	}
	if err := m.SetSafeFinalizer(obj, func() {}); err != nil {
		t.Fatal(err)
	}
	err = m.SetSafeFinalizer(obj, func() {})
	if err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("a second SetSafeFinalizer: %v", err)
	}
	// Registered again, it can be watched again (one runtime finalizer).
	if _, err := m.RegisterObject(obj, ""); err != nil {
		t.Fatal(err)
	}
	if err := m.SetSafeFinalizer(obj, func() {}); err != nil {
		t.Fatal(err)
	}
	if err := m.UnregisterObject(id); err != nil {
		t.Fatal(err)
	}
}

// One object, registered with two managers, each with a safe finalizer:
// both run (before Go 1.24 through a single runtime finalizer).
func TestSetSafeFinalizerTwoManagers(t *testing.T) {
	m1 := newTestManager(t, safeConfig())
	m2 := newTestManager(t, safeConfig())
	var ran1, ran2 atomic.Int32
	func() {
		obj := &payload{}
		for _, m := range []*GCSafetyManager{m1, m2, m1} {
			if _, err := m.RegisterObject(obj, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := m1.SetSafeFinalizer(obj, func() { ran1.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if err := m2.SetSafeFinalizer(obj, func() { ran2.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}()
	waitFor(t, "both finalizers", func() bool { return ran1.Load() == 1 && ran2.Load() == 1 })
	waitFor(t, "every release", func() bool { return m1.GetStats().Active == 0 && m2.GetStats().Active == 0 })
	if s := m1.GetStats(); s.FinalizersRun != 1 || s.Released != 2 {
		t.Errorf("m1 stats: %+v", s)
	}
}

func TestSafeFinalizerRetries(t *testing.T) {
	config := safeConfig()
	config.MaxFinalizerRetries = 4
	m := newTestManager(t, config)

	var attempts atomic.Int32
	registerWatched(t, m, func() {
		if attempts.Add(1) < 3 {
			panic("not yet")
		}
	})
	waitFor(t, "the third attempt", func() bool { return attempts.Load() == 3 })

	var failing atomic.Int32
	registerWatched(t, m, func() {
		failing.Add(1)
		panic(errors.New("always"))
	})
	waitFor(t, "the failure count", func() bool { return m.GetStats().FinalizerFailures == 1 })
	if failing.Load() != 5 {
		t.Errorf("a failing finalizer was called %d times, want 1 + 4 retries", failing.Load())
	}
	// The retried one may still be finishing on the other worker.
	waitFor(t, "both finalizers counted", func() bool { return m.GetStats().FinalizersRun == 2 })
	if s := m.GetStats(); s.FinalizersRun != 2 || s.FinalizerFailures != 1 || attempts.Load() != 3 {
		t.Errorf("stats: %+v, attempts %d", s, attempts.Load())
	}
}

func TestSafeFinalizerTimeout(t *testing.T) {
	config := safeConfig()
	config.FinalizerTimeout = 10 * time.Millisecond
	m := newTestManager(t, config)
	release := make(chan struct{})
	var finished atomic.Bool
	registerWatched(t, m, func() {
		<-release
		finished.Store(true)
	})
	waitFor(t, "the timeout count", func() bool { return m.GetStats().FinalizerTimeouts == 1 })
	close(release)
	waitFor(t, "the slow finalizer to finish", finished.Load)
	if s := m.GetStats(); s.FinalizersRun != 1 || s.FinalizerFailures != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// Without EnableFinalizerSafety: one attempt, a panic recovered and counted.
func TestSafeFinalizerWithoutSafety(t *testing.T) {
	m := newTestManager(t, GCSafetyConfig{MaxFinalizerRetries: 5})
	var calls atomic.Int32
	registerWatched(t, m, func() {
		calls.Add(1)
		panic("once")
	})
	waitFor(t, "the failure count", func() bool { return m.GetStats().FinalizerFailures == 1 })
	if calls.Load() != 1 {
		t.Errorf("called %d times without finalizer safety", calls.Load())
	}
}

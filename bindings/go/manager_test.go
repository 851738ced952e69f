package gcsafety

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errFromCallback = errors.New("callback failed")

// wantNotValid checks that err is a refused access of the given kind.
func wantNotValid(t *testing.T, err error, specific error) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error wrapping %v, got nil", specific)
	}
	if !errors.Is(err, ErrNotValid) {
		t.Errorf("errors.Is(%q, ErrNotValid) = false", err)
	}
	if !errors.Is(err, specific) {
		t.Errorf("errors.Is(%q, %v) = false", err, specific)
	}
	for _, other := range []error{ErrReleased, ErrInvalidated, ErrInvalidHandle, ErrClosed, ErrPanic} {
		if other != specific && errors.Is(err, other) {
			t.Errorf("errors.Is(%q, %v) = true", err, other)
		}
	}
}

func TestSentinels(t *testing.T) {
	for _, err := range []error{ErrReleased, ErrInvalidated, ErrInvalidHandle} {
		if !errors.Is(err, ErrNotValid) {
			t.Errorf("%v does not wrap ErrNotValid", err)
		}
	}
	if errors.Is(ErrPanic, ErrNotValid) || errors.Is(ErrClosed, ErrNotValid) || errors.Is(ErrNotValid, ErrReleased) {
		t.Error("unrelated sentinels match")
	}
}

func TestSafeAccessResults(t *testing.T) {
	m := newTestManager(t, safeConfig())
	obj := &payload{name: "camera"}
	id, err := m.RegisterObject(obj, "MyObject")
	if err != nil {
		t.Fatal(err)
	}
	if !id.Valid() || !m.IsObjectValid(id) {
		t.Fatal("a new handle is not valid")
	}

	ran := false
	if err := m.SafeAccess(id, func() error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("SafeAccess = %v, ran = %v", err, ran)
	}

	// An error of fn comes back unchanged and leaves the handle live.
	err = m.SafeAccess(id, func() error { return fmt.Errorf("wrapped: %w", errFromCallback) })
	if !errors.Is(err, errFromCallback) || err.Error() != "wrapped: callback failed" {
		t.Fatalf("SafeAccess returned %v", err)
	}
	if err := m.SafeAccess(id, func() error { return errFromCallback }); err != errFromCallback {
		t.Fatalf("SafeAccess returned %v, not fn's error itself", err)
	}
	if !m.IsObjectValid(id) {
		t.Fatal("an error of fn invalidated the handle")
	}

	// A panic is recovered and invalidates.
	err = m.SafeAccess(id, func() error { panic("something went wrong") })
	if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "panic during object access") ||
		!strings.Contains(err.Error(), "something went wrong") {
		t.Fatalf("SafeAccess after a panic returned %v", err)
	}
	if errors.Is(err, ErrNotValid) {
		t.Errorf("a panic error matches ErrNotValid: %v", err)
	}
	if m.IsObjectValid(id) {
		t.Fatal("a panic did not invalidate the handle")
	}
	ran = false
	err = m.SafeAccess(id, func() error { ran = true; return nil })
	wantNotValid(t, err, ErrInvalidated)
	if ran || !strings.Contains(err.Error(), "not valid for access") {
		t.Fatalf("access of an invalidated handle: ran %v, %v", ran, err)
	}
	wantNotValid(t, id.Invalidate(), ErrInvalidated)

	// Unregister an invalidated handle, then again.
	if err := m.UnregisterObject(id); err != nil {
		t.Fatal(err)
	}
	err = m.SafeAccess(id, func() error { ran = true; return nil })
	wantNotValid(t, err, ErrReleased)
	if ran || !strings.Contains(err.Error(), "not valid for access") {
		t.Fatalf("access of a released handle: ran %v, %v", ran, err)
	}
	wantNotValid(t, m.UnregisterObject(id), ErrReleased)
	wantNotValid(t, id.Unregister(), ErrReleased)
	wantNotValid(t, id.Invalidate(), ErrReleased)
	if m.IsObjectValid(id) || id.Valid() {
		t.Fatal("a released handle is valid")
	}

	if err := m.SafeAccess(id, nil); err == nil {
		t.Fatal("SafeAccess(nil fn) succeeded")
	}
}

func TestPanicValues(t *testing.T) {
	m := newTestManager(t, safeConfig())
	for _, value := range []any{"text", errFromCallback, 42, nil} {
		id, err := m.RegisterObject(&payload{}, "")
		if err != nil {
			t.Fatal(err)
		}
		err = m.SafeAccess(id, func() error { panic(value) })
		if !errors.Is(err, ErrPanic) {
			t.Errorf("panic(%v): %v", value, err)
		}
		wantNotValid(t, m.SafeAccess(id, func() error { return nil }), ErrInvalidated)
	}
	if s := m.GetStats(); s.PanicsRecovered != 4 || s.Invalidated != 4 {
		t.Errorf("stats after 4 panics: %+v", s)
	}
}

func TestForgedHandles(t *testing.T) {
	m := newTestManager(t, safeConfig())
	id, err := m.RegisterObject(&payload{}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []Handle{0, 1, 12345, math.MaxUint64, id + 1, id ^ (1 << 40), id ^ (1 << 63)} {
		ran := false
		err := m.SafeAccess(forged, func() error { ran = true; return nil })
		// A forged value may hit the retained state of a released handle, or
		// one of a closed manager (an earlier test's).
		if ran || !errors.Is(err, ErrNotValid) || !(errors.Is(err, ErrInvalidHandle) || errors.Is(err, ErrReleased) || errors.Is(err, ErrClosed)) {
			t.Errorf("SafeAccess(%v): ran %v, %v", forged, ran, err)
		}
		if err := forged.Access(func(unsafePointer) error { ran = true; return nil }); ran || !errors.Is(err, ErrNotValid) {
			t.Errorf("Access(%v): ran %v, %v", forged, ran, err)
		}
		for _, err := range []error{m.UnregisterObject(forged), forged.Unregister(), forged.Invalidate(), m.AddCleanupCallback(forged, func() {})} {
			if !errors.Is(err, ErrNotValid) {
				t.Errorf("call on %v: %v", forged, err)
			}
		}
		if m.IsObjectValid(forged) || forged.Valid() {
			t.Errorf("%v is valid", forged)
		}
	}
	wantNotValid(t, m.SafeAccess(0, func() error { return nil }), ErrInvalidHandle)
	if !m.IsObjectValid(id) {
		t.Fatal("forged calls disturbed the real handle")
	}
}

func TestClosedManager(t *testing.T) {
	m := NewGCSafetyManager(safeConfig())
	id, err := m.RegisterObject(&payload{}, "")
	if err != nil {
		t.Fatal(err)
	}
	cleaned := 0
	if err := m.AddCleanupCallback(id, func() { cleaned++ }); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if cleaned != 1 {
		t.Fatalf("Close ran the cleanup %d times", cleaned)
	}
	checkCgoHandles(t, m)

	err = m.SafeAccess(id, func() error { return nil })
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrNotValid) || !strings.Contains(err.Error(), "not valid for access") {
		t.Errorf("SafeAccess after Close: %v", err)
	}
	if _, err := m.RegisterObject(&payload{}, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("RegisterObject after Close: %v", err)
	}
	if _, err := m.RegisterObject(unsafePointer(nil), ""); !errors.Is(err, ErrClosed) {
		t.Errorf("RegisterObject(C) after Close: %v", err)
	}
	for name, err := range map[string]error{
		"UnregisterObject":   m.UnregisterObject(id),
		"AddCleanupCallback": m.AddCleanupCallback(id, func() {}),
		"SetSafeFinalizer":   m.SetSafeFinalizer(&payload{}, func() {}),
		"Close":              m.Close(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if m.IsObjectValid(id) {
		t.Error("a handle is valid after Close")
	}
	// The handle outlives its (freed) manager safely.
	if err := id.Access(func(unsafePointer) error { return nil }); !errors.Is(err, ErrNotValid) {
		t.Errorf("Access after Close: %v", err)
	}
	if err := id.Unregister(); !errors.Is(err, ErrNotValid) && !errors.Is(err, ErrClosed) {
		t.Errorf("Unregister after Close: %v", err)
	}
	s := m.GetStats()
	if s.TotalObjects != 1 || s.ActiveObjects != 0 || s.Released != 1 || s.CleanupsRun != 1 {
		t.Errorf("stats after Close: %+v", s)
	}
	checkCgoHandles(t, m)
}

// Close while other goroutines register and access: nothing leaks, nothing
// crashes, every call either works or says the manager is closed.
func TestCloseRacingEverything(t *testing.T) {
	for round := 0; round < 20; round++ {
		m := NewGCSafetyManager(safeConfig())
		var cleanups, added atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < 200; i++ {
					id, err := m.RegisterObject(&payload{}, "")
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Errorf("RegisterObject: %v", err)
						}
						return
					}
					if m.AddCleanupCallback(id, func() { cleanups.Add(1) }) == nil {
						added.Add(1)
					}
					err = m.SafeAccess(id, func() error { return nil })
					if err != nil && !errors.Is(err, ErrNotValid) {
						t.Errorf("SafeAccess: %v", err)
					}
					if i%2 == 0 {
						m.UnregisterObject(id)
					}
					m.GetStats()
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if cleanups.Load() != added.Load() {
			t.Fatalf("round %d: %d cleanups added, %d ran", round, added.Load(), cleanups.Load())
		}
		if s := m.GetStats(); s.ActiveObjects != 0 || s.TotalObjects != s.Released {
			t.Fatalf("round %d: stats after Close: %+v", round, s)
		}
		checkCgoHandles(t, m)
	}
}

func TestGoValueKeptAliveUntilRelease(t *testing.T) {
	m := newTestManager(t, safeConfig())
	var collected atomic.Bool
	obj := &payload{name: "kept"}
	runtime.SetFinalizer(obj, func(*payload) { collected.Store(true) })
	id, err := m.RegisterObject(obj, "")
	if err != nil {
		t.Fatal(err)
	}
	obj = nil
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	if collected.Load() {
		t.Fatal("a registered Go value was collected")
	}
	if err := m.UnregisterObject(id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the released value to be collected", collected.Load)
	checkCgoHandles(t, m)
}

func TestRegisterObjectRefusals(t *testing.T) {
	m := newTestManager(t, safeConfig())
	if _, err := m.RegisterObject(nil, ""); err == nil {
		t.Error("RegisterObject(nil) succeeded")
	}
	if _, err := m.RegisterObject(unsafePointer(nil), ""); err == nil || errors.Is(err, ErrClosed) {
		t.Errorf("RegisterObject(NULL): %v", err)
	}
	if _, err := m.RegisterObject(&payload{}, "bad\x00name"); err == nil {
		t.Error("a type name with a NUL byte was accepted")
	}
	// Names of any length reach the library.
	long := strings.Repeat("n", 1000)
	lm := NewObjectLifecycleManager(ObjectLifecycleConfig{})
	defer lm.Close()
	if _, err := lm.RegisterObject(&payload{}, long, long); err != nil {
		t.Fatal(err)
	}
	// Non-pointer Go values are registered too.
	for _, v := range []any{42, "text", payload{}, []int{1}, map[int]int{}, func() {}} {
		id, err := m.RegisterObject(v, "")
		if err != nil {
			t.Fatalf("RegisterObject(%T): %v", v, err)
		}
		if err := m.UnregisterObject(id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCleanupCallbacks(t *testing.T) {
	m := newTestManager(t, safeConfig())
	id, err := m.RegisterObject(&payload{}, "")
	if err != nil {
		t.Fatal(err)
	}
	var order []int
	for i := 1; i <= 3; i++ {
		i := i
		if err := m.AddCleanupCallback(id, func() { order = append(order, i) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.AddCleanupCallback(id, func() { panic("cleanup panics") }); err != nil {
		t.Fatal(err)
	}
	// A cleanup may use the manager, on its own handle too.
	other, _ := m.RegisterObject(&payload{}, "")
	if err := m.AddCleanupCallback(id, func() {
		if err := m.UnregisterObject(other); err != nil {
			t.Errorf("UnregisterObject inside a cleanup: %v", err)
		}
		if err := m.UnregisterObject(id); !errors.Is(err, ErrReleased) {
			t.Errorf("own UnregisterObject inside a cleanup: %v", err)
		}
		if _, err := m.RegisterObject(&payload{}, ""); err != nil {
			t.Errorf("RegisterObject inside a cleanup: %v", err)
		}
		m.GetStats()
	}); err != nil {
		t.Fatal(err)
	}

	// Unregistered during an access: the release, and the cleanups, wait
	// for the access to end, and happen on this goroutine.
	err = m.SafeAccess(id, func() error {
		if err := m.UnregisterObject(id); err != nil {
			return err
		}
		if len(order) != 0 {
			t.Error("cleanups ran inside the access")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[3 2 1]" {
		t.Fatalf("cleanups ran as %v, want newest first", order)
	}
	if m.IsObjectValid(other) {
		t.Error("the cleanup's unregister did not happen")
	}
	wantNotValid(t, m.AddCleanupCallback(id, func() { t.Error("a cleanup of a released handle ran") }), ErrReleased)
	s := m.GetStats()
	if s.CleanupsRun != 5 || s.CleanupFailures != 1 {
		t.Errorf("cleanup stats: run %d, failures %d", s.CleanupsRun, s.CleanupFailures)
	}
	if err := m.AddCleanupCallback(other, nil); err == nil {
		t.Error("a nil cleanup was accepted")
	}
	m.Close()
	checkCgoHandles(t, m)
}

func TestStatsConsistency(t *testing.T) {
	m := newTestManager(t, safeConfig())
	var ids []Handle
	for i := 0; i < 10; i++ {
		id, err := m.RegisterObject(&payload{}, "Stats")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		m.SafeAccess(id, func() error { return nil })
	}
	m.SafeAccess(ids[0], func() error { return errFromCallback })
	m.SafeAccess(ids[1], func() error { panic("x") })
	ids[2].Invalidate()
	for _, id := range ids[:5] {
		m.UnregisterObject(id)
	}
	m.SafeAccess(ids[0], func() error { return nil }) // released: rejected
	m.AddCleanupCallback(ids[5], func() {})

	s := m.GetStats()
	want := Stats{
		TotalObjects: 10, ActiveObjects: 5, TotalRegistered: 10, Active: 5, Released: 5,
		Invalidated: 2, AccessOk: 12 * libraryCountsAccesses(), AccessRejected: 1, CallbackFailures: 2, PanicsRecovered: 1,
		PeakActive: 10,
	}
	if s != want {
		t.Fatalf("stats\n got %+v\nwant %+v", s, want)
	}
	m.Close()
	s = m.GetStats()
	if s.Active != 0 || s.Released != 10 || s.CleanupsRun != 1 || s.TotalObjects != 10 {
		t.Fatalf("stats after Close: %+v", s)
	}
}

func TestConfigMapping(t *testing.T) {
	zero := GCSafetyConfig{}.cConfig(0)
	if zero.cleanup_interval_ms != 30000 || zero.state_retention_ms != 300000 ||
		zero.finalizer_timeout_ms != 5000 || zero.max_finalizer_retries != 3 {
		t.Errorf("zero config: %+v", zero)
	}
	if zero.enable_state_checking || zero.enable_finalizer_safety || zero.log_state_changes || zero.log_finalizers {
		t.Errorf("zero config has a bool set: %+v", zero)
	}
	c := GCSafetyConfig{
		CleanupInterval: time.Microsecond, StateRetention: 2000 * time.Hour, FinalizerTimeout: 1500 * time.Microsecond,
		EnableStateChecking: true, EnableFinalizerSafety: true, MaxFinalizerRetries: 5000,
		LogStateChanges: true, LogFinalizers: true,
	}.cConfig(1 << 40)
	if c.cleanup_interval_ms != 1 || c.state_retention_ms != math.MaxUint32 || c.finalizer_timeout_ms != 2 ||
		c.max_finalizer_retries != 1000 || !c.enable_state_checking || !c.enable_finalizer_safety ||
		!c.log_state_changes || !c.log_finalizers || c.memory_limit_bytes != 1<<40 {
		t.Errorf("config: %+v", c)
	}
	if c := (GCSafetyConfig{MaxFinalizerRetries: -1, FinalizerTimeout: -time.Second}).cConfig(0); c.max_finalizer_retries != 0 || c.finalizer_timeout_ms != 5000 {
		t.Error("negative retries are not 0")
	}
	// Every config makes a working manager.
	for _, config := range []GCSafetyConfig{{}, {MaxFinalizerRetries: math.MaxInt, CleanupInterval: math.MaxInt64}, {MaxFinalizerRetries: -5, StateRetention: -1}} {
		m := NewGCSafetyManager(config)
		if _, err := m.RegisterObject(&payload{}, ""); err != nil {
			t.Errorf("%+v: %v", config, err)
		}
		m.Close()
	}
}

// Many goroutines use one manager at once; run under -race.
func TestConcurrentUse(t *testing.T) {
	m := newTestManager(t, safeConfig())
	shared, err := m.RegisterObject(&payload{}, "shared")
	if err != nil {
		t.Fatal(err)
	}
	var counter atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		g := g
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				if err := m.SafeAccess(shared, func() error { counter.Add(1); return nil }); err != nil {
					t.Errorf("SafeAccess(shared): %v", err)
					return
				}
				obj := &payload{name: "mine"}
				id, err := m.RegisterObject(obj, "")
				if err != nil {
					t.Error(err)
					return
				}
				m.AddCleanupCallback(id, func() {})
				switch (g + i) % 4 {
				case 0:
					m.SafeAccess(id, func() error { return m.UnregisterObject(id) })
				case 1:
					id.Invalidate()
					m.UnregisterObject(id)
				case 2:
					m.SafeAccess(id, func() error { panic("p") })
					m.UnregisterObject(id)
				case 3:
					m.SetSafeFinalizer(obj, func() {})
				}
				m.IsObjectValid(id)
				if i%50 == 0 {
					m.GetStats()
				}
			}
		}()
	}
	wg.Wait()
	if counter.Load() != 16*300 {
		t.Fatalf("%d accesses ran", counter.Load())
	}
	m.Close()
	checkCgoHandles(t, m)
}

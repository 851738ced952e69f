package gcsafety

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"gcsafety.dev/gcsafety/internal/gsttest"
)

func TestLiveHandlesAgeAndStack(t *testing.T) {
	m := newTestManager(t, safeConfig())
	before := time.Now()
	e, watch := newElement(t)
	he, err := m.Register(wrapGstElement(e), RegisterOptions{InstanceName: "src", CaptureStack: true, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	hv, err := m.RegisterValue(&payload{name: "v"}, RegisterOptions{TypeName: "Payload"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond) // a lower bound for the ages
	live, err := m.LiveHandles()
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(before)
	if len(live) != 2 || live[0].Handle != he || live[1].Handle != hv {
		t.Fatalf("LiveHandles: %v, want %v then %v", live, he, hv)
	}
	first := live[0]
	if first.TypeName != "GstFakeSink" || first.InstanceName != "src" || first.Size != 10 ||
		first.Kind != KindGstObject || first.State != StateLive || first.AccessesInFlight != 0 {
		t.Fatalf("LiveHandles[0]: %+v", first)
	}
	// The library's clock is CLOCK_MONOTONIC_COARSE: its ticks are up to a
	// scheduler tick (4 or 10 ms) apart, hence the margins.
	for _, info := range live {
		if info.Age < 15*time.Millisecond || info.Age > elapsed+time.Second {
			t.Fatalf("age %v, want at least 15ms (30ms slept) and at most %v", info.Age, elapsed+time.Second)
		}
	}
	if !strings.Contains(first.Stack, "gcsafety.TestLiveHandlesAgeAndStack") || !strings.Contains(first.Stack, "diagnostics_test.go:") {
		t.Fatalf("registration stack:\n%s", first.Stack)
	}
	if strings.Contains(first.Stack, "recordStack") || strings.Contains(first.Stack, "registerWith") {
		t.Fatalf("the stack starts inside the package:\n%s", first.Stack)
	}
	if live[1].Stack != "" || live[1].TypeName != "Payload" || live[1].Kind != KindPointer {
		t.Fatalf("LiveHandles[1]: %+v", live[1])
	}
	// An access in flight is counted.
	err = m.SafeAccess(he, func() error {
		info, err := m.Info(he)
		if err != nil || info.AccessesInFlight != 1 {
			t.Errorf("Info inside an access: %+v, %v", info, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var report bytes.Buffer
	if err := m.WriteLeakReport(&report); err != nil {
		t.Fatal(err)
	}
	text := report.String()
	if !strings.Contains(text, "2 live handles") || !strings.Contains(text, "leak: handle "+he.String()+" GstFakeSink 'src'") ||
		!strings.Contains(text, "registered at:\ngcsafety.dev/gcsafety.TestLiveHandlesAgeAndStack") {
		t.Fatalf("leak report:\n%s", text)
	}

	if err := m.UnregisterObject(he); err != nil {
		t.Fatal(err)
	}
	if !watch.Finalized() {
		t.Fatal("the element outlived its registration")
	}
	info, err := he.Info()
	if err != nil || info.State != StateReleased || info.Stack != "" {
		t.Fatalf("after release: %+v, %v", info, err)
	}
	stacks.Lock()
	_, kept := stacks.byHandle[he]
	stacks.Unlock()
	if kept {
		t.Fatal("the stack of a released handle is kept")
	}
	m.UnregisterObject(hv)
	if live, _ := m.LiveHandles(); len(live) != 0 {
		t.Fatalf("live after unregistering all: %v", live)
	}
	report.Reset()
	m.WriteLeakReport(&report)
	if !strings.Contains(report.String(), "no leaks") {
		t.Fatalf("leak report: %s", report.String())
	}
	checkCgoHandles(t, m)
	if _, err := Handle(12345).Info(); !errors.Is(err, ErrNotValid) {
		t.Fatalf("Info of a forged handle: %v", err)
	}
}

func TestEnvironmentReachesGoManagers(t *testing.T) {
	t.Setenv("GCS_DEBUG", "stacks,finalizers")
	t.Setenv("GCS_LEAKS", "1")
	m := NewGCSafetyManager(GCSafetyConfig{})
	if !m.logFinalizers || m.logStateChanges {
		t.Fatalf("GCS_DEBUG=finalizers: logFinalizers %v, logStateChanges %v", m.logFinalizers, m.logStateChanges)
	}
	gobj := gsttest.NewGObject()
	h, err := m.RegisterGObject(gobj, RegisterOptions{InstanceName: "leaked"})
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := h.Info(); !strings.Contains(info.Stack, "TestEnvironmentReachesGoManagers") {
		t.Fatalf("GCS_DEBUG=stacks recorded no stack: %+v", info)
	}
	// GCS_LEAKS=1: Close reports the live handles on stderr.
	var closeErr error
	text := captureStderr(t, func() { closeErr = m.Close() })
	if closeErr != nil {
		t.Fatal(closeErr)
	}
	if !strings.Contains(text, "gcsafety: leak: handle "+h.String()+" GObject 'leaked'") ||
		!strings.Contains(text, "TestEnvironmentReachesGoManagers") {
		t.Fatalf("GCS_LEAKS=1 report at Close:\n%s", text)
	}
	if gsttest.RefCount(gobj) != 1 {
		t.Fatal("Close did not release the registration")
	}
	gsttest.UnrefGObject(gobj)

	// A manager never closed reports when the collector frees it.
	gobj = gsttest.NewGObject()
	text = captureStderr(t, func() {
		func() {
			m := NewGCSafetyManager(GCSafetyConfig{})
			if _, err := m.RegisterGObject(gobj, RegisterOptions{InstanceName: "unclosed"}); err != nil {
				t.Fatal(err)
			}
		}()
		waitFor(t, "the unreachable manager to be freed", func() bool { return gsttest.RefCount(gobj) == 1 })
	})
	if !strings.Contains(text, "a Go manager never closed: 1 live handles") || !strings.Contains(text, "GObject 'unclosed'") {
		t.Fatalf("GCS_LEAKS=1 report of a manager never closed:\n%s", text)
	}
	gsttest.UnrefGObject(gobj)

	t.Setenv("GCS_DEBUG", "state")
	t.Setenv("GCS_LEAKS", "")
	m2 := newTestManager(t, GCSafetyConfig{})
	if !m2.logStateChanges || m2.env.stacks || m2.env.leaks {
		t.Fatalf("GCS_DEBUG=state: %+v", m2.env)
	}
}

// captureStderr is what the package writes to os.Stderr while fn runs.
func captureStderr(t *testing.T, fn func()) (text string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	var out []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); out, _ = io.ReadAll(r) }()
	defer func() { // also when fn fails the test
		os.Stderr = stderr
		w.Close()
		wg.Wait()
		r.Close()
		text = string(out)
	}()
	fn()
	return ""
}

func TestUnregisterSyncWaitsForAccess(t *testing.T) {
	m := newTestManager(t, safeConfig())
	e, watch := newElement(t)
	h, err := m.Register(e, RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- m.SafeAccess(h, func() error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	start := time.Now()
	err = m.UnregisterSync(h, 30*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("UnregisterSync with an access in flight: %v", err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Fatalf("UnregisterSync returned after %v, before its timeout", waited)
	}
	if watch.Finalized() {
		t.Fatal("released during an access")
	}
	if info, _ := h.Info(); info.State != StateReleasing || info.AccessesInFlight != 1 {
		t.Fatalf("during the access: %+v", info)
	}
	// Another wait for the pending release: it returns once the access ends.
	waiting := make(chan error)
	go func() { waiting <- h.UnregisterSync(-1) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; !errors.Is(err, ErrReleased) {
		t.Fatalf("second UnregisterSync: %v", err)
	}
	if !watch.Finalized() {
		t.Fatal("UnregisterSync returned before the release")
	}
}

func TestManagerInvalidate(t *testing.T) {
	m := NewGCSafetyManager(safeConfig())
	h, err := m.RegisterValue(&payload{}, RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Invalidate(h); err != nil {
		t.Fatal(err)
	}
	wantNotValid(t, m.SafeAccess(h, func() error { return nil }), ErrInvalidated)
	wantNotValid(t, m.Invalidate(h), ErrInvalidated)
	if info, err := m.Info(h); err != nil || info.State != StateInvalidated {
		t.Fatalf("%+v %v", info, err)
	}
	m.Close()
	if err := m.Invalidate(h); !errors.Is(err, ErrClosed) {
		t.Fatalf("Invalidate after Close: %v", err)
	}
	if _, err := m.Info(h); !errors.Is(err, ErrClosed) {
		t.Fatalf("Info after Close: %v", err)
	}
	checkCgoHandles(t, m)
}

// promValue is the value of the unlabelled sample name in text.
func promValue(t *testing.T, text, name string) uint64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+" ") {
			n, err := strconv.ParseUint(strings.TrimPrefix(line, name+" "), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no sample %s in:\n%s", name, text)
	return 0
}

func TestPrometheus(t *testing.T) {
	m := newTestManager(t, safeConfig())
	h, err := m.RegisterValue(&payload{}, RegisterOptions{TypeName: "Camera", Size: 512})
	if err != nil {
		t.Fatal(err)
	}
	failure := errors.New("fails")
	for i := 0; i < 3; i++ {
		if err := m.SafeAccess(h, func() error { return failure }); err != failure {
			t.Fatal(err)
		}
	}
	m.SafeAccess(h, func() error { panic("boom") })
	s := m.GetStats()
	text := m.Prometheus()
	for name, want := range map[string]uint64{
		"gcs_registrations_total":     s.TotalRegistered,
		"gcs_accesses_total":          s.AccessOk,
		"gcs_callback_failures_total": s.CallbackFailures,
		"gcs_panics_recovered_total":  s.PanicsRecovered,
		"gcs_invalidations_total":     s.Invalidated,
		"gcs_tracked_bytes":           s.TrackedBytes,
	} {
		if got := promValue(t, text, name); got != want {
			t.Errorf("%s = %d, GetStats says %d", name, got, want)
		}
	}
	if s.CallbackFailures != 4 || s.PanicsRecovered != 1 || s.TrackedBytes != 512 {
		t.Fatalf("stats: %+v", s)
	}
	if !strings.Contains(text, `gcs_type_live_handles{type="Camera"} 1`) {
		t.Fatalf("no per-type series:\n%s", text)
	}

	m.UnregisterObject(h)
}

// TestShutdown runs in a child process: Shutdown ends the library's state
// for the whole process.
func TestShutdown(t *testing.T) {
	if os.Getenv("GCSAFETY_SHUTDOWN_CHILD") == "1" {
		shutdownChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestShutdown$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GCSAFETY_SHUTDOWN_CHILD=1", "GCS_LEAKS=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "shutdown child: ok") {
		t.Fatalf("child did not finish:\n%s\n%s", stdout.String(), stderr.String())
	}
	// GCS_LEAKS=1: the library reported the default manager's live handle.
	// CaptureStack reached the library (GCS_REGISTER_CAPTURE_STACK): its
	// report shows where the handle was registered.
	if !strings.Contains(stderr.String(), "'forgotten'") || !strings.Contains(stderr.String(), "registered at:") {
		t.Fatalf("no leak report of the default manager, with its stack, on stderr:\n%s", stderr.String())
	}
}

func shutdownChild() {
	fail := func(format string, args ...any) {
		os.Stdout.WriteString("shutdown child: FAIL: " + strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
		os.Exit(1)
	}
	m := NewGCSafetyManager(safeConfig())
	e := gsttest.NewFakesink()
	watch := gsttest.WatchObject(e)
	h, err := m.Register(e, RegisterOptions{})
	if err != nil {
		fail("%v", err)
	}
	d := gsttest.NewFakesink()
	dwatch := gsttest.WatchObject(d)
	hd, err := RegisterGObject(d, RegisterOptions{InstanceName: "forgotten", CaptureStack: true})
	if err != nil {
		fail("%v", err)
	}
	if err := Shutdown(30 * time.Second); err != nil {
		fail("Shutdown: %v", err)
	}
	if !watch.Finalized() || !dwatch.Finalized() {
		fail("Shutdown left registrations unreleased")
	}
	if err := m.SafeAccess(h, func() error { return nil }); !errors.Is(err, ErrNotValid) {
		fail("access after Shutdown: %v", err)
	}
	if err := hd.Access(func(unsafe.Pointer) error { return nil }); !errors.Is(err, ErrNotValid) {
		fail("default-manager access after Shutdown: %v", err)
	}
	// The default manager starts afresh.
	f := gsttest.NewFakesink()
	hf, err := RegisterGObject(f, RegisterOptions{})
	if err != nil {
		fail("register after Shutdown: %v", err)
	}
	if err := hf.Unregister(); err != nil {
		fail("%v", err)
	}
	os.Stdout.WriteString("shutdown child: ok\n")
}

func TestViewsReachTheManager(t *testing.T) {
	mm := NewMemoryManager(MemoryManagerConfig{})
	defer mm.Close()
	h := mm.TrackObject(&payload{}, "Frame", 4096)
	live, err := mm.GCSafety().LiveHandles()
	if err != nil || len(live) != 1 || live[0].Handle != h || live[0].Size != 4096 {
		t.Fatalf("MemoryManager: %v, %v", live, err)
	}
	if promValue(t, mm.GCSafety().Prometheus(), "gcs_tracked_bytes") != 4096 {
		t.Fatal("tracked bytes")
	}
	lm := NewObjectLifecycleManager(ObjectLifecycleConfig{EnableValidation: true})
	defer lm.Close()
	e, watch := newElement(t)
	hl, err := lm.RegisterObject(wrapGstElement(e), "", "decoder")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := lm.GCSafety().Info(hl); err != nil || info.InstanceName != "decoder" || info.Kind != KindGstObject {
		t.Fatalf("ObjectLifecycleManager: %+v, %v", info, err)
	}
	if err := lm.GCSafety().UnregisterSync(hl, -1); err != nil || !watch.Finalized() {
		t.Fatalf("UnregisterSync: %v, finalized %v", err, watch.Finalized())
	}
}

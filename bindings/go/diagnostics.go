package gcsafety

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HandleState is the state of a handle in a HandleInfo (GcsHandleState).
type HandleState int

// The states of a handle.
const (
	// StateLive: accesses are accepted.
	StateLive HandleState = iota
	// StateInvalidated: accesses are refused; still registered.
	StateInvalidated
	// StateReleasing: unregistered; the release waits for accesses in flight.
	StateReleasing
	// StateReleased: released; its description is kept for
	// GCSafetyConfig.StateRetention.
	StateReleased
)

// String names the state.
func (s HandleState) String() string {
	switch s {
	case StateLive:
		return "live"
	case StateInvalidated:
		return "invalidated"
	case StateReleasing:
		return "releasing"
	case StateReleased:
		return "released"
	}
	return fmt.Sprintf("HandleState(%d)", int(s))
}

// HandleInfo describes a handle (gcs_get_info), at one instant.
type HandleInfo struct {
	// Handle is the handle described.
	Handle Handle
	// State is its state.
	State HandleState
	// Kind is what the registration holds.
	Kind ObjectKind
	// AccessesInFlight counts the accesses running now.
	AccessesInFlight int
	// TypeName is the registration's type name (RegisterOptions.TypeName,
	// else the GType name or the Go type).
	TypeName string
	// InstanceName is its instance name, "" if none.
	InstanceName string
	// Size is the size declared at registration, in bytes.
	Size uint64
	// Age is the time since registration, in whole milliseconds of the
	// library's coarse monotonic clock (which advances by a scheduler tick,
	// a few milliseconds).
	Age time.Duration
	// ReleasedAgo is the time since release; 0 unless released.
	ReleasedAgo time.Duration
	// Stack is the goroutine's stack at registration, one frame per two
	// lines as in a Go traceback ("function\n\tfile:line"), if it was
	// recorded (RegisterOptions.CaptureStack, GCS_DEBUG=stacks) and the
	// registration is not yet released; else "".
	Stack string
}

// String is a one-line description, as in the leak report.
func (i HandleInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "handle %v %s", i.Handle, i.TypeName)
	if i.InstanceName != "" {
		fmt.Fprintf(&b, " '%s'", i.InstanceName)
	}
	fmt.Fprintf(&b, " (%v, %v, %d bytes, %d accesses in flight), alive %v",
		i.Kind, i.State, i.Size, i.AccessesInFlight, i.Age)
	return b.String()
}

// Info describes h (gcs_get_info): live, invalidated, releasing, or
// released within the retention of its manager (GCSafetyConfig.StateRetention).
// Any other value gives an error wrapping ErrNotValid.
func (h Handle) Info() (HandleInfo, error) {
	info, r := getInfo(h)
	if r != resultOK {
		return HandleInfo{}, handleErr(opInfo, h, r)
	}
	info.Stack = stackOf(h)
	return info, nil
}

// Info describes id, as Handle.Info does; after Close it returns ErrClosed.
func (m *GCSafetyManager) Info(id Handle) (HandleInfo, error) {
	if m.closed.Load() {
		return HandleInfo{}, m.closedErr
	}
	return id.Info()
}

// LiveHandles lists the registrations of the manager not yet released
// (gcs_foreach_live), oldest first, with their age and, where it was
// recorded, their registration stack: the leak report as data. It works
// after Close too (then it lists the registrations whose accesses are still
// in flight).
func (m *GCSafetyManager) LiveHandles() ([]HandleInfo, error) {
	if m.c == nil {
		return nil, m.closedErr
	}
	infos, r := liveHandles(m.c)
	runtime.KeepAlive(m) // m.c is freed once m is unreachable
	if r != resultOK {
		return nil, fmt.Errorf("gcsafety: cannot list the live handles: %v", r)
	}
	return withStacks(infos), nil
}

// withStacks adds their registration stacks to infos.
func withStacks(infos []HandleInfo) []HandleInfo {
	for i := range infos {
		infos[i].Stack = stackOf(infos[i].Handle)
	}
	return infos
}

// LiveHandles lists the registrations of the library's default manager (the
// one Register, RegisterMiniObject and RegisterGObject use) not yet
// released, oldest first, as GCSafetyManager.LiveHandles does.
func LiveHandles() ([]HandleInfo, error) {
	infos, r := liveHandles(nil)
	if r != resultOK {
		return nil, fmt.Errorf("gcsafety: cannot list the live handles: %v", r)
	}
	return withStacks(infos), nil
}

// WriteLeakReport writes the manager's live handles to w in the format of
// the library's GCS_LEAKS=1 report: one line per handle ("gcsafety: leak:
// handle ... alive ..."), each followed by its registration stack if one
// was recorded; "no leaks" if there are none.
func (m *GCSafetyManager) WriteLeakReport(w io.Writer) error {
	infos, err := m.LiveHandles()
	if err != nil {
		return err
	}
	return writeLeakReport(w, "a Go manager", infos)
}

func writeLeakReport(w io.Writer, who string, infos []HandleInfo) error {
	bw := bufio.NewWriter(w)
	if len(infos) == 0 {
		fmt.Fprintf(bw, "gcsafety: %s: no leaks\n", who)
		return bw.Flush()
	}
	fmt.Fprintf(bw, "gcsafety: %s: %d live handles (leaks):\n", who, len(infos))
	for _, info := range infos {
		fmt.Fprintf(bw, "gcsafety: leak: %v\n", info)
		if info.Stack != "" {
			fmt.Fprintf(bw, "gcsafety: registered at:\n%s\n", info.Stack)
		}
	}
	return bw.Flush()
}

// Invalidate makes id refuse new accesses (ErrInvalidated) but keeps the
// registration, so Info still describes it, until it is unregistered
// (gcs_invalidate). Invalidating again returns an error wrapping
// ErrInvalidated; after Close, ErrClosed.
func (m *GCSafetyManager) Invalidate(id Handle) error {
	if m.closed.Load() {
		return m.closedErr
	}
	return id.Invalidate()
}

// UnregisterSync unregisters h and waits until its release has happened:
// the accesses in flight ended, the cleanups and the finalizer ran, and the
// reference was dropped (with SetNullState, after the element was set to
// NULL). A negative timeout waits as long as it takes. On timeout it returns
// an error wrapping ErrTimeout, and the release happens when the last access
// ends. A second call, or a call on a handle someone else unregistered,
// waits for the release in progress and returns an error wrapping
// ErrReleased.
//
// Never call it inside an access of h: it would wait for that access, that
// is for itself, until the timeout. (The library's gcs_unregister_sync
// detects that case per OS thread; goroutines move between threads and
// share them, so the Go binding waits on the Go side instead: for the end
// of the accesses through a cleanup that it adds, counted in
// Stats.CleanupsRun, then for the rest of the release through
// gcs_unregister_sync. On a handle someone else unregistered it cannot add
// the cleanup; if the library then refuses to wait because an access in
// flight began on the same OS thread, it asks again every few milliseconds
// until the accesses have ended.)
func (h Handle) UnregisterSync(timeout time.Duration) error {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	remaining := func() time.Duration {
		if timeout < 0 {
			return -1
		}
		if d := time.Until(deadline); d > 0 {
			return d
		}
		return 0
	}
	ended := make(chan struct{})
	if r := addCleanupCallback(nil, h, func() { close(ended) }); r != resultOK {
		// Not live: unregistered already (then wait for its release) or
		// never issued.
		return handleErr(opUnregister, h, unregisterSyncGo(h, remaining))
	}
	if r := unregister(h); r != resultOK {
		return handleErr(opUnregister, h, r)
	}
	if timeout < 0 {
		<-ended
	} else {
		timer := time.NewTimer(remaining())
		select {
		case <-ended:
			timer.Stop()
		case <-timer.C:
			return handleErr(opUnregister, h, resultTimeout)
		}
	}
	// The release is under way (or done): wait for its end, finalizer and
	// unref included. The handle is unregistered, so the wait reports
	// GCS_ERROR_RELEASED when it is over.
	switch r := unregisterSyncGo(h, remaining); r {
	case resultOK, resultReleased:
		return nil
	default:
		return handleErr(opUnregister, h, r)
	}
}

// unregisterSyncGo is gcs_unregister_sync of a handle already
// unregistered, whose release may wait for accesses of other goroutines. The
// library refuses the wait (GCS_ERROR_WOULD_DEADLOCK) when one of those
// accesses began on this OS thread, which goroutines share: then the wait
// is done here, by asking again until the accesses have ended (1 ms apart,
// then up to 10 ms).
func unregisterSyncGo(h Handle, remaining func() time.Duration) result {
	pause := time.Millisecond
	for {
		r := unregisterSync(h, remaining())
		if r != resultWouldDeadlock {
			return r
		}
		left := remaining()
		if left == 0 {
			return resultTimeout
		}
		if left > 0 && left < pause {
			pause = left
		}
		time.Sleep(pause)
		if pause < 10*time.Millisecond {
			pause *= 2
		}
	}
}

// UnregisterSync is Handle.UnregisterSync; after Close it returns ErrClosed.
func (m *GCSafetyManager) UnregisterSync(id Handle, timeout time.Duration) error {
	if m.closed.Load() {
		return m.closedErr
	}
	return id.UnregisterSync(timeout)
}

// ErrTimeout is wrapped by the errors of the calls that waited longer than
// their timeout (GCS_ERROR_TIMEOUT): UnregisterSync, Shutdown.
var ErrTimeout = errors.New("gcsafety: timed out")

// Shutdown closes the library's default manager and every manager still
// open, GCSafetyManagers included, waiting up to timeout in all (negative:
// as long as it takes) for the accesses in flight, and joins the library's
// threads (gcs_shutdown). With GCS_LEAKS=1, the library reports the default
// manager's live handles on stderr first. Call it at the end of a program
// (or before unloading the library); the Go managers' methods return
// ErrClosed afterwards, and the next registration with the default manager
// starts a fresh one. On timeout the error wraps ErrTimeout.
func Shutdown(timeout time.Duration) error {
	if r := shutdown(timeout); r != resultOK {
		return &shutdownError{result: r}
	}
	return nil
}

type shutdownError struct{ result result }

func (e *shutdownError) Error() string { return fmt.Sprintf("gcsafety: shutdown: %v", e.result) }
func (e *shutdownError) Unwrap() error {
	if e.result == resultTimeout {
		return ErrTimeout
	}
	return nil
}

// Prometheus is the manager's statistics in the Prometheus text exposition
// format (version 0.0.4; gcs_stats_prometheus): counters and gauges prefixed
// gcs_, and per-type series labelled type="...". The counts the Go side
// keeps (access functions that failed or panicked, safe finalizers) are
// included, so the text agrees with GetStats. "" if the library could not
// render it. The package gcsafety.dev/gcsafety/metrics serves it over HTTP:
// mux.Handle("/metrics", metrics.Handler(m.Prometheus)).
func (m *GCSafetyManager) Prometheus() string {
	if m.c == nil {
		return ""
	}
	text, ok := prometheusText(m.c)
	runtime.KeepAlive(m)
	if !ok {
		return ""
	}
	var s Stats
	m.counters.addTo(&s)
	return addToCounters(text, map[string]uint64{
		"gcs_callback_failures_total":  s.CallbackFailures,
		"gcs_panics_recovered_total":   s.PanicsRecovered,
		"gcs_finalizers_total":         s.FinalizersRun,
		"gcs_finalizer_failures_total": s.FinalizerFailures,
		"gcs_finalizer_timeouts_total": s.FinalizerTimeouts,
	})
}

// Prometheus is the default manager's statistics in the Prometheus text
// format, as GCSafetyManager.Prometheus (served by metrics.Handler(Prometheus)).
func Prometheus() string {
	text, _ := prometheusText(nil)
	return text
}

// addToCounters adds add[name] to the value of each unlabelled sample
// "name value" of text.
func addToCounters(text string, add map[string]uint64) string {
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		name, value, ok := strings.Cut(line, " ")
		extra, known := add[name]
		if !ok || !known || extra == 0 {
			continue
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			continue
		}
		lines[i] = name + " " + strconv.FormatUint(n+extra, 10)
	}
	return strings.Join(lines, "\n")
}

// ----- registration stacks ----------------------------------------------------

// stacks holds the registration stacks of the handles that recorded one,
// until their release (a cleanup deletes the entry).
var stacks struct {
	sync.Mutex
	byHandle map[Handle][]uintptr
}

// recordStack records the caller's stack for h, and a cleanup that forgets
// it at h's release.
func recordStack(h Handle) {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs) // the package's frames are trimmed by stackOf
	pcs = pcs[:n:n]
	stacks.Lock()
	if stacks.byHandle == nil {
		stacks.byHandle = make(map[Handle][]uintptr)
	}
	stacks.byHandle[h] = pcs
	stacks.Unlock()
	// The cleanup is not m's (nil): it must not keep m reachable.
	if addCleanupCallback(nil, h, func() { forgetStack(h) }) != resultOK {
		forgetStack(h) // already released
	}
}

func forgetStack(h Handle) {
	stacks.Lock()
	delete(stacks.byHandle, h)
	stacks.Unlock()
}

// packagePath is this package's import path, the prefix of its functions'
// names in stacks.
const packagePath = "gcsafety.dev/gcsafety"

// stackOf is h's registration stack from the caller of the package on,
// formatted, or "".
func stackOf(h Handle) string {
	stacks.Lock()
	pcs := stacks.byHandle[h]
	stacks.Unlock()
	if len(pcs) == 0 {
		return ""
	}
	var b strings.Builder
	frames := runtime.CallersFrames(pcs)
	inPackage := true // the leading frames, inside the package
	for {
		f, more := frames.Next()
		if inPackage && strings.HasPrefix(f.Function, packagePath+".") && !strings.HasSuffix(f.File, "_test.go") {
			if !more {
				break
			}
			continue
		}
		inPackage = false
		if f.Function != "" {
			fmt.Fprintf(&b, "%s\n\t%s:%d\n", f.Function, f.File, f.Line)
		}
		if !more {
			break
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// ----- the environment ---------------------------------------------------------

// envFlags are the library's debugging switches, which the library applies to
// its default manager only, read by each Go manager at creation.
type envFlags struct {
	logState, logFinalizers, stacks, leaks bool
}

// readEnv reads GCS_DEBUG (comma- or space-separated: state, finalizers,
// stacks, all) and GCS_LEAKS (1), as the library does.
func readEnv() envFlags {
	var f envFlags
	for _, word := range strings.FieldsFunc(os.Getenv("GCS_DEBUG"), func(r rune) bool {
		return r == ',' || r == ' ' || r == ':'
	}) {
		switch strings.TrimSpace(word) {
		case "state":
			f.logState = true
		case "finalizers":
			f.logFinalizers = true
		case "stacks":
			f.stacks = true
		case "all":
			f.logState, f.logFinalizers, f.stacks = true, true, true
		}
	}
	f.leaks = os.Getenv("GCS_LEAKS") == "1"
	return f
}

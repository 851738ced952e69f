package gcsafety

import "sync/atomic"

// Stats are a manager's statistics: the library's GcsStats (gcs_get_stats),
// field by field, plus the counts of what the Go side runs itself (access
// functions that returned an error or panicked, and safe finalizers), and the
// names of the original design. Counts are exact once no goroutine is
// registering or accessing; taken while they are, they may lag by the
// operations of that instant.
type Stats struct {
	// TotalObjects is TotalRegistered, by its name in the original design.
	TotalObjects uint64
	// ActiveObjects is Active, by its name in the original design.
	ActiveObjects uint64

	// TotalRegistered counts the registrations ever made (cumulative).
	TotalRegistered uint64
	// Active counts the registrations not yet released (live, invalidated,
	// or unregistered with accesses still in flight).
	Active uint64
	// Released counts the registrations released.
	Released uint64
	// Invalidated counts the handles invalidated (Invalidate, or a panic
	// during an access).
	Invalidated uint64
	// AccessOk counts the accesses that ran (whatever their function did).
	AccessOk uint64
	// AccessRejected counts the accesses refused: released, invalidated or
	// closed handles.
	AccessRejected uint64
	// CallbackFailures counts the access functions that returned an error
	// or panicked.
	CallbackFailures uint64
	// PanicsRecovered counts the panics recovered inside access functions.
	PanicsRecovered uint64
	// CleanupsRun counts the cleanups run (AddCleanupCallback).
	CleanupsRun uint64
	// CleanupFailures counts the cleanups that panicked.
	CleanupFailures uint64
	// FinalizersRun counts the safe finalizers run (once each, however
	// many attempts).
	FinalizersRun uint64
	// FinalizerFailures counts the safe finalizers that panicked on every
	// attempt.
	FinalizerFailures uint64
	// FinalizerTimeouts counts the safe finalizers that overran
	// FinalizerTimeout.
	FinalizerTimeouts uint64
	// TrackedBytes is the sum of the sizes declared by the registrations
	// not yet released (MemoryManager.TrackObject).
	TrackedBytes uint64
	// PeakActive is the most registrations active at once.
	PeakActive uint64
}

// goCounters are the counts the Go side keeps, added to the library's.
type goCounters struct {
	callbackFailures  atomic.Uint64
	panicsRecovered   atomic.Uint64
	finalizersRun     atomic.Uint64
	finalizerFailures atomic.Uint64
	finalizerTimeouts atomic.Uint64
}

// addTo adds the Go side's counts to s.
func (c *goCounters) addTo(s *Stats) {
	panics := c.panicsRecovered.Load()
	s.CallbackFailures += c.callbackFailures.Load() + panics
	s.PanicsRecovered += panics
	s.FinalizersRun += c.finalizersRun.Load()
	s.FinalizerFailures += c.finalizerFailures.Load()
	s.FinalizerTimeouts += c.finalizerTimeouts.Load()
}

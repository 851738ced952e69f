package gcsafety

// MemoryManagerConfig configures a MemoryManager.
type MemoryManagerConfig struct {
	// TrackObjectLifecycle logs each tracked object's registration,
	// invalidation and release (GCSafetyConfig.LogStateChanges).
	TrackObjectLifecycle bool
	// MemoryLimit, in bytes, if positive: when a TrackObject takes the
	// tracked bytes (the sizes declared by the objects not yet released)
	// above it, and then at most every 100 ms while they stay above, the
	// manager starts a Go garbage collection in the background, so that the
	// finalizers of unreachable Go wrappers release C memory the Go
	// collector cannot see. 0: no limit.
	MemoryLimit int64
	// GCSafety configures the manager underneath.
	GCSafety GCSafetyConfig
}

// MemoryManager is the memory manager of the original design: a
// GCSafetyManager whose registrations declare their size, so the library
// accounts for the memory they hold (Stats.TrackedBytes, per manager and per
// type). Its methods are safe for concurrent use.
type MemoryManager struct {
	core *GCSafetyManager
}

// NewMemoryManager creates a memory manager. Call Close when done.
func NewMemoryManager(config MemoryManagerConfig) *MemoryManager {
	c := config.GCSafety
	c.LogStateChanges = c.LogStateChanges || config.TrackObjectLifecycle
	limit := uint64(0)
	if config.MemoryLimit > 0 {
		limit = uint64(config.MemoryLimit)
	}
	return &MemoryManager{core: newManager(c, limit)}
}

// TrackObject registers obj, of size bytes (negative counts as 0), as
// GCSafetyManager.RegisterObject does, and returns its handle, or 0 (which
// every method refuses with ErrInvalidHandle) if it cannot be registered: a
// nil obj, a C object that fails validation, a closed manager.
func (m *MemoryManager) TrackObject(obj any, typeName string, size int64) Handle {
	if size < 0 {
		size = 0
	}
	h, err := m.core.register(obj, typeName, "", uint64(size))
	if err != nil {
		return 0
	}
	return h
}

// SafeObjectAccess is GCSafetyManager.SafeAccess.
func (m *MemoryManager) SafeObjectAccess(id Handle, fn func() error) error {
	return m.core.SafeAccess(id, fn)
}

// ReleaseObject is GCSafetyManager.UnregisterObject: the size of id stops
// counting when it is released.
func (m *MemoryManager) ReleaseObject(id Handle) error {
	return m.core.UnregisterObject(id)
}

// GetStats is GCSafetyManager.GetStats; TrackedBytes is the memory tracked.
func (m *MemoryManager) GetStats() Stats {
	return m.core.GetStats()
}

// Close is GCSafetyManager.Close.
func (m *MemoryManager) Close() error {
	return m.core.Close()
}

// GCSafety is the manager underneath, for the rest of the API: Register
// with RegisterOptions, Info, LiveHandles, WriteLeakReport, UnregisterSync,
// Prometheus. Its registrations and statistics are m's.
func (m *MemoryManager) GCSafety() *GCSafetyManager {
	return m.core
}

package gcsafety

// ObjectLifecycleConfig configures an ObjectLifecycleManager.
type ObjectLifecycleConfig struct {
	// EnableValidation validates the GType of C objects at registration
	// (GCSafetyConfig.EnableStateChecking).
	EnableValidation bool
	// GCSafety configures the manager underneath.
	GCSafety GCSafetyConfig
}

// ObjectLifecycleManager is the lifecycle manager of the original design:
// a GCSafetyManager whose registrations carry an instance name (shown in
// the library's logs and leak reports). Its methods are safe for concurrent
// use.
type ObjectLifecycleManager struct {
	core *GCSafetyManager
}

// NewObjectLifecycleManager creates a lifecycle manager. Call Close when
// done.
func NewObjectLifecycleManager(config ObjectLifecycleConfig) *ObjectLifecycleManager {
	c := config.GCSafety
	c.EnableStateChecking = c.EnableStateChecking || config.EnableValidation
	return &ObjectLifecycleManager{core: newManager(c, 0)}
}

// RegisterObject is GCSafetyManager.RegisterObject, with an instance name
// ("" for none).
func (m *ObjectLifecycleManager) RegisterObject(obj any, typeName, instanceName string) (Handle, error) {
	return m.core.register(obj, typeName, instanceName, 0)
}

// SafeObjectAccess is GCSafetyManager.SafeAccess.
func (m *ObjectLifecycleManager) SafeObjectAccess(id Handle, fn func() error) error {
	return m.core.SafeAccess(id, fn)
}

// UnregisterObject is GCSafetyManager.UnregisterObject.
func (m *ObjectLifecycleManager) UnregisterObject(id Handle) error {
	return m.core.UnregisterObject(id)
}

// GetStats is GCSafetyManager.GetStats.
func (m *ObjectLifecycleManager) GetStats() Stats {
	return m.core.GetStats()
}

// Close is GCSafetyManager.Close.
func (m *ObjectLifecycleManager) Close() error {
	return m.core.Close()
}

// GCSafety is the manager underneath, for the rest of the API: Register
// with RegisterOptions, Info, LiveHandles, WriteLeakReport, UnregisterSync,
// Prometheus. Its registrations and statistics are m's.
func (m *ObjectLifecycleManager) GCSafety() *GCSafetyManager {
	return m.core
}

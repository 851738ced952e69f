package gcsafety

// Every call into the library goes through this file. The helpers take
// integers, C pointers and Go strings (copied into C memory for the call)
// and return small structs by value, so no Go pointer reaches C and the
// access path allocates nothing.

/*
#cgo pkg-config: gcsafety
#include <stdlib.h>
#include <string.h>
#include "gcsafety.h"
#include "bridge.h"

// A Go string as a NUL-terminated copy: in `buf` when it fits, else in
// `*heap` (to free). NULL for "" (the library then picks the name).
static const char *gcsgo_cstr(_GoString_ s, char *buf, size_t buf_len, char **heap) {
	size_t n = _GoStringLen(s);
	char *dst = buf;
	if (n == 0) {
		return NULL;
	}
	if (n >= buf_len) {
		dst = malloc(n + 1);
		if (dst == NULL) {
			return NULL;
		}
		*heap = dst;
	}
	memcpy(dst, _GoStringPtr(s), n);
	dst[n] = '\0';
	return dst;
}

// gcs_register_full for a C object (go_value == 0) or for a Go value, whose
// runtime/cgo.Handle becomes the GCS_KIND_POINTER object here, in C
// (shifted: see GCSGO_VALUE_SHIFT).
static gcsgo_registered gcsgo_register(GcsManager *manager, GcsObjectKind kind, void *object,
		uintptr_t go_value, _GoString_ type_name, _GoString_ instance_name, uint64_t size_bytes) {
	char type_buf[128], instance_buf[128];
	char *type_heap = NULL, *instance_heap = NULL;
	GcsRegistration r;
	gcsgo_registered out = { GCS_OK, GCS_INVALID_HANDLE };

	memset(&r, 0, sizeof r);
	r.struct_size = sizeof r;
	r.manager = manager;
	r.kind = kind;
	r.object = object;
	if (go_value != 0) {
		r.kind = GCS_KIND_POINTER;
		r.object = (void *)(go_value << GCSGO_VALUE_SHIFT);
		r.release = gcsgo_release_go_value;
	}
	r.type_name = gcsgo_cstr(type_name, type_buf, sizeof type_buf, &type_heap);
	r.instance_name = gcsgo_cstr(instance_name, instance_buf, sizeof instance_buf, &instance_heap);
	r.size_bytes = size_bytes;
	if ((_GoStringLen(type_name) != 0 && r.type_name == NULL) ||
			(_GoStringLen(instance_name) != 0 && r.instance_name == NULL)) {
		out.result = GCS_ERROR_INVALID_ARGUMENT; // out of memory copying a name
	} else {
		out.result = gcs_register_full(&r, &out.handle);
	}
	free(type_heap);
	free(instance_heap);
	return out;
}

// An access whose object the caller does not need (SafeAccess).
static GcsResult gcsgo_access_begin(GcsHandle handle) {
	void *object;
	return gcs_access_begin(handle, &object);
}

// gcs_access_end without its result: the cgo stub of a C function that
// returns nothing skips the two _cgo_topofstack calls and the copy of the
// result onto the Go stack (docs/performance.md, "Go binding").
static void gcsgo_access_end(GcsHandle handle) {
	gcs_access_end(handle);
}

static gcsgo_begun gcsgo_access_begin_object(GcsHandle handle) {
	gcsgo_begun out = { GCS_OK, NULL };
	out.result = gcs_access_begin(handle, &out.object);
	return out;
}

static GcsResult gcsgo_add_cleanup(GcsHandle handle, uintptr_t callback) {
	return gcs_add_cleanup(handle, gcsgo_run_cleanup, (void *)callback);
}

static gcsgo_created gcsgo_manager_new(GcsConfig config) {
	gcsgo_created out = { GCS_OK, NULL };
	if (config.memory_limit_bytes != 0) {
		config.memory_pressure = gcsgo_memory_pressure;
	}
	out.result = gcs_manager_new(&config, &out.manager);
	return out;
}

static GcsConfig gcsgo_config_defaults(void) {
	GcsConfig config;
	gcs_config_init(&config);
	return config;
}

static GcsStats gcsgo_get_stats(GcsManager *manager, GcsResult *result) {
	GcsStats stats;
	memset(&stats, 0, sizeof stats);
	stats.struct_size = sizeof stats;
	*result = gcs_get_stats(manager, &stats);
	return stats;
}
*/
import "C"

import (
	"math"
	"time"
	"unsafe"
)

// result is a GcsResult.
type result int32

const (
	resultOK            result = C.GCS_OK
	resultInvalidHandle result = C.GCS_ERROR_INVALID_HANDLE
	resultReleased      result = C.GCS_ERROR_RELEASED
	resultInvalidated   result = C.GCS_ERROR_INVALIDATED
	resultShutDown      result = C.GCS_ERROR_SHUT_DOWN
)

// String is the library's static description of the result.
func (r result) String() string {
	return C.GoString(C.gcs_result_to_string(C.GcsResult(r)))
}

// cManager is a *C.GcsManager; nil is the default manager.
type cManager = *C.GcsManager

// registerC registers a C object of kind with manager (nil: the default one).
func registerC(manager cManager, kind C.GcsObjectKind, object unsafe.Pointer, typeName, instanceName string, size uint64) (Handle, result) {
	r := C.gcsgo_register(manager, kind, object, 0, typeName, instanceName, C.uint64_t(size))
	return Handle(r.handle), result(r.result)
}

// registerGoValue registers value, a runtime/cgo.Handle, as a
// GCS_KIND_POINTER object released by gcsgoReleaseGoValue.
func registerGoValue(manager cManager, value uintptr, typeName, instanceName string, size uint64) (Handle, result) {
	r := C.gcsgo_register(manager, C.GCS_KIND_POINTER, nil, C.uintptr_t(value), typeName, instanceName, C.uint64_t(size))
	return Handle(r.handle), result(r.result)
}

func accessBegin(h Handle) result {
	return result(C.gcsgo_access_begin(C.GcsHandle(h)))
}

func accessBeginObject(h Handle) (unsafe.Pointer, result) {
	r := C.gcsgo_access_begin_object(C.GcsHandle(h))
	return r.object, result(r.result)
}

// accessEnd ends an access begun by accessBegin or accessBeginObject. Its
// GcsResult is dropped: after a successful begin it is GCS_OK (the library
// refuses only an end without a begin).
func accessEnd(h Handle) {
	C.gcsgo_access_end(C.GcsHandle(h))
}

func isValid(h Handle) bool {
	return bool(C.gcs_is_valid(C.GcsHandle(h)))
}

func unregister(h Handle) result {
	return result(C.gcs_unregister(C.GcsHandle(h)))
}

func invalidate(h Handle) result {
	return result(C.gcs_invalidate(C.GcsHandle(h)))
}

// addCleanup adds gcsgoRunCleanup(callback) to the handle's cleanups.
func addCleanup(h Handle, callback uintptr) result {
	return result(C.gcsgo_add_cleanup(C.GcsHandle(h), C.uintptr_t(callback)))
}

func newCManager(config C.GcsConfig) (cManager, result) {
	r := C.gcsgo_manager_new(config)
	return r.manager, result(r.result)
}

func closeCManager(manager cManager) result {
	return result(C.gcs_manager_close(manager, 0))
}

func freeCManager(manager cManager) {
	C.gcs_manager_free(manager)
}

func cStats(manager cManager) (Stats, result) {
	var r C.GcsResult
	s := C.gcsgo_get_stats(manager, &r)
	if result(r) != resultOK {
		return Stats{}, result(r)
	}
	return Stats{
		TotalRegistered:   uint64(s.total_registered),
		Active:            uint64(s.active),
		Released:          uint64(s.released),
		Invalidated:       uint64(s.invalidated),
		AccessOk:          uint64(s.access_ok),
		AccessRejected:    uint64(s.access_rejected),
		CallbackFailures:  uint64(s.callback_failures),
		PanicsRecovered:   uint64(s.panics_recovered),
		CleanupsRun:       uint64(s.cleanups_run),
		CleanupFailures:   uint64(s.cleanup_failures),
		FinalizersRun:     uint64(s.finalizers_run),
		FinalizerFailures: uint64(s.finalizer_failures),
		FinalizerTimeouts: uint64(s.finalizer_timeouts),
		TrackedBytes:      uint64(s.tracked_bytes),
		PeakActive:        uint64(s.peak_active),
	}, resultOK
}

// c is the GcsObjectKind of k.
func (k objectKind) c() C.GcsObjectKind {
	if k == kindMiniObject {
		return C.GCS_KIND_MINI_OBJECT
	}
	return C.GCS_KIND_GST_OBJECT
}

// maxFinalizerRetries is the most retries the library accepts.
const maxFinalizerRetries = 1000

// cConfig is config as a GcsConfig: zero (or negative) durations and
// MaxFinalizerRetries 0 keep gcs_config_init's defaults, a negative
// MaxFinalizerRetries means no retry, bools are taken literally; durations
// are rounded up to whole milliseconds and capped at 2^32-1 ms, retries at
// 1000, so every config gives a valid GcsConfig.
func (config GCSafetyConfig) cConfig(memoryLimit uint64) C.GcsConfig {
	c := C.gcsgo_config_defaults()
	if ms, ok := millis(config.CleanupInterval); ok {
		c.cleanup_interval_ms = C.uint32_t(ms)
	}
	if ms, ok := millis(config.StateRetention); ok {
		c.state_retention_ms = C.uint32_t(ms)
	}
	if ms, ok := millis(config.FinalizerTimeout); ok {
		c.finalizer_timeout_ms = C.uint32_t(ms)
	}
	switch retries := config.MaxFinalizerRetries; {
	case retries > maxFinalizerRetries:
		c.max_finalizer_retries = maxFinalizerRetries
	case retries > 0:
		c.max_finalizer_retries = C.uint32_t(retries)
	case retries < 0:
		c.max_finalizer_retries = 0
	}
	c.enable_state_checking = C.bool(config.EnableStateChecking)
	c.enable_finalizer_safety = C.bool(config.EnableFinalizerSafety)
	c.log_state_changes = C.bool(config.LogStateChanges)
	c.log_finalizers = C.bool(config.LogFinalizers)
	c.memory_limit_bytes = C.uint64_t(memoryLimit)
	return c
}

// finalizerSettings are what the Go side's safe finalizers need of c.
func finalizerSettings(c C.GcsConfig) (timeout time.Duration, retries int, safety, log bool) {
	return time.Duration(c.finalizer_timeout_ms) * time.Millisecond, int(c.max_finalizer_retries),
		bool(c.enable_finalizer_safety), bool(c.log_finalizers)
}

// millis is d in whole milliseconds, rounded up and capped, if positive.
func millis(d time.Duration) (uint32, bool) {
	if d <= 0 {
		return 0, false
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxUint32 {
		ms = math.MaxUint32
	}
	return uint32(ms), true
}

package gcsafety

// The calls into the library of registrations with options, object kinds and
// diagnostics (Info, LiveHandles, Prometheus, UnregisterSync, Shutdown). As
// in cgo.go, C objects travel as integers and become pointers only in C, and
// the strings the library owns are copied in C before the call returns.

/*
#include <stdlib.h>
#include <string.h>
#include "gcsafety.h"
#include "bridge.h"

typedef struct {
	GcsResult result;
	GcsHandle handle;
} gcsgo_registered_full;

// gcs_register_full of a C object (an integer here, made a pointer in C).
static gcsgo_registered_full gcsgo_register_full(GcsManager *manager, GcsObjectKind kind,
		uintptr_t object, const char *type_name, const char *instance_name,
		uint64_t size_bytes, uint32_t flags) {
	GcsRegistration r;
	gcsgo_registered_full out = { GCS_OK, GCS_INVALID_HANDLE };
	memset(&r, 0, sizeof r);
	r.struct_size = sizeof r;
	r.manager = manager;
	r.kind = kind;
	r.object = (void *)object;
	r.type_name = type_name;
	r.instance_name = instance_name;
	r.size_bytes = size_bytes;
	r.flags = flags;
	out.result = gcs_register_full(&r, &out.handle);
	return out;
}

typedef struct {
	GcsResult result;
	GcsObjectKind kind;
} gcsgo_kind;

static gcsgo_kind gcsgo_object_kind(uintptr_t object) {
	gcsgo_kind out = { GCS_OK, GCS_KIND_POINTER };
	out.result = gcs_object_kind((void *)object, &out.kind);
	return out;
}

// A GcsHandleInfo whose names are copies (malloc'd; free with
// gcsgo_info_free), so they outlive the handle's retained state.
typedef struct {
	GcsHandle handle;
	GcsHandleState state;
	GcsObjectKind kind;
	uint32_t accesses_in_flight;
	char *type_name;
	char *instance_name;
	uint64_t size_bytes;
	uint64_t age_ms;
	uint64_t released_ms_ago;
} gcsgo_info;

static char *gcsgo_strdup(const char *s) {
	size_t n;
	char *copy;
	if (s == NULL) {
		return NULL;
	}
	n = strlen(s);
	copy = malloc(n + 1);
	if (copy != NULL) {
		memcpy(copy, s, n + 1);
	}
	return copy;
}

static void gcsgo_info_copy(const GcsHandleInfo *from, gcsgo_info *to) {
	to->handle = from->handle;
	to->state = from->state;
	to->kind = from->kind;
	to->accesses_in_flight = from->accesses_in_flight;
	to->type_name = gcsgo_strdup(from->type_name);
	to->instance_name = gcsgo_strdup(from->instance_name);
	to->size_bytes = from->size_bytes;
	to->age_ms = from->age_ms;
	to->released_ms_ago = from->released_ms_ago;
}

static void gcsgo_info_free(gcsgo_info *info) {
	free(info->type_name);
	free(info->instance_name);
}

typedef struct {
	GcsResult result;
	gcsgo_info info;
} gcsgo_info_result;

static gcsgo_info_result gcsgo_get_info(GcsHandle handle) {
	gcsgo_info_result out;
	GcsHandleInfo info;
	memset(&out, 0, sizeof out);
	memset(&info, 0, sizeof info);
	info.struct_size = sizeof info;
	out.result = gcs_get_info(handle, &info);
	if (out.result == GCS_OK) {
		gcsgo_info_copy(&info, &out.info);
	}
	return out;
}

// The leak report collected in C: a malloc'd array of copies.
typedef struct {
	GcsResult result;
	gcsgo_info *items;
	size_t len, cap;
	int out_of_memory;
} gcsgo_live;

static void gcsgo_collect_live(const GcsHandleInfo *info, void *user_data) {
	gcsgo_live *live = user_data;
	if (live->len == live->cap) {
		size_t cap = live->cap == 0 ? 16 : live->cap * 2;
		gcsgo_info *items = realloc(live->items, cap * sizeof *items);
		if (items == NULL) {
			live->out_of_memory = 1;
			return;
		}
		live->items = items;
		live->cap = cap;
	}
	gcsgo_info_copy(info, &live->items[live->len++]);
}

static gcsgo_live gcsgo_foreach_live(GcsManager *manager) {
	gcsgo_live live;
	memset(&live, 0, sizeof live);
	live.result = gcs_foreach_live(manager, gcsgo_collect_live, &live);
	return live;
}

static void gcsgo_live_free(gcsgo_info *items, size_t len) {
	size_t i;
	for (i = 0; i < len; i++) {
		gcsgo_info_free(&items[i]);
	}
	free(items);
}

static gcsgo_info *gcsgo_live_at(gcsgo_info *items, size_t i) {
	return &items[i];
}

// gcs_stats_prometheus into a malloc'd buffer (free it), grown until the
// text fits; NULL on an internal error or out of memory.
static char *gcsgo_prometheus(GcsManager *manager, size_t *len_out) {
	size_t cap = 4096;
	for (;;) {
		char *buf = malloc(cap);
		size_t n;
		if (buf == NULL) {
			return NULL;
		}
		n = gcs_stats_prometheus(manager, buf, cap);
		if (n == 0) {
			free(buf);
			return NULL;
		}
		if (n < cap) {
			*len_out = n;
			return buf;
		}
		free(buf);
		cap = n + 1 + 1024; // per-type series may grow meanwhile
	}
}
*/
import "C"

import (
	"time"
	"unsafe"
)

// goValueShift is GCSGO_VALUE_SHIFT: a Go value's registration token is
// its cgo.Handle shifted left by it.
const goValueShift = C.GCSGO_VALUE_SHIFT

// cObjectKind is a GcsObjectKind.
type cObjectKind = C.GcsObjectKind

const (
	cKindGstObject   cObjectKind = C.GCS_KIND_GST_OBJECT
	cKindGObject     cObjectKind = C.GCS_KIND_GOBJECT
	cKindMiniObject  cObjectKind = C.GCS_KIND_MINI_OBJECT
	cKindWeakGObject cObjectKind = C.GCS_KIND_WEAK_GOBJECT
)

const (
	resultTimeout       result = C.GCS_ERROR_TIMEOUT
	resultWouldDeadlock result = C.GCS_ERROR_WOULD_DEADLOCK
)

// registerFull registers the C object p (an integer until C) with manager
// (nil: the default one), its names, size and flags.
func registerFull(manager cManager, kind cObjectKind, p uintptr, opts RegisterOptions, captureStack bool) (Handle, result) {
	var typeName, instanceName *C.char
	if opts.TypeName != "" {
		typeName = C.CString(opts.TypeName)
		defer C.free(unsafe.Pointer(typeName))
	}
	if opts.InstanceName != "" {
		instanceName = C.CString(opts.InstanceName)
		defer C.free(unsafe.Pointer(instanceName))
	}
	var flags C.uint32_t
	if opts.SetNullState {
		flags |= C.GCS_REGISTER_SET_NULL_STATE
	}
	if captureStack {
		flags |= C.GCS_REGISTER_CAPTURE_STACK
	}
	r := C.gcsgo_register_full(manager, kind, C.uintptr_t(p), typeName, instanceName,
		C.uint64_t(sizeBytes(opts.Size)), flags)
	return Handle(r.handle), result(r.result)
}

// objectKindOf is gcs_object_kind of the C object p.
func objectKindOf(p uintptr) (cObjectKind, result) {
	r := C.gcsgo_object_kind(C.uintptr_t(p))
	return r.kind, result(r.result)
}

// goInfo is info as a HandleInfo (without the Go stack).
func goInfo(info *C.gcsgo_info) HandleInfo {
	out := HandleInfo{
		Handle:           Handle(info.handle),
		State:            HandleState(info.state),
		Kind:             ObjectKind(info.kind),
		AccessesInFlight: int(info.accesses_in_flight),
		Size:             uint64(info.size_bytes),
		Age:              time.Duration(info.age_ms) * time.Millisecond,
		ReleasedAgo:      time.Duration(info.released_ms_ago) * time.Millisecond,
	}
	if info.type_name != nil {
		out.TypeName = C.GoString(info.type_name)
	}
	if info.instance_name != nil {
		out.InstanceName = C.GoString(info.instance_name)
	}
	return out
}

func getInfo(h Handle) (HandleInfo, result) {
	r := C.gcsgo_get_info(C.GcsHandle(h))
	if result(r.result) != resultOK {
		return HandleInfo{}, result(r.result)
	}
	defer C.gcsgo_info_free(&r.info)
	return goInfo(&r.info), resultOK
}

// liveHandles is gcs_foreach_live of manager (nil: the default one),
// oldest first.
func liveHandles(manager cManager) ([]HandleInfo, result) {
	live := C.gcsgo_foreach_live(manager)
	defer C.gcsgo_live_free(live.items, live.len)
	if result(live.result) != resultOK {
		return nil, result(live.result)
	}
	infos := make([]HandleInfo, 0, int(live.len))
	for i := C.size_t(0); i < live.len; i++ {
		infos = append(infos, goInfo(C.gcsgo_live_at(live.items, i)))
	}
	return infos, resultOK
}

// prometheusText is gcs_stats_prometheus of manager (nil: the default one).
func prometheusText(manager cManager) (string, bool) {
	var n C.size_t
	buf := C.gcsgo_prometheus(manager, &n)
	if buf == nil {
		return "", false
	}
	defer C.free(unsafe.Pointer(buf))
	return C.GoStringN(buf, C.int(n)), true
}

// timeoutMillis is d for the library: negative waits as long as it takes
// (GCS_TIMEOUT_INFINITE), else rounded up to whole milliseconds and capped
// just below it.
func timeoutMillis(d time.Duration) C.uint32_t {
	if d < 0 {
		return C.GCS_TIMEOUT_INFINITE
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms >= C.GCS_TIMEOUT_INFINITE {
		ms = C.GCS_TIMEOUT_INFINITE - 1
	}
	return C.uint32_t(ms)
}

func unregisterSync(h Handle, timeout time.Duration) result {
	return result(C.gcs_unregister_sync(C.GcsHandle(h), timeoutMillis(timeout)))
}

func shutdown(timeout time.Duration) result {
	return result(C.gcs_shutdown(timeoutMillis(timeout)))
}

package gcsafety

// Leak checkpoints: the GStreamer leaks tracer's "activity" idea over the
// library's gcs_leaks_checkpoint and gcs_foreach_live_handle.

/*
#include <stdlib.h>
#include "gcsafety.h"

typedef struct {
	GcsResult result;
	GcsHandle *handles;
	size_t len, cap;
} gcsgo_since;

static void gcsgo_collect_since(const GcsLiveHandle *live, void *user_data) {
	gcsgo_since *since = user_data;
	if (since->len == since->cap) {
		size_t cap = since->cap ? 2 * since->cap : 64;
		GcsHandle *grown = realloc(since->handles, cap * sizeof *grown);
		if (grown == NULL) {
			return; // out of memory: this one is not reported
		}
		since->handles = grown;
		since->cap = cap;
	}
	since->handles[since->len++] = live->info.handle;
}

// The handles of every manager registered since the last checkpoint and
// not yet released (malloc'd: free them).
static gcsgo_since gcsgo_live_since_checkpoint(void) {
	gcsgo_since since = { GCS_OK, NULL, 0, 0 };
	since.result = gcs_foreach_live_handle(GCS_LIVE_SINCE_CHECKPOINT, gcsgo_collect_since, &since);
	return since;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// LeaksCheckpoint starts a leak checkpoint (gcs_leaks_checkpoint), for
// every manager of the process: LiveHandlesSinceCheckpoint then reports only
// the registrations made after this call and not yet released. A new
// checkpoint replaces the previous one. A test that wants to prove that a
// piece of code leaks nothing takes a checkpoint before it and checks that
// nothing is live since after it.
func LeaksCheckpoint() {
	C.gcs_leaks_checkpoint()
}

// sinceCheckpoint is the set of handles registered since the last
// checkpoint and still live, of every manager.
func sinceCheckpoint() (map[Handle]bool, error) {
	since := C.gcsgo_live_since_checkpoint()
	defer C.free(unsafe.Pointer(since.handles))
	if r := result(since.result); r != resultOK {
		return nil, fmt.Errorf("gcsafety: cannot list the live handles: %v", r)
	}
	set := make(map[Handle]bool, int(since.len))
	if since.len > 0 {
		for _, h := range unsafe.Slice((*C.GcsHandle)(since.handles), int(since.len)) {
			set[Handle(h)] = true
		}
	}
	return set, nil
}

// LiveHandlesSinceCheckpoint lists the manager's registrations made after
// the last LeaksCheckpoint and not yet released, oldest first, as
// LiveHandles does (with age and registration stack).
func (m *GCSafetyManager) LiveHandlesSinceCheckpoint() ([]HandleInfo, error) {
	since, err := sinceCheckpoint()
	if err != nil {
		return nil, err
	}
	all, err := m.LiveHandles()
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	return keepSince(all, since), nil
}

// LiveHandlesSinceCheckpoint is GCSafetyManager.LiveHandlesSinceCheckpoint
// for the library's default manager.
func LiveHandlesSinceCheckpoint() ([]HandleInfo, error) {
	since, err := sinceCheckpoint()
	if err != nil {
		return nil, err
	}
	all, err := LiveHandles()
	if err != nil {
		return nil, err
	}
	return keepSince(all, since), nil
}

func keepSince(all []HandleInfo, since map[Handle]bool) []HandleInfo {
	kept := all[:0]
	for _, info := range all {
		if since[info.Handle] {
			kept = append(kept, info)
		}
	}
	return kept
}

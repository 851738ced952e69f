// The trampolines the library calls: each converts its void * argument back
// to the integer it carries (a runtime/cgo.Handle) here, in C, and calls one
// exported Go function. Go never turns such an integer into a pointer.

#include "_cgo_export.h"
#include "bridge.h"

void gcsgo_release_go_value(void *object, void *user_data) {
    (void)user_data;
    gcsgoReleaseGoValue((uintptr_t)object >> GCSGO_VALUE_SHIFT);
}

int gcsgo_run_cleanup(void *object, void *user_data) {
    (void)object;
    return gcsgoRunCleanup((uintptr_t)user_data);
}

void gcsgo_memory_pressure(uint64_t tracked_bytes, void *user_data) {
    (void)user_data;
    gcsgoMemoryPressure(tracked_bytes);
}

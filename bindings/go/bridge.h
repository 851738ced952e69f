/*
 * The C side of the Go binding: the trampolines the library calls (defined
 * in bridge.c, each forwarding to one exported Go function) and the values
 * the small helpers in cgo.go return by value, so no Go pointer is passed to C.
 */
#ifndef GCSAFETY_GO_BRIDGE_H
#define GCSAFETY_GO_BRIDGE_H

#include <stdint.h>
#include "gcsafety.h"

/* A Go value's runtime/cgo.Handle as the object of its GCS_KIND_POINTER
 * registration: shifted so it looks pointer-aligned, because the library takes
 * bit 0 of a stored object for its weak-reference tag (an odd object value
 * would be misread as a weak registration). Never dereferenced. */
#define GCSGO_VALUE_SHIFT 3

/* GcsReleaseFn of the package's GCS_KIND_POINTER registrations. */
void gcsgo_release_go_value(void *object, void *user_data);

/* GcsCleanupFn of AddCleanupCallback: `user_data` is a runtime/cgo.Handle. */
int gcsgo_run_cleanup(void *object, void *user_data);

/* GcsMemoryPressureFn of the managers with a memory limit. */
void gcsgo_memory_pressure(uint64_t tracked_bytes, void *user_data);

typedef struct {
    GcsResult result;
    GcsHandle handle;
} gcsgo_registered;

typedef struct {
    GcsResult result;
    void *object;
} gcsgo_begun;

typedef struct {
    GcsResult result;
    GcsManager *manager;
} gcsgo_created;

#endif /* GCSAFETY_GO_BRIDGE_H */

/* Shared helpers for the C tests: checks that report file and line, and
 * small GStreamer utilities. Every test is a real C program linked against
 * the built libgcsafety and real GStreamer. */
#ifndef GCS_C_TESTS_COMMON_H
#define GCS_C_TESTS_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

#include "gcsafety.h"

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf (stderr, "%s:%d: CHECK failed: %s\n  last error: %s\n", __FILE__,  \
          __LINE__, #cond, gcs_last_error ());                                   \
      exit (1);                                                                  \
    }                                                                            \
  } while (0)

/* Check that `call` returns `expected` (a GcsResult). */
#define CHECK_RESULT(call, expected)                                             \
  do {                                                                           \
    GcsResult check_result_r_ = (call);                                          \
    if (check_result_r_ != (expected)) {                                         \
      fprintf (stderr, "%s:%d: %s returned %d (%s), expected %s\n  last error: %s\n", \
          __FILE__, __LINE__, #call, (int) check_result_r_,                      \
          gcs_result_to_string (check_result_r_), #expected, gcs_last_error ()); \
      exit (1);                                                                  \
    }                                                                            \
  } while (0)

#define CHECK_OK(call) CHECK_RESULT (call, GCS_OK)

/* Check that the last error message contains `needle`. */
#define CHECK_LAST_ERROR_CONTAINS(needle)                                        \
  do {                                                                           \
    if (strstr (gcs_last_error (), (needle)) == NULL) {                          \
      fprintf (stderr, "%s:%d: last error \"%s\" does not contain \"%s\"\n",     \
          __FILE__, __LINE__, gcs_last_error (), (needle));                      \
      exit (1);                                                                  \
    }                                                                            \
  } while (0)

/* The reference count of a GObject / GstMiniObject, read atomically. */
#define OBJECT_REFCOUNT(obj) ((int) g_atomic_int_get (&G_OBJECT (obj)->ref_count))
#define MINI_REFCOUNT(obj) ((int) g_atomic_int_get (&GST_MINI_OBJECT_CAST (obj)->refcount))

/* A weak pointer that becomes NULL when the object is finalized: the
 * evidence that a reference was (or was not) dropped. */
static inline void
watch_finalize (gpointer object, gpointer * location)
{
  *location = object;
  g_object_add_weak_pointer (G_OBJECT (object), location);
}

#define TEST_PASSED() do { printf ("%s: passed\n", __FILE__); return 0; } while (0)

#endif

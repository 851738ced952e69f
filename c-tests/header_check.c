/* include/gcsafety.h as C99 and as C++11: bindings/cpp/test.sh compiles
 * this one file with `cc -std=c99` and `c++ -x c++ -std=c++11` (both with
 * -Wall -Wextra -Wpedantic -Werror), links it against the library and runs
 * it. scripts/test.sh's pkg-config stage also builds it, as an outside
 * program, against a `make install DESTDIR=...` copy through pkg-config
 * alone (it needs no GStreamer). It uses every kind of declaration the header has: macros, enums (an
 * int32_t typedef in C before C23, an enum with an int32_t base in C++),
 * structs, callback types and functions. */
#include <gcsafety.h>

#include <stdio.h>
#include <string.h>

static int
count_access (void *object, void *user_data)
{
  (void) object;
  ++*(int *) user_data;
  return 0;
}

static void
release_pointer (void *object, void *user_data)
{
  (void) object;
  ++*(int *) user_data;
}

int
main (void)
{
  struct GcsConfig config;
  GcsRegistration registration;
  GcsHandle handle = GCS_INVALID_HANDLE;
  GcsStats stats;
  GcsResult result;
  int object = 42, accesses = 0, releases = 0;
  GcsAccessFn access_fn = count_access;

  if (gcs_abi_version () != GCS_ABI_VERSION || sizeof (GcsResult) != sizeof (int32_t)
      || sizeof (GcsObjectKind) != sizeof (int32_t))
    return 1;
  gcs_config_init (&config);
  if (config.struct_size != sizeof config || config.max_finalizer_retries != 3)
    return 2;

  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_POINTER;
  registration.object = &object;
  registration.type_name = "Answer";
  registration.release = release_pointer;
  registration.release_data = &releases;
  registration.flags = GCS_REGISTER_NONE;
  if (gcs_register_full (&registration, &handle) != GCS_OK)
    return 3;
  if (gcs_safe_access (handle, access_fn, &accesses) != GCS_OK || accesses != 1)
    return 4;
  if (gcs_unregister (handle) != GCS_OK || releases != 1)
    return 5;
  result = gcs_safe_access (handle, access_fn, &accesses);
  if (result != GCS_ERROR_RELEASED || strstr (gcs_last_error (), "Answer") == NULL)
    return 6;

  memset (&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  if (gcs_get_stats (NULL, &stats) != GCS_OK || stats.total_registered != 1 || stats.released != 1)
    return 7;
  printf ("header check (%s): %s, library %s\n",
#ifdef __cplusplus
      "C++",
#else
      "C",
#endif
      gcs_result_to_string (result), gcs_version_string ());
  return gcs_shutdown (GCS_TIMEOUT_INFINITE) == GCS_OK ? 0 : 8;
}

/* What the dlopen_*.c tests share: they link only GStreamer and libdl, and
 * load the library themselves from GCS_LIBRARY_PATH (tests/c_tests.rs). */
#ifndef GCS_DLOPEN_COMMON_H
#define GCS_DLOPEN_COMMON_H

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcsafety.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf (stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      exit (1);                                                                \
    }                                                                          \
  } while (0)

/* The functions the tests call, resolved from one dlopen of the library. */
typedef struct
{
  void *lib;
  uint32_t (*abi_version) (void);
  const char *(*last_error) (void);
  GcsResult (*reg) (void *, const char *, GcsHandle *);
  GcsResult (*safe_access) (GcsHandle, GcsAccessFn, void *);
  GcsResult (*unregister) (GcsHandle);
  bool (*is_valid) (GcsHandle);
  GcsResult (*shutdown) (uint32_t);
} Api;

/* dlsym returns void *; converting it to a function pointer is what POSIX
 * requires to work, but ISO C (-Wpedantic) forbids the direct cast. */
static void
resolve (void *lib, const char *name, void *fn_out, size_t fn_size)
{
  void *symbol = dlsym (lib, name);
  if (symbol == NULL) {
    fprintf (stderr, "dlsym(%s) failed: %s\n", name, dlerror ());
    exit (1);
  }
  CHECK (fn_size == sizeof symbol);
  memcpy (fn_out, &symbol, fn_size);
}

#define RESOLVE(api, field, name) resolve ((api)->lib, name, &(api)->field, sizeof (api)->field)

/* dlopen GCS_LIBRARY_PATH (RTLD_NOW | RTLD_LOCAL) and resolve the Api; the
 * library's ABI version is the header's. */
static Api
load (void)
{
  Api api;
  memset (&api, 0, sizeof api);
  const char *path = getenv ("GCS_LIBRARY_PATH");
  CHECK (path != NULL);
  api.lib = dlopen (path, RTLD_NOW | RTLD_LOCAL);
  if (api.lib == NULL) {
    fprintf (stderr, "dlopen(%s) failed: %s\n", path, dlerror ());
    exit (1);
  }
  RESOLVE (&api, abi_version, "gcs_abi_version");
  RESOLVE (&api, last_error, "gcs_last_error");
  RESOLVE (&api, reg, "gcs_register");
  RESOLVE (&api, safe_access, "gcs_safe_access");
  RESOLVE (&api, unregister, "gcs_unregister");
  RESOLVE (&api, is_valid, "gcs_is_valid");
  RESOLVE (&api, shutdown, "gcs_shutdown");
  CHECK (api.abi_version () == GCS_ABI_VERSION);
  return api;
}

/* Whether a loaded library is marked never to be unloaded (DF_1_NODELETE
 * in its dynamic section, as build.rs links it). Needs _GNU_SOURCE. */
static bool
library_is_nodelete (void *lib)
{
  struct link_map *map = NULL;
  CHECK (dlinfo (lib, RTLD_DI_LINKMAP, &map) == 0 && map != NULL);
  for (const ElfW (Dyn) * entry = map->l_ld; entry->d_tag != DT_NULL; entry++)
    if (entry->d_tag == DT_FLAGS_1)
      return (entry->d_un.d_val & DF_1_NODELETE) != 0;
  return false;
}

/* Whether the library is still mapped (after its dlclose). */
static bool
still_resident (void)
{
  void *lib = dlopen (getenv ("GCS_LIBRARY_PATH"), RTLD_NOW | RTLD_NOLOAD);
  if (lib == NULL)
    return false;
  CHECK (dlclose (lib) == 0);
  return true;
}

#endif

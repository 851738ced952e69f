/* Load the library with dlopen (no link-time dependency), resolve every
 * exported function of the ABI (the list in gcsafety.symbols), use it with a
 * real GStreamer element, dlclose, load it again and use it again. A handle
 * from before the reload must never reach an object afterwards. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

#include "gcsafety.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf (stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      exit (1);                                                                \
    }                                                                          \
  } while (0)

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

/* Every symbol listed in gcsafety.symbols resolves. Returns how many. */
static int
resolve_every_listed_symbol (void *lib)
{
  const char *path = getenv ("GCS_SYMBOLS_FILE");
  CHECK (path != NULL);
  FILE *f = fopen (path, "r");
  CHECK (f != NULL);
  char line[256];
  int count = 0;
  while (fgets (line, sizeof line, f)) {
    line[strcspn (line, "\r\n")] = '\0';
    if (line[0] == '\0' || line[0] == '#')
      continue;
    if (dlsym (lib, line) == NULL) {
      fprintf (stderr, "listed symbol %s does not resolve: %s\n", line, dlerror ());
      exit (1);
    }
    count++;
  }
  fclose (f);
  return count;
}

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
  CHECK (resolve_every_listed_symbol (api.lib) >= 16);
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

static int
count_access (void *object, void *user_data)
{
  CHECK (GST_IS_ELEMENT (object));
  (*(int *) user_data)++;
  return 0;
}

/* Register a fresh element, access it, leave it registered or not. */
static GcsHandle
use_library (Api * api, gboolean unregister, gpointer * alive)
{
  GstElement *element = gst_element_factory_make ("identity", NULL);
  CHECK (element != NULL);
  *alive = element;
  g_object_add_weak_pointer (G_OBJECT (element), alive);
  GcsHandle handle = GCS_INVALID_HANDLE;
  CHECK (api->reg (element, "dlopen-element", &handle) == GCS_OK);
  int accesses = 0;
  CHECK (api->safe_access (handle, count_access, &accesses) == GCS_OK);
  CHECK (accesses == 1);
  if (unregister) {
    CHECK (api->unregister (handle) == GCS_OK);
    CHECK (*alive == NULL);
  }
  return handle;
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  Api first = load ();
  gpointer alive1 = NULL;
  GcsHandle old = use_library (&first, TRUE, &alive1);
  /* What a program must do before dlclose: close everything, join threads. */
  CHECK (first.shutdown (1000) == GCS_OK);
  CHECK (dlclose (first.lib) == 0);

  Api second = load ();
  /* The old, released handle is refused, whether the library was really
   * unloaded (new salt: never issued) or stayed resident (released). */
  CHECK (!second.is_valid (old));
  int accesses = 0;
  GcsResult r = second.safe_access (old, count_access, &accesses);
  CHECK (r == GCS_ERROR_INVALID_HANDLE || r == GCS_ERROR_RELEASED || r == GCS_ERROR_SHUT_DOWN);
  CHECK (accesses == 0);
  CHECK (strstr (second.last_error (), "not valid for access") != NULL);

  gpointer alive2 = NULL;
  GcsHandle fresh = use_library (&second, FALSE, &alive2);
  CHECK (fresh != old);
  CHECK (second.is_valid (fresh));
  CHECK (second.unregister (fresh) == GCS_OK);
  CHECK (alive2 == NULL);
  CHECK (second.shutdown (1000) == GCS_OK);
  CHECK (dlclose (second.lib) == 0);

  printf ("%s: passed\n", __FILE__);
  return 0;
}

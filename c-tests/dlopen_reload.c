/* Load the library with dlopen (no link-time dependency), resolve every
 * exported function of the ABI (the list in gcsafety.symbols), use it with a
 * real GStreamer element, dlclose, load it again and use it again. A handle
 * from before the reload must never reach an object afterwards. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

#include "dlopen_common.h"

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

/* The library, checked to export every symbol listed in gcsafety.symbols
 * and to be marked never to be unloaded. */
static Api
load_checked (void)
{
  Api api = load ();
  CHECK (resolve_every_listed_symbol (api.lib) >= 16);
  CHECK (library_is_nodelete (api.lib));
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

  Api first = load_checked ();
  gpointer alive1 = NULL;
  GcsHandle old = use_library (&first, TRUE, &alive1);
  /* What a program must do before dlclose: close everything, join threads. */
  CHECK (first.shutdown (1000) == GCS_OK);
  CHECK (dlclose (first.lib) == 0);
  /* Never unloaded (DF_1_NODELETE): the reload finds the same table. */
  CHECK (still_resident ());

  Api second = load_checked ();
  /* The old handle is refused: its manager was shut down (SHUT_DOWN; or
   * RELEASED once its retained state has expired). The next use starts a
   * fresh default manager. */
  CHECK (!second.is_valid (old));
  int accesses = 0;
  GcsResult r = second.safe_access (old, count_access, &accesses);
  CHECK (r == GCS_ERROR_SHUT_DOWN || r == GCS_ERROR_RELEASED);
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

/* Misuse (issue 11): dlclose/dlopen of the library with handles still
 * live. The library is loaded with dlopen (no link-time dependency); it is
 * linked never to be unloaded (DF_1_NODELETE, build.rs), which both tests
 * check first.
 *
 * misuse_dlclose_after_shutdown_with_live_handles: the documented way.
 *   gcs_shutdown releases every live registration (each object gets its
 *   reference back: ours is the only one left), then dlclose; after a new
 *   dlopen the old handles are refused without reaching any object, and
 *   new registrations work.
 * misuse_dlclose_without_shutdown_with_a_live_handle: the misuse. The
 *   dlclose unmaps nothing, so nothing that still points into the library
 *   (a queued release, a finalizer thread, GLib callbacks) can crash; after
 *   a new dlopen the table is the same one, and the old handle is still
 *   live, reaches its own object and is unregistered normally. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

#include "dlopen_common.h"

#define OBJECT_REFCOUNT(obj) ((int) g_atomic_int_get (&G_OBJECT (obj)->ref_count))

typedef struct
{
  void *expected;
  int calls;
} Access;

static int
check_object (void *object, void *user_data)
{
  Access *a = user_data;
  CHECK (object == a->expected);
  a->calls++;
  return 0;
}

/* A fresh identity element of which we keep a reference, registered. */
static GcsHandle
register_kept (Api * api, GstElement ** element_out)
{
  GstElement *element = gst_object_ref_sink (gst_element_factory_make ("identity", NULL));
  CHECK (element != NULL);
  GcsHandle handle = GCS_INVALID_HANDLE;
  CHECK (api->reg (element, "dlopen-live", &handle) == GCS_OK);
  CHECK (OBJECT_REFCOUNT (element) == 2);
  *element_out = element;
  return handle;
}

static void
misuse_dlclose_after_shutdown_with_live_handles (void)
{
  Api first = load ();
  CHECK (library_is_nodelete (first.lib));
  GstElement *elements[3];
  GcsHandle handles[3];
  for (int i = 0; i < 3; i++)
    handles[i] = register_kept (&first, &elements[i]);
  CHECK (first.shutdown (1000) == GCS_OK);
  /* Every live registration was released: only our references remain. */
  for (int i = 0; i < 3; i++) {
    CHECK (OBJECT_REFCOUNT (elements[i]) == 1);
    CHECK (!first.is_valid (handles[i]));
  }
  CHECK (dlclose (first.lib) == 0);
  CHECK (still_resident ());

  /* The same table: the old handles are the closed manager's, SHUT_DOWN
   * (RELEASED once their retained state has expired, after
   * state_retention_ms). */
  Api second = load ();
  for (int i = 0; i < 3; i++) {
    CHECK (!second.is_valid (handles[i]));
    Access a = { elements[i], 0 };
    GcsResult r = second.safe_access (handles[i], check_object, &a);
    CHECK (r == GCS_ERROR_SHUT_DOWN || r == GCS_ERROR_RELEASED);
    CHECK (a.calls == 0);
    r = second.unregister (handles[i]);
    CHECK (r == GCS_ERROR_SHUT_DOWN || r == GCS_ERROR_RELEASED);
    CHECK (OBJECT_REFCOUNT (elements[i]) == 1);
  }
  /* The reloaded library works. */
  GstElement *fresh;
  GcsHandle handle = register_kept (&second, &fresh);
  for (int i = 0; i < 3; i++)
    CHECK (handle != handles[i]);
  Access a = { fresh, 0 };
  CHECK (second.safe_access (handle, check_object, &a) == GCS_OK && a.calls == 1);
  CHECK (second.unregister (handle) == GCS_OK);
  CHECK (OBJECT_REFCOUNT (fresh) == 1);
  CHECK (second.shutdown (1000) == GCS_OK);
  CHECK (dlclose (second.lib) == 0);
  gst_object_unref (fresh);
  for (int i = 0; i < 3; i++)
    gst_object_unref (elements[i]);
}

static void
misuse_dlclose_without_shutdown_with_a_live_handle (void)
{
  Api first = load ();
  CHECK (library_is_nodelete (first.lib));
  GstElement *element;
  GcsHandle handle = register_kept (&first, &element);
  CHECK (dlclose (first.lib) == 0);     /* no gcs_shutdown: the misuse */
  CHECK (still_resident ());

  /* The same library, the same table: the handle is still live and still
   * reaches its own object; its reference is dropped once, by unregister. */
  Api second = load ();
  CHECK (second.is_valid (handle));
  Access a = { element, 0 };
  CHECK (second.safe_access (handle, check_object, &a) == GCS_OK);
  CHECK (a.calls == 1);
  CHECK (OBJECT_REFCOUNT (element) == 2);
  CHECK (second.unregister (handle) == GCS_OK);
  CHECK (OBJECT_REFCOUNT (element) == 1);
  CHECK (second.unregister (handle) == GCS_ERROR_RELEASED);
  CHECK (second.shutdown (1000) == GCS_OK);
  CHECK (dlclose (second.lib) == 0);
  gst_object_unref (element);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  fprintf (stderr, "-- misuse_dlclose_after_shutdown_with_live_handles\n");
  misuse_dlclose_after_shutdown_with_live_handles ();
  fprintf (stderr, "-- misuse_dlclose_without_shutdown_with_a_live_handle\n");
  misuse_dlclose_without_shutdown_with_a_live_handle ();

  printf ("%s: passed\n", __FILE__);
  return 0;
}

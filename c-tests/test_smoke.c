/* The basic life of a handle: register a floating element (the registration
 * sinks it), access it, unregister, and see it finalized exactly then. */
#include "common.h"

static int
read_name (void *object, void *user_data)
{
  gchar **name = user_data;
  *name = gst_object_get_name (GST_OBJECT (object));
  return 0;
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  CHECK (gcs_abi_version () == GCS_ABI_VERSION);

  GstElement *element = gst_element_factory_make ("fakesink", "smoke-sink");
  CHECK (element != NULL);
  CHECK (g_object_is_floating (element));
  gpointer alive = NULL;
  watch_finalize (element, &alive);

  GcsHandle handle = GCS_INVALID_HANDLE;
  CHECK_OK (gcs_register (element, NULL, &handle));
  CHECK (handle != GCS_INVALID_HANDLE);
  CHECK (!g_object_is_floating (element));
  CHECK (OBJECT_REFCOUNT (element) == 1);
  CHECK (gcs_is_valid (handle));

  gchar *name = NULL;
  CHECK_OK (gcs_safe_access (handle, read_name, &name));
  CHECK (name != NULL && strcmp (name, "smoke-sink") == 0);
  g_free (name);

  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);        /* finalized by the unregister */
  CHECK (!gcs_is_valid (handle));
  CHECK_RESULT (gcs_safe_access (handle, read_name, &name), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK_LAST_ERROR_CONTAINS ("GstFakeSink");
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  TEST_PASSED ();
}

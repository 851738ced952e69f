/* GST_DEBUG=gcsafety:N alone shows the life of every handle, through the
 * GStreamer debug category "gcsafety", with the object attached to the line
 * as GST_DEBUG_OBJECT does (so GStreamer prints <debug-sink>):
 * INFO registrations and unregisters, DEBUG releases, LOG accesses (TRACE
 * nested ones), WARNING refused accesses. A runtime change of the
 * threshold applies from the next registration. */
#include "common.h"

typedef struct
{
  GstDebugLevel level;
  GObject *object;
  gchar *text;
} Line;

static GMutex lines_lock;
static GPtrArray *lines;

static void
free_line (gpointer data)
{
  Line *line = data;
  g_free (line->text);
  g_free (line);
}

static void
capture (GstDebugCategory * category, GstDebugLevel level, const gchar * file,
    const gchar * function, gint line_number, GObject * object, GstDebugMessage * message,
    gpointer user_data)
{
  (void) file;
  (void) function;
  (void) line_number;
  (void) user_data;
  if (strcmp (gst_debug_category_get_name (category), "gcsafety") != 0)
    return;
  Line *line = g_new0 (Line, 1);
  line->level = level;
  line->object = object;
  line->text = g_strdup (gst_debug_message_get (message));
  g_mutex_lock (&lines_lock);
  g_ptr_array_add (lines, line);
  g_mutex_unlock (&lines_lock);
}

/* The first captured line containing `needle`, or NULL. */
static Line *
find (const char *needle)
{
  Line *found = NULL;
  g_mutex_lock (&lines_lock);
  for (guint i = 0; i < lines->len && !found; i++) {
    Line *line = g_ptr_array_index (lines, i);
    if (strstr (line->text, needle))
      found = line;
  }
  g_mutex_unlock (&lines_lock);
  return found;
}

static void
forget_lines (void)
{
  g_mutex_lock (&lines_lock);
  g_ptr_array_set_size (lines, 0);
  g_mutex_unlock (&lines_lock);
}

static int
nested (void *object, void *user_data)
{
  (void) object;
  GcsHandle handle = *(GcsHandle *) user_data;
  return gcs_safe_access (handle, NULL, NULL) == GCS_ERROR_NULL_ARGUMENT ? 0 : 1;
}

static int
outer (void *object, void *user_data)
{
  (void) object;
  GcsHandle handle = *(GcsHandle *) user_data;
  return gcs_safe_access (handle, nested, user_data) == GCS_OK ? 0 : 1;
}

static void
test_life_at_log_level (void)
{
  GstElement *sink = gst_element_factory_make ("fakesink", "debug-sink");
  gst_object_ref_sink (sink);
  GcsRegistration registration = registration_for (NULL, GCS_KIND_GST_OBJECT, sink);
  registration.instance_name = "debug-instance";
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));

  Line *line = find ("registered (GCS_KIND_GST_OBJECT");
  CHECK (line != NULL && line->level == GST_LEVEL_INFO);
  CHECK (line->object == G_OBJECT (sink));      /* printed as <debug-sink> */
  CHECK (strstr (line->text, "GstFakeSink 'debug-instance'") != NULL);

  CHECK_OK (gcs_safe_access (handle, outer, &handle));
  line = find ("access begun (1 in flight)");
  CHECK (line != NULL && line->level == GST_LEVEL_LOG && line->object == G_OBJECT (sink));
  CHECK (find ("access begun (2 in flight)") == NULL);  /* TRACE: not at 6 */

  CHECK_OK (gcs_unregister (handle));
  line = find ("unregistered");
  CHECK (line != NULL && line->level == GST_LEVEL_INFO);
  line = find ("releasing");
  CHECK (line != NULL && line->level == GST_LEVEL_DEBUG && line->object == G_OBJECT (sink));
  line = find (": released");
  CHECK (line != NULL && line->level == GST_LEVEL_DEBUG && line->object == NULL);

  CHECK_RESULT (gcs_safe_access (handle, outer, &handle), GCS_ERROR_RELEASED);
  line = find ("refused access");
  CHECK (line != NULL && line->level == GST_LEVEL_WARNING);
  CHECK (strstr (line->text, "GstFakeSink 'debug-instance'") != NULL);

  /* A mini object is no GObject: no object on its lines. */
  GstBuffer *buffer = gst_buffer_new ();
  registration = registration_for (NULL, GCS_KIND_MINI_OBJECT, buffer);
  CHECK_OK (gcs_register_full (&registration, &handle));
  line = find ("registered (GCS_KIND_MINI_OBJECT");
  CHECK (line != NULL && line->object == NULL);
  CHECK_OK (gcs_unregister (handle));
  gst_buffer_unref (buffer);
  gst_object_unref (sink);
  forget_lines ();
}

static void
test_threshold_changes (void)
{
  /* TRACE: nested accesses too (from the next registration on). */
  gst_debug_set_threshold_for_name ("gcsafety", GST_LEVEL_TRACE);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  GcsHandle handle;
  CHECK_OK (gcs_register (sink, NULL, &handle));
  CHECK_OK (gcs_safe_access (handle, outer, &handle));
  Line *line = find ("access begun (2 in flight)");
  CHECK (line != NULL && line->level == GST_LEVEL_TRACE);
  CHECK_OK (gcs_unregister (handle));
  forget_lines ();

  /* INFO: registrations, no accesses. */
  gst_debug_set_threshold_for_name ("gcsafety", GST_LEVEL_INFO);
  sink = gst_element_factory_make ("fakesink", NULL);
  CHECK_OK (gcs_register (sink, NULL, &handle));
  CHECK_OK (gcs_safe_access (handle, outer, &handle));
  CHECK (find ("registered") != NULL);
  CHECK (find ("access begun") == NULL);
  CHECK_OK (gcs_unregister (handle));
  CHECK (find ("releasing") == NULL);   /* DEBUG */
  forget_lines ();

  /* Off (the default, no GST_DEBUG): nothing at all. */
  gst_debug_set_threshold_for_name ("gcsafety", GST_LEVEL_NONE);
  sink = gst_element_factory_make ("fakesink", NULL);
  CHECK_OK (gcs_register (sink, NULL, &handle));
  CHECK_OK (gcs_safe_access (handle, outer, &handle));
  CHECK_OK (gcs_unregister (handle));
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  g_mutex_lock (&lines_lock);
  CHECK (lines->len == 0);
  g_mutex_unlock (&lines_lock);
}

int
main (int argc, char **argv)
{
  /* As a user would run it: GST_DEBUG=gcsafety:6, nothing else. */
  g_setenv ("GST_DEBUG", "gcsafety:6", TRUE);
  g_unsetenv ("GCS_DEBUG");
  lines = g_ptr_array_new_with_free_func (free_line);
  (gst_debug_add_log_function) (capture, NULL, NULL);   /* the function, not the macro */
  (gst_debug_remove_log_function) (gst_debug_log_default);      /* keep the output quiet */
  gst_init (&argc, &argv);

  test_life_at_log_level ();
  test_threshold_changes ();

  CHECK_OK (gcs_shutdown (GCS_TIMEOUT_INFINITE));
  g_ptr_array_unref (lines);
  TEST_PASSED ();
}

/* Run by tests/tracer.rs with GST_TRACERS="gcsafety(dump-on-sigusr1=true)"
 * and GST_PLUGIN_PATH naming the built libgstgcsafety.so: the tracer's
 * action signals, leak checkpoints (in C), and the SIGUSR1 dump, seen from
 * an application. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
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

/* Tracer records seen by our log function: how many gcs-handle-alive
 * lines naming "<sigusr1-sink>" were logged, and from which thread. */
static GMutex seen_lock;
static GCond seen_cond;
static int sigusr1_records;
static GThread *record_thread;

static void
capture (GstDebugCategory * category, GstDebugLevel level, const gchar * file,
    const gchar * function, gint line, GObject * object, GstDebugMessage * message,
    gpointer user_data)
{
  (void) level;
  (void) file;
  (void) function;
  (void) line;
  (void) object;
  (void) user_data;
  if (strcmp (gst_debug_category_get_name (category), "GST_TRACER") != 0)
    return;
  const gchar *text = gst_debug_message_get (message);
  if (text && g_str_has_prefix (text, "gcs-handle-alive")
      && strstr (text, "description=(string)<sigusr1-sink>")) {
    g_mutex_lock (&seen_lock);
    sigusr1_records++;
    record_thread = g_thread_self ();
    g_cond_broadcast (&seen_cond);
    g_mutex_unlock (&seen_lock);
  }
}

static GstTracer *
the_tracer (void)
{
  GList *tracers = gst_tracing_get_active_tracers ();
  GstTracer *found = NULL;
  for (GList * l = tracers; l; l = l->next)
    if (!found && strcmp (G_OBJECT_TYPE_NAME (l->data), "GcsTracer") == 0)
      found = gst_object_ref (l->data);
  g_list_free_full (tracers, gst_object_unref);
  return found;
}

static GcsHandle
register_sink (const char *name)
{
  GstElement *sink = gst_element_factory_make ("fakesink", name);
  CHECK (sink != NULL);
  GcsHandle handle;
  CHECK (gcs_register (sink, NULL, &handle) == GCS_OK);   /* sinks the floating ref */
  return handle;
}

typedef struct
{
  int count;
  int since;
  GcsHandle handle;
  char name[64];
} Seen;

static void
seen_live (const GcsLiveHandle * live, void *user_data)
{
  Seen *seen = user_data;
  CHECK (live->struct_size >= sizeof (GcsLiveHandle));
  seen->count++;
  seen->since += live->since_checkpoint;
  seen->handle = live->info.handle;
  g_strlcpy (seen->name, live->object_name ? live->object_name : "", sizeof seen->name);
}

int
main (int argc, char **argv)
{
  (gst_debug_add_log_function) (capture, NULL, NULL);  /* the function, not the macro */
  gst_init (&argc, &argv);
  GstTracer *tracer = the_tracer ();
  CHECK (tracer != NULL);

  GcsHandle first = register_sink ("first-sink");
  GcsHandle second = register_sink ("second-sink");

  /* get-live-handles: both, with their GstObject names and addresses. */
  GstStructure *live = NULL;
  g_signal_emit_by_name (tracer, "get-live-handles", &live);
  CHECK (live != NULL && gst_structure_has_name (live, "live-handles"));
  const GValue *handles = gst_structure_get_value (live, "handles");
  CHECK (handles != NULL && gst_value_list_get_size (handles) == 2);
  const GstStructure *h0 =
      gst_value_get_structure (gst_value_list_get_value (handles, 0));
  CHECK (g_strcmp0 (gst_structure_get_string (h0, "object-name"), "first-sink") == 0);
  CHECK (g_strcmp0 (gst_structure_get_string (h0, "description"), "<first-sink>") == 0);
  CHECK (g_strcmp0 (gst_structure_get_string (h0, "type-name"), "GstFakeSink") == 0);
  CHECK (g_strcmp0 (gst_structure_get_string (h0, "state"), "live") == 0);
  gchar expected[24];
  g_snprintf (expected, sizeof expected, "0x%016" PRIx64, (uint64_t) first);
  CHECK (g_strcmp0 (gst_structure_get_string (h0, "handle"), expected) == 0);
  void *object;
  CHECK (gcs_access_begin (first, &object) == GCS_OK);
  CHECK (g_value_get_pointer (gst_structure_get_value (h0, "address")) == object);
  CHECK (gcs_access_end (first) == GCS_OK);
  gst_structure_free (live);

  /* A checkpoint: only what is registered after it is reported. */
  g_signal_emit_by_name (tracer, "start-checkpoint");
  GcsHandle third = register_sink ("third-sink");
  Seen seen = { 0 };
  CHECK (gcs_foreach_live_handle (GCS_LIVE_SINCE_CHECKPOINT, seen_live, &seen) == GCS_OK);
  CHECK (seen.count == 1 && seen.since == 1 && seen.handle == third);
  CHECK (strcmp (seen.name, "third-sink") == 0);
  memset (&seen, 0, sizeof seen);
  CHECK (gcs_foreach_live_handle (GCS_LIVE_ALL, seen_live, &seen) == GCS_OK);
  CHECK (seen.count == 3 && seen.since == 1);
  /* gcs_leaks_checkpoint itself, and a released one is gone from the report. */
  CHECK (gcs_leaks_checkpoint () == GCS_OK);
  memset (&seen, 0, sizeof seen);
  CHECK (gcs_foreach_live_handle (GCS_LIVE_SINCE_CHECKPOINT, seen_live, &seen) == GCS_OK);
  CHECK (seen.count == 0);
  CHECK (gcs_unregister (second) == GCS_OK);
  memset (&seen, 0, sizeof seen);
  CHECK (gcs_foreach_live_handle (GCS_LIVE_ALL, seen_live, &seen) == GCS_OK);
  CHECK (seen.count == 2);
  CHECK (gcs_foreach_live_handle (1u << 5, seen_live, &seen) == GCS_ERROR_INVALID_ARGUMENT);

  /* SIGUSR1: the tracer's own thread logs the live handles. */
  GcsHandle dumped = register_sink ("sigusr1-sink");
  CHECK (raise (SIGUSR1) == 0);
  g_mutex_lock (&seen_lock);
  gint64 deadline = g_get_monotonic_time () + 20 * G_TIME_SPAN_SECOND;
  while (sigusr1_records == 0 && g_cond_wait_until (&seen_cond, &seen_lock, deadline)) {
  }
  CHECK (sigusr1_records == 1);
  CHECK (record_thread != g_thread_self ());
  g_mutex_unlock (&seen_lock);

  /* The counters, summed over every manager. */
  GcsStats stats;
  memset (&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  CHECK (gcs_get_total_stats (&stats) == GCS_OK);
  CHECK (stats.total_registered == 4 && stats.active == 3 && stats.released == 1);

  CHECK (gcs_unregister (first) == GCS_OK);
  CHECK (gcs_unregister (third) == GCS_OK);
  CHECK (gcs_unregister (dumped) == GCS_OK);
  gst_object_unref (tracer);
  CHECK (gcs_shutdown (GCS_TIMEOUT_INFINITE) == GCS_OK);
  gst_deinit ();
  printf ("tracer_app: passed\n");
  return 0;
}

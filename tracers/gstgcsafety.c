/* gcsafety: the "gcsafety" GStreamer tracer (libgstgcsafety.so).
 *
 *   GST_PLUGIN_PATH=<dir of libgstgcsafety.so> GST_TRACERS="gcsafety;leaks" \
 *     GST_DEBUG="GST_TRACER:7" gst-launch-1.0 ...
 *
 * At gst_deinit (when the tracer is finalized, as the leaks tracer reports
 * its leaks), and whenever asked, it logs one "gcs-handle-alive" record per
 * handle not yet released, of every gcsafety manager, in the leaks tracer's
 * style (its "object-alive" records), then one "gcs-counters" record:
 *
 *   gcs-handle-alive, handle=(string)0x..., type-name=(string)GstFakeSink,
 *     address=(gpointer)0x..., description=(string)<fakesink0>, ...
 *
 * Parameters (GST_TRACERS="gcsafety(dump-on-sigusr1=true)"):
 *   dump-on-sigusr1  log the live handles when the process gets SIGUSR1
 *                    (the leaks tracer's GST_LEAKS_TRACER_SIG), from a thread
 *                    of the tracer's, never from the signal handler.
 *
 * Action signals: "get-live-handles" (returns a GstStructure, transfer full),
 * "log-live-handles", "start-checkpoint" (gcs_leaks_checkpoint) and
 * "log-checkpoint" (what was registered since and is still live), after the
 * leaks tracer's get-live-objects / log-live-objects / activity-*.
 *
 * It links the one shared libgcsafety.so.0 dynamically, and holds no copy of
 * it: a second copy would have its own, empty, handle table. So the program
 * whose handles it reports must use the shared library too (a program linked
 * statically against libgcsafety.a has its own table, which this tracer
 * cannot see).
 */
#define _GNU_SOURCE             /* sigaction, SA_RESTART */
#define PACKAGE "gcsafety"
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gst/gst.h>

#include "gcsafety.h"

GST_DEBUG_CATEGORY_STATIC (gcs_tracer_debug);
#define GST_CAT_DEFAULT gcs_tracer_debug

#define GCS_TYPE_TRACER (gcs_tracer_get_type ())
G_DECLARE_FINAL_TYPE (GcsTracer, gcs_tracer, GCS, TRACER, GstTracer)

struct _GcsTracer
{
  GstTracer parent;

  /* dump-on-sigusr1: the self-pipe its handler writes to, and the thread
   * that reads it and logs. */
  gboolean dump_on_sigusr1;
  int wake[2];
  GThread *dumper;
  struct sigaction previous;
};

G_DEFINE_TYPE_WITH_CODE (GcsTracer, gcs_tracer, GST_TYPE_TRACER,
    GST_DEBUG_CATEGORY_INIT (gcs_tracer_debug, "gcsafetytracer", 0, "gcsafety tracer"))

enum
{
  SIGNAL_GET_LIVE_HANDLES,
  SIGNAL_LOG_LIVE_HANDLES,
  SIGNAL_START_CHECKPOINT,
  SIGNAL_LOG_CHECKPOINT,
  LAST_SIGNAL
};

static guint signals[LAST_SIGNAL];
static GstTracerRecord *tr_alive;
static GstTracerRecord *tr_counters;

/* The write end of the SIGUSR1 self-pipe (one tracer per process). */
static volatile sig_atomic_t sigusr1_fd = -1;

static const char *
state_name (GcsHandleState state)
{
  switch (state) {
    case GCS_STATE_LIVE:
      return "live";
    case GCS_STATE_INVALIDATED:
      return "invalidated";
    case GCS_STATE_RELEASING:
      return "releasing";
    case GCS_STATE_RELEASED:
      return "released";
  }
  return "unknown";
}

/* "<fakesink0>" for a GstObject, as GST_PTR_FORMAT prints one; else the
 * type and instance names. */
static gchar *
describe (const GcsLiveHandle * live)
{
  if (live->object_name)
    return g_strdup_printf ("<%s>", live->object_name);
  if (live->info.instance_name)
    return g_strdup_printf ("%s '%s'", live->info.type_name, live->info.instance_name);
  return g_strdup (live->info.type_name);
}

static void
log_one (const GcsLiveHandle * live, void *user_data)
{
  (void) user_data;
  gchar handle[24];
  g_snprintf (handle, sizeof handle, "0x%016" PRIx64, (uint64_t) live->info.handle);
  gchar *description = describe (live);
  gst_tracer_record_log (tr_alive, handle, live->info.type_name, live->address, description,
      live->info.instance_name ? live->info.instance_name : "",
      live->object_name ? live->object_name : "", state_name (live->info.state),
      live->info.accesses_in_flight, (guint64) live->info.age_ms,
      live->registered_at ? live->registered_at : "");
  g_free (description);
}

static void
count_one (const GcsLiveHandle * live, void *user_data)
{
  (void) live;
  (*(guint *) user_data)++;
}

static void
log_counters (void)
{
  GcsStats stats;
  memset (&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  if (gcs_get_total_stats (&stats) != GCS_OK)
    return;
  gst_tracer_record_log (tr_counters, (guint64) stats.total_registered, (guint64) stats.released,
      (guint64) stats.active, (guint64) stats.access_rejected, (guint64) stats.finalizer_failures,
      (guint64) stats.finalizer_timeouts, (guint64) stats.cleanup_failures);
}

/* Log the live handles (all, or those since the checkpoint) and the
 * counters; returns how many were live. */
static guint
log_live (uint32_t flags)
{
  guint count = 0;
  gcs_foreach_live_handle (flags, count_one, &count);
  gcs_foreach_live_handle (flags, log_one, NULL);
  log_counters ();
  return count;
}

static void
add_one (const GcsLiveHandle * live, void *user_data)
{
  GValue *list = user_data;
  gchar handle[24];
  g_snprintf (handle, sizeof handle, "0x%016" PRIx64, (uint64_t) live->info.handle);
  gchar *description = describe (live);
  GstStructure *s = gst_structure_new ("gcs-handle",
      "handle", G_TYPE_STRING, handle,
      "type-name", G_TYPE_STRING, live->info.type_name,
      "address", G_TYPE_POINTER, live->address,
      "description", G_TYPE_STRING, description,
      "instance-name", G_TYPE_STRING, live->info.instance_name,
      "object-name", G_TYPE_STRING, live->object_name,
      "state", G_TYPE_STRING, state_name (live->info.state),
      "accesses-in-flight", G_TYPE_UINT, live->info.accesses_in_flight,
      "age-ms", G_TYPE_UINT64, (guint64) live->info.age_ms,
      "trace", G_TYPE_STRING, live->registered_at, NULL);
  g_free (description);
  GValue value = G_VALUE_INIT;
  g_value_init (&value, GST_TYPE_STRUCTURE);
  g_value_take_boxed (&value, s);
  gst_value_list_append_and_take_value (list, &value);
}

static GstStructure *
get_live_handles (GcsTracer * self)
{
  (void) self;
  GValue list = G_VALUE_INIT;
  g_value_init (&list, GST_TYPE_LIST);
  gcs_foreach_live_handle (GCS_LIVE_ALL, add_one, &list);
  GstStructure *result = gst_structure_new_empty ("live-handles");
  gst_structure_take_value (result, "handles", &list);
  return result;
}

static void
log_live_handles (GcsTracer * self)
{
  GST_INFO_OBJECT (self, "%u live handles", log_live (GCS_LIVE_ALL));
}

static void
start_checkpoint (GcsTracer * self)
{
  GST_INFO_OBJECT (self, "checkpoint");
  gcs_leaks_checkpoint ();
}

static void
log_checkpoint (GcsTracer * self)
{
  GST_INFO_OBJECT (self, "%u live handles registered since the checkpoint",
      log_live (GCS_LIVE_SINCE_CHECKPOINT));
}

/* ---- SIGUSR1: the handler only writes a byte; a thread logs. ---- */

static void
on_sigusr1 (int signum)
{
  (void) signum;
  int saved = errno;
  int fd = sigusr1_fd;
  if (fd >= 0) {
    char byte = 1;
    ssize_t ignored = write (fd, &byte, 1);
    (void) ignored;
  }
  errno = saved;
}

static gpointer
dump_on_wake (gpointer data)
{
  GcsTracer *self = data;
  char byte;
  /* Until the write end is closed (finalize). */
  while (read (self->wake[0], &byte, 1) == 1)
    log_live_handles (self);
  return NULL;
}

static void
start_sigusr1 (GcsTracer * self)
{
  if (sigusr1_fd >= 0) {
    GST_WARNING_OBJECT (self, "another gcsafety tracer already dumps on SIGUSR1");
    return;
  }
  if (pipe (self->wake) != 0) {
    GST_WARNING_OBJECT (self, "pipe: %s", g_strerror (errno));
    return;
  }
  self->dumper = g_thread_new ("gcs-sigusr1", dump_on_wake, self);
  sigusr1_fd = self->wake[1];
  struct sigaction action;
  memset (&action, 0, sizeof action);
  action.sa_handler = on_sigusr1;
  action.sa_flags = SA_RESTART;
  sigemptyset (&action.sa_mask);
  sigaction (SIGUSR1, &action, &self->previous);
  GST_INFO_OBJECT (self, "SIGUSR1 logs the live handles");
}

static void
stop_sigusr1 (GcsTracer * self)
{
  if (!self->dumper)
    return;
  sigaction (SIGUSR1, &self->previous, NULL);
  sigusr1_fd = -1;
  close (self->wake[1]);
  g_thread_join (self->dumper);
  close (self->wake[0]);
  self->dumper = NULL;
}

/* ---- the object ---- */

static void
parse_params (GcsTracer * self)
{
  gchar *params = NULL;
  g_object_get (self, "params", &params, NULL);
  if (!params)
    return;
  gchar *text = g_strdup_printf ("gcsafety,%s", params);
  GstStructure *s = gst_structure_from_string (text, NULL);
  if (s) {
    gst_structure_get_boolean (s, "dump-on-sigusr1", &self->dump_on_sigusr1);
    gst_structure_free (s);
  } else {
    GST_WARNING_OBJECT (self, "cannot parse the parameters '%s'", params);
  }
  g_free (text);
  g_free (params);
}

/* A hook does nothing, but GStreamer keeps a tracer alive (until
 * gst_deinit) and lists it in gst_tracing_get_active_tracers only through
 * its hooks. One that fires once per element is the cheapest useful one. */
static void
on_element_new (GstTracer * tracer, GstClockTime ts, GstElement * element)
{
  (void) tracer;
  (void) ts;
  (void) element;
}

static void
gcs_tracer_constructed (GObject * object)
{
  GcsTracer *self = GCS_TRACER (object);
  gst_tracing_register_hook (GST_TRACER (self), "element-new", G_CALLBACK (on_element_new));
  parse_params (self);
  if (self->dump_on_sigusr1)
    start_sigusr1 (self);
  G_OBJECT_CLASS (gcs_tracer_parent_class)->constructed (object);
}

static void
gcs_tracer_finalize (GObject * object)
{
  GcsTracer *self = GCS_TRACER (object);
  stop_sigusr1 (self);
  /* Tracers are finalized by gst_deinit: report what is still registered.
   * (After gcs_shutdown, nothing is, unless a release is still pending.) */
  guint live = log_live (GCS_LIVE_ALL);
  if (live > 0)
    g_warning ("gcsafety: %u handles still registered at gst_deinit "
        "(call gcs_shutdown before gst_deinit, or unregister them)", live);
  G_OBJECT_CLASS (gcs_tracer_parent_class)->finalize (object);
}

#define FIELD(name, gtype)                                                        \
  name, GST_TYPE_STRUCTURE, gst_structure_new ("value", "type", G_TYPE_GTYPE, gtype, \
      "related-to", GST_TYPE_TRACER_VALUE_SCOPE, GST_TRACER_VALUE_SCOPE_PROCESS, NULL)

static void
gcs_tracer_class_init (GcsTracerClass * klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->constructed = gcs_tracer_constructed;
  object_class->finalize = gcs_tracer_finalize;

  tr_alive = gst_tracer_record_new ("gcs-handle-alive.class",
      FIELD ("handle", G_TYPE_STRING), FIELD ("type-name", G_TYPE_STRING),
      FIELD ("address", G_TYPE_POINTER), FIELD ("description", G_TYPE_STRING),
      FIELD ("instance-name", G_TYPE_STRING), FIELD ("object-name", G_TYPE_STRING),
      FIELD ("state", G_TYPE_STRING), FIELD ("accesses-in-flight", G_TYPE_UINT),
      FIELD ("age-ms", G_TYPE_UINT64), FIELD ("trace", G_TYPE_STRING), NULL);
  GST_OBJECT_FLAG_SET (tr_alive, GST_OBJECT_FLAG_MAY_BE_LEAKED);
  tr_counters = gst_tracer_record_new ("gcs-counters.class",
      FIELD ("registered", G_TYPE_UINT64), FIELD ("released", G_TYPE_UINT64),
      FIELD ("active", G_TYPE_UINT64), FIELD ("refused-accesses", G_TYPE_UINT64),
      FIELD ("finalizer-failures", G_TYPE_UINT64),
      FIELD ("finalizer-timeouts", G_TYPE_UINT64),
      FIELD ("cleanup-failures", G_TYPE_UINT64), NULL);
  GST_OBJECT_FLAG_SET (tr_counters, GST_OBJECT_FLAG_MAY_BE_LEAKED);

  /**
   * GcsTracer::get-live-handles:
   * Returns: (transfer full): a "live-handles" GstStructure whose "handles"
   * field is a list of "gcs-handle" structures (the fields of the
   * gcs-handle-alive record).
   */
  signals[SIGNAL_GET_LIVE_HANDLES] = g_signal_new_class_handler ("get-live-handles",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (get_live_handles), NULL, NULL, NULL, GST_TYPE_STRUCTURE, 0);
  /* GcsTracer::log-live-handles: log the records now. */
  signals[SIGNAL_LOG_LIVE_HANDLES] = g_signal_new_class_handler ("log-live-handles",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (log_live_handles), NULL, NULL, NULL, G_TYPE_NONE, 0);
  /* GcsTracer::start-checkpoint: gcs_leaks_checkpoint (). */
  signals[SIGNAL_START_CHECKPOINT] = g_signal_new_class_handler ("start-checkpoint",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (start_checkpoint), NULL, NULL, NULL, G_TYPE_NONE, 0);
  /* GcsTracer::log-checkpoint: log what was registered since the checkpoint
   * and is still live. */
  signals[SIGNAL_LOG_CHECKPOINT] = g_signal_new_class_handler ("log-checkpoint",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (log_checkpoint), NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
gcs_tracer_init (GcsTracer * self)
{
  self->wake[0] = self->wake[1] = -1;
}

static gboolean
plugin_init (GstPlugin * plugin)
{
  if (gcs_abi_version () != GCS_ABI_VERSION)
    return FALSE;
  return gst_tracer_register (plugin, "gcsafety", GCS_TYPE_TRACER);
}

/* GST_PLUGIN_DEFINE leaves the descriptor's padding to zero-initialisation. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, gcsafety,
    "gcsafety: live handles at exit and on request, as a tracer", plugin_init,
    "0.1.0", "MIT/X11", "gcsafety", "https://github.com/gcsafety/gcsafety")
#pragma GCC diagnostic pop

/* gcsworker: a GStreamer element that hands every buffer to a worker thread
 * through gcsafety handles.
 *
 *   gst-launch-1.0 --gst-plugin-path=examples/gst-plugin/build \
 *       videotestsrc num-buffers=100 ! gcsworker ! fakesink
 *
 * The element passes buffers through unchanged. For each buffer, the
 * streaming thread registers it (a GCS_KIND_MINI_OBJECT handle of the
 * element's own GcsManager) and queues the handle, never the pointer. The
 * worker thread reads the buffer (a checksum of its bytes) inside
 * gcs_safe_access and then unregisters the handle.
 *
 * A flushing seek (FLUSH_START) and the stop of the element do what makes
 * the naive version of this element crash: the streaming side drops every
 * queued buffer, and the one the worker is reading, at once (gcs_unregister
 * of each handle). gcsafety turns that into: the buffer the worker is
 * inside stays alive until its access ends; the queued ones are released now
 * and the worker's later access reports GCS_ERROR_RELEASED (counted as
 * dropped); the worker's own unregister of a handle already unregistered is
 * refused (GCS_ERROR_RELEASED), never a double unref.
 *
 * At stop the element closes its manager, checks that every registration
 * was released exactly once (a cleanup counts releases), and logs the
 * counts at INFO in the "gcsworker" debug category:
 *   gcsworker: stopped: registered=N released=N processed=P dropped=D flushes=F
 * At EOS the element waits until the worker has read every buffer queued
 * before it, so a stream that ends normally is read in full.
 *
 * The property "seek-after" makes the element itself issue one flushing seek
 * back to the start after that many buffers (from another thread, through
 * gst_element_call_async), so that gst-launch-1.0 can exercise flushes.
 */

#include <gcsafety.h>
#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

#define PACKAGE "gcsworker"
#define VERSION "0.1.0"

GST_DEBUG_CATEGORY_STATIC (gcs_worker_debug);
#define GST_CAT_DEFAULT gcs_worker_debug

#define GCS_TYPE_WORKER (gcs_worker_get_type ())
G_DECLARE_FINAL_TYPE (GcsWorker, gcs_worker, GCS, WORKER, GstBaseTransform)

struct _GcsWorker
{
  GstBaseTransform parent;

  /* properties */
  guint passes;
  guint64 seek_after;

  /* between start and stop */
  GcsManager *manager;
  GAsyncQueue *jobs;            /* of GcsJob *, for the worker */
  GMutex drain_lock;
  GCond drain_cond;
  guint64 drains_requested;     /* under drain_lock */
  guint64 drains_done;          /* under drain_lock */
  GThread *thread;
  GcsHandle current;            /* the handle the worker holds, or 0 (atomic) */
  gboolean seeked;

  /* counters (atomic) */
  guint64 registered;
  guint64 released;
  guint64 processed;
  guint64 dropped;
  guint64 flushes;
  guint64 checksum;
};

G_DEFINE_TYPE (GcsWorker, gcs_worker, GST_TYPE_BASE_TRANSFORM)

enum
{
  PROP_0,
  PROP_PASSES,
  PROP_SEEK_AFTER,
  PROP_PROCESSED,
  PROP_DROPPED,
};

typedef enum
{
  GCS_JOB_READ,                 /* read the buffer of `handle`, unregister it */
  GCS_JOB_DRAINED,              /* count a drain (every earlier job is done) */
  GCS_JOB_STOP,                 /* end the worker thread */
} GcsJobType;

typedef struct
{
  GcsJobType type;
  GcsHandle handle;
} GcsJob;

static GcsJob *
job_new (GcsJobType type, GcsHandle handle)
{
  GcsJob *job = g_new (GcsJob, 1);
  job->type = type;
  job->handle = handle;
  return job;
}

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static void
atomic_add64 (guint64 * counter, guint64 n)
{
  __atomic_fetch_add (counter, n, __ATOMIC_RELAXED);
}

static guint64
atomic_get64 (const guint64 * counter)
{
  return __atomic_load_n (counter, __ATOMIC_RELAXED);
}

/* Cleanup of every registration: runs once, when the buffer's registration
 * is released (on whichever thread ended the last access or unregistered),
 * with the buffer still alive. */
static int
count_release (void *object, void *user_data)
{
  GcsWorker *self = user_data;
  (void) object;
  atomic_add64 (&self->released, 1);
  return 0;
}

/* Runs on the worker thread, inside gcs_safe_access: the buffer cannot be
 * released before this returns, whatever the streaming thread does. */
static int
read_buffer (void *object, void *user_data)
{
  GcsWorker *self = user_data;
  GstBuffer *buffer = object;
  GstMapInfo map;
  guint64 sum = 0;
  guint pass;
  gsize i;

  if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
    return 1;
  for (pass = 0; pass < self->passes; pass++)
    for (i = 0; i < map.size; i++)
      sum = sum * 31 + map.data[i];
  gst_buffer_unmap (buffer, &map);
  atomic_add64 (&self->checksum, sum);
  return 0;
}

static gpointer
worker_main (gpointer data)
{
  GcsWorker *self = data;

  for (;;) {
    GcsJob *job = g_async_queue_pop (self->jobs);
    GcsJobType type = job->type;
    GcsHandle handle = job->handle;
    GcsResult result;

    g_free (job);
    if (type == GCS_JOB_STOP)
      break;
    if (type == GCS_JOB_DRAINED) {
      g_mutex_lock (&self->drain_lock);
      self->drains_done++;
      g_cond_broadcast (&self->drain_cond);
      g_mutex_unlock (&self->drain_lock);
      continue;
    }
    __atomic_store_n (&self->current, handle, __ATOMIC_SEQ_CST);
    result = gcs_safe_access (handle, read_buffer, self);
    if (result == GCS_OK)
      atomic_add64 (&self->processed, 1);
    else if (result == GCS_ERROR_RELEASED || result == GCS_ERROR_SHUT_DOWN)
      atomic_add64 (&self->dropped, 1);   /* flushed or stopped under us */
    else
      GST_ERROR_OBJECT (self, "access: %s", gcs_last_error ());
    /* GCS_ERROR_RELEASED if the streaming side already dropped it. */
    gcs_unregister (handle);
    __atomic_store_n (&self->current, GCS_INVALID_HANDLE, __ATOMIC_SEQ_CST);
  }
  return NULL;
}

/* Drop every buffer handed to the worker: the queued ones, and the one the
 * worker may be reading right now. Called by the streaming side at
 * FLUSH_START and at stop, concurrently with the worker. */
static void
drop_pending (GcsWorker * self)
{
  GQueue markers = G_QUEUE_INIT;
  GcsJob *job;
  GcsHandle current;

  while ((job = g_async_queue_try_pop (self->jobs)) != NULL) {
    if (job->type != GCS_JOB_READ) {
      g_queue_push_tail (&markers, job);        /* kept, in order, below */
      continue;
    }
    if (gcs_unregister (job->handle) == GCS_OK)
      atomic_add64 (&self->dropped, 1);
    g_free (job);
  }
  /* Back at the front: they were queued before anything pushed since. */
  while ((job = g_queue_pop_tail (&markers)) != NULL)
    g_async_queue_push_front (self->jobs, job);
  current = __atomic_load_n (&self->current, __ATOMIC_SEQ_CST);
  if (current != GCS_INVALID_HANDLE)
    gcs_unregister (current);   /* released when the worker's access ends */
}

static void
seek_to_start (GstElement * element, gpointer user_data)
{
  (void) user_data;
  GST_INFO_OBJECT (element, "flushing seek to 0");
  if (!gst_element_seek_simple (element, GST_FORMAT_TIME,
          GST_SEEK_FLAG_FLUSH, 0))
    GST_WARNING_OBJECT (element, "the seek failed");
}

static GstFlowReturn
gcs_worker_transform_ip (GstBaseTransform * trans, GstBuffer * buffer)
{
  GcsWorker *self = GCS_WORKER (trans);
  GcsRegistration registration = { 0 };
  GcsHandle handle;
  guint64 count;

  registration.struct_size = sizeof registration;
  registration.manager = self->manager;
  registration.kind = GCS_KIND_MINI_OBJECT;
  registration.object = buffer;
  registration.size_bytes = gst_buffer_get_size (buffer);
  if (gcs_register_full (&registration, &handle) != GCS_OK) {
    GST_ELEMENT_ERROR (self, CORE, FAILED, ("gcs_register_full failed"),
        ("%s", gcs_last_error ()));
    return GST_FLOW_ERROR;
  }
  gcs_add_cleanup (handle, count_release, self);
  count = __atomic_add_fetch (&self->registered, 1, __ATOMIC_RELAXED);

  g_async_queue_push (self->jobs, job_new (GCS_JOB_READ, handle));

  if (self->seek_after != 0 && count == self->seek_after && !self->seeked) {
    self->seeked = TRUE;
    gst_element_call_async (GST_ELEMENT (self), seek_to_start, NULL, NULL);
  }
  return GST_FLOW_OK;
}

/* Wait until the worker has done every job queued so far (at EOS, so that
 * a stream that ends normally is read in full). A flush meanwhile drops the
 * queued buffers but keeps the marker, so this never waits for more than
 * the worker's current job. */
static void
wait_drained (GcsWorker * self)
{
  guint64 target;

  g_mutex_lock (&self->drain_lock);
  target = ++self->drains_requested;
  g_async_queue_push (self->jobs, job_new (GCS_JOB_DRAINED, GCS_INVALID_HANDLE));
  while (self->drains_done < target)
    g_cond_wait (&self->drain_cond, &self->drain_lock);
  g_mutex_unlock (&self->drain_lock);
}

static gboolean
gcs_worker_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GcsWorker *self = GCS_WORKER (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      atomic_add64 (&self->flushes, 1);
      drop_pending (self);
      break;
    case GST_EVENT_EOS:
      wait_drained (self);
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (gcs_worker_parent_class)->sink_event (trans,
      event);
}

static gboolean
gcs_worker_start (GstBaseTransform * trans)
{
  GcsWorker *self = GCS_WORKER (trans);

  if (gcs_manager_new (NULL, &self->manager) != GCS_OK) {
    GST_ELEMENT_ERROR (self, CORE, FAILED, ("gcs_manager_new failed"),
        ("%s", gcs_last_error ()));
    return FALSE;
  }
  self->registered = self->released = self->processed = self->dropped = 0;
  self->flushes = self->checksum = 0;
  self->current = GCS_INVALID_HANDLE;
  self->seeked = FALSE;
  self->drains_requested = self->drains_done = 0;
  self->jobs = g_async_queue_new ();
  self->thread = g_thread_new ("gcsworker", worker_main, self);
  return TRUE;
}

static gboolean
gcs_worker_stop (GstBaseTransform * trans)
{
  GcsWorker *self = GCS_WORKER (trans);
  GcsStats stats = { 0 };
  gboolean ok;

  /* Teardown under the worker: drop what it still has, then stop it. */
  drop_pending (self);
  g_async_queue_push (self->jobs, job_new (GCS_JOB_STOP, GCS_INVALID_HANDLE));
  g_thread_join (self->thread);
  self->thread = NULL;
  g_async_queue_unref (self->jobs);
  self->jobs = NULL;

  gcs_manager_close (self->manager, GCS_TIMEOUT_INFINITE);
  stats.struct_size = sizeof stats;
  gcs_get_stats (self->manager, &stats);
  gcs_manager_free (self->manager);
  self->manager = NULL;

  ok = stats.active == 0 && stats.total_registered == self->registered
      && self->released == self->registered;
  GST_INFO_OBJECT (self, "stopped: registered=%" G_GUINT64_FORMAT
      " released=%" G_GUINT64_FORMAT " processed=%" G_GUINT64_FORMAT
      " dropped=%" G_GUINT64_FORMAT " flushes=%" G_GUINT64_FORMAT
      " active=%" G_GUINT64_FORMAT, self->registered, self->released,
      self->processed, self->dropped, self->flushes, stats.active);
  if (!ok)
    GST_ERROR_OBJECT (self, "registrations not all released exactly once");
  return ok;
}

static void
gcs_worker_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GcsWorker *self = GCS_WORKER (object);

  switch (prop_id) {
    case PROP_PASSES:
      self->passes = g_value_get_uint (value);
      break;
    case PROP_SEEK_AFTER:
      self->seek_after = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gcs_worker_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GcsWorker *self = GCS_WORKER (object);

  switch (prop_id) {
    case PROP_PASSES:
      g_value_set_uint (value, self->passes);
      break;
    case PROP_SEEK_AFTER:
      g_value_set_uint64 (value, self->seek_after);
      break;
    case PROP_PROCESSED:
      g_value_set_uint64 (value, atomic_get64 (&self->processed));
      break;
    case PROP_DROPPED:
      g_value_set_uint64 (value, atomic_get64 (&self->dropped));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gcs_worker_finalize (GObject * object)
{
  GcsWorker *self = GCS_WORKER (object);

  g_mutex_clear (&self->drain_lock);
  g_cond_clear (&self->drain_cond);
  G_OBJECT_CLASS (gcs_worker_parent_class)->finalize (object);
}

static void
gcs_worker_class_init (GcsWorkerClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gcs_worker_set_property;
  gobject_class->get_property = gcs_worker_get_property;
  gobject_class->finalize = gcs_worker_finalize;

  g_object_class_install_property (gobject_class, PROP_PASSES,
      g_param_spec_uint ("passes", "Passes",
          "How many times the worker reads each buffer", 1, 1000, 1,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_SEEK_AFTER,
      g_param_spec_uint64 ("seek-after", "Seek after",
          "Issue one flushing seek to the start after this many buffers "
          "(0: never)", 0, G_MAXUINT64, 0,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_PROCESSED,
      g_param_spec_uint64 ("processed", "Processed",
          "Buffers the worker read", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_DROPPED,
      g_param_spec_uint64 ("dropped", "Dropped",
          "Buffers released by a flush or stop before the worker read them",
          0, G_MAXUINT64, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_set_static_metadata (element_class,
      "gcsafety worker hand-off", "Filter",
      "Hands each buffer to a worker thread through gcsafety handles",
      "gcsafety developers");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gcs_worker_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gcs_worker_sink_event);
  trans_class->start = GST_DEBUG_FUNCPTR (gcs_worker_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gcs_worker_stop);
}

static void
gcs_worker_init (GcsWorker * self)
{
  self->passes = 1;
  g_mutex_init (&self->drain_lock);
  g_cond_init (&self->drain_cond);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}

static gboolean
plugin_init (GstPlugin * plugin)
{
  GST_DEBUG_CATEGORY_INIT (gcs_worker_debug, "gcsworker", 0,
      "gcsafety worker hand-off");
  if (gcs_abi_version () != GCS_ABI_VERSION) {
    GST_ERROR ("libgcsafety has ABI %u, this plugin was built for %u",
        gcs_abi_version (), GCS_ABI_VERSION);
    return FALSE;
  }
  return gst_element_register (plugin, "gcsworker", GST_RANK_NONE,
      GCS_TYPE_WORKER);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, gcsworker,
    "Hands buffers to worker threads through gcsafety handles", plugin_init,
    VERSION, "MIT/X11", "gcsafety", "Unknown package origin")

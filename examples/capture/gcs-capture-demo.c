/* examples/capture/gcs-capture-demo.c: a live capture pipeline whose samples
 * are shared between threads through gcsafety handles.
 *
 * Run it with scripts/demo.sh (it builds the library and this program), or:
 *
 *   scripts/install.sh --uninstalled
 *   cc -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror examples/capture/gcs-capture-demo.c \
 *      -o gcs-capture-demo $(PKG_CONFIG_PATH=target/pkgconfig pkg-config --cflags --libs \
 *      gcsafety gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0)
 *   ./gcs-capture-demo --help
 *
 * The story: the original Go design's desktop capture (convertGstSample)
 * made real. A live pipeline (videotestsrc is-live=true by default,
 * ximagesrc with --source ximagesrc, anything with --pipeline) ends in an
 * appsink. Each pulled GstSample is registered with gcsafety (a mini object,
 * type "gst.Sample", instance "capture-sample", its buffer size accounted)
 * and from then on known to the other threads by its handle only:
 *
 *   - N worker threads map the buffer inside an access, one stripe of the
 *     frame per access, and compute the mean luma and a checksum;
 *   - a reaper thread unregisters each sample after a random short delay,
 *     racing the workers: an access that comes too late is refused (a stale
 *     handle), one already inside keeps the sample alive until it leaves;
 *   - a finalizer (gcs_set_finalizer) counts the samples, completed or cut
 *     short, after their last access.
 *
 * What the program claims it checks with GStreamer itself: a weak reference
 * on every sample (gst_mini_object_weak_ref) sees it freed exactly once,
 * after its finalizer, never while a worker is inside it; every access runs
 * on the registered object before it is freed; the library's statistics
 * match the program's own counts; nothing is left registered (leaks = 0).
 * The exit status is 0 only if every invariant held.
 *
 * --unguarded runs the same workload with raw GstSample pointers and manual
 * reference counts instead (what gcsafety replaces). It is expected to fail:
 * under AddressSanitizer it stops at the first heap-use-after-free
 * (scripts/demo.sh --asan --unguarded); without it, the weak references
 * count the accesses that touched a freed sample, and it exits 1.
 */

#include <gcsafety.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <glib-unix.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ----- the access path: one place ---------------------------------------- */

/* Every access of a sample goes through CAPTURE_SAFE_ACCESS (same
 * signature as gcs_safe_access): the header-inline twin, which begins and
 * ends the access on the table's own words with no call into the library on
 * the success path. Such accesses are not counted in GcsStats.access_ok
 * (refusals are): CAPTURE_LIBRARY_COUNTS_OK says which to expect. Building
 * with -DCAPTURE_EXPORTED uses the exported function instead. */
#ifdef CAPTURE_EXPORTED
#define CAPTURE_SAFE_ACCESS gcs_safe_access
#define CAPTURE_LIBRARY_COUNTS_OK 1
#else
#define CAPTURE_SAFE_ACCESS gcs_safe_access_inline
#define CAPTURE_LIBRARY_COUNTS_OK 0
#endif
#define CAPTURE_STRINGIFY(x) #x
#define CAPTURE_NAME(x) CAPTURE_STRINGIFY (x)
#define CAPTURE_ACCESS_NAME CAPTURE_NAME (CAPTURE_SAFE_ACCESS)

/* ----- options ------------------------------------------------------------ */

#define MAX_STRIPES 64
#define PROBE_BATCH 128 /* accesses per timed batch (one per frame) */

static double opt_duration = 10.0;
static int opt_workers = 4;
static int opt_stripes = 8;
static int opt_max_delay_ms = 50;
static char *opt_source = NULL;
static char *opt_pipeline = NULL;
static char *opt_metrics = NULL;
static gboolean opt_unguarded = FALSE;
static gint64 opt_seed = 0;

static GOptionEntry entries[] = {
  { "duration", 'd', 0, G_OPTION_ARG_DOUBLE, &opt_duration, "Seconds to run (default 10; Ctrl-C stops earlier)", "S" },
  { "workers", 'w', 0, G_OPTION_ARG_INT, &opt_workers, "Worker threads (default 4)", "N" },
  { "stripes", 0, 0, G_OPTION_ARG_INT, &opt_stripes, "Accesses per frame, one stripe each (default 8)", "N" },
  { "max-delay", 0, 0, G_OPTION_ARG_INT, &opt_max_delay_ms,
    "The reaper releases each sample after a random 0..MS ms; workers pick its stripes up after 0..MS/2 ms "
    "(default 50)", "MS" },
  { "source", 's', 0, G_OPTION_ARG_STRING, &opt_source,
    "Live source element: videotestsrc (default, headless), ximagesrc (the desktop), or another", "ELEMENT" },
  { "pipeline", 'p', 0, G_OPTION_ARG_STRING, &opt_pipeline,
    "A gst-launch description ending in an appsink named sink (overrides --source)", "DESCRIPTION" },
  { "metrics-file", 'm', 0, G_OPTION_ARG_FILENAME, &opt_metrics,
    "Where to write the Prometheus text at the end (default capture-metrics.prom)", "FILE" },
  { "unguarded", 0, 0, G_OPTION_ARG_NONE, &opt_unguarded,
    "Raw pointers and manual refcounts instead of handles: expected to FAIL (use-after-free)", NULL },
  { "seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed, "Seed of the reaper's delays (default: from the clock)", "N" },
  { NULL, 0, 0, 0, NULL, NULL, NULL },
};

/* ----- frames ------------------------------------------------------------- */

/* The layout of the frames of one caps: where the luma is. */
typedef struct {
  GstCaps *caps;
  GstVideoInfo info;
  bool luma_plane; /* 8-bit Y (or gray) in a plane of its own, else bytes */
  char description[96];
} Format;

typedef struct Frame Frame;

typedef struct {
  Frame *frame;
  int stripe;
  gint64 due_us; /* when a worker picks it up (monotonic) */
} WorkItem;

/* One sample: what the threads share about it besides its handle. The
 * record outlives the sample, so checking it is always safe. */
struct Frame {
  guint64 seq;
  GcsHandle handle;   /* guarded mode: all the workers and the reaper use */
  GstSample *sample;  /* the registered object: identity checks only (guarded);
                       * the raw pointer the workers use (unguarded) */
  const Format *format;
  gsize size;
  gint64 release_at_us;
  WorkItem items[MAX_STRIPES];

  atomic_int stripes_done;
  atomic_int in_access;        /* workers inside the sample right now */
  atomic_int unregistering;    /* the reaper has begun releasing it */
  atomic_int finalizer_runs;
  atomic_int freed;            /* weak reference notifications */
  atomic_uint checksum;        /* xor of the stripes' checksums */
  atomic_ullong luma_sum;
  atomic_ullong luma_count;
};

/* ----- counters ----------------------------------------------------------- */

static atomic_ullong frames_registered;
static atomic_ullong bytes_registered;
static atomic_ullong bytes_live, bytes_live_peak; /* registered and not yet freed */
static atomic_ullong accesses_ok;            /* all accesses that ran */
static atomic_ullong accesses_stripes;       /* of which stripe analyses */
static atomic_ullong accesses_rejected;      /* refused: stale handle */
static atomic_ullong accesses_other_errors;  /* refused for another reason (a bug) */
static atomic_ullong probe_ns, probe_accesses;
static atomic_ullong releases, releases_while_inside;
static atomic_ullong finalizers_run, samples_completed, samples_cut_short;
static atomic_ullong samples_freed;
static atomic_ullong map_failures;
static atomic_ullong use_after_free;  /* an access that touched a freed sample */
static atomic_int glib_warnings;
static guint32 last_complete_checksum; /* under report_lock */
static guint64 last_complete_seq;      /* its seq + 1; under report_lock */
static atomic_ullong luma_total, luma_pixels;

static atomic_int invariants_broken;
static GMutex report_lock;

/* Every invariant goes through here. */
G_GNUC_PRINTF (2, 3) static bool
expect (bool ok, const char *format, ...)
{
  if (ok)
    return true;
  va_list args;
  va_start (args, format);
  int seen = atomic_fetch_add (&invariants_broken, 1);
  if (seen < 20) { /* the first ones tell the story */
    g_mutex_lock (&report_lock);
    fprintf (stderr, "\n!! INVARIANT BROKEN: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "%s\n", seen == 19 ? " (further ones are only counted)" : "");
    g_mutex_unlock (&report_lock);
  }
  va_end (args);
  return false;
}

static void
on_glib_log (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    atomic_fetch_add (&glib_warnings, 1);
  g_log_default_handler (domain, level, message, user_data);
}

static guint64
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * 1000000000u + (guint64) ts.tv_nsec;
}

/* ----- the work: mean luma and a checksum of one stripe ------------------- */

static guint32
fnv1a (guint32 hash, const guint8 *data, gsize n)
{
  for (gsize i = 0; i < n; i++)
    hash = (hash ^ data[i]) * 16777619u;
  return hash;
}

/* Rows [r0, r1) of the luma plane, or the stripe's share of the bytes. */
static bool
analyze_stripe (GstSample *sample, WorkItem *item)
{
  Frame *frame = item->frame;
  GstBuffer *buffer = gst_sample_get_buffer (sample);
  int n = opt_stripes, i = item->stripe;
  guint64 sum = 0, count = 0;
  guint32 hash = 2166136261u;

  if (buffer == NULL)
    return false;
  if (frame->format->luma_plane) {
    GstVideoFrame video;
    if (!gst_video_frame_map (&video, (GstVideoInfo *) &frame->format->info, buffer, GST_MAP_READ))
      return false;
    const guint8 *plane = GST_VIDEO_FRAME_COMP_DATA (&video, 0);
    int stride = GST_VIDEO_FRAME_COMP_STRIDE (&video, 0);
    int width = GST_VIDEO_FRAME_COMP_WIDTH (&video, 0);
    int height = GST_VIDEO_FRAME_COMP_HEIGHT (&video, 0);
    for (int row = height * i / n; row < height * (i + 1) / n; row++) {
      const guint8 *line = plane + (gsize) row * stride;
      for (int x = 0; x < width; x++)
        sum += line[x];
      hash = fnv1a (hash, line, width);
      count += width;
    }
    gst_video_frame_unmap (&video);
  } else {
    GstMapInfo map;
    if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
      return false;
    gsize start = map.size * i / n, end = map.size * (i + 1) / n;
    for (gsize k = start; k < end; k++)
      sum += map.data[k];
    hash = fnv1a (hash, map.data + start, end - start);
    count = end - start;
    gst_buffer_unmap (buffer, &map);
  }
  atomic_fetch_add (&frame->luma_sum, sum);
  atomic_fetch_add (&frame->luma_count, count);
  atomic_fetch_xor (&frame->checksum, hash * (2u * (guint32) i + 1u));
  atomic_fetch_add (&frame->stripes_done, 1);
  return true;
}

/* The access callback: runs while the handle is live; the sample cannot be
 * freed before it returns. The weak reference's record says whether that
 * held. */
static int
analyze_access (void *object, void *user_data)
{
  WorkItem *item = user_data;
  Frame *frame = item->frame;
  atomic_fetch_add (&frame->in_access, 1);
  if (atomic_load (&frame->freed) != 0)
    atomic_fetch_add (&use_after_free, 1);
  expect (object == frame->sample, "frame %" G_GUINT64_FORMAT ": the access got %p, not the registered sample %p",
      frame->seq, object, (void *) frame->sample);
  expect (GST_MINI_OBJECT_REFCOUNT_VALUE (object) >= 1, "frame %" G_GUINT64_FORMAT ": accessed with refcount %d",
      frame->seq, GST_MINI_OBJECT_REFCOUNT_VALUE (object));
  if (!analyze_stripe (object, item))
    atomic_fetch_add (&map_failures, 1);
  atomic_fetch_sub (&frame->in_access, 1);
  return 0;
}

static int
empty_access (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  return 0;
}

/* ----- lifetime evidence -------------------------------------------------- */

static GMutex freed_lock;
static GCond freed_cond;

/* The weak reference: GStreamer calls it when the sample's last reference
 * is dropped, just before freeing it. */
static void
on_sample_freed (gpointer data, GstMiniObject *where_the_object_was)
{
  Frame *frame = data;
  (void) where_the_object_was;
  expect (atomic_fetch_add (&frame->freed, 1) == 0, "frame %" G_GUINT64_FORMAT ": freed twice", frame->seq);
  expect (atomic_load (&frame->in_access) == 0, "frame %" G_GUINT64_FORMAT ": freed while a worker is inside it",
      frame->seq);
  if (!opt_unguarded) {
    expect (atomic_load (&frame->unregistering) != 0, "frame %" G_GUINT64_FORMAT ": freed while still registered",
        frame->seq);
    expect (atomic_load (&frame->finalizer_runs) == 1,
        "frame %" G_GUINT64_FORMAT ": freed after %d finalizer runs (want 1, before the free)", frame->seq,
        atomic_load (&frame->finalizer_runs));
  }
  atomic_fetch_sub (&bytes_live, frame->size);
  g_mutex_lock (&freed_lock);
  atomic_fetch_add (&samples_freed, 1);
  g_cond_broadcast (&freed_cond);
  g_mutex_unlock (&freed_lock);
}

/* The finalizer (gcs_set_finalizer): on the library's finalizer thread,
 * after the last access, before the registration's reference drops. */
static int
on_sample_finalizer (void *object, void *user_data)
{
  Frame *frame = user_data;
  expect (atomic_fetch_add (&frame->finalizer_runs, 1) == 0, "frame %" G_GUINT64_FORMAT ": finalizer ran twice",
      frame->seq);
  expect (object == frame->sample, "frame %" G_GUINT64_FORMAT ": finalizer got another object", frame->seq);
  expect (atomic_load (&frame->unregistering) != 0, "frame %" G_GUINT64_FORMAT ": finalized before its unregister",
      frame->seq);
  expect (atomic_load (&frame->in_access) == 0, "frame %" G_GUINT64_FORMAT ": finalized while a worker is inside",
      frame->seq);
  expect (atomic_load (&frame->freed) == 0, "frame %" G_GUINT64_FORMAT ": finalized after it was freed", frame->seq);
  atomic_fetch_add (&finalizers_run, 1);
  if (atomic_load (&frame->stripes_done) == opt_stripes) {
    atomic_fetch_add (&samples_completed, 1);
    atomic_fetch_add (&luma_total, atomic_load (&frame->luma_sum));
    atomic_fetch_add (&luma_pixels, atomic_load (&frame->luma_count));
    g_mutex_lock (&report_lock);
    if (frame->seq + 1 >= last_complete_seq) {
      last_complete_seq = frame->seq + 1;
      last_complete_checksum = atomic_load (&frame->checksum);
    }
    g_mutex_unlock (&report_lock);
  } else {
    atomic_fetch_add (&samples_cut_short, 1);
  }
  return 0;
}

/* ----- the threads -------------------------------------------------------- */

static GcsManager *manager;
static GAsyncQueue *work_queue;   /* WorkItem *, to the workers */
static GAsyncQueue *reaper_queue; /* Frame *, to the reaper */
static WorkItem stop_item = { NULL, 0, G_MAXINT64 }; /* tells a worker to exit; sorts last */
static Frame stop_frame;          /* tells the reaper to drain and exit */
static atomic_int stop_pulling;
static atomic_int source_ended;
static GPtrArray *frames;  /* every Frame, for the final checks; pull thread, then main */
static GPtrArray *formats; /* every Format */
static GstElement *appsink;

static const Format *
format_for (GstCaps *caps)
{
  for (guint i = 0; i < formats->len; i++) {
    const Format *known = g_ptr_array_index (formats, i);
    if ((caps == NULL && known->caps == NULL) || (caps && known->caps && gst_caps_is_equal (caps, known->caps)))
      return known;
  }
  Format *format = g_new0 (Format, 1);
  format->caps = caps ? gst_caps_ref (caps) : NULL;
  if (caps && gst_video_info_from_caps (&format->info, caps)) {
    const GstVideoFormatInfo *finfo = format->info.finfo;
    format->luma_plane = (GST_VIDEO_FORMAT_INFO_IS_YUV (finfo) || GST_VIDEO_FORMAT_INFO_IS_GRAY (finfo))
        && GST_VIDEO_FORMAT_INFO_DEPTH (finfo, 0) == 8 && GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, 0) == 1
        && !GST_VIDEO_FORMAT_INFO_IS_TILED (finfo);
    g_snprintf (format->description, sizeof format->description, "%dx%d %s, %s", GST_VIDEO_INFO_WIDTH (&format->info),
        GST_VIDEO_INFO_HEIGHT (&format->info), GST_VIDEO_INFO_NAME (&format->info),
        format->luma_plane ? "mean luma of the Y plane" : "mean byte value (no 8-bit luma plane)");
  } else {
    g_snprintf (format->description, sizeof format->description, "not raw video: mean byte value");
  }
  g_ptr_array_add (formats, format);
  return format;
}

static gint
by_due_time (gconstpointer a, gconstpointer b, gpointer user_data)
{
  (void) user_data;
  gint64 x = ((const WorkItem *) a)->due_us, y = ((const WorkItem *) b)->due_us;
  return x < y ? -1 : x > y;
}

/* Pulls samples from the appsink, registers each, queues its stripes to the
 * workers and the sample to the reaper. */
static gpointer
pull_thread (gpointer data)
{
  GRand *rand = data;
  while (!atomic_load (&stop_pulling)) {
    GstSample *pulled = gst_app_sink_try_pull_sample (GST_APP_SINK (appsink), 50 * GST_MSECOND);
    if (pulled == NULL) /* a timeout, or the end of the stream (the bus says which) */
      continue;
    GstBuffer *buffer = gst_sample_get_buffer (pulled);
    if (buffer == NULL) { /* a buffer list: not a frame */
      gst_sample_unref (pulled);
      continue;
    }
    /* appsink keeps the sample it hands out and reuses it once nobody else
     * holds it; the demo gives each frame a GstSample of its own, so that a
     * weak reference can witness exactly when the last reference goes. */
    GstSample *sample = gst_sample_copy (pulled);
    gst_sample_unref (pulled);

    Frame *frame = g_new0 (Frame, 1);
    frame->seq = frames->len;
    frame->sample = sample;
    frame->format = format_for (gst_sample_get_caps (sample));
    frame->size = gst_buffer_get_size (buffer);
    for (int i = 0; i < opt_stripes; i++)
      frame->items[i] = (WorkItem) { frame, i, 0 };
    gst_mini_object_weak_ref (GST_MINI_OBJECT_CAST (sample), on_sample_freed, frame);
    g_ptr_array_add (frames, frame);

    if (!opt_unguarded) {
      GcsRegistration registration = {
        .struct_size = sizeof registration,
        .manager = manager,
        .kind = GCS_KIND_MINI_OBJECT,
        .object = sample,
        .type_name = "gst.Sample",
        .instance_name = "capture-sample",
        .size_bytes = frame->size,
      };
      GcsResult result = gcs_register_full (&registration, &frame->handle);
      if (!expect (result == GCS_OK, "gcs_register_full: %s: %s", gcs_result_to_string (result), gcs_last_error ())) {
        gst_sample_unref (sample);
        break;
      }
      result = gcs_set_finalizer (frame->handle, on_sample_finalizer, frame);
      expect (result == GCS_OK, "gcs_set_finalizer: %s: %s", gcs_result_to_string (result), gcs_last_error ());
      /* From here on the registration holds the only reference. */
      gst_sample_unref (sample);
      expect (atomic_load (&frame->freed) == 0 && GST_MINI_OBJECT_REFCOUNT_VALUE (sample) == 1,
          "frame %" G_GUINT64_FORMAT ": the registration does not hold the only reference", frame->seq);
    }
    /* Unguarded: the reaper owns the pull thread's reference and drops it. */
    atomic_fetch_add (&frames_registered, 1);
    atomic_fetch_add (&bytes_registered, frame->size);
    unsigned long long live = atomic_fetch_add (&bytes_live, frame->size) + frame->size;
    unsigned long long peak = atomic_load (&bytes_live_peak);
    while (live > peak && !atomic_compare_exchange_weak (&bytes_live_peak, &peak, live))
      ;

    /* The race: the reaper releases the sample at a random moment; the
     * workers pick its stripes up at random moments, mostly before. */
    gint64 now = g_get_monotonic_time ();
    frame->release_at_us = now + g_rand_int_range (rand, 0, opt_max_delay_ms * 1000 + 1);
    g_async_queue_push (reaper_queue, frame);
    for (int i = 0; i < opt_stripes; i++) {
      frame->items[i].due_us = now + g_rand_int_range (rand, 0, opt_max_delay_ms * 500 + 1);
      g_async_queue_push_sorted (work_queue, &frame->items[i], by_due_time, NULL);
    }
  }
  return NULL;
}

/* Unguarded: take a reference of our own, as code without handles does,
 * and hope the sample is still there. The weak reference's record (which
 * outlives the sample) tells whether it was. */
static void
unguarded_access (Frame *frame, WorkItem *item)
{
  bool freed = atomic_load (&frame->freed) != 0; /* the program's evidence, not the code's */
  GstSample *sample = frame->sample;
  /* All such code can check is the refcount: itself a read of memory that
   * may be freed (AddressSanitizer reports it as a heap-use-after-free). */
  if (GST_MINI_OBJECT_REFCOUNT_VALUE (sample) < 1 || freed)
    atomic_fetch_add (&use_after_free, 1);
  gst_sample_ref (sample);
  atomic_fetch_add (&frame->in_access, 1);
  if (item != NULL && !analyze_stripe (sample, item))
    atomic_fetch_add (&map_failures, 1);
  atomic_fetch_sub (&frame->in_access, 1);
  gst_sample_unref (sample);
  atomic_fetch_add (&accesses_ok, 1);
}

/* A timed batch of PROBE_BATCH accesses of a live sample with an empty
 * callback: the cost of one access, measured in this run. */
static void
probe (Frame *frame)
{
  guint64 start = now_ns ();
  int ok = 0;
  for (int i = 0; i < PROBE_BATCH; i++) {
    if (opt_unguarded) {
      unguarded_access (frame, NULL);
      ok++;
      continue;
    }
    GcsResult result = CAPTURE_SAFE_ACCESS (frame->handle, empty_access, NULL);
    if (result == GCS_OK) {
      ok++;
    } else {
      atomic_fetch_add (result == GCS_ERROR_RELEASED ? &accesses_rejected : &accesses_other_errors, 1);
      break;
    }
  }
  guint64 took = now_ns () - start;
  if (!opt_unguarded)
    atomic_fetch_add (&accesses_ok, ok);
  if (ok == PROBE_BATCH) { /* a whole batch on a live handle */
    atomic_fetch_add (&probe_ns, took);
    atomic_fetch_add (&probe_accesses, ok);
  }
}

static gpointer
worker_thread (gpointer data)
{
  (void) data;
  for (;;) {
    WorkItem *item = g_async_queue_pop (work_queue);
    if (item == &stop_item)
      break;
    gint64 wait = item->due_us - g_get_monotonic_time ();
    if (wait > 0)
      g_usleep (wait);
    Frame *frame = item->frame;
    if (item->stripe == 0)
      probe (frame);
    if (opt_unguarded) {
      unguarded_access (frame, item);
      atomic_fetch_add (&accesses_stripes, 1);
      continue;
    }
    GcsResult result = CAPTURE_SAFE_ACCESS (frame->handle, analyze_access, item);
    if (result == GCS_OK) {
      atomic_fetch_add (&accesses_ok, 1);
      atomic_fetch_add (&accesses_stripes, 1);
    } else if (result == GCS_ERROR_RELEASED) {
      atomic_fetch_add (&accesses_rejected, 1); /* the reaper won: a stale handle, refused */
    } else {
      atomic_fetch_add (&accesses_other_errors, 1);
      expect (false, "frame %" G_GUINT64_FORMAT ": access refused with %s: %s", frame->seq,
          gcs_result_to_string (result), gcs_last_error ());
    }
  }
  return NULL;
}

static void
release_frame (Frame *frame)
{
  atomic_store (&frame->unregistering, 1);
  if (opt_unguarded) {
    gst_sample_unref (frame->sample); /* whoever is inside, or about to be */
  } else {
    GcsResult result = gcs_unregister (frame->handle);
    expect (result == GCS_OK, "frame %" G_GUINT64_FORMAT ": gcs_unregister: %s: %s", frame->seq,
        gcs_result_to_string (result), gcs_last_error ());
    /* A worker still inside: the library defers the unref to its exit. */
    if (atomic_load (&frame->in_access) > 0)
      atomic_fetch_add (&releases_while_inside, 1);
  }
  atomic_fetch_add (&releases, 1);
}

/* Releases each sample at its random deadline, racing the workers. */
static gpointer
reaper_thread (gpointer data)
{
  (void) data;
  GPtrArray *pending = g_ptr_array_new ();
  bool draining = false;
  for (;;) {
    gint64 now = g_get_monotonic_time (), next = now + 100000;
    for (guint i = 0; i < pending->len;) {
      Frame *frame = g_ptr_array_index (pending, i);
      if (frame->release_at_us <= now) {
        release_frame (frame);
        g_ptr_array_remove_index_fast (pending, i);
      } else {
        next = MIN (next, frame->release_at_us);
        i++;
      }
    }
    if (draining && pending->len == 0)
      break;
    Frame *frame = g_async_queue_timeout_pop (reaper_queue, MAX (0, next - now));
    if (frame == &stop_frame)
      draining = true;
    else if (frame != NULL)
      g_ptr_array_add (pending, frame);
  }
  g_ptr_array_free (pending, TRUE);
  return NULL;
}

/* ----- progress, summary, metrics ----------------------------------------- */

static GMainLoop *loop;
static gint64 started_us;
static bool interactive;
static guint64 peak_tracked_bytes;
static char *pipeline_error;

typedef struct {
  gint64 at_us;
  guint64 frames, accesses;
} ProgressPoint;
static ProgressPoint last_progress;

static GcsStats
manager_stats (void)
{
  GcsStats stats = { .struct_size = sizeof stats };
  if (manager != NULL)
    gcs_get_stats (manager, &stats);
  return stats;
}

static gboolean
on_progress (gpointer data)
{
  (void) data;
  GcsStats stats = manager_stats ();
  peak_tracked_bytes = MAX (peak_tracked_bytes, stats.tracked_bytes);
  ProgressPoint now = { g_get_monotonic_time (), atomic_load (&frames_registered), atomic_load (&accesses_ok) };
  double seconds = (now.at_us - last_progress.at_us) / 1e6;
  if (interactive && seconds > 0) {
    printf ("\r\033[K%5.1f s  %5.1f frames/s  %8.0f accesses/s  rejected %" G_GUINT64_FORMAT "  live %" G_GUINT64_FORMAT
            "  tracked %.2f MiB",
        (now.at_us - started_us) / 1e6, (now.frames - last_progress.frames) / seconds,
        (now.accesses - last_progress.accesses) / seconds, (guint64) atomic_load (&accesses_rejected),
        opt_unguarded ? (guint64) (atomic_load (&frames_registered) - atomic_load (&samples_freed)) : stats.active,
        (opt_unguarded ? 0 : stats.tracked_bytes) / (1024.0 * 1024.0));
    fflush (stdout);
  }
  last_progress = now;
  return G_SOURCE_CONTINUE;
}

static gboolean
on_stop (gpointer data)
{
  (void) data;
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

static gboolean
on_bus_message (GstBus *bus, GstMessage *message, gpointer data)
{
  (void) bus;
  (void) data;
  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR) {
    GError *error = NULL;
    gchar *debug = NULL;
    gst_message_parse_error (message, &error, &debug);
    if (pipeline_error == NULL)
      pipeline_error = g_strdup_printf ("%s: %s (%s)", GST_OBJECT_NAME (message->src), error->message,
          debug ? debug : "no details");
    g_clear_error (&error);
    g_free (debug);
    g_main_loop_quit (loop);
  } else if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_EOS) {
    atomic_store (&source_ended, 1);
    g_main_loop_quit (loop);
  }
  return G_SOURCE_CONTINUE;
}

/* The demo's own metrics, appended to the library's: the same names in the
 * Go demo (bindings/go/examples/capture). */
static void
write_capture_metrics (GString *out, double elapsed)
{
  struct {
    const char *name, *type, *help;
    double value;
  } metrics[] = {
    { "gcs_capture_frames_total", "counter", "Samples pulled from the appsink and registered.",
      (double) atomic_load (&frames_registered) },
    { "gcs_capture_accesses_ok_total", "counter", "Sample accesses that ran.", (double) atomic_load (&accesses_ok) },
    { "gcs_capture_accesses_rejected_total", "counter", "Sample accesses refused: the sample was released.",
      (double) atomic_load (&accesses_rejected) },
    { "gcs_capture_releases_total", "counter", "Samples released by the reaper.", (double) atomic_load (&releases) },
    { "gcs_capture_samples_completed_total", "counter", "Samples finalized with every stripe analysed.",
      (double) atomic_load (&samples_completed) },
    { "gcs_capture_samples_freed_total", "counter", "Samples freed (weak reference notifications).",
      (double) atomic_load (&samples_freed) },
    { "gcs_capture_use_after_free_total", "counter", "Accesses that touched a freed sample.",
      (double) atomic_load (&use_after_free) },
    { "gcs_capture_access_cost_nanoseconds", "gauge", "Mean cost of one access, timed in batches on live samples.",
      atomic_load (&probe_accesses) ? (double) atomic_load (&probe_ns) / (double) atomic_load (&probe_accesses) : 0 },
    { "gcs_capture_duration_seconds", "gauge", "How long the capture ran.", elapsed },
    { "gcs_capture_invariants_broken", "gauge", "Invariants that did not hold (0 expected).",
      (double) atomic_load (&invariants_broken) },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (metrics); i++)
    g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n%s %.10g\n", metrics[i].name, metrics[i].help,
        metrics[i].name, metrics[i].type, metrics[i].name, metrics[i].value);
}

static void
count_live (const GcsHandleInfo *info, void *user_data)
{
  (void) info;
  (*(guint64 *) user_data)++;
}

/* ----- main --------------------------------------------------------------- */

static char *
pipeline_description (void)
{
  if (opt_pipeline != NULL)
    return g_strdup (opt_pipeline);
  const char *source = opt_source ? opt_source : "videotestsrc";
  if (strcmp (source, "videotestsrc") == 0)
    return g_strdup ("videotestsrc is-live=true pattern=ball ! "
                     "video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! appsink name=sink");
  if (strcmp (source, "ximagesrc") == 0)
    return g_strdup ("ximagesrc use-damage=false ! video/x-raw,framerate=30/1 ! videoconvert ! "
                     "video/x-raw,format=I420 ! appsink name=sink");
  return g_strdup_printf ("%s ! videoconvert ! video/x-raw,format=I420 ! appsink name=sink", source);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  GOptionContext *context = g_option_context_new ("- a live capture pipeline whose samples threads share by handle");
  g_option_context_set_summary (context,
      "Samples from an appsink are registered with gcsafety, analysed by worker threads inside\n"
      "accesses, and released by a reaper thread racing them. Exits non-zero if an invariant broke.");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_group (context, gst_init_get_option_group ());
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    fprintf (stderr, "gcs-capture-demo: %s (see --help)\n", error->message);
    return 2;
  }
  g_option_context_free (context);
  if (opt_workers < 1 || opt_workers > 256 || opt_stripes < 1 || opt_stripes > MAX_STRIPES || opt_duration <= 0
      || opt_max_delay_ms < 0 || opt_max_delay_ms > 60000) {
    fprintf (stderr, "gcs-capture-demo: --workers 1..256, --stripes 1..%d, --duration > 0, --max-delay 0..60000\n",
        MAX_STRIPES);
    return 2;
  }
  gst_init (&argc, &argv);
  g_log_set_default_handler (on_glib_log, NULL);
  if (gcs_abi_version () != GCS_ABI_VERSION) {
    fprintf (stderr, "gcs-capture-demo: libgcsafety ABI %u, header %d\n", gcs_abi_version (), GCS_ABI_VERSION);
    return 2;
  }
  interactive = isatty (STDOUT_FILENO);
  const char *metrics_path = opt_metrics ? opt_metrics : "capture-metrics.prom";
  guint32 seed = opt_seed ? (guint32) opt_seed : (guint32) g_get_real_time ();

  char *description = pipeline_description ();
  GstElement *pipeline = gst_parse_launch (description, &error);
  if (pipeline == NULL) {
    fprintf (stderr, "gcs-capture-demo: cannot build the pipeline \"%s\": %s\n", description, error->message);
    return 2;
  }
  g_clear_error (&error); /* a recoverable warning */
  appsink = GST_IS_BIN (pipeline) ? gst_bin_get_by_name (GST_BIN (pipeline), "sink") : NULL;
  if (appsink == NULL || !GST_IS_APP_SINK (appsink)) {
    fprintf (stderr, "gcs-capture-demo: the pipeline needs an appsink named sink (... ! appsink name=sink)\n");
    return 2;
  }
  g_object_set (appsink, "max-buffers", 8, "drop", TRUE, NULL);

  if (!opt_unguarded) {
    GcsConfig config;
    gcs_config_init (&config);
    GcsResult result = gcs_manager_new (&config, &manager);
    if (result != GCS_OK) {
      fprintf (stderr, "gcs-capture-demo: gcs_manager_new: %s\n", gcs_last_error ());
      return 2;
    }
  }

  printf ("gcs-capture-demo: %s, %d workers, %d accesses per frame, releases after 0..%d ms, %.1f s%s\n",
      opt_unguarded ? "UNGUARDED (raw pointers, manual refcounts)" : "guarded by " CAPTURE_ACCESS_NAME, opt_workers,
      opt_stripes, opt_max_delay_ms, opt_duration, interactive ? " (Ctrl-C stops)" : "");
  printf ("  pipeline: %s\n", description);
  fflush (stdout);

  /* A pipeline that cannot start (ximagesrc without an X display, say) is
   * not an invariant: say why and stop. */
  GstBus *bus = gst_element_get_bus (pipeline);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    GstMessage *message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    GError *failure = NULL;
    if (message != NULL)
      gst_message_parse_error (message, &failure, NULL);
    fprintf (stderr, "gcs-capture-demo: the pipeline cannot start: %s%s\n",
        failure ? failure->message : "it refused to go to PLAYING",
        opt_source && strcmp (opt_source, "ximagesrc") == 0 ? " (ximagesrc needs an X display: DISPLAY)" : "");
    g_clear_error (&failure);
    if (message != NULL)
      gst_message_unref (message);
    gst_element_set_state (pipeline, GST_STATE_NULL);
    return 2;
  }

  frames = g_ptr_array_new ();
  formats = g_ptr_array_new ();
  work_queue = g_async_queue_new ();
  reaper_queue = g_async_queue_new ();
  GRand *rand = g_rand_new_with_seed (seed);
  GThread **workers = g_new0 (GThread *, opt_workers);
  for (int i = 0; i < opt_workers; i++)
    workers[i] = g_thread_new ("capture-worker", worker_thread, NULL);
  GThread *reaper = g_thread_new ("capture-reaper", reaper_thread, NULL);
  GThread *puller = g_thread_new ("capture-pull", pull_thread, rand);

  loop = g_main_loop_new (NULL, FALSE);
  gst_bus_add_watch (bus, on_bus_message, NULL);
  started_us = last_progress.at_us = g_get_monotonic_time ();
  g_timeout_add (250, on_progress, NULL);
  g_timeout_add ((guint) (opt_duration * 1000), on_stop, NULL);
  g_unix_signal_add (SIGINT, on_stop, NULL);
  g_unix_signal_add (SIGTERM, on_stop, NULL);
  if (pipeline_error == NULL)
    g_main_loop_run (loop);
  double elapsed = (g_get_monotonic_time () - started_us) / 1e6;
  on_progress (NULL);
  if (interactive)
    printf ("\n");

  /* Stop: no more samples; the workers finish what is queued; the reaper
   * releases the rest at their deadlines; wait for every sample to be freed. */
  atomic_store (&stop_pulling, 1);
  g_thread_join (puller);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  for (int i = 0; i < opt_workers; i++)
    g_async_queue_push_sorted (work_queue, &stop_item, by_due_time, NULL);
  for (int i = 0; i < opt_workers; i++)
    g_thread_join (workers[i]);
  g_async_queue_push (reaper_queue, &stop_frame);
  g_thread_join (reaper);

  guint64 registered = atomic_load (&frames_registered);
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND; /* generous: a liveness bound */
  g_mutex_lock (&freed_lock);
  while (atomic_load (&samples_freed) < registered && g_cond_wait_until (&freed_cond, &freed_lock, deadline))
    ;
  g_mutex_unlock (&freed_lock);

  /* ----- the invariants ----- */
  GcsStats stats = manager_stats ();
  guint64 live = 0;
  if (!opt_unguarded) {
    /* The library counts a release just after the reference drops: wait
     * (bounded) until its statistics are settled. */
    while (stats.released < stats.total_registered && g_get_monotonic_time () < deadline) {
      g_usleep (1000);
      stats = manager_stats ();
    }
    gcs_foreach_live (manager, count_live, &live);
  }
  guint64 freed = atomic_load (&samples_freed);
  expect (pipeline_error == NULL, "the pipeline failed: %s", pipeline_error ? pipeline_error : "");
  expect (registered > 0, "no frame came out of the pipeline");
  expect (freed == registered, "%" G_GUINT64_FORMAT " samples registered, %" G_GUINT64_FORMAT " freed",
      registered, freed);
  for (guint i = 0; i < frames->len; i++) {
    Frame *frame = g_ptr_array_index (frames, i);
    expect (atomic_load (&frame->freed) == 1, "frame %u: freed %d times", i, atomic_load (&frame->freed));
    if (!opt_unguarded)
      expect (atomic_load (&frame->finalizer_runs) == 1, "frame %u: finalizer ran %d times", i,
          atomic_load (&frame->finalizer_runs));
  }
  expect (atomic_load (&use_after_free) == 0, "%" G_GUINT64_FORMAT " accesses touched a freed sample",
      (guint64) atomic_load (&use_after_free));
  expect (atomic_load (&map_failures) == 0, "%" G_GUINT64_FORMAT " buffers could not be mapped",
      (guint64) atomic_load (&map_failures));
  expect (atomic_load (&glib_warnings) == 0, "%d GLib/GStreamer warnings or criticals", atomic_load (&glib_warnings));
  if (!opt_unguarded) {
    expect (atomic_load (&accesses_other_errors) == 0, "accesses refused for another reason than a stale handle");
    expect (live == 0 && stats.active == 0, "leaks: %" G_GUINT64_FORMAT " handles still live", live);
    expect (stats.tracked_bytes == 0, "%" G_GUINT64_FORMAT " bytes still tracked", stats.tracked_bytes);
    expect (stats.total_registered == registered && stats.released == registered,
        "library: %" G_GUINT64_FORMAT " registered, %" G_GUINT64_FORMAT " released; demo: %" G_GUINT64_FORMAT,
        stats.total_registered, stats.released, registered);
    expect (stats.finalizers_run == registered && atomic_load (&finalizers_run) == registered
                && stats.finalizer_failures == 0 && stats.finalizer_timeouts == 0,
        "finalizers: library %" G_GUINT64_FORMAT " run, %" G_GUINT64_FORMAT " failed, %" G_GUINT64_FORMAT
        " timed out; demo counted %" G_GUINT64_FORMAT,
        stats.finalizers_run, stats.finalizer_failures, stats.finalizer_timeouts,
        (guint64) atomic_load (&finalizers_run));
    expect ((CAPTURE_LIBRARY_COUNTS_OK ? stats.access_ok == atomic_load (&accesses_ok) : stats.access_ok == 0)
                && stats.access_rejected == atomic_load (&accesses_rejected),
        "accesses: library %" G_GUINT64_FORMAT " ok, %" G_GUINT64_FORMAT " rejected; demo %" G_GUINT64_FORMAT
        " ok, %" G_GUINT64_FORMAT " rejected",
        stats.access_ok, stats.access_rejected, (guint64) atomic_load (&accesses_ok),
        (guint64) atomic_load (&accesses_rejected));
  }

  /* ----- Prometheus text ----- */
  GString *text = g_string_new (NULL);
  if (!opt_unguarded) {
    size_t length = gcs_stats_prometheus (manager, NULL, 0);
    char *buffer = g_malloc (length + 1);
    gcs_stats_prometheus (manager, buffer, length + 1);
    g_string_append (text, buffer);
    g_free (buffer);
  }
  write_capture_metrics (text, elapsed);
  if (!g_file_set_contents (metrics_path, text->str, (gssize) text->len, &error)) {
    expect (false, "cannot write %s: %s", metrics_path, error->message);
    g_clear_error (&error);
  }
  g_string_free (text, TRUE);

  /* ----- the summary ----- */
  guint64 ok = atomic_load (&accesses_ok), probes = atomic_load (&probe_accesses);
  double cost = probes ? (double) atomic_load (&probe_ns) / (double) probes : 0;
  const Format *format = formats->len ? g_ptr_array_index (formats, formats->len - 1) : NULL;
  int broken = atomic_load (&invariants_broken);
  printf ("\nsummary (%s)\n", opt_unguarded ? "unguarded" : "guarded");
  printf ("  %-22s %.1f s%s\n", "duration:", elapsed, atomic_load (&source_ended) ? " (the source ended)" : "");
  printf ("  %-22s %" G_GUINT64_FORMAT " (%.1f/s), %s\n", "frames:", registered, registered / elapsed,
      format ? format->description : "none");
  printf ("  %-22s %" G_GUINT64_FORMAT " (%.0f/s: %" G_GUINT64_FORMAT " stripe analyses, %" G_GUINT64_FORMAT
          " timed)\n", "accesses ok:", ok, ok / elapsed, (guint64) atomic_load (&accesses_stripes), probes);
  printf ("  %-22s %" G_GUINT64_FORMAT " (stale handles: the reaper released the sample first)\n",
      "accesses rejected:", (guint64) atomic_load (&accesses_rejected));
  printf ("  %-22s %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " while a worker was inside: the unref waited for it)\n",
      "releases:", (guint64) atomic_load (&releases), (guint64) atomic_load (&releases_while_inside));
  printf ("  %-22s %" G_GUINT64_FORMAT " run, %" G_GUINT64_FORMAT " failed (%" G_GUINT64_FORMAT
          " samples completed, %" G_GUINT64_FORMAT " cut short)\n",
      "finalizers:", opt_unguarded ? 0 : stats.finalizers_run, stats.finalizer_failures,
      (guint64) atomic_load (&samples_completed), (guint64) atomic_load (&samples_cut_short));
  printf ("  %-22s %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " (weak references)\n", "samples freed:", freed,
      registered);
  printf ("  %-22s %" G_GUINT64_FORMAT "\n", "use after free:", (guint64) atomic_load (&use_after_free));
  printf ("  %-22s %" G_GUINT64_FORMAT "\n", "peak live handles:", stats.peak_active);
  printf ("  %-22s %.2f MiB at the peak, %" G_GUINT64_FORMAT " bytes at the end\n", "tracked:",
      MAX (peak_tracked_bytes, atomic_load (&bytes_live_peak)) / (1024.0 * 1024.0), stats.tracked_bytes);
  printf ("  %-22s %" G_GUINT64_FORMAT "\n", "leaks:", opt_unguarded ? registered - freed : live + stats.active);
  if (luma_pixels)
    printf ("  %-22s %.2f (complete frames); last frame's checksum 0x%08x\n",
        format && format->luma_plane ? "mean luma:" : "mean byte value:",
        (double) atomic_load (&luma_total) / (double) atomic_load (&luma_pixels), last_complete_checksum);
  printf ("  %-22s %.1f ns per %s (%" G_GUINT64_FORMAT " accesses timed in batches of %d, empty callback)\n",
      "cost per access:", cost, opt_unguarded ? "gst_sample_ref+unref" : CAPTURE_ACCESS_NAME, probes, PROBE_BATCH);
  printf ("  %-22s %d\n", "glib warnings:", atomic_load (&glib_warnings));
  printf ("  %-22s %s\n", "prometheus text:", metrics_path);
  printf ("  %-22s %s\n", "result:", broken == 0 ? "PASS (every invariant held)" : "FAIL");
  if (broken)
    printf ("  %d invariant(s) broken: see the messages above\n", broken);

  /* ----- clean up ----- */
  for (guint i = 0; i < frames->len; i++)
    g_free (g_ptr_array_index (frames, i));
  for (guint i = 0; i < formats->len; i++) {
    Format *f = g_ptr_array_index (formats, i);
    if (f->caps)
      gst_caps_unref (f->caps);
    g_free (f);
  }
  g_ptr_array_free (frames, TRUE);
  g_ptr_array_free (formats, TRUE);
  gcs_manager_free (manager);
  gst_bus_remove_watch (bus);
  gst_object_unref (bus);
  gst_object_unref (appsink);
  gst_object_unref (pipeline);
  g_async_queue_unref (work_queue);
  g_async_queue_unref (reaper_queue);
  g_main_loop_unref (loop);
  g_rand_free (rand);
  g_free (workers);
  g_free (description);
  g_free (pipeline_error);
  return broken == 0 ? 0 : 1;
}

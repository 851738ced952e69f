/* examples/demo.c: gcsafety in a real GStreamer program.
 *
 * Run it with scripts/demo.sh, or by hand:
 *
 *   scripts/install.sh --uninstalled        # builds, writes target/pkgconfig/gcsafety.pc
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Werror examples/demo.c -o demo \
 *      $(PKG_CONFIG_PATH=target/pkgconfig pkg-config --cflags --libs gcsafety gstreamer-1.0)
 *   ./demo
 *
 * The story. A live pipeline (videotestsrc ! capsfilter ! fakesink) hands its
 * frames to the application, which keeps some of them as GstSamples, the way
 * a Go program or a plugin keeps samples from an appsink. Everything the
 * application shares between threads (the pipeline, two of its elements, the
 * samples, a GstBuffer of its own) is registered with gcsafety; from then on
 * threads know each object only by its handle, a 64-bit number that is never
 * a pointer. Worker threads use the handles while the main thread releases
 * them, and each classic way of crashing is tried: using an object after its
 * release, releasing twice, releasing while another thread is inside the
 * object, passing a forged handle, and disposing a PLAYING pipeline.
 *
 * Weak references (g_object_weak_ref, gst_mini_object_weak_ref) watch every
 * object, so the program can check what it claims: each object is finalized
 * exactly once, never while registered, at the moment and on the thread the
 * library promises. It exits 0 only if every claim held.
 */

#include <gcsafety.h>
#include <gst/gst.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define N_FRAMES 8
#define N_WORKERS 4
#define FRAME_CAPS "video/x-raw,format=GRAY8,width=160,height=120,framerate=60/1"

/* ----- what the program watches ------------------------------------------ */

typedef enum { ITEM_ELEMENT, ITEM_SAMPLE, ITEM_BUFFER } ItemKind;

/* One registered object. Only the fields marked atomic are touched by more
 * than one thread while the workers run. */
typedef struct {
  char name[16];                      /* its instance name in gcsafety's messages */
  ItemKind kind;
  GcsHandle handle;
  guint64 byte_sum;                   /* frames: sum of their bytes, to verify reads */
  atomic_bool retired;                /* main has unregistered or invalidated it */
  atomic_int finalized;               /* times a weak ref saw it finalized (want: 1) */
  atomic_int finalized_while_registered;
  _Atomic(const char *) finalized_on; /* the thread it was finalized on */
  atomic_int state_at_dispose;        /* elements: their GstState when disposed */
  atomic_long refusals;               /* worker accesses refused */
} Item;

enum { PIPELINE, SRC, SINK, FRAME0, OVERLAY = FRAME0 + N_FRAMES, N_ITEMS };
static Item items[N_ITEMS];

/* The name of the current thread, for "finalized on ..." */
static _Thread_local const char *thread_label = "a streaming thread";

static atomic_int failures;

/* Every claim the demo makes goes through here. */
G_GNUC_PRINTF (2, 3) static void
expect (bool ok, const char *format, ...)
{
  if (ok)
    return;
  va_list args;
  va_start (args, format);
  printf ("  !! CLAIM FAILED: ");
  vprintf (format, args);
  printf ("\n");
  va_end (args);
  atomic_fetch_add (&failures, 1);
}

/* The enum's name, for the narrative (gcs_result_to_string gives a phrase). */
static const char *
result_name (GcsResult result)
{
  static const char *const names[] = { "GCS_OK", "GCS_ERROR_INVALID_HANDLE", "GCS_ERROR_RELEASED",
    "GCS_ERROR_INVALIDATED", "GCS_ERROR_NULL_ARGUMENT", "GCS_ERROR_WRONG_TYPE", "GCS_ERROR_CALLBACK_FAILED",
    "GCS_ERROR_PANIC", "GCS_ERROR_TABLE_FULL", "GCS_ERROR_SHUT_DOWN", "GCS_ERROR_TIMEOUT",
    "GCS_ERROR_WOULD_DEADLOCK", "GCS_ERROR_NOT_ACCESSING", "GCS_ERROR_INVALID_ARGUMENT",
    "GCS_ERROR_ALREADY_INITIALIZED" };
  return result <= 0 && -result < (int) G_N_ELEMENTS (names) ? names[-result] : gcs_result_to_string (result);
}

static double
ms_since (gint64 start_us)
{
  return (g_get_monotonic_time () - start_us) / 1000.0;
}

/* GLib and GStreamer report misuse (such as disposing a PLAYING element)
 * with g_warning/g_critical: count them; there must be none. */
static atomic_int glib_warnings;

static void
on_glib_log (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) {
    atomic_fetch_add (&glib_warnings, 1);
    printf ("  !! %s: %s\n", domain ? domain : "(app)", message);
  }
  g_log_default_handler (domain, level, message, user_data);
}

/* ----- weak references: when, and on which thread, objects die ----------- */

static void
note_finalized (Item *item)
{
  atomic_fetch_add (&item->finalized, 1);
  atomic_store (&item->finalized_on, thread_label);
  if (!atomic_load (&item->retired))
    atomic_fetch_add (&item->finalized_while_registered, 1);
}

static void
on_element_finalized (gpointer data, GObject *where_the_object_was)
{
  Item *item = data;
  atomic_store (&item->state_at_dispose, GST_STATE (where_the_object_was));
  note_finalized (item);
}

static void
on_mini_object_finalized (gpointer data, GstMiniObject *object)
{
  (void) object;
  note_finalized ((Item *) data);
}

/* ----- registering -------------------------------------------------------- */

/* gcs_register_full: any kind, with an instance name for messages and a size
 * for accounting. The registration takes its own reference (a floating one
 * is sunk), so the caller may drop its own. */
static void
register_item (Item *item, GcsObjectKind kind, void *object, uint64_t size, uint32_t flags)
{
  GcsRegistration registration = {
    .struct_size = sizeof registration,
    .kind = kind,
    .object = object,
    .instance_name = item->name,
    .size_bytes = size,
    .flags = flags,
  };
  GcsResult result = gcs_register_full (&registration, &item->handle);
  if (result != GCS_OK) {
    printf ("gcs_register_full(%s): %s: %s\n", item->name, gcs_result_to_string (result), gcs_last_error ());
    exit (1);
  }
}

static guint64
buffer_sum (GstBuffer *buffer)
{
  GstMapInfo map;
  guint64 sum = 0;
  if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
    return G_MAXUINT64;
  for (gsize i = 0; i < map.size; i++)
    sum += map.data[i];
  gst_buffer_unmap (buffer, &map);
  return sum;
}

/* fakesink's "handoff", on the streaming thread: keep the first frames as
 * samples (buffer + caps, what appsink hands out), registered. */
static GMutex frames_lock;
static GCond frames_arrived;
static int frames_kept;

static void
on_handoff (GstElement *sink, GstBuffer *buffer, GstPad *pad, gpointer user_data)
{
  (void) sink;
  (void) user_data;
  g_mutex_lock (&frames_lock);
  int index = frames_kept;
  g_mutex_unlock (&frames_lock);
  if (index >= N_FRAMES)
    return;

  GstCaps *caps = gst_pad_get_current_caps (pad);
  GstSample *sample = gst_sample_new (buffer, caps, NULL, NULL);
  gst_caps_unref (caps);

  Item *item = &items[FRAME0 + index];
  item->byte_sum = buffer_sum (buffer);
  gst_mini_object_weak_ref (GST_MINI_OBJECT_CAST (sample), on_mini_object_finalized, item);
  register_item (item, GCS_KIND_MINI_OBJECT, sample, gst_buffer_get_size (buffer), GCS_REGISTER_NONE);
  gst_sample_unref (sample); /* ours: from now on the handle keeps it alive */

  g_mutex_lock (&frames_lock);
  frames_kept++;
  g_cond_signal (&frames_arrived);
  g_mutex_unlock (&frames_lock);
}

/* ----- access callbacks: they run while gcsafety guarantees the object ---- */

static int
set_playing (void *object, void *user_data)
{
  (void) user_data;
  return gst_element_set_state (GST_ELEMENT (object), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE;
}

/* Workers on elements: is it the object we registered? (0 = yes) */
static int
check_element (void *object, void *user_data)
{
  Item *item = user_data;
  GST_OBJECT_LOCK (object);
  bool same = strcmp (GST_OBJECT_NAME (object), item->name) == 0;
  GST_OBJECT_UNLOCK (object);
  return same ? 0 : 1;
}

/* Workers on frames: map the buffer and sum its bytes; a freed or recycled
 * buffer would not add up. (0 = intact) */
static int
check_frame (void *object, void *user_data)
{
  Item *item = user_data;
  GstBuffer *buffer = item->kind == ITEM_SAMPLE ? gst_sample_get_buffer (object) : object;
  return buffer_sum (buffer) == item->byte_sum ? 0 : 1;
}

/* ----- workers ------------------------------------------------------------ */

typedef struct {
  const char *label;
  GThread *thread;
  guint32 random;
  long ok, refused_released, refused_invalidated, unexpected;
  char last_refusal[256]; /* the latest "released ... ago" message */
  char first_unexpected[256];
} Worker;

static atomic_bool workers_stop;

/* The same check as a callback, with gcs_access_begin/end: for code that
 * cannot be a callback (RAII wrappers, cgo). The object is valid until the
 * matching end, which could even run on another thread. */
static GcsResult
check_frame_begin_end (Item *item)
{
  void *object;
  GcsResult result = gcs_access_begin (item->handle, &object);
  if (result != GCS_OK)
    return result;
  int bad = check_frame (object, item);
  if (gcs_access_end (item->handle) != GCS_OK)
    return GCS_ERROR_NOT_ACCESSING;
  return bad ? GCS_ERROR_CALLBACK_FAILED : GCS_OK;
}

static gpointer
worker_main (gpointer data)
{
  Worker *worker = data;
  thread_label = worker->label;
  for (long n = 0; !atomic_load (&workers_stop); n++) {
    worker->random = worker->random * 1103515245u + 12345u;
    Item *item = &items[(worker->random >> 8) % N_ITEMS];
    GcsResult result;
    if (item->kind == ITEM_ELEMENT)
      result = gcs_safe_access (item->handle, check_element, item);
    else if (n % 2)
      result = gcs_safe_access (item->handle, check_frame, item);
    else
      result = check_frame_begin_end (item);

    if (result == GCS_OK) {
      worker->ok++;
      continue;
    }
    const char *message = gcs_last_error (); /* this thread's, for this failure */
    if ((result == GCS_ERROR_RELEASED || result == GCS_ERROR_INVALIDATED) &&
        strstr (message, "not valid for access")) {
      atomic_fetch_add (&item->refusals, 1);
      if (result == GCS_ERROR_RELEASED) {
        worker->refused_released++;
        if (strstr (message, "released"))
          g_strlcpy (worker->last_refusal, message, sizeof worker->last_refusal);
      } else {
        worker->refused_invalidated++;
      }
    } else {
      if (!worker->unexpected++)
        g_snprintf (worker->first_unexpected, sizeof worker->first_unexpected, "%s on %s: %s",
            result_name (result), item->name, message);
    }
  }
  return NULL;
}

/* ----- the overlay buffer: release on the thread that ends the last access */

static GAsyncQueue *to_holder, *to_main;

static gpointer
holder_main (gpointer data)
{
  Item *item = data;
  void *object;
  thread_label = "holder";
  GcsResult begun = gcs_access_begin (item->handle, &object);
  g_async_queue_push (to_main, GINT_TO_POINTER (begun == GCS_OK ? 1 : 2));
  if (begun != GCS_OK)
    return NULL;
  g_async_queue_pop (to_holder); /* main unregisters meanwhile */
  expect (check_frame (object, item) == 0, "the overlay is intact while our access is in flight");
  expect (gcs_access_end (item->handle) == GCS_OK, "gcs_access_end(overlay) succeeds");
  return NULL;
}

/* ----- re-entrance: a callback that unregisters its own handle ----------- */

static int
unregister_self (void *object, void *user_data)
{
  Item *item = user_data;
  (void) object;
  GcsResult sync = gcs_unregister_sync (item->handle, 1000);
  printf ("  inside its own access, gcs_unregister_sync(%s) -> %s (nothing changed)\n", item->name,
      result_name (sync));
  expect (sync == GCS_ERROR_WOULD_DEADLOCK, "unregister_sync inside its own access is refused");
  expect (gcs_unregister (item->handle) == GCS_OK, "gcs_unregister inside its own access is allowed");
  expect (atomic_load (&item->finalized) == 0, "%s stays alive until the callback returns", item->name);
  return 0;
}

static const char *
state_name (GcsHandleState state)
{
  switch (state) {
    case GCS_STATE_LIVE: return "LIVE";
    case GCS_STATE_INVALIDATED: return "INVALIDATED";
    case GCS_STATE_RELEASING: return "RELEASING";
    case GCS_STATE_RELEASED: return "RELEASED";
    default: return "?";
  }
}

static void
print_info (Item *item, GcsHandleState expected)
{
  GcsHandleInfo info = { .struct_size = sizeof info };
  GcsResult result = gcs_get_info (item->handle, &info);
  expect (result == GCS_OK && info.state == expected, "gcs_get_info(%s) reports %s", item->name,
      state_name (expected));
  if (result != GCS_OK)
    return;
  printf ("  gcs_get_info(%s): %s, %s '%s', %" PRIu64 " bytes, %u in flight, age %" PRIu64 " ms",
      item->name, state_name (info.state), info.type_name, info.instance_name ? info.instance_name : "",
      info.size_bytes, info.accesses_in_flight, info.age_ms);
  if (info.state == GCS_STATE_RELEASED)
    printf (", released %" PRIu64 " ms ago", info.released_ms_ago);
  printf ("\n");
}

/* Unregister (never blocks) and mark the item, for the weak-ref check. */
static GcsResult
retire (Item *item)
{
  atomic_store (&item->retired, true);
  return gcs_unregister (item->handle);
}

static int
must_not_run (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  expect (false, "a refused access does not call its callback");
  return 0;
}

/* An access that must be refused with `expected`: print why. */
static void
expect_refusal (const char *what, GcsHandle handle, GcsResult expected)
{
  GcsResult result = gcs_safe_access (handle, must_not_run, NULL);
  printf ("  %-29s -> %s\n      \"%s\"\n", what, result_name (result), gcs_last_error ());
  expect (result == expected, "%s is refused with %s", what, result_name (expected));
}

static int
read_element (void *object, void *user_data)
{
  int *out = user_data; /* refcount, then state */
  out[0] = GST_OBJECT_REFCOUNT_VALUE (object);
  out[1] = GST_STATE (object);
  return 0;
}

/* ----- the steps ------------------------------------------------------------ */

static void
name_items (void)
{
  g_strlcpy (items[PIPELINE].name, "demo-pipeline", sizeof items[PIPELINE].name);
  g_strlcpy (items[SRC].name, "src", sizeof items[SRC].name);
  g_strlcpy (items[SINK].name, "sink", sizeof items[SINK].name);
  g_strlcpy (items[OVERLAY].name, "overlay", sizeof items[OVERLAY].name);
  items[OVERLAY].kind = ITEM_BUFFER;
  for (int i = FRAME0; i < OVERLAY; i++) {
    g_snprintf (items[i].name, sizeof items[i].name, "frame-%d", i - FRAME0);
    items[i].kind = ITEM_SAMPLE;
  }
}

/* 1. Build videotestsrc ! capsfilter ! fakesink, register the pipeline and
 * two elements, start it. Returns the pipeline's address (for step 5 only:
 * from here on the program reaches its objects through handles). */
static GstElement *
register_pipeline (void)
{
  printf ("\n1. Register a live pipeline and two of its elements\n");
  GstElement *pipeline = gst_pipeline_new ("demo-pipeline"); /* floating */
  GstElement *src = gst_element_factory_make ("videotestsrc", "src");
  GstElement *filter = gst_element_factory_make ("capsfilter", "filter");
  GstElement *sink = gst_element_factory_make ("fakesink", "sink");
  if (!src || !filter || !sink) {
    printf ("missing GStreamer plugins (videotestsrc, capsfilter, fakesink): run scripts/setup.sh\n");
    exit (1);
  }
  GstCaps *caps = gst_caps_from_string (FRAME_CAPS);
  g_object_set (src, "is-live", TRUE, NULL);
  g_object_set (filter, "caps", caps, NULL);
  gst_caps_unref (caps);
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), NULL);
  gst_bin_add_many (GST_BIN (pipeline), src, filter, sink, NULL); /* the bin sinks them */
  if (!gst_element_link_many (src, filter, sink, NULL))
    exit (1);
  g_object_weak_ref (G_OBJECT (pipeline), on_element_finalized, &items[PIPELINE]);
  g_object_weak_ref (G_OBJECT (src), on_element_finalized, &items[SRC]);
  g_object_weak_ref (G_OBJECT (sink), on_element_finalized, &items[SINK]);

  /* The pipeline's floating reference becomes the registration's: nobody
   * else owns it. SET_NULL_STATE: its release will set it to NULL first. */
  register_item (&items[PIPELINE], GCS_KIND_GST_OBJECT, pipeline, 0, GCS_REGISTER_SET_NULL_STATE);
  expect (!g_object_is_floating (pipeline) && GST_OBJECT_REFCOUNT_VALUE (pipeline) == 1,
      "the pipeline's floating reference was sunk into the registration");
  printf ("  %-13s %-16s handle 0x%016" PRIx64 "  refcount %d: the handle owns it (floating ref sunk)\n",
      "demo-pipeline", "GstPipeline", items[PIPELINE].handle, GST_OBJECT_REFCOUNT_VALUE (pipeline));

  register_item (&items[SRC], GCS_KIND_GST_OBJECT, src, 0, GCS_REGISTER_NONE);
  /* The simplest call: a GstObject, its GType name, no instance name. */
  if (gcs_register (sink, NULL, &items[SINK].handle) != GCS_OK)
    exit (1);
  expect (GST_OBJECT_REFCOUNT_VALUE (src) == 2 && GST_OBJECT_REFCOUNT_VALUE (sink) == 2,
      "registering an owned element adds a reference");
  printf ("  %-13s %-16s handle 0x%016" PRIx64 "  refcount 2: the bin's and the handle's\n", "src",
      G_OBJECT_TYPE_NAME (src), items[SRC].handle);
  printf ("  %-13s %-16s handle 0x%016" PRIx64 "  refcount 2 (gcs_register: no instance name)\n", "sink",
      G_OBJECT_TYPE_NAME (sink), items[SINK].handle);

  expect (gcs_safe_access (items[PIPELINE].handle, set_playing, NULL) == GCS_OK, "the pipeline starts");
  return pipeline;
}

/* 2. Wait for the streaming thread to register the frames (on_handoff); add
 * a GstBuffer of our own. */
static void
register_frames (void)
{
  g_mutex_lock (&frames_lock);
  gint64 deadline = g_get_monotonic_time () + 5 * G_TIME_SPAN_SECOND;
  while (frames_kept < N_FRAMES)
    if (!g_cond_wait_until (&frames_arrived, &frames_lock, deadline)) {
      printf ("no frames from the pipeline after 5 s\n");
      exit (1);
    }
  g_mutex_unlock (&frames_lock);

  GstBuffer *overlay = gst_buffer_new_allocate (NULL, 4096, NULL);
  gst_buffer_memset (overlay, 0, 0x5a, 4096);
  items[OVERLAY].byte_sum = buffer_sum (overlay);
  gst_mini_object_weak_ref (GST_MINI_OBJECT_CAST (overlay), on_mini_object_finalized, &items[OVERLAY]);
  register_item (&items[OVERLAY], GCS_KIND_MINI_OBJECT, overlay, 4096, GCS_REGISTER_NONE);
  gst_buffer_unref (overlay);
  printf ("\n2. PLAYING; the streaming thread registered %d frames as GstSamples (GCS_KIND_MINI_OBJECT,\n"
          "   %d bytes each) and dropped its references: only the handles keep them alive.\n"
          "   Plus one GstBuffer of our own, 'overlay' (4096 bytes).\n",
      N_FRAMES, 160 * 120);
}

/* 3. Workers use every handle while main releases some of them. */
static Worker workers[N_WORKERS];

static void
release_under_load (void)
{
  static const char *const labels[N_WORKERS] = { "worker-0", "worker-1", "worker-2", "worker-3" };
  printf ("\n3. %d workers access every handle (gcs_safe_access, gcs_access_begin/end) while main:\n",
      N_WORKERS);
  for (int i = 0; i < N_WORKERS; i++) {
    workers[i].label = labels[i];
    workers[i].random = 2654435761u * (i + 1);
    workers[i].thread = g_thread_new (labels[i], worker_main, &workers[i]);
  }
  g_usleep (50 * 1000);

  gint64 slowest = 0;
  for (int i = FRAME0; i < FRAME0 + 3; i++) {
    gint64 start = g_get_monotonic_time ();
    expect (retire (&items[i]) == GCS_OK, "gcs_unregister(%s) succeeds", items[i].name);
    slowest = MAX (slowest, g_get_monotonic_time () - start);
  }
  printf ("   - gcs_unregister(frame-0, frame-1, frame-2): each returned at once (slowest: %" G_GINT64_FORMAT
          " us)\n", slowest);
  g_usleep (30 * 1000);

  Item *frame3 = &items[FRAME0 + 3];
  atomic_store (&frame3->retired, true);
  GcsResult sync = gcs_unregister_sync (frame3->handle, 2000);
  expect (sync == GCS_OK && atomic_load (&frame3->finalized) == 1,
      "gcs_unregister_sync returns after the release: frame-3 is finalized");
  printf ("   - gcs_unregister_sync(frame-3) -> %s: frame-3 was finalized (on %s) before it returned\n",
      result_name (sync), atomic_load (&frame3->finalized_on));
  g_usleep (30 * 1000);

  Item *frame4 = &items[FRAME0 + 4];
  atomic_store (&frame4->retired, true);
  expect (gcs_invalidate (frame4->handle) == GCS_OK, "gcs_invalidate(frame-4) succeeds");
  printf ("   - gcs_invalidate(frame-4): accesses refused from now on, registration kept\n");
  g_usleep (30 * 1000);

  /* The pipeline is PLAYING and workers are inside it. Its release sets it
   * to NULL (GCS_REGISTER_SET_NULL_STATE), then drops the last reference:
   * no "Trying to dispose element ... PLAYING" critical. */
  Item *pipe = &items[PIPELINE];
  atomic_store (&pipe->retired, true);
  gint64 start = g_get_monotonic_time ();
  sync = gcs_unregister_sync (pipe->handle, 2000);
  expect (sync == GCS_OK && atomic_load (&pipe->finalized) == 1,
      "gcs_unregister_sync(pipeline) returns after the pipeline is finalized");
  expect (atomic_load (&pipe->state_at_dispose) == GST_STATE_NULL, "the pipeline was set to NULL before disposal");
  printf ("   - gcs_unregister_sync(demo-pipeline) while PLAYING -> %s in %.1f ms: set to %s\n"
          "     (GCS_REGISTER_SET_NULL_STATE), then finalized on %s\n",
      result_name (sync), ms_since (start), gst_element_state_get_name (atomic_load (&pipe->state_at_dispose)),
      atomic_load (&pipe->finalized_on));
  g_usleep (50 * 1000);

  atomic_store (&workers_stop, true);
  for (int i = 0; i < N_WORKERS; i++)
    g_thread_join (workers[i].thread);

  printf ("   Each released frame was finalized by whoever ended its last access:\n");
  for (int i = FRAME0; i < FRAME0 + 3; i++) {
    const char *on = atomic_load (&items[i].finalized_on);
    expect (atomic_load (&items[i].finalized) == 1, "%s was finalized once its accesses ended", items[i].name);
    printf ("     %s on %s%s\n", items[i].name, on ? on : "(not finalized)",
        on && strcmp (on, "main") ? ", in its gcs_safe_access/gcs_access_end" : ", in gcs_unregister (none in flight)");
  }
  for (int i = 0; i < N_WORKERS; i++)
    if (workers[i].last_refusal[0]) {
      printf ("   %s was refused cleanly: \"%s\"\n", workers[i].label, workers[i].last_refusal);
      break;
    }
}

/* 4. Release on the thread that ends the last access, step by step. */
static void
release_by_the_last_accessor (void)
{
  printf ("\n4. 'holder' is inside the overlay (gcs_access_begin) when main unregisters it\n");
  Item *overlay = &items[OVERLAY];
  to_holder = g_async_queue_new ();
  to_main = g_async_queue_new ();
  GThread *holder = g_thread_new ("holder", holder_main, overlay);
  expect (GPOINTER_TO_INT (g_async_queue_pop (to_main)) == 1, "holder's access begins");
  expect (retire (overlay) == GCS_OK, "gcs_unregister(overlay) returns while an access is in flight");
  printf ("  gcs_unregister(overlay) -> GCS_OK, at once; gcs_is_valid: %s; still alive: %s\n",
      gcs_is_valid (overlay->handle) ? "true" : "false", atomic_load (&overlay->finalized) ? "no" : "yes");
  expect (!gcs_is_valid (overlay->handle) && atomic_load (&overlay->finalized) == 0,
      "an unregistered handle is refused but its object lives while accessed");
  print_info (overlay, GCS_STATE_RELEASING);
  g_async_queue_push (to_holder, GINT_TO_POINTER (1));
  g_thread_join (holder);
  const char *on = atomic_load (&overlay->finalized_on);
  expect (atomic_load (&overlay->finalized) == 1 && on && strcmp (on, "holder") == 0,
      "the overlay is released on the thread that ended the last access");
  printf ("  holder's gcs_access_end released it: finalized on %s\n", on ? on : "(not finalized)");
  g_async_queue_unref (to_holder);
  g_async_queue_unref (to_main);
}

/* 5. Each classic mistake, refused with a code and a message. */
static void
refuse_mistakes (GstElement *old_pipeline_address)
{
  printf ("\n5. What would have crashed is refused\n");
  expect_refusal ("access after release", items[FRAME0 + 1].handle, GCS_ERROR_RELEASED);
  /* The classic cgo bug: a (by now dangling) pointer where a handle belongs.
   * gcsafety never dereferences a handle value. */
  expect_refusal ("the pipeline's old address", (GcsHandle) (uintptr_t) old_pipeline_address,
      GCS_ERROR_INVALID_HANDLE);
  expect_refusal ("a forged handle", UINT64_C (0x0123456789abcdef), GCS_ERROR_INVALID_HANDLE);
  GcsResult twice = gcs_unregister (items[FRAME0].handle);
  printf ("  %-29s -> %s (no double unref)\n", "gcs_unregister(frame-0) again", result_name (twice));
  expect (twice == GCS_ERROR_RELEASED, "a second unregister is refused");
  GcsResult end = gcs_access_end (items[FRAME0 + 6].handle);
  printf ("  %-29s -> %s\n", "gcs_access_end without begin", result_name (end));
  expect (end == GCS_ERROR_NOT_ACCESSING, "an unmatched gcs_access_end is refused");
  print_info (&items[FRAME0 + 4], GCS_STATE_INVALIDATED);
  print_info (&items[FRAME0 + 1], GCS_STATE_RELEASED);
}

/* 6. A callback may unregister its own handle. */
static void
unregister_inside_access (void)
{
  printf ("\n6. A callback unregisters its own handle (frame-5)\n");
  Item *frame5 = &items[FRAME0 + 5];
  atomic_store (&frame5->retired, true);
  expect (gcs_safe_access (frame5->handle, unregister_self, frame5) == GCS_OK, "the access succeeds");
  expect (atomic_load (&frame5->finalized) == 1, "frame-5 is released when its access ends");
  printf ("  gcs_unregister inside it -> GCS_OK; frame-5 was finalized when the access ended\n");
}

/* 7. The elements outlive their pipeline; release everything left. */
static void
release_the_rest (void)
{
  int src_now[2] = { 0, 0 };
  expect (gcs_safe_access (items[SRC].handle, read_element, src_now) == GCS_OK, "src is still accessible");
  printf ("\n7. src outlived its pipeline: refcount %d (the handle's), state %s\n", src_now[0],
      gst_element_state_get_name (src_now[1]));
  expect (src_now[0] == 1 && src_now[1] == GST_STATE_NULL, "src is held by its handle alone, in NULL");

  Item *frame4 = &items[FRAME0 + 4];
  expect (atomic_load (&frame4->finalized) == 0, "an invalidated frame stays registered");
  expect (gcs_unregister (frame4->handle) == GCS_OK && atomic_load (&frame4->finalized) == 1,
      "unregistering the invalidated frame-4 releases it");
  printf ("  gcs_unregister(frame-4), invalidated until now: released at once. Unregistering the rest.\n");
  for (int i = 0; i < N_ITEMS; i++)
    if (!atomic_load (&items[i].retired))
      expect (retire (&items[i]) == GCS_OK, "gcs_unregister(%s) succeeds", items[i].name);
}

/* The workers' tallies, and every object's fate. */
static void
summarize (void)
{
  printf ("\nSummary\n  %-9s %12s %10s %12s\n", "thread", "accesses ok", "released", "invalidated");
  for (int i = 0; i < N_WORKERS; i++) {
    Worker *w = &workers[i];
    printf ("  %-9s %12ld %10ld %12ld\n", w->label, w->ok, w->refused_released, w->refused_invalidated);
    expect (w->ok > 0, "%s's accesses of live handles succeed", w->label);
    expect (w->unexpected == 0, "%s: no unexpected result (%ld, first: %s)", w->label, w->unexpected,
        w->first_unexpected);
  }
  int finalized_once = 0;
  for (int i = 0; i < N_ITEMS; i++) {
    Item *item = &items[i];
    finalized_once += atomic_load (&item->finalized) == 1;
    expect (atomic_load (&item->finalized) == 1, "%s is finalized exactly once (%d)", item->name,
        atomic_load (&item->finalized));
    expect (atomic_load (&item->finalized_while_registered) == 0, "%s is never finalized while registered",
        item->name);
    expect (atomic_load (&item->refusals) == 0 || atomic_load (&item->retired),
        "%s is refused only after main released or invalidated it", item->name);
  }
  expect (atomic_load (&glib_warnings) == 0, "GLib and GStreamer logged no warning or critical");
  printf ("  %d of %d objects finalized exactly once, none while registered; GLib/GStreamer warnings: %d\n",
      finalized_once, N_ITEMS, atomic_load (&glib_warnings));
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  thread_label = "main";
  g_log_set_default_handler (on_glib_log, NULL);

  guint major, minor, micro, nano;
  gst_version (&major, &minor, &micro, &nano);
  printf ("gcsafety %s (ABI %u) with GStreamer %u.%u.%u\n", gcs_version_string (), gcs_abi_version (), major, minor,
      micro);
  if (gcs_abi_version () != GCS_ABI_VERSION) {
    printf ("the library's ABI %u is not this header's %d\n", gcs_abi_version (), GCS_ABI_VERSION);
    return 1;
  }

  name_items ();
  GstElement *pipeline = register_pipeline ();
  register_frames ();
  release_under_load ();
  release_by_the_last_accessor ();
  refuse_mistakes (pipeline);
  unregister_inside_access ();
  release_the_rest ();
  summarize ();

  if (atomic_load (&failures)) {
    printf ("\n%d claim(s) failed.\n", atomic_load (&failures));
    return 1;
  }
  printf ("\nEvery claim held.\n");
  return 0;
}

/* The atomic state table in the header: gcs_table_view and the
 * header-inline gcs_*_inline functions give the exported functions' results
 * for every kind of handle value, mix with them freely, and keep every
 * object alive while an access is in flight, under many threads racing
 * unregisters and slot reuse (run under ASan+UBSan and valgrind too). */
#include "common.h"

#include <sys/wait.h>
#include <unistd.h>

/* ---- the view ---------------------------------------------------------- */

static void
test_view_describes_the_table (void)
{
  GcsTableView view;
  memset (&view, 0, sizeof view);
  CHECK_RESULT (gcs_table_view (NULL), GCS_ERROR_NULL_ARGUMENT);
  view.struct_size = 8;
  CHECK_RESULT (gcs_table_view (&view), GCS_ERROR_INVALID_ARGUMENT);
  CHECK_LAST_ERROR_CONTAINS ("struct_size");
  CHECK (view.layout_version == 0);     /* written on success only */

  view.struct_size = sizeof view;
  CHECK_OK (gcs_table_view (&view));
  CHECK (view.layout_version == GCS_TABLE_LAYOUT_VERSION);
  CHECK (view.pages != NULL);
  CHECK (view.page_count >= 24);
  CHECK (view.slot_stride >= 16 && view.slot_stride <= 64);
  CHECK (view.state_offset + 8 <= view.slot_stride);
  CHECK (view.object_offset + sizeof (void *) <= view.slot_stride);
  CHECK (view.count_mask != 0 && (view.count_mask & view.slow_bit) == 0);
  CHECK (view.generation_shift == 32 && view.index_mask == 0xffffffffu);

  /* The view finds the state word of a real handle: live, nothing in flight,
   * then one access in flight while we hold one. */
  GstElement *sink = gst_object_ref_sink (gst_element_factory_make ("fakesink", NULL));
  GcsHandle h;
  void *object;
  CHECK_OK (gcs_register (sink, NULL, &h));
  uint64_t raw = h ^ view.salt;
  uint64_t biased = (raw & view.index_mask) + ((uint64_t) 1 << view.first_page_log2);
  unsigned page = (unsigned) (63 - __builtin_clzll (biased)) - view.first_page_log2;
  char *base = (char *) __atomic_load_n (&view.pages[page], __ATOMIC_ACQUIRE);
  CHECK (base != NULL);
  char *slot = base + (biased - ((uint64_t) 1 << (view.first_page_log2 + page))) * view.slot_stride;
  uint64_t *state = (uint64_t *) (slot + view.state_offset);
  CHECK ((__atomic_load_n (state, __ATOMIC_ACQUIRE) & view.count_mask) == 0);
  CHECK (*(void **) (slot + view.object_offset) == (void *) sink);
  CHECK_OK (gcs_access_begin (h, &object));
  CHECK ((__atomic_load_n (state, __ATOMIC_ACQUIRE) & view.count_mask) == 1);
  CHECK (((__atomic_load_n (state, __ATOMIC_ACQUIRE) >> view.phase_shift) & 7) == view.phase_live);
  CHECK_OK (gcs_access_end_inline (h));
  CHECK ((__atomic_load_n (state, __ATOMIC_ACQUIRE) & view.count_mask) == 0);
  CHECK_OK (gcs_unregister (h));
  gst_object_unref (sink);
}

/* ---- the same answers as the exported functions ------------------------- */

static int
note_object (void *object, void *user_data)
{
  *(void **) user_data = object;
  return 0;
}

static int
fail_with_7 (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  return 7;
}

/* Begin with both paths on `h` and check they agree (ending any success). */
static void
check_same_answer (GcsHandle h, GcsResult expected, int accesses_in_flight)
{
  void *inline_object = NULL, *exported_object = NULL, *seen = NULL;
  GcsResult via_inline = gcs_access_begin_inline (h, &inline_object);
  char inline_message[512];
  snprintf (inline_message, sizeof inline_message, "%s", gcs_last_error ());
  GcsResult via_library = gcs_access_begin (h, &exported_object);
  CHECK (via_inline == expected);
  CHECK (via_library == expected);
  CHECK (inline_object == exported_object);
  if (expected == GCS_OK) {
    CHECK_OK (gcs_access_end_inline (h));
    CHECK_OK (gcs_access_end (h));
    CHECK_OK (gcs_safe_access_inline (h, note_object, &seen));
    CHECK (seen == inline_object);
    CHECK (gcs_is_valid_inline (h) == gcs_is_valid (h));
  } else {
    CHECK (strstr (inline_message, "not valid for access") != NULL);
    if (!accesses_in_flight)
      CHECK_RESULT (gcs_access_end_inline (h), gcs_access_end (h));
    CHECK_RESULT (gcs_safe_access_inline (h, note_object, &seen), expected);
    CHECK (seen == NULL);
    CHECK (!gcs_is_valid_inline (h) && !gcs_is_valid (h));
  }
}

static void
test_every_kind_of_handle_value (void)
{
  GstElement *sink = gst_object_ref_sink (gst_element_factory_make ("fakesink", NULL));
  GcsHandle live, invalidated, stale, weak;
  CHECK_OK (gcs_register (sink, NULL, &live));
  CHECK_OK (gcs_register (sink, NULL, &invalidated));
  CHECK_OK (gcs_register (sink, NULL, &stale));
  CHECK_OK (gcs_invalidate (invalidated));
  CHECK_OK (gcs_unregister (stale));

  GcsRegistration weak_registration = registration_for (NULL, GCS_KIND_WEAK_GOBJECT, sink);
  CHECK_OK (gcs_register_full (&weak_registration, &weak));

  check_same_answer (live, GCS_OK, 0);
  check_same_answer (weak, GCS_OK, 0);     /* the slow bit: inline hands it over */
  check_same_answer (invalidated, GCS_ERROR_INVALIDATED, 0);
  check_same_answer (stale, GCS_ERROR_RELEASED, 0);
  check_same_answer (GCS_INVALID_HANDLE, GCS_ERROR_INVALID_HANDLE, 0);
  /* Forged values: random bits, near-misses of a live handle, extremes. */
  check_same_answer (live ^ ((uint64_t) 1 << 40), GCS_ERROR_INVALID_HANDLE, 0);
  for (int i = 0; i < 2000; i++) {
    GcsHandle forged = ((uint64_t) g_random_int () << 32) | g_random_int ();
    void *object;
    GcsResult expected = gcs_access_begin (forged, &object);
    if (expected == GCS_OK)
      CHECK_OK (gcs_access_end (forged));       /* hit a live handle: fine */
    check_same_answer (forged, expected, 0);
  }

  /* NULL out-parameter and callback: the exported errors. */
  CHECK_RESULT (gcs_access_begin_inline (live, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK_RESULT (gcs_safe_access_inline (live, NULL, NULL), GCS_ERROR_NULL_ARGUMENT);
  /* No access in flight: ending is refused and changes nothing. */
  CHECK_RESULT (gcs_access_end_inline (live), GCS_ERROR_NOT_ACCESSING);

  /* A failing callback is reported as gcs_safe_access reports it. */
  GcsStats before = stats_of (NULL);
  CHECK_RESULT (gcs_safe_access_inline (live, fail_with_7, NULL), GCS_ERROR_CALLBACK_FAILED);
  CHECK_LAST_ERROR_CONTAINS ("returned 7");
  CHECK (stats_of (NULL).callback_failures == before.callback_failures + 1);
  CHECK (gcs_is_valid_inline (live));   /* the default: no invalidation */
  CHECK_RESULT (gcs_callback_failed (live, 0), GCS_ERROR_INVALID_ARGUMENT);

  /* Releasing: unregistered during an access. */
  void *object;
  CHECK_OK (gcs_access_begin_inline (live, &object));
  CHECK (object == (void *) sink);
  CHECK (handle_info_of (live).accesses_in_flight == 1); /* visible to diagnostics */
  CHECK_OK (gcs_unregister (live));
  check_same_answer (live, GCS_ERROR_RELEASED, 1);
  CHECK_OK (gcs_access_end_inline (live));
  CHECK_RESULT (gcs_access_end_inline (live), GCS_ERROR_RELEASED);

  CHECK_OK (gcs_unregister (invalidated));
  CHECK_OK (gcs_unregister (weak));
  CHECK (OBJECT_REFCOUNT (sink) == 1);
  gst_object_unref (sink);
}

/* ---- the last end runs the release -------------------------------------- */

static void
test_inline_end_releases_through_the_library (void)
{
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  gpointer alive;
  GcsHandle h;
  void *a, *b;
  CHECK_OK (gcs_register (sink, NULL, &h));     /* sinks: the only reference */
  watch_finalize (sink, &alive);

  /* Begun inline and by the library; ended the other way round. */
  CHECK_OK (gcs_access_begin_inline (h, &a));
  CHECK_OK (gcs_access_begin (h, &b));
  CHECK (a == b && handle_info_of (h).accesses_in_flight == 2);
  CHECK_OK (gcs_unregister (h));
  CHECK (alive != NULL);
  CHECK_OK (gcs_access_end_inline (h)); /* 2 → 1: inline, no release */
  CHECK (alive != NULL);
  CHECK_OK (gcs_access_end_inline (h)); /* 1 → 0: the library releases, here */
  CHECK (alive == NULL);
  CHECK_RESULT (gcs_access_begin_inline (h, &a), GCS_ERROR_RELEASED);
}

/* ---- threads: inline and exported accesses race unregisters and reuse --- */

#define SLOTS 8
#define WORKERS 4

typedef struct
{
  GcsHandle handles[SLOTS];     /* atomic: the current handle of each slot */
  gint stop;                    /* atomic */
  gint created, finalized;      /* atomic */
  gint accesses, rejected;      /* atomic */
  GcsManager *manager;
} Race;

static void
buffer_finalized (gpointer data, GstMiniObject * object)
{
  (void) object;
  g_atomic_int_inc (&((Race *) data)->finalized);
}

/* A buffer stamped with its own address: an access that reached a freed or
 * another buffer would read a wrong stamp (or trip ASan / valgrind). */
static GcsHandle
register_stamped (Race * race)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, sizeof (void *), NULL);
  GcsRegistration r = registration_for (race->manager, GCS_KIND_MINI_OBJECT, buffer);
  GcsHandle h;
  gst_buffer_fill (buffer, 0, &buffer, sizeof buffer);
  gst_mini_object_weak_ref (GST_MINI_OBJECT_CAST (buffer), buffer_finalized, race);
  g_atomic_int_inc (&race->created);
  CHECK_OK (gcs_register_full (&r, &h));
  gst_buffer_unref (buffer);
  return h;
}

static void
check_stamp (void *object)
{
  GstBuffer *buffer = object;
  void *stamp = NULL;
  CHECK (MINI_REFCOUNT (buffer) >= 1);
  CHECK (gst_buffer_extract (buffer, 0, &stamp, sizeof stamp) == sizeof stamp);
  CHECK (stamp == object);
}

static int
check_stamp_callback (void *object, void *user_data)
{
  (void) user_data;
  check_stamp (object);
  return 0;
}

static void *
race_worker (void *data)
{
  Race *race = data;
  GRand *rand = g_rand_new ();
  while (!g_atomic_int_get (&race->stop)) {
    GcsHandle h = __atomic_load_n (&race->handles[g_rand_int_range (rand, 0, SLOTS)],
        __ATOMIC_RELAXED);
    void *object;
    GcsResult r;
    switch (g_rand_int_range (rand, 0, 4)) {
      case 0:                  /* inline begin, inline end */
        if ((r = gcs_access_begin_inline (h, &object)) == GCS_OK) {
          check_stamp (object);
          CHECK_OK (gcs_access_end_inline (h));
        }
        break;
      case 1:                  /* inline begin, exported end */
        if ((r = gcs_access_begin_inline (h, &object)) == GCS_OK) {
          check_stamp (object);
          CHECK_OK (gcs_access_end (h));
        }
        break;
      case 2:                  /* exported begin, inline end */
        if ((r = gcs_access_begin (h, &object)) == GCS_OK) {
          check_stamp (object);
          CHECK_OK (gcs_access_end_inline (h));
        }
        break;
      default:
        r = gcs_safe_access_inline (h, check_stamp_callback, NULL);
        break;
    }
    if (r == GCS_OK)
      g_atomic_int_inc (&race->accesses);
    else {
      CHECK (r == GCS_ERROR_RELEASED);  /* only ever stale here */
      g_atomic_int_inc (&race->rejected);
    }
  }
  g_rand_free (rand);
  return NULL;
}

static void
test_threads_race_unregister_and_reuse (void)
{
  Race race;
  memset (&race, 0, sizeof race);
  GcsConfig config;
  gcs_config_init (&config);
  config.state_retention_ms = 0;        /* slots are reused at once */
  CHECK_OK (gcs_manager_new (&config, &race.manager));
  for (int i = 0; i < SLOTS; i++)
    race.handles[i] = register_stamped (&race);

  pthread_t workers[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    SPAWN (&workers[i], race_worker, &race);

  /* The reaper: replace handles, so that their slots are released and
   * reused (with new generations) under the workers' feet. */
  int rounds = test_under_valgrind () ? 300 : 5000;
  GRand *rand = g_rand_new ();
  for (int i = 0; i < rounds; i++) {
    int which = g_rand_int_range (rand, 0, SLOTS);
    /* Paced by the workers, not by time: at least one access per round, so
     * that a slow scheduler (valgrind runs one thread at a time) still
     * interleaves them with the reaper. */
    while (g_atomic_int_get (&race.accesses) + g_atomic_int_get (&race.rejected) < i)
      g_thread_yield ();
    GcsHandle fresh = register_stamped (&race);
    GcsHandle old = __atomic_exchange_n (&race.handles[which], fresh, __ATOMIC_RELAXED);
    CHECK_OK (gcs_unregister (old));
  }
  g_rand_free (rand);
  g_atomic_int_set (&race.stop, 1);
  for (int i = 0; i < WORKERS; i++)
    JOIN (workers[i]);
  for (int i = 0; i < SLOTS; i++)
    CHECK_OK (gcs_unregister (race.handles[i]));

  /* Every buffer was finalized exactly once (its weak notify ran once), and
   * only after the last access ended: nothing leaked, nothing early. */
  CHECK (g_atomic_int_get (&race.finalized) == g_atomic_int_get (&race.created));
  CHECK (g_atomic_int_get (&race.accesses) > 0);
  GcsStats stats = stats_of (race.manager);
  CHECK (stats.active == 0 && stats.released == (uint64_t) race.created);
  printf ("  %d accesses, %d stale rejected, %d buffers\n", race.accesses, race.rejected,
      race.created);
  CHECK_OK (gcs_manager_close (race.manager, HANG_MS));
  gcs_manager_free (race.manager);
}

/* ---- GCS_INLINE=0: the view is refused, the inline functions still work - */

/* In a child (GCS_INLINE is read once, at the first gcs_table_view, which
 * this process has not called yet): every inline function then calls its
 * exported twin, with the same answers. */
static void
test_inline_disabled_falls_back (void)
{
  pid_t child = fork ();
  CHECK (child >= 0);
  if (child == 0) {
    GcsTableView view;
    g_setenv ("GCS_INLINE", "0", TRUE);
    memset (&view, 0, sizeof view);
    view.struct_size = sizeof view;
    CHECK_RESULT (gcs_table_view (&view), GCS_ERROR_INVALID_ARGUMENT);
    CHECK_LAST_ERROR_CONTAINS ("GCS_INLINE=0");
    test_every_kind_of_handle_value ();
    test_inline_end_releases_through_the_library ();
    _exit (0);
  }
  int status;
  CHECK (waitpid (child, &status, 0) == child);
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  test_watchdog (120);
  RUN_TEST (test_inline_disabled_falls_back);
  RUN_TEST (test_view_describes_the_table);
  RUN_TEST (test_every_kind_of_handle_value);
  RUN_TEST (test_inline_end_releases_through_the_library);
  RUN_TEST (test_threads_race_unregister_and_reuse);
  TEST_PASSED ();
}

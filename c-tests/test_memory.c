/* Memory pressure (GcsConfig.memory_limit_bytes / memory_pressure): called on
 * the registering thread, with the tracked bytes, by the registration that
 * takes them above the limit; then at most once every
 * GCS_MEMORY_PRESSURE_INTERVAL_MS while they stay above (a burst of
 * registrations does not call it for each); again after the interval; never
 * at or below the limit; and the callback may call gcs_ functions (here:
 * unregister handles to relieve the pressure) without deadlock. */
#define _GNU_SOURCE
#include "common.h"

#define LIMIT 1000
/* The library times the interval on CLOCK_MONOTONIC_COARSE (ticks of 1-4 ms,
 * behind this test's clock by up to one tick). */
#define CLOCK_SLACK_MS 10

typedef struct
{
  gint calls;
  uint64_t last_tracked;
  uint64_t min_tracked;
  pthread_t thread;
  GcsManager *manager;
  uint64_t stats_tracked_inside;
  /* Handles the callback unregisters, when set. */
  GcsHandle *relieve;
  int n_relieve;
  int relieved;
} Pressure;

static void
on_pressure (uint64_t tracked_bytes, void *user_data)
{
  Pressure *p = user_data;
  p->last_tracked = tracked_bytes;
  if (p->calls == 0 || tracked_bytes < p->min_tracked)
    p->min_tracked = tracked_bytes;
  p->thread = pthread_self ();
  /* gcs_ calls from here: statistics and unregistering. */
  p->stats_tracked_inside = stats_of (p->manager).tracked_bytes;
  for (int i = 0; i < p->n_relieve; i++) {
    if (p->relieve[i] != GCS_INVALID_HANDLE) {
      CHECK_OK (gcs_unregister (p->relieve[i]));
      p->relieve[i] = GCS_INVALID_HANDLE;
      p->relieved++;
    }
  }
  g_atomic_int_inc (&p->calls);
}

static GcsManager *
manager_with_limit (Pressure * p, uint64_t limit)
{
  memset (p, 0, sizeof *p);
  GcsConfig config;
  gcs_config_init (&config);
  config.memory_limit_bytes = limit;
  config.memory_pressure = on_pressure;
  config.memory_pressure_data = p;
  CHECK_OK (gcs_manager_new (&config, &p->manager));
  return p->manager;
}

static GcsHandle
register_buffer (GcsManager * manager, uint64_t size_bytes)
{
  GstBuffer *buffer = gst_buffer_new ();
  GcsRegistration registration = registration_for (manager, GCS_KIND_MINI_OBJECT, buffer);
  registration.size_bytes = size_bytes;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  gst_buffer_unref (buffer);
  return handle;
}

/* ---------------------------------------------------------------------- */

static void
test_crossing_and_interval (void)
{
  Pressure p;
  GcsManager *manager = manager_with_limit (&p, LIMIT);
  GcsHandle handles[200];
  int n = 0;

  /* Below and at the limit: never. */
  handles[n++] = register_buffer (manager, 400);
  handles[n++] = register_buffer (manager, 400);
  handles[n++] = register_buffer (manager, 200);        /* exactly at the limit */
  CHECK (stats_of (manager).tracked_bytes == LIMIT);
  CHECK (p.calls == 0);
  handles[n++] = register_buffer (manager, 0);  /* size 0 never crosses */
  CHECK (p.calls == 0);

  /* The registration that crosses: one call, on this thread, with the
   * tracked bytes. */
  handles[n++] = register_buffer (manager, 1);
  CHECK (p.calls == 1);
  CHECK (p.last_tracked == LIMIT + 1);
  CHECK (p.stats_tracked_inside == LIMIT + 1);
  CHECK (pthread_equal (p.thread, pthread_self ()));

  /* A burst of registrations faster than the interval: not one call each. */
  const uint64_t start = test_now_ms ();
  const int burst = 100;
  for (int i = 0; i < burst; i++)
    handles[n++] = register_buffer (manager, 10);
  const uint64_t elapsed = test_now_ms () - start;
  const int burst_calls = g_atomic_int_get (&p.calls) - 1;
  fprintf (stderr, "burst of %d registrations in %llu ms: %d pressure calls\n", burst,
      (unsigned long long) elapsed, burst_calls);
  /* At most one call per interval of the burst's duration, however long a
   * loaded machine made it (CLOCK_SLACK_MS: the library's coarse clock). */
  CHECK (burst_calls <= (int) ((elapsed + CLOCK_SLACK_MS) / GCS_MEMORY_PRESSURE_INTERVAL_MS) + 1);
  CHECK (p.min_tracked > LIMIT);

  /* After the interval, still above: called again by the next registration. */
  g_usleep ((GCS_MEMORY_PRESSURE_INTERVAL_MS + 30) * 1000);
  const int before = g_atomic_int_get (&p.calls);
  const uint64_t called_after = test_now_ms ();
  handles[n++] = register_buffer (manager, 1);
  CHECK (p.calls == before + 1);
  CHECK (p.last_tracked == stats_of (manager).tracked_bytes && p.last_tracked > LIMIT);
  /* ...and not by the one right after it, unless a loaded machine put an
   * interval between the two. */
  handles[n++] = register_buffer (manager, 1);
  CHECK (p.calls == before + 1
      || test_now_ms () - called_after + CLOCK_SLACK_MS >= GCS_MEMORY_PRESSURE_INTERVAL_MS);

  /* Releases never call it. */
  const int calls = p.calls;
  for (int i = 0; i < n; i++)
    CHECK_OK (gcs_unregister (handles[i]));
  CHECK (p.calls == calls);
  CHECK (stats_of (manager).tracked_bytes == 0);

  /* Crossing again (from below) calls it at once, whatever the interval. */
  n = 0;
  handles[n++] = register_buffer (manager, LIMIT);
  CHECK (p.calls == calls);
  handles[n++] = register_buffer (manager, 1);
  CHECK (p.calls == calls + 1 && p.last_tracked == LIMIT + 1);
  for (int i = 0; i < n; i++)
    CHECK_OK (gcs_unregister (handles[i]));
  gcs_manager_free (manager);
}

typedef struct
{
  GcsManager *manager;
  GcsHandle handle;
  pthread_t thread;
} Registerer;

static void *
register_thread (void *data)
{
  Registerer *r = data;
  r->handle = register_buffer (r->manager, LIMIT + 500);
  return NULL;
}

static void
test_on_the_registering_thread (void)
{
  Pressure p;
  GcsManager *manager = manager_with_limit (&p, LIMIT);
  Registerer r = { manager, GCS_INVALID_HANDLE, pthread_self () };
  SPAWN (&r.thread, register_thread, &r);
  JOIN (r.thread);
  CHECK (p.calls == 1 && pthread_equal (p.thread, r.thread));
  CHECK (p.last_tracked == LIMIT + 500);
  CHECK_OK (gcs_unregister (r.handle));
  gcs_manager_free (manager);
}

/* The callback unregisters handles: no deadlock, and the pressure is gone. */
static void
test_callback_relieves_pressure (void)
{
  Pressure p;
  GcsManager *manager = manager_with_limit (&p, LIMIT);
  GcsHandle old[4];
  for (int i = 0; i < 4; i++)
    old[i] = register_buffer (manager, 200);
  /* Elements too: their release (final unref) happens inside the callback. */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  gpointer alive;
  watch_finalize (element, &alive);
  GcsRegistration registration = registration_for (manager, GCS_KIND_GST_OBJECT, element);
  registration.size_bytes = 150;
  GcsHandle element_handle;
  CHECK_OK (gcs_register_full (&registration, &element_handle));
  GcsHandle relieve[5] = { old[0], old[1], old[2], old[3], element_handle };
  p.relieve = relieve;
  p.n_relieve = 5;
  CHECK (p.calls == 0 && stats_of (manager).tracked_bytes == 950);

  GcsHandle big = register_buffer (manager, 100);       /* 1050: above */
  CHECK (p.calls == 1 && p.relieved == 5);
  CHECK (alive == NULL);
  for (int i = 0; i < 4; i++)
    CHECK (!gcs_is_valid (old[i]));
  GcsStats s = stats_of (manager);
  CHECK (s.tracked_bytes == 100 && s.active == 1 && s.released == 5);
  CHECK (gcs_is_valid (big));
  /* Below the limit again: no more calls. */
  GcsHandle small = register_buffer (manager, 100);
  CHECK (p.calls == 1);
  CHECK_OK (gcs_unregister (big));
  CHECK_OK (gcs_unregister (small));
  gcs_manager_free (manager);
}

/* A limit without a callback is accepted and does nothing; the default
 * manager can have one too (gcs_configure). */
static void
test_limit_without_callback_and_default_manager (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.memory_limit_bytes = 10;
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (&config, &manager));
  GcsHandle h = register_buffer (manager, 1000);
  CHECK (stats_of (manager).tracked_bytes == 1000);
  CHECK_OK (gcs_unregister (h));
  gcs_manager_free (manager);

  Pressure p;
  memset (&p, 0, sizeof p);
  gcs_config_init (&config);
  config.memory_limit_bytes = LIMIT;
  config.memory_pressure = on_pressure;
  config.memory_pressure_data = &p;
  CHECK_OK (gcs_configure (&config));
  h = register_buffer (NULL, LIMIT / 2);
  CHECK (p.calls == 0);
  GcsHandle h2 = register_buffer (NULL, LIMIT);
  CHECK (p.calls == 1 && p.last_tracked == LIMIT + LIMIT / 2);
  CHECK_OK (gcs_unregister (h));
  CHECK_OK (gcs_unregister (h2));
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  test_watchdog (30);

  /* Before anything starts the default manager (configured at the end). */
  RUN_TEST (test_crossing_and_interval);
  RUN_TEST (test_on_the_registering_thread);
  RUN_TEST (test_callback_relieves_pressure);
  RUN_TEST (test_limit_without_callback_and_default_manager);

  CHECK_OK (gcs_shutdown (HANG_MS));
  TEST_PASSED ();
}

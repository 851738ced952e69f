/* Managers (contract: "Managers", and gcs_shutdown under "Cleanups and
 * finalizers"): gcs_manager_new's checks; registering into a manager with
 * GcsRegistration.manager; managers' handles and configurations are
 * independent; gcs_manager_close (SHUT_DOWN for registrations and accesses,
 * every registration released with its cleanups, TIMEOUT while an access is
 * in flight, released later by the thread ending it); gcs_manager_free on an
 * open manager; handles of a freed manager stay safe to pass; gcs_shutdown
 * (the default manager and every open manager closed, a fresh default
 * manager at the next use, configurable again before it, old handles dead,
 * twice is fine).
 *
 * The default manager is process-global: main() runs the tests that must
 * not start it first, and the gcs_shutdown tests last. */
#define _GNU_SOURCE
#include "common.h"

#define SENTINEL_MANAGER ((GcsManager *) (uintptr_t) 0x5e17e1u)
#define SENTINEL_HANDLE ((GcsHandle) 0x5e17e15e17e1ull)

static GcsManager *
new_manager (const GcsConfig * config)
{
  GcsManager *manager = SENTINEL_MANAGER;
  CHECK_OK (gcs_manager_new (config, &manager));
  CHECK (manager != NULL && manager != SENTINEL_MANAGER);
  return manager;
}

/* A registered element, with the evidence of its finalization. */
typedef struct
{
  GstElement *element;
  GcsHandle handle;
  FinalizeRecord finalized;
  gpointer alive;               /* weak pointer: NULL once finalized */
} Tracked;

static void
register_tracked (Tracked * t, GcsManager * manager, const char *factory,
    const char *instance_name)
{
  memset (t, 0, sizeof *t);
  t->element = gst_element_factory_make (factory, NULL);
  CHECK (t->element != NULL);
  watch_finalize_record (t->element, &t->finalized);
  watch_finalize (t->element, &t->alive);
  GcsRegistration registration = registration_for (manager, GCS_KIND_GST_OBJECT, t->element);
  registration.instance_name = instance_name;
  CHECK_OK (gcs_register_full (&registration, &t->handle));
  CHECK (OBJECT_REFCOUNT (t->element) == 1);
  CHECK (!g_object_is_floating (t->element));
}

typedef struct
{
  gint calls;
  int status;
} Probe;

static int
probe (void *object, void *user_data)
{
  Probe *p = user_data;
  CHECK (GST_IS_ELEMENT (object));
  g_atomic_int_inc (&p->calls);
  return p->status;
}

/* A cleanup that records when and where it ran, and what it saw. */
typedef struct
{
  gint calls;
  pthread_t thread;
  int refcount_inside;
  gboolean alive_inside;
  gpointer *alive;              /* the weak pointer of the object */
} CleanupRecord;

static int
record_cleanup (void *object, void *user_data)
{
  CleanupRecord *c = user_data;
  c->thread = pthread_self ();
  c->refcount_inside = object ? OBJECT_REFCOUNT (object) : -1;
  c->alive_inside = c->alive != NULL && *c->alive == object && object != NULL;
  g_atomic_int_inc (&c->calls);
  return 0;
}

static void
add_record_cleanup (Tracked * t, CleanupRecord * c)
{
  memset (c, 0, sizeof *c);
  c->alive = &t->alive;
  CHECK_OK (gcs_add_cleanup (t->handle, record_cleanup, c));
}

/* Everything a handle of a closed (or freed) manager must answer; `pending`:
 * its release waits for an access in flight. */
static void
check_handle_refused (GcsHandle handle, gboolean pending)
{
  Probe p = { 0, 0 };
  CHECK (!gcs_is_valid (handle));
  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_SHUT_DOWN);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK_LAST_ERROR_CONTAINS ("closed");
  CHECK (p.calls == 0);
  void *object = (void *) &p;
  CHECK_RESULT (gcs_access_begin (handle, &object), GCS_ERROR_SHUT_DOWN);
  CHECK (object == (void *) &p);
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_SHUT_DOWN);
  if (pending)                  /* waits for that release, in vain */
    CHECK_RESULT (gcs_unregister_sync (handle, 10), GCS_ERROR_TIMEOUT);
  else
    CHECK_RESULT (gcs_unregister_sync (handle, HANG_MS), GCS_ERROR_SHUT_DOWN);
  CHECK_RESULT (gcs_invalidate (handle), GCS_ERROR_SHUT_DOWN);
}

#define check_handle_shut_down(handle) check_handle_refused ((handle), FALSE)

static void
pressure_never (uint64_t tracked, void *data)
{
  (void) tracked;
  (void) data;
  abort ();
}

/* ---------------------------------------------------------------------- */

static void
test_manager_new_arguments (void)
{
  /* NULL config: the defaults. */
  GcsManager *manager = new_manager (NULL);
  GcsStats stats = stats_of (manager);
  CHECK (stats.total_registered == 0 && stats.active == 0);
  gcs_manager_free (manager);

  /* A config. */
  GcsConfig config;
  gcs_config_init (&config);
  config.invalidate_on_callback_error = true;
  config.max_finalizer_retries = 0;
  manager = new_manager (&config);
  gcs_manager_free (manager);

  /* A bigger struct (a later version's caller) is accepted. */
  struct
  {
    GcsConfig v1;
    uint64_t later_fields[4];
  } bigger;
  memset (&bigger, 0, sizeof bigger);
  gcs_config_init (&bigger.v1);
  bigger.v1.struct_size = sizeof bigger;
  manager = new_manager (&bigger.v1);
  gcs_manager_free (manager);

  /* NULL manager_out. */
  CHECK_RESULT (gcs_manager_new (NULL, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK_LAST_ERROR_CONTAINS ("manager_out");
  CHECK_RESULT (gcs_manager_new (&config, NULL), GCS_ERROR_NULL_ARGUMENT);

  /* Bad configs: INVALID_ARGUMENT, *manager_out untouched. */
  for (int bad = 0; bad < 6; bad++) {
    gcs_config_init (&config);
    switch (bad) {
      case 0:
        config.struct_size = 0;
        break;
      case 1:
        config.struct_size = sizeof config - 1;
        break;
      case 2:
        config.cleanup_interval_ms = 0;
        break;
      case 3:
        config.finalizer_timeout_ms = 0;
        break;
      case 4:
        config.max_finalizer_retries = 1001;
        break;
      default:                 /* memory_pressure without a limit */
        config.memory_limit_bytes = 0;
        config.memory_pressure = pressure_never;
        break;
    }
    manager = SENTINEL_MANAGER;
    CHECK_RESULT (gcs_manager_new (&config, &manager), GCS_ERROR_INVALID_ARGUMENT);
    CHECK (manager == SENTINEL_MANAGER);
    CHECK (gcs_last_error ()[0] != '\0');
  }
}

/* Each manager has its own registrations, statistics and configuration;
 * closing one leaves the other's handles live. */
static void
test_managers_are_independent (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.invalidate_on_callback_error = true;
  GcsManager *strict = new_manager (&config);
  GcsManager *lenient = new_manager (NULL);

  Tracked a[3], b[3];
  for (int i = 0; i < 3; i++) {
    register_tracked (&a[i], strict, "fakesink", "strict-sink");
    register_tracked (&b[i], lenient, "identity", "lenient-identity");
  }
  CHECK (stats_of (strict).total_registered == 3);
  CHECK (stats_of (lenient).total_registered == 3);

  /* Their configurations apply to their own handles only. */
  Probe p = { 0, 1 };
  CHECK_RESULT (gcs_safe_access (a[0].handle, probe, &p), GCS_ERROR_CALLBACK_FAILED);
  CHECK (!gcs_is_valid (a[0].handle));
  CHECK_RESULT (gcs_safe_access (b[0].handle, probe, &p), GCS_ERROR_CALLBACK_FAILED);
  CHECK (gcs_is_valid (b[0].handle));
  CHECK (p.calls == 2);
  CHECK (stats_of (strict).callback_failures == 1 && stats_of (strict).invalidated == 1);
  CHECK (stats_of (lenient).callback_failures == 1 && stats_of (lenient).invalidated == 0);
  p.status = 0;

  /* Closing one leaves the other alone. */
  CHECK_OK (gcs_manager_close (strict, HANG_MS));
  for (int i = 0; i < 3; i++) {
    CHECK (a[i].alive == NULL);
    check_handle_shut_down (a[i].handle);
    CHECK (b[i].alive != NULL);
    CHECK (gcs_is_valid (b[i].handle));
    CHECK_OK (gcs_safe_access (b[i].handle, probe, &p));
  }
  GcsStats s = stats_of (strict);
  CHECK (s.total_registered == 3 && s.released == 3 && s.active == 0);
  s = stats_of (lenient);
  CHECK (s.total_registered == 3 && s.released == 0 && s.active == 3);
  /* The open one still registers. */
  Tracked more;
  register_tracked (&more, lenient, "queue", NULL);
  CHECK_OK (gcs_unregister (more.handle));
  CHECK (more.alive == NULL);

  gcs_manager_free (strict);
  for (int i = 0; i < 3; i++)
    CHECK (gcs_is_valid (b[i].handle));
  gcs_manager_free (lenient);
  for (int i = 0; i < 3; i++) {
    CHECK (b[i].alive == NULL);
    CHECK (FINALIZED_COUNT (&b[i].finalized) == 1);
    CHECK (!gcs_is_valid (b[i].handle));
  }
}

static void
test_close_releases_everything (void)
{
  GcsManager *manager = new_manager (NULL);
  Tracked t[4];
  CleanupRecord c[4];
  for (int i = 0; i < 4; i++) {
    register_tracked (&t[i], manager, i % 2 ? "fakesink" : "identity", "closed-with-manager");
    add_record_cleanup (&t[i], &c[i]);
  }
  /* One we hold a reference of our own to: the refcount comes back. */
  gst_object_ref (t[0].element);
  CHECK (OBJECT_REFCOUNT (t[0].element) == 2);
  /* An invalidated one is released by the close too. */
  CHECK_OK (gcs_invalidate (t[1].handle));
  /* An unregistered one is not released twice. */
  CHECK_OK (gcs_unregister (t[2].handle));
  CHECK (t[2].alive == NULL && c[2].calls == 1);

  CHECK_OK (gcs_manager_close (manager, HANG_MS));
  for (int i = 0; i < 4; i++) {
    CHECK (c[i].calls == 1);
    CHECK (pthread_equal (c[i].thread, pthread_self ()));
    CHECK (c[i].alive_inside && c[i].refcount_inside >= 1);
    if (i != 0) {
      CHECK (t[i].alive == NULL);
      CHECK (FINALIZED_COUNT (&t[i].finalized) == 1);
    }
    check_handle_shut_down (t[i].handle);
    CHECK (handle_info_of (t[i].handle).state == GCS_STATE_RELEASED);
    /* Nothing can be added any more. */
    CHECK_RESULT (gcs_add_cleanup (t[i].handle, record_cleanup, &c[i]), GCS_ERROR_SHUT_DOWN);
  }
  CHECK (OBJECT_REFCOUNT (t[0].element) == 1);
  CHECK (t[0].alive != NULL);
  gst_object_unref (t[0].element);
  CHECK (t[0].alive == NULL);

  GcsStats s = stats_of (manager);
  CHECK (s.total_registered == 4 && s.released == 4 && s.active == 0);
  CHECK (s.cleanups_run == 4);

  /* New registrations: SHUT_DOWN, nothing registered, no reference kept. */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  CHECK (g_object_is_floating (element));
  GcsRegistration registration = registration_for (manager, GCS_KIND_GST_OBJECT, element);
  GcsHandle handle = SENTINEL_HANDLE;
  CHECK_RESULT (gcs_register_full (&registration, &handle), GCS_ERROR_SHUT_DOWN);
  CHECK_LAST_ERROR_CONTAINS ("closed");
  CHECK (handle == SENTINEL_HANDLE);
  CHECK (g_object_is_floating (element) && OBJECT_REFCOUNT (element) == 1);
  GstBuffer *buffer = gst_buffer_new ();
  registration = registration_for (manager, GCS_KIND_MINI_OBJECT, buffer);
  CHECK_RESULT (gcs_register_full (&registration, &handle), GCS_ERROR_SHUT_DOWN);
  CHECK (MINI_REFCOUNT (buffer) == 1 && handle == SENTINEL_HANDLE);
  gst_buffer_unref (buffer);
  gst_object_unref (element);
  CHECK (stats_of (manager).total_registered == 4);

  /* Closing again is fine. */
  CHECK_OK (gcs_manager_close (manager, HANG_MS));
  CHECK_OK (gcs_manager_close (manager, 0));
  for (int i = 0; i < 4; i++)
    CHECK (c[i].calls == 1);
  gcs_manager_free (manager);
}

typedef struct
{
  GcsManager *manager;
  GcsResult result;
  TestGate done;
} CloserArg;

static void *
close_infinite (void *data)
{
  CloserArg *c = data;
  c->result = gcs_manager_close (c->manager, GCS_TIMEOUT_INFINITE);
  gate_set (&c->done, 1);
  return NULL;
}

/* A close while an access is in flight on another thread. */
static void
test_close_with_access_in_flight (void)
{
  GcsManager *manager = new_manager (NULL);
  Tracked held, idle;
  CleanupRecord held_cleanup, idle_cleanup;
  register_tracked (&held, manager, "fakesink", "held-at-close");
  register_tracked (&idle, manager, "identity", "idle-at-close");
  add_record_cleanup (&held, &held_cleanup);
  add_record_cleanup (&idle, &idle_cleanup);

  Holder h;
  holder_start (&h, held.handle);
  const uint64_t start = test_now_ms ();
  CHECK_RESULT (gcs_manager_close (manager, 60), GCS_ERROR_TIMEOUT);
  CHECK (test_now_ms () - start >= 50);
  CHECK (gcs_last_error ()[0] != '\0');
  /* The idle one was released at once, by the closing thread. */
  CHECK (idle.alive == NULL && idle_cleanup.calls == 1);
  CHECK (pthread_equal (idle.finalized.thread, pthread_self ()));
  /* The held one stays alive until its access ends; no new access. */
  CHECK (held.alive != NULL && FINALIZED_COUNT (&held.finalized) == 0);
  CHECK (OBJECT_REFCOUNT (held.element) == 1);
  CHECK (held_cleanup.calls == 0);
  GcsHandleInfo info = handle_info_of (held.handle);
  CHECK (info.state == GCS_STATE_RELEASING && info.accesses_in_flight == 1);
  check_handle_refused (held.handle, TRUE);
  /* A second close with a short timeout: still TIMEOUT. */
  CHECK_RESULT (gcs_manager_close (manager, 10), GCS_ERROR_TIMEOUT);

  holder_finish (&h);
  /* Released by the thread that ended the access, cleanups first. */
  CHECK (FINALIZED_COUNT (&held.finalized) == 1 && held.alive == NULL);
  CHECK (pthread_equal (held.finalized.thread, h.thread));
  CHECK (held_cleanup.calls == 1 && pthread_equal (held_cleanup.thread, h.thread));
  CHECK (held_cleanup.alive_inside);
  CHECK_OK (gcs_manager_close (manager, 0));
  GcsStats s = stats_of (manager);
  CHECK (s.released == 2 && s.active == 0 && s.cleanups_run == 2);
  gcs_manager_free (manager);

  /* A close waiting as long as it takes returns once the access ended. */
  manager = new_manager (NULL);
  register_tracked (&held, manager, "queue", "held-infinite");
  holder_start (&h, held.handle);
  CloserArg closer;
  closer.manager = manager;
  closer.result = GCS_ERROR_PANIC;
  gate_init (&closer.done);
  pthread_t closing;
  SPAWN (&closing, close_infinite, &closer);
  CHECK (!gate_wait_for (&closer.done, 1, 100));        /* waits for the access */
  CHECK (held.alive != NULL);
  holder_finish (&h);
  CHECK (gate_wait_for (&closer.done, 1, HANG_MS));
  JOIN (closing);
  CHECK_OK (closer.result);
  CHECK (held.alive == NULL && pthread_equal (held.finalized.thread, h.thread));
  gate_clear (&closer.done);
  gcs_manager_free (manager);
}

/* gcs_manager_free on an open manager closes it without waiting; its
 * handles stay safe to pass. */
static void
test_free_open_manager (void)
{
  GcsManager *manager = new_manager (NULL);
  Tracked t[3];
  CleanupRecord c[3];
  for (int i = 0; i < 3; i++) {
    register_tracked (&t[i], manager, "fakesink", "freed-with-manager");
    add_record_cleanup (&t[i], &c[i]);
  }
  Holder h;
  holder_start (&h, t[2].handle);
  const uint64_t start = test_now_ms ();
  gcs_manager_free (manager);
  CHECK (test_now_ms () - start < HANG_MS / 2); /* did not wait for the access */
  for (int i = 0; i < 2; i++) {
    CHECK (t[i].alive == NULL && c[i].calls == 1 && c[i].alive_inside);
    check_handle_shut_down (t[i].handle);
  }
  CHECK (t[2].alive != NULL && c[2].calls == 0);
  check_handle_refused (t[2].handle, TRUE);
  holder_finish (&h);
  CHECK (t[2].alive == NULL && c[2].calls == 1);
  CHECK (pthread_equal (t[2].finalized.thread, h.thread));
  for (int i = 0; i < 3; i++) {
    check_handle_shut_down (t[i].handle);
    CHECK (gcs_access_end (t[i].handle) != GCS_OK);
  }

  gcs_manager_free (NULL);      /* does nothing */
}

/* Handles of a freed manager whose released states have expired (and were
 * swept) are still safe to pass: RELEASED (no details kept) or SHUT_DOWN,
 * never a crash or a use after free (ASan / valgrind). Runs first, while the
 * retained-state queue holds only this manager's short-lived states. */
static void
test_freed_manager_handles_after_retention (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.state_retention_ms = 1;
  config.cleanup_interval_ms = 1;
  GcsManager *manager = new_manager (&config);
  Tracked t[3];
  for (int i = 0; i < 3; i++)
    register_tracked (&t[i], manager, "fakesink", "expiring");
  CHECK_OK (gcs_unregister (t[0].handle));
  gcs_manager_free (manager);
  g_usleep (20 * 1000);
  /* Registrations (into another manager) sweep expired states lazily. */
  GcsManager *other = new_manager (&config);
  for (int round = 0; round < 3; round++) {
    Tracked sweeper;
    register_tracked (&sweeper, other, "identity", NULL);
    CHECK_OK (gcs_unregister (sweeper.handle));
    g_usleep (5 * 1000);
  }
  for (int i = 0; i < 3; i++) {
    CHECK (t[i].alive == NULL);
    CHECK (!gcs_is_valid (t[i].handle));
    Probe p = { 0, 0 };
    GcsResult r = gcs_safe_access (t[i].handle, probe, &p);
    CHECK (r == GCS_ERROR_RELEASED || r == GCS_ERROR_SHUT_DOWN);
    CHECK (p.calls == 0);
    r = gcs_unregister (t[i].handle);
    CHECK (r == GCS_ERROR_RELEASED || r == GCS_ERROR_SHUT_DOWN);
    GcsHandleInfo info;
    info.struct_size = sizeof info;
    r = gcs_get_info (t[i].handle, &info);
    CHECK (r == GCS_OK || r == GCS_ERROR_RELEASED || r == GCS_ERROR_SHUT_DOWN);
    CHECK (gcs_add_cleanup (t[i].handle, record_cleanup, NULL) != GCS_OK);
  }
  gcs_manager_free (other);
}

/* ---- gcs_shutdown ---- */

/* Before anything starts the default manager: manager calls do not start it
 * (gcs_configure is still accepted afterwards). */
static void
test_managers_do_not_start_the_default (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  CHECK_OK (gcs_configure (&config));
}

static void
test_shutdown (void)
{
  /* Registrations in the default manager, an open manager, and a closed
   * one not yet freed. */
  Tracked d[2], o[2];
  CleanupRecord dc[2], oc[2];
  for (int i = 0; i < 2; i++) {
    register_tracked (&d[i], NULL, "fakesink", "default-at-shutdown");
    add_record_cleanup (&d[i], &dc[i]);
  }
  gst_object_ref (d[0].element);        /* ours: the refcount comes back */
  GcsManager *open = new_manager (NULL);
  GcsManager *closed = new_manager (NULL);
  for (int i = 0; i < 2; i++) {
    register_tracked (&o[i], open, "identity", "open-at-shutdown");
    add_record_cleanup (&o[i], &oc[i]);
  }
  CHECK_OK (gcs_manager_close (closed, HANG_MS));
  CHECK (stats_of (NULL).total_registered == 2);
  /* Too late to configure the default manager now. */
  GcsConfig config;
  gcs_config_init (&config);
  CHECK_RESULT (gcs_configure (&config), GCS_ERROR_ALREADY_INITIALIZED);

  CHECK_OK (gcs_shutdown (HANG_MS));
  for (int i = 0; i < 2; i++) {
    CHECK (dc[i].calls == 1 && dc[i].alive_inside);
    CHECK (oc[i].calls == 1 && oc[i].alive_inside);
    CHECK (o[i].alive == NULL);
    check_handle_shut_down (d[i].handle);
    check_handle_shut_down (o[i].handle);
  }
  CHECK (d[1].alive == NULL);
  CHECK (OBJECT_REFCOUNT (d[0].element) == 1 && d[0].alive != NULL);
  gst_object_unref (d[0].element);
  CHECK (d[0].alive == NULL);
  /* The open manager is closed now: it refuses registrations. */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  GcsRegistration registration = registration_for (open, GCS_KIND_GST_OBJECT, element);
  GcsHandle handle = SENTINEL_HANDLE;
  CHECK_RESULT (gcs_register_full (&registration, &handle), GCS_ERROR_SHUT_DOWN);
  CHECK (handle == SENTINEL_HANDLE && g_object_is_floating (element));
  GcsStats s = stats_of (open);
  CHECK (s.released == 2 && s.active == 0);
  gcs_manager_free (open);
  gcs_manager_free (closed);

  /* Before the next use, the fresh default manager may be configured. */
  gcs_config_init (&config);
  config.invalidate_on_callback_error = true;
  CHECK_OK (gcs_configure (&config));

  /* The next registration starts a fresh default manager that works. */
  Tracked fresh;
  memset (&fresh, 0, sizeof fresh);
  fresh.element = element;      /* still floating, never registered */
  watch_finalize (element, &fresh.alive);
  CHECK_OK (gcs_register (element, NULL, &fresh.handle));
  CHECK (fresh.handle != d[0].handle && fresh.handle != d[1].handle);
  s = stats_of (NULL);
  CHECK (s.total_registered == 1 && s.active == 1 && s.released == 0);
  Probe p = { 0, 0 };
  CHECK_OK (gcs_safe_access (fresh.handle, probe, &p));
  CHECK (p.calls == 1);
  /* ...with the configuration given after the shutdown. */
  p.status = 1;
  CHECK_RESULT (gcs_safe_access (fresh.handle, probe, &p), GCS_ERROR_CALLBACK_FAILED);
  CHECK_RESULT (gcs_safe_access (fresh.handle, probe, &p), GCS_ERROR_INVALIDATED);
  CHECK_RESULT (gcs_configure (&config), GCS_ERROR_ALREADY_INITIALIZED);
  CHECK_OK (gcs_unregister (fresh.handle));
  CHECK (fresh.alive == NULL);
  /* Old handles stay dead. */
  for (int i = 0; i < 2; i++) {
    CHECK (!gcs_is_valid (d[i].handle));
    CHECK (gcs_safe_access (d[i].handle, probe, &p) != GCS_OK);
    CHECK (gcs_unregister (d[i].handle) != GCS_OK);
  }
  CHECK (p.calls == 2);

  /* Twice is fine, and so is a shutdown with nothing started. */
  CHECK_OK (gcs_shutdown (HANG_MS));
  CHECK_OK (gcs_shutdown (HANG_MS));
  CHECK_OK (gcs_shutdown (0));

  /* Closing the default manager does not restart it; gcs_shutdown does. */
  Tracked t;
  register_tracked (&t, NULL, "identity", "default-closed");
  CHECK_OK (gcs_manager_close (NULL, HANG_MS));
  CHECK (t.alive == NULL);
  check_handle_shut_down (t.handle);
  element = gst_element_factory_make ("fakesink", NULL);
  handle = SENTINEL_HANDLE;
  CHECK_RESULT (gcs_register (element, NULL, &handle), GCS_ERROR_SHUT_DOWN);
  CHECK (handle == SENTINEL_HANDLE && g_object_is_floating (element));
  gst_object_unref (element);
  CHECK_OK (gcs_shutdown (HANG_MS));
  register_tracked (&t, NULL, "identity", "after-restart");
  CHECK (gcs_is_valid (t.handle));
  CHECK (stats_of (NULL).total_registered == 1);

  /* A shutdown while an access is in flight: TIMEOUT, the object is
   * released when that access ends, on that thread. */
  Holder h;
  holder_start (&h, t.handle);
  CHECK_RESULT (gcs_shutdown (50), GCS_ERROR_TIMEOUT);
  CHECK (t.alive != NULL);
  check_handle_refused (t.handle, TRUE);
  holder_finish (&h);
  CHECK (t.alive == NULL && pthread_equal (t.finalized.thread, h.thread));
  CHECK_OK (gcs_shutdown (HANG_MS));

  /* After all that, the library works. */
  register_tracked (&t, NULL, "fakesink", "last");
  p.status = 0;
  CHECK_OK (gcs_safe_access (t.handle, probe, &p));
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (t.alive == NULL);
  CHECK_OK (gcs_shutdown (HANG_MS));
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  test_watchdog (30);

  RUN_TEST (test_freed_manager_handles_after_retention);
  RUN_TEST (test_manager_new_arguments);
  RUN_TEST (test_managers_are_independent);
  RUN_TEST (test_close_releases_everything);
  RUN_TEST (test_close_with_access_in_flight);
  RUN_TEST (test_free_open_manager);
  RUN_TEST (test_managers_do_not_start_the_default);
  RUN_TEST (test_shutdown);

  TEST_PASSED ();
}

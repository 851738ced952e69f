/* GcsConfig.release_context: a manager whose releases (cleanups, final
 * unref) are dispatched to a GMainContext the test owns and iterates on the
 * main thread. A release started on another thread waits for the main
 * thread to iterate; gcs_unregister_sync waits for it too; from the thread
 * that owns (has acquired) the context, it runs at once. */
#define _GNU_SOURCE
#include "common.h"

static pthread_t main_thread;

typedef struct
{
  gint calls;
  pthread_t thread;
  gboolean alive_inside;
  gpointer *alive;
} Cleanup;

static int
cleanup_fn (void *object, void *user_data)
{
  Cleanup *c = user_data;
  c->thread = pthread_self ();
  c->alive_inside = object != NULL && c->alive != NULL && g_atomic_pointer_get (c->alive) == object;
  g_atomic_int_inc (&c->calls);
  return 0;
}

typedef struct
{
  GstElement *element;
  GcsHandle handle;
  FinalizeRecord finalized;
  gpointer alive;
  Cleanup cleanup;
} Tracked;

static void
register_tracked (Tracked * t, GcsManager * manager, const char *name)
{
  memset (t, 0, sizeof *t);
  t->element = gst_element_factory_make ("fakesink", NULL);
  CHECK (t->element != NULL);
  watch_finalize_record (t->element, &t->finalized);
  watch_finalize (t->element, &t->alive);
  GcsRegistration registration = registration_for (manager, GCS_KIND_GST_OBJECT, t->element);
  registration.instance_name = name;
  CHECK_OK (gcs_register_full (&registration, &t->handle));
  t->cleanup.alive = &t->alive;
  CHECK_OK (gcs_add_cleanup (t->handle, cleanup_fn, &t->cleanup));
}

/* Iterate the context until nothing is pending; how many dispatches ran. */
static int
iterate (GMainContext * context)
{
  int dispatched = 0;
  while (g_main_context_iteration (context, FALSE))
    dispatched++;
  return dispatched;
}

/* ---- another thread unregistering, or ending the last access ---- */

typedef enum
{
  UNREGISTER,
  UNREGISTER_SYNC,
  ACCESS_END,
} Action;

typedef struct
{
  Action action;
  GcsHandle handle;
  uint32_t timeout_ms;
  GcsResult result;
  TestGate done;
  pthread_t thread;
} Worker;

static void *
worker_thread (void *data)
{
  Worker *w = data;
  switch (w->action) {
    case UNREGISTER:
      w->result = gcs_unregister (w->handle);
      break;
    case UNREGISTER_SYNC:
      w->result = gcs_unregister_sync (w->handle, w->timeout_ms);
      break;
    case ACCESS_END:
      w->result = gcs_access_end (w->handle);
      break;
  }
  gate_set (&w->done, 1);
  return NULL;
}

static void
worker_start (Worker * w, Action action, GcsHandle handle, uint32_t timeout_ms)
{
  memset (w, 0, sizeof *w);
  w->action = action;
  w->handle = handle;
  w->timeout_ms = timeout_ms;
  gate_init (&w->done);
  SPAWN (&w->thread, worker_thread, w);
}

static void
worker_join (Worker * w)
{
  JOIN (w->thread);
  gate_clear (&w->done);
}

static void
check_released_on_main (Tracked * t)
{
  CHECK (t->cleanup.calls == 1);
  CHECK (pthread_equal (t->cleanup.thread, main_thread));
  CHECK (t->cleanup.alive_inside);
  CHECK (FINALIZED_COUNT (&t->finalized) == 1 && t->alive == NULL);
  CHECK (pthread_equal (t->finalized.thread, main_thread));
}

static void
check_not_released (Tracked * t)
{
  CHECK (t->cleanup.calls == 0);
  CHECK (FINALIZED_COUNT (&t->finalized) == 0 && t->alive != NULL);
  CHECK (OBJECT_REFCOUNT (t->element) == 1);
}

static GcsManager *
manager_with_context (GMainContext * context)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.release_context = context;
  GcsManager *manager = NULL;
  CHECK_OK (gcs_manager_new (&config, &manager));
  return manager;
}

static void
test_release_waits_for_the_context (void)
{
  GMainContext *context = g_main_context_new ();
  GcsManager *manager = manager_with_context (context);

  /* Unregistered on a worker, nothing in flight: not released there. */
  Tracked t;
  register_tracked (&t, manager, "unregistered-on-worker");
  Worker w;
  worker_start (&w, UNREGISTER, t.handle, 0);
  worker_join (&w);
  CHECK_OK (w.result);
  check_not_released (&t);
  CHECK (!gcs_is_valid (t.handle));
  CHECK_RESULT (gcs_unregister (t.handle), GCS_ERROR_RELEASED);
  /* Released when the main thread iterates the context. */
  CHECK (iterate (context) >= 1);
  check_released_on_main (&t);
  CHECK (handle_info_of (t.handle).state == GCS_STATE_RELEASED);

  /* The last access ends on a worker: released on the main thread too. */
  register_tracked (&t, manager, "access-ended-on-worker");
  void *object;
  CHECK_OK (gcs_access_begin (t.handle, &object));
  CHECK_OK (gcs_unregister (t.handle));
  check_not_released (&t);
  worker_start (&w, ACCESS_END, t.handle, 0);
  worker_join (&w);
  CHECK_OK (w.result);
  check_not_released (&t);
  CHECK (iterate (context) >= 1);
  check_released_on_main (&t);

  /* Unregistered here, on the main thread, while it does not own the
   * context (not acquired, not iterating): dispatched too. */
  register_tracked (&t, manager, "unregistered-on-main");
  CHECK_OK (gcs_unregister (t.handle));
  check_not_released (&t);
  CHECK (iterate (context) >= 1);
  check_released_on_main (&t);

  /* Several at once: all released by one round of iterations. */
  Tracked many[4];
  for (int i = 0; i < 4; i++) {
    register_tracked (&many[i], manager, "batch");
    worker_start (&w, UNREGISTER, many[i].handle, 0);
    worker_join (&w);
  }
  for (int i = 0; i < 4; i++)
    check_not_released (&many[i]);
  iterate (context);
  for (int i = 0; i < 4; i++)
    check_released_on_main (&many[i]);

  GcsStats s = stats_of (manager);
  CHECK (s.released == 7 && s.active == 0 && s.cleanups_run == 7);
  gcs_manager_free (manager);
  iterate (context);
  g_main_context_unref (context);
}

/* gcs_unregister_sync from a worker waits until the main thread iterates. */
static void
test_unregister_sync_waits_for_the_context (void)
{
  GMainContext *context = g_main_context_new ();
  GcsManager *manager = manager_with_context (context);
  Tracked t;
  register_tracked (&t, manager, "sync-on-worker");
  Worker w;
  worker_start (&w, UNREGISTER_SYNC, t.handle, HANG_MS);
  /* It does not return while nobody iterates the context. */
  const gboolean returned_early = gate_wait_for (&w.done, 1, 200);
  if (returned_early) {
    fprintf (stderr, "gcs_unregister_sync returned %d (%s) before the release ran on its "
        "release_context\n", (int) w.result, gcs_result_to_string (w.result));
  }
  CHECK (!returned_early);
  check_not_released (&t);
  /* Iterate until it returns. */
  const uint64_t deadline = test_now_ms () + HANG_MS;
  while (!gate_wait_for (&w.done, 1, 1) && test_now_ms () < deadline)
    iterate (context);
  worker_join (&w);
  CHECK_OK (w.result);
  check_released_on_main (&t);

  /* A short timeout: TIMEOUT, the release stays pending until iterated. */
  register_tracked (&t, manager, "sync-timeout");
  worker_start (&w, UNREGISTER_SYNC, t.handle, 50);
  worker_join (&w);
  CHECK_RESULT (w.result, GCS_ERROR_TIMEOUT);
  check_not_released (&t);
  iterate (context);
  check_released_on_main (&t);

  gcs_manager_free (manager);
  iterate (context);
  g_main_context_unref (context);
}

/* From the thread that owns the context, releases run at once. */
static void
test_owner_releases_at_once (void)
{
  GMainContext *context = g_main_context_new ();
  GcsManager *manager = manager_with_context (context);
  CHECK (g_main_context_acquire (context));

  Tracked t;
  register_tracked (&t, manager, "owner-unregister");
  CHECK_OK (gcs_unregister (t.handle));
  check_released_on_main (&t);

  register_tracked (&t, manager, "owner-sync");
  CHECK_OK (gcs_unregister_sync (t.handle, HANG_MS));
  check_released_on_main (&t);

  register_tracked (&t, manager, "owner-access-end");
  void *object;
  CHECK_OK (gcs_access_begin (t.handle, &object));
  CHECK_OK (gcs_unregister (t.handle));
  check_not_released (&t);
  CHECK_OK (gcs_access_end (t.handle));
  check_released_on_main (&t);

  /* Manager close from the owner: everything released here, at once. */
  Tracked many[3];
  for (int i = 0; i < 3; i++)
    register_tracked (&many[i], manager, "owner-close");
  CHECK_OK (gcs_manager_close (manager, HANG_MS));
  for (int i = 0; i < 3; i++)
    check_released_on_main (&many[i]);

  g_main_context_release (context);
  gcs_manager_free (manager);
  iterate (context);
  g_main_context_unref (context);
}

/* A worker that owns the context (iterates it in a loop) gets the releases
 * started anywhere else. */
typedef struct
{
  GMainContext *context;
  GMainLoop *loop;
  pthread_t thread;
} LoopThread;

static void *
loop_thread (void *data)
{
  LoopThread *l = data;
  g_main_context_push_thread_default (l->context);
  g_main_loop_run (l->loop);
  g_main_context_pop_thread_default (l->context);
  return NULL;
}

static gboolean
quit_loop (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static void
test_context_iterated_by_another_thread (void)
{
  LoopThread l;
  l.context = g_main_context_new ();
  l.loop = g_main_loop_new (l.context, FALSE);
  GcsManager *manager = manager_with_context (l.context);
  SPAWN (&l.thread, loop_thread, &l);

  /* Asynchronous: released there shortly. */
  Tracked t;
  register_tracked (&t, manager, "async-on-loop-thread");
  CHECK_OK (gcs_unregister (t.handle));
  POLL_UNTIL (FINALIZED_COUNT (&t.finalized) == 1, HANG_MS);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, l.thread));
  CHECK (t.cleanup.calls == 1 && t.cleanup.alive_inside);
  CHECK (pthread_equal (t.cleanup.thread, l.thread));

  /* A close waiting as long as it takes: the loop thread does the work. */
  Tracked many[3];
  for (int i = 0; i < 3; i++)
    register_tracked (&many[i], manager, "closed-on-loop-thread");
  CHECK_OK (gcs_manager_close (manager, HANG_MS));
  for (int i = 0; i < 3; i++) {
    CHECK (many[i].alive == NULL);
    CHECK (pthread_equal (many[i].finalized.thread, l.thread));
  }

  gcs_manager_free (manager);

  /* Synchronous from here: returns after the loop thread released it. */
  manager = manager_with_context (l.context);
  register_tracked (&t, manager, "sync-on-loop-thread");
  CHECK_OK (gcs_unregister_sync (t.handle, HANG_MS));
  CHECK (t.cleanup.calls == 1 && t.alive == NULL);
  CHECK (pthread_equal (t.cleanup.thread, l.thread));
  CHECK (pthread_equal (t.finalized.thread, l.thread));
  CHECK (t.cleanup.alive_inside);
  gcs_manager_free (manager);

  g_main_context_invoke (l.context, quit_loop, l.loop);
  JOIN (l.thread);
  g_main_loop_unref (l.loop);
  g_main_context_unref (l.context);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  test_watchdog (30);
  main_thread = pthread_self ();

  RUN_TEST (test_release_waits_for_the_context);
  RUN_TEST (test_owner_releases_at_once);
  RUN_TEST (test_context_iterated_by_another_thread);
  RUN_TEST (test_unregister_sync_waits_for_the_context);

  CHECK_OK (gcs_shutdown (HANG_MS));
  TEST_PASSED ();
}

/* Finalizers (contract: "Cleanups and finalizers"): a finalizer runs at most
 * once, after the cleanups, only if the handle was not invalidated. With
 * enable_finalizer_safety (the default) it runs on a library thread, the
 * reference is dropped only after it returns (gcs_unregister_sync and
 * gcs_manager_close return after that), non-zero results are retried up to
 * max_finalizer_retries times before counting in finalizer_failures, and one
 * overrunning finalizer_timeout_ms is counted in finalizer_timeouts while it
 * still runs, without holding up the others. Without it, it runs inline on
 * the releasing thread. gcs_set_finalizer's checks. No library thread exists
 * before a finalizer needs one, and gcs_shutdown joins them all (the
 * executor names its threads "gcs-finalizer..." / "gcs-watchdog..."). */
#define _GNU_SOURCE
#include "common.h"

#define LIBRARY_THREAD_PREFIX "gcs-"

/* A global sequence: orders events across threads. */
static gint sequence;

static int
next_sequence (void)
{
  return g_atomic_int_add (&sequence, 1) + 1;
}

/* What a finalizer did and saw. */
typedef struct
{
  int fail_first;               /* non-zero result for the first N attempts; -1: always */
  TestGate *hold;               /* if set, the first attempt blocks until it reaches 1 */
  unsigned sleep_ms;            /* per attempt: slow work, never relied on for timing */
  gint attempts;
  gint returned;                /* set as the last attempt returns */
  gint failed;                  /* attempts that failed, counted as they return */
  int first_sequence;
  int return_sequence;
  pthread_t thread;
  void *object;
  gpointer *alive;              /* weak pointer of the object (optional) */
  gboolean alive_at_start;
  gboolean alive_at_return;
  int refcount_inside;
  /* Re-entering the library from the finalizer. */
  GcsHandle self;
  gboolean reenter;
  GcsResult own_sync;
  uint64_t own_sync_ms;
  GcsResult own_access;
  GcsResult own_unregister;
  GcsResult register_other;
  GcsResult unregister_other;
  GcsResult stats_result;
} Finalizer;

static int
never (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  return 0;
}

static int
finalizer_fn (void *object, void *user_data)
{
  Finalizer *f = user_data;
  const int attempt = g_atomic_int_add (&f->attempts, 1) + 1;
  if (attempt == 1) {
    f->first_sequence = next_sequence ();
    f->thread = pthread_self ();
    f->object = object;
    f->alive_at_start = f->alive != NULL && g_atomic_pointer_get (f->alive) != NULL;
    f->refcount_inside = object ? OBJECT_REFCOUNT (object) : -1;
    if (f->reenter) {
      const uint64_t start = test_now_ms ();
      f->own_sync = gcs_unregister_sync (f->self, HANG_MS);
      f->own_sync_ms = test_now_ms () - start;
      f->own_access = gcs_safe_access (f->self, never, NULL);
      f->own_unregister = gcs_unregister (f->self);
      GstElement *element = gst_element_factory_make ("fakesink", NULL);
      GcsHandle other;
      f->register_other = gcs_register (element, "FromFinalizer", &other);
      f->unregister_other = gcs_unregister (other);
      GcsStats stats;
      stats.struct_size = sizeof stats;
      f->stats_result = gcs_get_stats (NULL, &stats);
    }
  }
  if (f->hold != NULL && attempt == 1)
    gate_wait (f->hold, 1);
  if (f->sleep_ms)
    g_usleep (f->sleep_ms * 1000);
  const gboolean fail = f->fail_first < 0 || attempt <= f->fail_first;
  f->alive_at_return = f->alive != NULL && g_atomic_pointer_get (f->alive) != NULL;
  f->return_sequence = next_sequence ();
  /* The attempt's last write to `f`, which a test waits for before it reads
   * or reuses `f` (the library's stats counters are no synchronisation):
   * `returned` on success, the last attempt, or one more failure (the caller
   * knows how many attempts there are). */
  if (fail)
    g_atomic_int_inc (&f->failed);
  else
    g_atomic_int_set (&f->returned, 1);
  return fail ? 1 : 0;
}

static void
finalizer_init (Finalizer * f, GcsHandle self, gpointer * alive)
{
  memset (f, 0, sizeof *f);
  f->self = self;
  f->alive = alive;
}

/* A cleanup that records when and where it ran. */
typedef struct
{
  gint calls;
  int sequence;
  pthread_t thread;
} Cleanup;

static int
cleanup_fn (void *object, void *user_data)
{
  (void) object;
  Cleanup *c = user_data;
  c->sequence = next_sequence ();
  c->thread = pthread_self ();
  g_atomic_int_inc (&c->calls);
  return 0;
}

/* A registered element with the evidence of its finalization (when, in the
 * global sequence, and on which thread). */
typedef struct
{
  GstElement *element;
  GcsHandle handle;
  gpointer alive;
  gint finalize_sequence;
  pthread_t finalize_thread;
} Tracked;

static void
finalize_notify (gpointer data, GObject * where_the_object_was)
{
  (void) where_the_object_was;
  Tracked *t = data;
  t->finalize_thread = pthread_self ();
  g_atomic_int_set (&t->finalize_sequence, next_sequence ());
}

static void
register_tracked (Tracked * t, GcsManager * manager, const char *name)
{
  memset (t, 0, sizeof *t);
  t->element = gst_element_factory_make ("fakesink", NULL);
  CHECK (t->element != NULL);
  watch_finalize (t->element, &t->alive);
  g_object_weak_ref (G_OBJECT (t->element), finalize_notify, t);
  GcsRegistration registration = registration_for (manager, GCS_KIND_GST_OBJECT, t->element);
  registration.instance_name = name;
  CHECK_OK (gcs_register_full (&registration, &t->handle));
}

/* finalize_notify has run: its atomic write is its last to `t`, after GLib
 * cleared `alive` (the weak pointer, added first), so a test that saw it may
 * reuse `t`. */
#define IS_FINALIZED(t) (g_atomic_int_get (&(t)->finalize_sequence) != 0)

static GcsManager *
manager_with (gboolean safety, uint32_t retries, uint32_t timeout_ms)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.enable_finalizer_safety = safety;
  config.max_finalizer_retries = retries;
  config.finalizer_timeout_ms = timeout_ms;
  GcsManager *manager = NULL;
  CHECK_OK (gcs_manager_new (&config, &manager));
  return manager;
}

/* Threads named by the library, seen while a finalizer hung (checked at
 * the end, so that the other checks run whatever the executor is). */
static int library_threads_while_hanging = -1;

/* ---------------------------------------------------------------------- */

static void
test_no_library_thread_before_a_finalizer (void)
{
  Tracked t;
  register_tracked (&t, NULL, "no-finalizer");
  Cleanup c;
  memset (&c, 0, sizeof c);
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c));
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (c.calls == 1 && IS_FINALIZED (&t));
  CHECK (count_threads_with_prefix (LIBRARY_THREAD_PREFIX) == 0);
}

static void
test_runs_after_cleanups_on_a_library_thread (void)
{
  GcsManager *manager = manager_with (TRUE, 3, HANG_MS);
  Tracked t;
  register_tracked (&t, manager, "finalized");
  Cleanup c[2];
  memset (c, 0, sizeof c);
  Finalizer f;
  finalizer_init (&f, t.handle, &t.alive);
  TestGate hold;
  gate_init (&hold);
  f.hold = &hold;
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c[0]));
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c[1]));     /* added after: still before */
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (c[0].calls == 1 && c[1].calls == 1);
  CHECK (pthread_equal (c[0].thread, pthread_self ()));
  /* While the finalizer runs (held until released), the object is alive. */
  POLL_UNTIL (g_atomic_int_get (&f.attempts) == 1, HANG_MS);
  CHECK (g_atomic_int_get (&f.attempts) == 1);
  CHECK (!IS_FINALIZED (&t));
  gate_set (&hold, 1);
  POLL_UNTIL (g_atomic_int_get (&f.returned), HANG_MS);
  CHECK (f.returned && f.attempts == 1);
  CHECK (!pthread_equal (f.thread, pthread_self ()));
  CHECK (f.first_sequence > c[0].sequence && f.first_sequence > c[1].sequence);
  CHECK (f.object == t.element && f.refcount_inside >= 1);
  CHECK (f.alive_at_start && f.alive_at_return);
  /* The reference drops after the finalizer returned. */
  POLL_UNTIL (IS_FINALIZED (&t), HANG_MS);
  CHECK (IS_FINALIZED (&t));
  CHECK (t.finalize_sequence > f.return_sequence);
  POLL_UNTIL (stats_of (manager).finalizers_run == 1, HANG_MS);
  GcsStats s = stats_of (manager);
  CHECK (s.finalizers_run == 1 && s.finalizer_failures == 0 && s.finalizer_timeouts == 0);
  CHECK (s.released == 1 && s.active == 0 && s.cleanups_run == 2);
  CHECK_RESULT (gcs_unregister (t.handle), GCS_ERROR_RELEASED);
  CHECK (f.attempts == 1);
  gate_clear (&hold);

  /* The finalizer may call gcs_ functions, on its own handle too. */
  register_tracked (&t, manager, "reentering");
  finalizer_init (&f, t.handle, &t.alive);
  f.reenter = TRUE;
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_unregister (t.handle));
  POLL_UNTIL (g_atomic_int_get (&f.returned), HANG_MS);
  CHECK (f.returned);
  CHECK_RESULT (f.own_sync, GCS_ERROR_RELEASED);
  CHECK (f.own_sync_ms < HANG_MS / 2);  /* did not wait for itself */
  CHECK_RESULT (f.own_access, GCS_ERROR_RELEASED);
  CHECK_RESULT (f.own_unregister, GCS_ERROR_RELEASED);
  CHECK_OK (f.register_other);
  CHECK_OK (f.unregister_other);
  CHECK_OK (f.stats_result);
  POLL_UNTIL (IS_FINALIZED (&t), HANG_MS);
  CHECK (IS_FINALIZED (&t));

  /* A weak handle whose object is gone: the finalizer gets NULL. */
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  GcsRegistration registration = registration_for (manager, GCS_KIND_WEAK_GOBJECT, object);
  GcsHandle weak;
  CHECK_OK (gcs_register_full (&registration, &weak));
  finalizer_init (&f, weak, NULL);
  f.object = (void *) &f;
  CHECK_OK (gcs_set_finalizer (weak, finalizer_fn, &f));
  g_object_unref (object);
  GcsResult r = gcs_unregister (weak);
  CHECK (r == GCS_OK || r == GCS_ERROR_RELEASED);
  POLL_UNTIL (g_atomic_int_get (&f.returned), HANG_MS);
  CHECK (f.returned && f.object == NULL && f.refcount_inside == -1);

  gcs_manager_free (manager);
}

/* gcs_unregister_sync returns after the release, finalizer included. */
static void
test_unregister_sync_waits_for_the_finalizer (void)
{
  GcsManager *manager = manager_with (TRUE, 3, HANG_MS);
  Tracked t;
  register_tracked (&t, manager, "sync-finalized");
  Finalizer f;
  finalizer_init (&f, t.handle, &t.alive);
  f.sleep_ms = 200;
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_unregister_sync (t.handle, HANG_MS));
  CHECK (g_atomic_int_get (&f.returned));
  CHECK (IS_FINALIZED (&t));
  gcs_manager_free (manager);
}

/* gcs_manager_close waits for the releases, finalizers included. */
static void
test_close_waits_for_finalizers (void)
{
  GcsManager *manager = manager_with (TRUE, 3, HANG_MS);
  Tracked t[2];
  Finalizer f[2];
  for (int i = 0; i < 2; i++) {
    register_tracked (&t[i], manager, "closed-finalized");
    finalizer_init (&f[i], t[i].handle, &t[i].alive);
    f[i].sleep_ms = 150;
    CHECK_OK (gcs_set_finalizer (t[i].handle, finalizer_fn, &f[i]));
  }
  CHECK_OK (gcs_manager_close (manager, HANG_MS));
  for (int i = 0; i < 2; i++) {
    CHECK (g_atomic_int_get (&f[i].returned) && f[i].alive_at_return);
    CHECK (IS_FINALIZED (&t[i]));
  }
  CHECK (stats_of (manager).finalizers_run == 2);
  gcs_manager_free (manager);
}

static void
test_retries (void)
{
  /* Fails twice, then succeeds: 3 attempts, run once, no failure. */
  GcsManager *manager = manager_with (TRUE, 3, HANG_MS);
  Tracked t;
  register_tracked (&t, manager, "retried");
  Finalizer f;
  finalizer_init (&f, t.handle, &t.alive);
  f.fail_first = 2;
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_unregister (t.handle));
  POLL_UNTIL (g_atomic_int_get (&f.returned), HANG_MS);
  POLL_UNTIL (stats_of (manager).finalizers_run == 1, HANG_MS);
  GcsStats s = stats_of (manager);
  CHECK (s.finalizers_run == 1 && s.finalizer_failures == 0);
  CHECK (f.attempts == 3 && f.returned);
  CHECK (f.alive_at_return);
  POLL_UNTIL (IS_FINALIZED (&t), HANG_MS);
  CHECK (IS_FINALIZED (&t));

  /* Always fails: 1 + max_finalizer_retries attempts, one failure, and the
   * reference is still dropped. */
  register_tracked (&t, manager, "always-failing");
  finalizer_init (&f, t.handle, &t.alive);
  f.fail_first = -1;
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_unregister (t.handle));
  POLL_UNTIL (g_atomic_int_get (&f.failed) == 4, HANG_MS);
  POLL_UNTIL (stats_of (manager).finalizers_run == 2, HANG_MS);
  s = stats_of (manager);
  CHECK (s.finalizers_run == 2 && s.finalizer_failures == 1);
  POLL_UNTIL (IS_FINALIZED (&t), HANG_MS);
  CHECK (IS_FINALIZED (&t));
  CHECK (f.attempts == 4);
  gcs_manager_free (manager);

  /* No retries. */
  manager = manager_with (TRUE, 0, HANG_MS);
  register_tracked (&t, manager, "no-retry");
  finalizer_init (&f, t.handle, &t.alive);
  f.fail_first = -1;
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_unregister (t.handle));
  POLL_UNTIL (g_atomic_int_get (&f.failed) == 1, HANG_MS);
  POLL_UNTIL (stats_of (manager).finalizers_run == 1, HANG_MS);
  POLL_UNTIL (IS_FINALIZED (&t), HANG_MS);
  CHECK (IS_FINALIZED (&t));
  s = stats_of (manager);
  CHECK (s.finalizers_run == 1 && s.finalizer_failures == 1);
  CHECK (f.attempts == 1);
  gcs_manager_free (manager);
}

/* A finalizer that overruns finalizer_timeout_ms: counted while it still
 * runs, keeps its object alive until it returns, and does not hold up a
 * finalizer submitted after it. */
static void
test_hanging_finalizer (void)
{
  const unsigned timeout_ms = 100;
  GcsManager *manager = manager_with (TRUE, 3, timeout_ms);
  Tracked slow, quick;
  Finalizer fs, fq;
  register_tracked (&slow, manager, "hanging");
  register_tracked (&quick, manager, "quick");
  finalizer_init (&fs, slow.handle, &slow.alive);
  finalizer_init (&fq, quick.handle, &quick.alive);
  TestGate hang;                /* the slow finalizer blocks until this is set */
  gate_init (&hang);
  fs.hold = &hang;
  CHECK_OK (gcs_set_finalizer (slow.handle, finalizer_fn, &fs));
  CHECK_OK (gcs_set_finalizer (quick.handle, finalizer_fn, &fq));

  const uint64_t start = test_now_ms ();
  CHECK_OK (gcs_unregister (slow.handle));
  POLL_UNTIL (g_atomic_int_get (&fs.attempts) == 1, HANG_MS);
  /* Counted as timed out while it still runs, not before its timeout. */
  POLL_UNTIL (stats_of (manager).finalizer_timeouts == 1, HANG_MS);
  CHECK (test_now_ms () - start >= timeout_ms);
  CHECK (!g_atomic_int_get (&fs.returned));
  library_threads_while_hanging = count_threads_with_prefix (LIBRARY_THREAD_PREFIX);
  CHECK (stats_of (manager).finalizer_timeouts == 1);
  CHECK (!IS_FINALIZED (&slow));        /* its reference is held until it returns */

  /* Another finalizer submitted now completes long before the hanging one. */
  CHECK_OK (gcs_unregister (quick.handle));
  POLL_UNTIL (g_atomic_int_get (&fq.returned), HANG_MS);
  CHECK (fq.returned);
  CHECK (!g_atomic_int_get (&fs.returned));
  POLL_UNTIL (IS_FINALIZED (&quick), HANG_MS);
  CHECK (IS_FINALIZED (&quick));
  CHECK (!IS_FINALIZED (&slow));

  /* The hanging one finishes when released; only then is its reference
   * dropped. */
  CHECK (!g_atomic_int_get (&fs.returned));
  gate_set (&hang, 1);
  POLL_UNTIL (g_atomic_int_get (&fs.returned), HANG_MS);
  CHECK (fs.returned && fs.attempts == 1 && fs.alive_at_return);
  POLL_UNTIL (IS_FINALIZED (&slow), HANG_MS);
  CHECK (IS_FINALIZED (&slow));
  CHECK (slow.finalize_sequence > fs.return_sequence);
  POLL_UNTIL (stats_of (manager).finalizers_run == 2, HANG_MS);
  GcsStats s = stats_of (manager);
  CHECK (s.finalizers_run == 2 && s.finalizer_timeouts == 1 && s.finalizer_failures == 0);
  gate_clear (&hang);
  gcs_manager_free (manager);
}

static void
test_skipped_after_invalidate (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.invalidate_on_callback_error = true;
  GcsManager *manager = NULL;
  CHECK_OK (gcs_manager_new (&config, &manager));
  for (int how = 0; how < 2; how++) {
    Tracked t;
    register_tracked (&t, manager, "invalidated");
    Cleanup c;
    memset (&c, 0, sizeof c);
    Finalizer f;
    finalizer_init (&f, t.handle, &t.alive);
    CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
    CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c));
    if (how == 0) {
      CHECK_OK (gcs_invalidate (t.handle));
    } else {
      /* A failed access invalidates (invalidate_on_callback_error). */
      Finalizer dummy;
      finalizer_init (&dummy, GCS_INVALID_HANDLE, NULL);
      dummy.fail_first = -1;
      CHECK_RESULT (gcs_safe_access (t.handle, finalizer_fn, &dummy), GCS_ERROR_CALLBACK_FAILED);
      CHECK (!gcs_is_valid (t.handle));
    }
    CHECK_OK (gcs_unregister (t.handle));
    /* Cleanups run and the reference drops at once: nothing to wait for. */
    CHECK (c.calls == 1);
    CHECK (IS_FINALIZED (&t));
    g_usleep (50 * 1000);
    CHECK (f.attempts == 0);
  }
  GcsStats s = stats_of (manager);
  CHECK (s.finalizers_run == 0 && s.cleanups_run == 2 && s.released == 2);
  gcs_manager_free (manager);
}

static void
test_set_finalizer_checks (void)
{
  GcsManager *manager = manager_with (FALSE, 3, HANG_MS);
  Tracked t;
  register_tracked (&t, manager, "checked");
  Finalizer first, second;
  finalizer_init (&first, t.handle, &t.alive);
  finalizer_init (&second, t.handle, &t.alive);
  CHECK_RESULT (gcs_set_finalizer (t.handle, NULL, &first), GCS_ERROR_NULL_ARGUMENT);
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &first));
  CHECK_RESULT (gcs_set_finalizer (t.handle, finalizer_fn, &second), GCS_ERROR_INVALID_ARGUMENT);
  CHECK_LAST_ERROR_CONTAINS ("finalizer");
  CHECK_RESULT (gcs_set_finalizer (GCS_INVALID_HANDLE, finalizer_fn, &second),
      GCS_ERROR_INVALID_HANDLE);
  CHECK_RESULT (gcs_set_finalizer (0x0123456789abcdefull, finalizer_fn, &second),
      GCS_ERROR_INVALID_HANDLE);
  CHECK_RESULT (gcs_set_finalizer (UINT64_MAX, finalizer_fn, &second), GCS_ERROR_INVALID_HANDLE);
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (first.attempts == 1 && second.attempts == 0);
  CHECK_RESULT (gcs_set_finalizer (t.handle, finalizer_fn, &second), GCS_ERROR_RELEASED);
  CHECK (second.attempts == 0);

  /* On an invalidated handle it may be set, and is skipped. */
  register_tracked (&t, manager, "invalidated-then-set");
  CHECK_OK (gcs_invalidate (t.handle));
  finalizer_init (&first, t.handle, &t.alive);
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &first));
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (first.attempts == 0 && IS_FINALIZED (&t));
  gcs_manager_free (manager);
}

static void
test_without_finalizer_safety (void)
{
  GcsManager *manager = manager_with (FALSE, 3, HANG_MS);
  Tracked t;
  register_tracked (&t, manager, "inline");
  Cleanup c;
  memset (&c, 0, sizeof c);
  Finalizer f;
  finalizer_init (&f, t.handle, &t.alive);
  f.fail_first = 1;
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c));
  CHECK_OK (gcs_unregister (t.handle));
  /* All done inline before gcs_unregister returned, on this thread. */
  CHECK (c.calls == 1 && f.attempts == 2 && f.returned);
  CHECK (pthread_equal (f.thread, pthread_self ()));
  CHECK (f.first_sequence > c.sequence);
  CHECK (f.alive_at_start && f.alive_at_return);
  CHECK (IS_FINALIZED (&t) && t.finalize_sequence > f.return_sequence);
  CHECK (pthread_equal (t.finalize_thread, pthread_self ()));
  GcsStats s = stats_of (manager);
  CHECK (s.finalizers_run == 1 && s.finalizer_failures == 0);

  /* Released by the thread ending the last access: the finalizer runs there. */
  register_tracked (&t, manager, "inline-on-holder");
  finalizer_init (&f, t.handle, &t.alive);
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  Holder h;
  holder_start (&h, t.handle);
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (f.attempts == 0);
  holder_finish (&h);
  CHECK (f.attempts == 1 && pthread_equal (f.thread, h.thread));
  CHECK (IS_FINALIZED (&t) && pthread_equal (t.finalize_thread, h.thread));

  /* Always failing, inline: 1 + retries attempts. */
  register_tracked (&t, manager, "inline-failing");
  finalizer_init (&f, t.handle, &t.alive);
  f.fail_first = -1;
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (f.attempts == 4 && IS_FINALIZED (&t));
  s = stats_of (manager);
  CHECK (s.finalizers_run == 3 && s.finalizer_failures == 1);
  gcs_manager_free (manager);
}

/* gcs_shutdown joins the executor: a finalizer still running at its timeout
 * gives TIMEOUT; a later shutdown waits for it; then no library thread is
 * left. */
static void
test_shutdown_joins_the_executor (void)
{
  Tracked t;
  register_tracked (&t, NULL, "running-at-shutdown");
  Finalizer f;
  finalizer_init (&f, t.handle, &t.alive);
  TestGate hold;
  gate_init (&hold);
  f.hold = &hold;
  f.sleep_ms = 100;             /* still working a moment after it is released */
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_unregister (t.handle));
  POLL_UNTIL (g_atomic_int_get (&f.attempts) == 1, HANG_MS);
  CHECK (g_atomic_int_get (&f.attempts) == 1);
  CHECK_RESULT (gcs_shutdown (20), GCS_ERROR_TIMEOUT);   /* held: it cannot finish */
  CHECK (!g_atomic_int_get (&f.returned));
  gate_set (&hold, 1);
  CHECK_OK (gcs_shutdown (HANG_MS));
  CHECK (g_atomic_int_get (&f.returned));
  CHECK (IS_FINALIZED (&t));
  CHECK (count_threads_with_prefix (LIBRARY_THREAD_PREFIX) == 0);
  gate_clear (&hold);

  /* The library works afterwards, finalizers included, and a final
   * shutdown leaves no thread. */
  register_tracked (&t, NULL, "after-shutdown");
  finalizer_init (&f, t.handle, &t.alive);
  CHECK_OK (gcs_set_finalizer (t.handle, finalizer_fn, &f));
  CHECK_OK (gcs_unregister (t.handle));
  POLL_UNTIL (g_atomic_int_get (&f.returned), HANG_MS);
  CHECK (f.returned && !pthread_equal (f.thread, pthread_self ()));
  CHECK_OK (gcs_shutdown (HANG_MS));
  CHECK (IS_FINALIZED (&t));
  CHECK (count_threads_with_prefix (LIBRARY_THREAD_PREFIX) == 0);

  /* The executor names its threads: one was seen while a finalizer hung. */
  if (library_threads_while_hanging < 1)
    fprintf (stderr, "no thread named \"" LIBRARY_THREAD_PREFIX "*\" while a finalizer hung\n");
  CHECK (library_threads_while_hanging >= 1);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  test_watchdog (30);

  RUN_TEST (test_no_library_thread_before_a_finalizer);
  RUN_TEST (test_runs_after_cleanups_on_a_library_thread);
  RUN_TEST (test_retries);
  RUN_TEST (test_skipped_after_invalidate);
  RUN_TEST (test_without_finalizer_safety);
  RUN_TEST (test_close_waits_for_finalizers);
  RUN_TEST (test_set_finalizer_checks);
  RUN_TEST (test_unregister_sync_waits_for_the_finalizer);
  RUN_TEST (test_hanging_finalizer);
  RUN_TEST (test_shutdown_joins_the_executor);

  TEST_PASSED ();
}

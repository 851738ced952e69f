/* Cleanups (contract: "Cleanups and finalizers"): each runs exactly once per
 * registration, at release (unregister, invalidate + unregister, manager
 * close), newest first, after in-flight accesses have ended and before the
 * reference drops (the object is alive inside); cleanups may call any gcs_
 * function, on their own handle (RELEASED) or others (chains, cycles), and
 * gcs_unregister_sync on their own handle returns RELEASED without waiting;
 * a weak handle whose object is gone gives its cleanups NULL; non-zero
 * results count in cleanup_failures; gcs_add_cleanup's argument checks. */
#define _GNU_SOURCE
#include "common.h"

/* The order cleanups ran in, across handles. */
typedef struct
{
  GMutex lock;
  int ids[64];
  int n;
} Order;

static void
order_reset (Order * order)
{
  order->n = 0;
}

static void
order_push (Order * order, int id)
{
  g_mutex_lock (&order->lock);
  CHECK (order->n < (int) G_N_ELEMENTS (order->ids));
  order->ids[order->n++] = id;
  g_mutex_unlock (&order->lock);
}

static Order order;

/* What one cleanup saw. */
typedef struct Cleanup Cleanup;
struct Cleanup
{
  int id;
  int status;                   /* returned */
  gint calls;
  void *object;
  pthread_t thread;
  int refcount_inside;          /* -1: object was NULL */
  gpointer *alive;              /* weak pointer of the object (optional) */
  gboolean alive_inside;
  GcsHandle self;               /* its own handle, for the state inside */
  GcsHandleState state_inside;
  uint32_t accesses_inside;
  const gint *access_ended;     /* optional: a flag the access sets when it ends */
  gint access_ended_inside;
  gboolean mini;                /* the object is a GstMiniObject */
};

static int
cleanup_fn (void *object, void *user_data)
{
  Cleanup *c = user_data;
  order_push (&order, c->id);
  c->object = object;
  c->thread = pthread_self ();
  c->refcount_inside = object == NULL ? -1 : c->mini ? MINI_REFCOUNT (object) : OBJECT_REFCOUNT (object);
  c->alive_inside = c->alive != NULL && g_atomic_pointer_get (c->alive) != NULL;
  if (c->self != GCS_INVALID_HANDLE) {
    GcsHandleInfo info;
    memset (&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (gcs_get_info (c->self, &info) == GCS_OK) {
      c->state_inside = info.state;
      c->accesses_inside = info.accesses_in_flight;
    } else {
      c->state_inside = -1;
    }
  }
  if (c->access_ended)
    c->access_ended_inside = g_atomic_int_get (c->access_ended);
  g_atomic_int_inc (&c->calls);
  return c->status;
}

static void
cleanup_init (Cleanup * c, int id, GcsHandle self, gpointer * alive)
{
  memset (c, 0, sizeof *c);
  c->id = id;
  c->self = self;
  c->alive = alive;
}

typedef struct
{
  GstElement *element;
  GcsHandle handle;
  FinalizeRecord finalized;
  gpointer alive;
} Tracked;

static void
register_tracked (Tracked * t, GcsManager * manager, const char *factory, const char *name)
{
  memset (t, 0, sizeof *t);
  t->element = gst_element_factory_make (factory, NULL);
  CHECK (t->element != NULL);
  watch_finalize_record (t->element, &t->finalized);
  watch_finalize (t->element, &t->alive);
  GcsRegistration registration = registration_for (manager, GCS_KIND_GST_OBJECT, t->element);
  registration.instance_name = name;
  CHECK_OK (gcs_register_full (&registration, &t->handle));
}

/* ---------------------------------------------------------------------- */

static void
test_reverse_order_exactly_once_at_unregister (void)
{
  Tracked t;
  register_tracked (&t, NULL, "fakesink", "three-cleanups");
  Cleanup c[3];
  for (int i = 0; i < 3; i++) {
    cleanup_init (&c[i], i + 1, t.handle, &t.alive);
    CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c[i]));
  }
  order_reset (&order);
  /* Nothing runs before the release. */
  void *object;
  CHECK_OK (gcs_access_begin (t.handle, &object));
  CHECK_OK (gcs_access_end (t.handle));
  CHECK (order.n == 0);

  CHECK_OK (gcs_unregister (t.handle));
  CHECK (order.n == 3);
  CHECK (order.ids[0] == 3 && order.ids[1] == 2 && order.ids[2] == 1);
  for (int i = 0; i < 3; i++) {
    CHECK (c[i].calls == 1);
    CHECK (c[i].object == t.element);
    CHECK (pthread_equal (c[i].thread, pthread_self ()));
    /* Before the reference dropped: alive, referenced. */
    CHECK (c[i].alive_inside && c[i].refcount_inside >= 1);
    CHECK (c[i].state_inside == GCS_STATE_RELEASING && c[i].accesses_inside == 0);
  }
  CHECK (t.alive == NULL && FINALIZED_COUNT (&t.finalized) == 1);
  /* Never again. */
  CHECK_RESULT (gcs_unregister (t.handle), GCS_ERROR_RELEASED);
  CHECK_RESULT (gcs_unregister_sync (t.handle, 100), GCS_ERROR_RELEASED);
  CHECK (order.n == 3);
  for (int i = 0; i < 3; i++)
    CHECK (c[i].calls == 1);

  /* The same cleanup function and data added twice runs twice. */
  register_tracked (&t, NULL, "identity", NULL);
  cleanup_init (&c[0], 7, GCS_INVALID_HANDLE, &t.alive);
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c[0]));
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c[0]));
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (c[0].calls == 2);

  /* Mini objects and pointers: the cleanups run before the unref / the
   * release function. */
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 64, NULL);
  GcsRegistration registration = registration_for (NULL, GCS_KIND_MINI_OBJECT, buffer);
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  gst_buffer_unref (buffer);    /* only the registration holds it now */
  cleanup_init (&c[0], 1, handle, NULL);
  c[0].mini = TRUE;
  CHECK_OK (gcs_add_cleanup (handle, cleanup_fn, &c[0]));
  CHECK_OK (gcs_unregister (handle));
  CHECK (c[0].calls == 1 && c[0].object == buffer && c[0].refcount_inside == 1);
}

/* Records the order of a pointer's cleanups and release. */
typedef struct
{
  int log[4];
  int n;
} PointerLog;

static int
pointer_cleanup (void *object, void *user_data)
{
  PointerLog *log = user_data;
  CHECK (object == (void *) log);
  log->log[log->n++] = 1;
  return 0;
}

static void
pointer_release (void *object, void *user_data)
{
  (void) object;
  PointerLog *log = user_data;
  log->log[log->n++] = 2;
}

static void
test_cleanups_run_before_the_release_function (void)
{
  PointerLog log;
  memset (&log, 0, sizeof log);
  GcsRegistration registration = registration_for (NULL, GCS_KIND_POINTER, &log);
  registration.release = pointer_release;
  registration.release_data = &log;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK_OK (gcs_add_cleanup (handle, pointer_cleanup, &log));
  CHECK_OK (gcs_add_cleanup (handle, pointer_cleanup, &log));
  CHECK_OK (gcs_unregister (handle));
  CHECK (log.n == 3 && log.log[0] == 1 && log.log[1] == 1 && log.log[2] == 2);
}

/* ---- after in-flight accesses have ended ---- */

typedef struct
{
  GcsHandle handle;
  TestGate inside;
  TestGate go_on;
  gint callback_returning;      /* set just before the callback returns */
  GcsResult result;
  pthread_t thread;
} SlowAccess;

static int
slow_callback (void *object, void *user_data)
{
  (void) object;
  SlowAccess *s = user_data;
  gate_set (&s->inside, 1);
  gate_wait (&s->go_on, 1);
  g_usleep (20 * 1000);         /* a cleanup running now would see the flag unset */
  g_atomic_int_set (&s->callback_returning, 1);
  return 0;
}

static void *
slow_access_thread (void *data)
{
  SlowAccess *s = data;
  s->result = gcs_safe_access (s->handle, slow_callback, s);
  return NULL;
}

static void
test_after_in_flight_accesses (void)
{
  /* A gcs_safe_access on another thread. */
  Tracked t;
  register_tracked (&t, NULL, "fakesink", "in-flight");
  Cleanup c;
  cleanup_init (&c, 1, t.handle, &t.alive);
  SlowAccess s;
  memset (&s, 0, sizeof s);
  s.handle = t.handle;
  gate_init (&s.inside);
  gate_init (&s.go_on);
  c.access_ended = &s.callback_returning;
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c));
  SPAWN (&s.thread, slow_access_thread, &s);
  gate_wait (&s.inside, 1);
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (c.calls == 0);         /* the access is still in flight */
  CHECK (t.alive != NULL);
  gate_set (&s.go_on, 1);
  JOIN (s.thread);
  CHECK_OK (s.result);
  CHECK (c.calls == 1);
  CHECK (c.access_ended_inside == 1);
  CHECK (c.alive_inside && c.refcount_inside >= 1);
  CHECK (c.accesses_inside == 0);
  CHECK (pthread_equal (c.thread, s.thread));   /* the thread ending the access */
  CHECK (t.alive == NULL && pthread_equal (t.finalized.thread, s.thread));
  gate_clear (&s.inside);
  gate_clear (&s.go_on);

  /* Nested accesses on this thread: after the outermost ends. */
  register_tracked (&t, NULL, "identity", "nested");
  cleanup_init (&c, 2, t.handle, &t.alive);
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c));
  void *object;
  CHECK_OK (gcs_access_begin (t.handle, &object));
  CHECK_OK (gcs_access_begin (t.handle, &object));
  CHECK_OK (gcs_unregister (t.handle));
  CHECK_OK (gcs_access_end (t.handle));
  CHECK (c.calls == 0);
  CHECK_OK (gcs_access_end (t.handle));
  CHECK (c.calls == 1 && c.alive_inside && c.accesses_inside == 0);
  CHECK (t.alive == NULL);
}

static void
test_invalidate_then_unregister (void)
{
  Tracked t;
  register_tracked (&t, NULL, "fakesink", "invalidated");
  Cleanup c[2];
  cleanup_init (&c[0], 1, t.handle, &t.alive);
  cleanup_init (&c[1], 2, t.handle, &t.alive);
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c[0]));
  CHECK_OK (gcs_invalidate (t.handle));
  /* A cleanup may still be added to an invalidated handle. */
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c[1]));
  CHECK (c[0].calls == 0 && c[1].calls == 0 && t.alive != NULL);
  order_reset (&order);
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (order.n == 2 && order.ids[0] == 2 && order.ids[1] == 1);
  CHECK (c[0].calls == 1 && c[1].calls == 1);
  CHECK (c[0].alive_inside && c[1].alive_inside);
  CHECK (t.alive == NULL);
}

static void
test_at_manager_close (void)
{
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (NULL, &manager));
  Tracked t[3];
  Cleanup c[3][2];
  for (int i = 0; i < 3; i++) {
    register_tracked (&t[i], manager, "fakesink", "closing");
    for (int j = 0; j < 2; j++) {
      cleanup_init (&c[i][j], 10 * i + j, t[i].handle, &t[i].alive);
      CHECK_OK (gcs_add_cleanup (t[i].handle, cleanup_fn, &c[i][j]));
    }
  }
  CHECK_OK (gcs_invalidate (t[1].handle));
  order_reset (&order);
  CHECK_OK (gcs_manager_close (manager, HANG_MS));
  CHECK (order.n == 6);
  for (int i = 0; i < 3; i++) {
    /* Newest first within each registration. */
    int first = -1, second = -1;
    for (int k = 0; k < order.n; k++) {
      if (order.ids[k] == 10 * i + 1)
        first = k;
      if (order.ids[k] == 10 * i)
        second = k;
    }
    CHECK (first >= 0 && second == first + 1);
    for (int j = 0; j < 2; j++)
      CHECK (c[i][j].calls == 1 && c[i][j].alive_inside && c[i][j].object == t[i].element);
    CHECK (t[i].alive == NULL);
  }
  CHECK (stats_of (manager).cleanups_run == 6);
  gcs_manager_free (manager);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++)
      CHECK (c[i][j].calls == 1);
}

/* ---- cleanups calling gcs_ functions ---- */

typedef struct
{
  GcsHandle self;
  GcsHandle other;              /* unregistered from the cleanup, if set */
  gboolean sync;                /* ...with gcs_unregister_sync */
  gint calls;
  GcsResult own_unregister;
  GcsResult own_sync;
  uint64_t own_sync_ms;
  GcsResult own_access;
  GcsResult own_add_cleanup;
  gboolean own_valid;
  GcsResult other_unregister;
  GcsResult register_new;
  GcsResult unregister_new;
  gboolean new_finalized;
  GcsResult stats_result;
  int order_id;
} Reentrant;

static int
never (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  return 0;
}

static void
count_live (const GcsHandleInfo * info, void *user_data)
{
  (void) info;
  (*(int *) user_data)++;
}

static int
reentrant_cleanup (void *object, void *user_data)
{
  (void) object;
  Reentrant *r = user_data;
  g_atomic_int_inc (&r->calls);
  order_push (&order, r->order_id);
  r->own_unregister = gcs_unregister (r->self);
  const uint64_t start = test_now_ms ();
  r->own_sync = gcs_unregister_sync (r->self, HANG_MS);
  r->own_sync_ms = test_now_ms () - start;
  r->own_access = gcs_safe_access (r->self, never, NULL);
  r->own_add_cleanup = gcs_add_cleanup (r->self, never, NULL);
  r->own_valid = gcs_is_valid (r->self);
  if (r->other != GCS_INVALID_HANDLE)
    r->other_unregister = r->sync ? gcs_unregister_sync (r->other, HANG_MS) : gcs_unregister (r->other);
  /* Register and release something else from in here. */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  gpointer alive;
  watch_finalize (element, &alive);
  GcsHandle handle = GCS_INVALID_HANDLE;
  r->register_new = gcs_register (element, "FromCleanup", &handle);
  r->unregister_new = gcs_unregister (handle);
  r->new_finalized = alive == NULL;
  /* Statistics and the leak report take no lock a cleanup could hold. */
  GcsStats stats;
  stats.struct_size = sizeof stats;
  r->stats_result = gcs_get_stats (NULL, &stats);
  int live = 0;
  if (r->stats_result == GCS_OK)
    r->stats_result = gcs_foreach_live (NULL, count_live, &live);
  return 0;
}

static void
reentrant_init (Reentrant * r, GcsHandle self, GcsHandle other, int order_id)
{
  memset (r, 0, sizeof *r);
  r->self = self;
  r->other = other;
  r->order_id = order_id;
  r->own_unregister = r->own_sync = r->own_access = r->own_add_cleanup = GCS_ERROR_PANIC;
  r->other_unregister = GCS_ERROR_PANIC;
}

static void
check_own_handle_results (const Reentrant * r)
{
  CHECK (r->calls == 1);
  CHECK_RESULT (r->own_unregister, GCS_ERROR_RELEASED);
  CHECK_RESULT (r->own_sync, GCS_ERROR_RELEASED);
  CHECK (r->own_sync_ms < HANG_MS / 2);  /* did not wait for itself */
  CHECK_RESULT (r->own_access, GCS_ERROR_RELEASED);
  CHECK_RESULT (r->own_add_cleanup, GCS_ERROR_RELEASED);
  CHECK (!r->own_valid);
  CHECK_OK (r->register_new);
  CHECK_OK (r->unregister_new);
  CHECK (r->new_finalized);
  CHECK_OK (r->stats_result);
}

static void
test_cleanup_on_its_own_handle (void)
{
  Tracked t;
  register_tracked (&t, NULL, "fakesink", "self-unregistering");
  Reentrant r;
  reentrant_init (&r, t.handle, GCS_INVALID_HANDLE, 1);
  CHECK_OK (gcs_add_cleanup (t.handle, reentrant_cleanup, &r));
  CHECK_OK (gcs_unregister (t.handle));
  check_own_handle_results (&r);
  CHECK (t.alive == NULL);

  /* The same when the release is started by gcs_unregister_sync (which
   * must not wait for the cleanup's own gcs_unregister_sync). */
  register_tracked (&t, NULL, "identity", "self-unregistering-sync");
  reentrant_init (&r, t.handle, GCS_INVALID_HANDLE, 1);
  CHECK_OK (gcs_add_cleanup (t.handle, reentrant_cleanup, &r));
  CHECK_OK (gcs_unregister_sync (t.handle, HANG_MS));
  check_own_handle_results (&r);
  CHECK (t.alive == NULL);
}

static void
test_cleanup_chains_and_cycles (void)
{
  /* A chain: A's cleanup unregisters B, B's unregisters C. */
  Tracked a, b, c;
  register_tracked (&a, NULL, "fakesink", "chain-a");
  register_tracked (&b, NULL, "fakesink", "chain-b");
  register_tracked (&c, NULL, "fakesink", "chain-c");
  Reentrant ra, rb, rc;
  reentrant_init (&ra, a.handle, b.handle, 1);
  reentrant_init (&rb, b.handle, c.handle, 2);
  reentrant_init (&rc, c.handle, GCS_INVALID_HANDLE, 3);
  CHECK_OK (gcs_add_cleanup (a.handle, reentrant_cleanup, &ra));
  CHECK_OK (gcs_add_cleanup (b.handle, reentrant_cleanup, &rb));
  CHECK_OK (gcs_add_cleanup (c.handle, reentrant_cleanup, &rc));
  order_reset (&order);
  CHECK_OK (gcs_unregister (a.handle));
  CHECK (order.n == 3 && order.ids[0] == 1 && order.ids[1] == 2 && order.ids[2] == 3);
  check_own_handle_results (&ra);
  check_own_handle_results (&rb);
  check_own_handle_results (&rc);
  CHECK_OK (ra.other_unregister);
  CHECK_OK (rb.other_unregister);
  CHECK (a.alive == NULL && b.alive == NULL && c.alive == NULL);

  /* A cycle: A's cleanup unregisters B, B's unregisters A (already
   * releasing: RELEASED). Each cleanup runs once; it terminates. */
  for (int sync = 0; sync <= 1; sync++) {
    register_tracked (&a, NULL, "fakesink", "cycle-a");
    register_tracked (&b, NULL, "identity", "cycle-b");
    reentrant_init (&ra, a.handle, b.handle, 1);
    reentrant_init (&rb, b.handle, a.handle, 2);
    ra.sync = rb.sync = sync;
    CHECK_OK (gcs_add_cleanup (a.handle, reentrant_cleanup, &ra));
    CHECK_OK (gcs_add_cleanup (b.handle, reentrant_cleanup, &rb));
    order_reset (&order);
    const uint64_t start = test_now_ms ();
    if (sync)
      CHECK_OK (gcs_unregister_sync (a.handle, HANG_MS));
    else
      CHECK_OK (gcs_unregister (a.handle));
    CHECK (test_now_ms () - start < HANG_MS / 2);     /* no cycle waited on itself */
    CHECK (order.n == 2 && order.ids[0] == 1 && order.ids[1] == 2);
    check_own_handle_results (&ra);
    check_own_handle_results (&rb);
    CHECK_OK (ra.other_unregister);
    CHECK_RESULT (rb.other_unregister, GCS_ERROR_RELEASED);
    CHECK (a.alive == NULL && b.alive == NULL);
    CHECK_RESULT (gcs_unregister (b.handle), GCS_ERROR_RELEASED);
  }

  /* A cycle closed by the manager: both in the same manager. */
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (NULL, &manager));
  register_tracked (&a, manager, "fakesink", "close-cycle-a");
  register_tracked (&b, manager, "fakesink", "close-cycle-b");
  reentrant_init (&ra, a.handle, b.handle, 1);
  reentrant_init (&rb, b.handle, a.handle, 2);
  CHECK_OK (gcs_add_cleanup (a.handle, reentrant_cleanup, &ra));
  CHECK_OK (gcs_add_cleanup (b.handle, reentrant_cleanup, &rb));
  CHECK_OK (gcs_manager_close (manager, HANG_MS));
  CHECK (ra.calls == 1 && rb.calls == 1);
  CHECK (a.alive == NULL && b.alive == NULL);
  gcs_manager_free (manager);
}

/* ---- weak handles ---- */

static void
test_weak_handle_cleanups (void)
{
  /* The object still alive at unregister: the cleanup gets it, alive. */
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  gpointer alive;
  watch_finalize (object, &alive);
  GcsRegistration registration = registration_for (NULL, GCS_KIND_WEAK_GOBJECT, object);
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (OBJECT_REFCOUNT (object) == 1);
  Cleanup c;
  cleanup_init (&c, 1, handle, &alive);
  CHECK_OK (gcs_add_cleanup (handle, cleanup_fn, &c));
  CHECK_OK (gcs_unregister (handle));
  CHECK (c.calls == 1 && c.object == object && c.alive_inside && c.refcount_inside >= 1);
  CHECK (alive != NULL && OBJECT_REFCOUNT (object) == 1);       /* not ours to drop */
  g_object_unref (object);
  CHECK (alive == NULL);

  /* Finalized elsewhere, found by an access: the cleanups get NULL. */
  object = g_object_new (G_TYPE_OBJECT, NULL);
  watch_finalize (object, &alive);
  registration = registration_for (NULL, GCS_KIND_WEAK_GOBJECT, object);
  CHECK_OK (gcs_register_full (&registration, &handle));
  Cleanup w[2];
  cleanup_init (&w[0], 1, handle, NULL);
  cleanup_init (&w[1], 2, handle, NULL);
  CHECK_OK (gcs_add_cleanup (handle, cleanup_fn, &w[0]));
  CHECK_OK (gcs_add_cleanup (handle, cleanup_fn, &w[1]));
  g_object_unref (object);
  CHECK (alive == NULL);
  order_reset (&order);
  CHECK_RESULT (gcs_safe_access (handle, never, NULL), GCS_ERROR_RELEASED);
  CHECK (order.n == 2 && order.ids[0] == 2 && order.ids[1] == 1);
  for (int i = 0; i < 2; i++)
    CHECK (w[i].calls == 1 && w[i].object == NULL && w[i].refcount_inside == -1);
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  CHECK (w[0].calls == 1 && w[1].calls == 1);

  /* Finalized elsewhere, then unregistered: NULL too. */
  object = g_object_new (G_TYPE_OBJECT, NULL);
  watch_finalize (object, &alive);
  registration = registration_for (NULL, GCS_KIND_WEAK_GOBJECT, object);
  CHECK_OK (gcs_register_full (&registration, &handle));
  cleanup_init (&c, 1, handle, NULL);
  c.object = (void *) &c;
  CHECK_OK (gcs_add_cleanup (handle, cleanup_fn, &c));
  g_object_unref (object);
  CHECK (alive == NULL);
  GcsResult r = gcs_unregister (handle);
  CHECK (r == GCS_OK || r == GCS_ERROR_RELEASED);
  CHECK (c.calls == 1 && c.object == NULL);
}

/* ---- failures counted ---- */

static void
test_failures_counted (void)
{
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (NULL, &manager));
  Tracked t;
  register_tracked (&t, manager, "fakesink", "failing-cleanups");
  Cleanup c[4];
  const int statuses[4] = { 0, 1, -1, 0 };
  for (int i = 0; i < 4; i++) {
    cleanup_init (&c[i], i, t.handle, &t.alive);
    c[i].status = statuses[i];
    CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &c[i]));
  }
  GcsStats before = stats_of (manager);
  CHECK (before.cleanups_run == 0 && before.cleanup_failures == 0);
  CHECK_OK (gcs_unregister (t.handle));
  /* A failing cleanup does not stop the others, nor the release. */
  for (int i = 0; i < 4; i++)
    CHECK (c[i].calls == 1 && c[i].alive_inside);
  CHECK (t.alive == NULL);
  GcsStats after = stats_of (manager);
  CHECK (after.cleanups_run == 4);
  CHECK (after.cleanup_failures == 2);
  CHECK (after.released == 1);
  gcs_manager_free (manager);
}

/* ---- gcs_add_cleanup's checks ---- */

static void
test_add_cleanup_checks (void)
{
  Tracked t;
  register_tracked (&t, NULL, "fakesink", "checked");
  Cleanup c;
  cleanup_init (&c, 1, t.handle, &t.alive);

  /* NULL function: NULL_ARGUMENT, and nothing kept. */
  CHECK_RESULT (gcs_add_cleanup (t.handle, NULL, &c), GCS_ERROR_NULL_ARGUMENT);
  CHECK (gcs_last_error ()[0] != '\0');
  /* Forged and 0 handles: INVALID_HANDLE. */
  CHECK_RESULT (gcs_add_cleanup (GCS_INVALID_HANDLE, cleanup_fn, &c), GCS_ERROR_INVALID_HANDLE);
  const GcsHandle forged[] = { 1, UINT64_MAX, 0x0123456789abcdefull, 0x8000000000000000ull };
  for (size_t i = 0; i < G_N_ELEMENTS (forged); i++)
    CHECK_RESULT (gcs_add_cleanup (forged[i], cleanup_fn, &c), GCS_ERROR_INVALID_HANDLE);
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (c.calls == 0);         /* nothing was kept by the refused calls */

  /* An unregistered handle: RELEASED, not kept. */
  CHECK_RESULT (gcs_add_cleanup (t.handle, cleanup_fn, &c), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("checked");
  CHECK (c.calls == 0);

  /* Unregistered while an access is in flight (release pending): RELEASED,
   * and not run when the release happens. */
  register_tracked (&t, NULL, "identity", "pending");
  Cleanup kept;
  cleanup_init (&kept, 2, t.handle, &t.alive);
  CHECK_OK (gcs_add_cleanup (t.handle, cleanup_fn, &kept));
  Holder h;
  holder_start (&h, t.handle);
  CHECK_OK (gcs_unregister (t.handle));
  cleanup_init (&c, 3, t.handle, &t.alive);
  CHECK_RESULT (gcs_add_cleanup (t.handle, cleanup_fn, &c), GCS_ERROR_RELEASED);
  holder_finish (&h);
  CHECK (kept.calls == 1 && c.calls == 0);
  CHECK (t.alive == NULL);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  test_watchdog (30);
  g_mutex_init (&order.lock);

  RUN_TEST (test_reverse_order_exactly_once_at_unregister);
  RUN_TEST (test_cleanups_run_before_the_release_function);
  RUN_TEST (test_after_in_flight_accesses);
  RUN_TEST (test_invalidate_then_unregister);
  RUN_TEST (test_at_manager_close);
  RUN_TEST (test_cleanup_on_its_own_handle);
  RUN_TEST (test_cleanup_chains_and_cycles);
  RUN_TEST (test_weak_handle_cleanups);
  RUN_TEST (test_failures_counted);
  RUN_TEST (test_add_cleanup_checks);

  CHECK_OK (gcs_shutdown (HANG_MS));
  g_mutex_clear (&order.lock);
  TEST_PASSED ();
}

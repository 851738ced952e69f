/* Release (contract: "Release"): gcs_unregister never blocks, the reference
 * is dropped exactly once, when the last access in flight ends, on the
 * thread that ends it; unregister inside an access of the same handle;
 * double unregister; gcs_unregister_sync (returns after the release,
 * WOULD_DEADLOCK inside its own access, TIMEOUT leaving the release pending,
 * RELEASED after waiting for someone else's release, GCS_TIMEOUT_INFINITE). */
#include "common.h"

typedef struct
{
  gint calls;
} Probe;

static int
probe (void *object, void *user_data)
{
  (void) object;
  Probe *p = user_data;
  g_atomic_int_inc (&p->calls);
  return 0;
}

/* A registered element whose finalization (count and thread) is recorded. */
typedef struct
{
  GstElement *element;
  GcsHandle handle;
  FinalizeRecord finalized;
} Tracked;

static void
register_tracked (Tracked * t, const char *factory, const char *instance_name)
{
  t->element = gst_element_factory_make (factory, NULL);
  CHECK (t->element != NULL);
  watch_finalize_record (t->element, &t->finalized);
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_GST_OBJECT;
  registration.object = t->element;
  registration.instance_name = instance_name;
  CHECK_OK (gcs_register_full (&registration, &t->handle));
  CHECK (OBJECT_REFCOUNT (t->element) == 1);
}

/* A GCS_KIND_POINTER payload with a counting release function. */
typedef struct
{
  gint releases;
  void *object;
  void *data;
  pthread_t thread;
} Box;

static void
release_box (void *object, void *user_data)
{
  Box *box = user_data;
  box->object = object;
  box->data = user_data;
  box->thread = pthread_self ();
  g_atomic_int_inc (&box->releases);
}

static GcsHandle
register_box (Box * box)
{
  memset (box, 0, sizeof *box);
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_POINTER;
  registration.object = box;
  registration.type_name = "Box";
  registration.release = release_box;
  registration.release_data = box;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  return handle;
}

/* ---- threads that hold an access, end one, or unregister ---- */

typedef struct
{
  GcsHandle handle;
  GcsResult result;
  uint32_t timeout_ms;
  gboolean sync;
  TestGate done;
  pthread_t thread;
} Unregisterer;

static void *
unregisterer_thread (void *data)
{
  Unregisterer *u = data;
  u->result = u->sync ? gcs_unregister_sync (u->handle, u->timeout_ms) : gcs_unregister (u->handle);
  gate_set (&u->done, 1);
  return NULL;
}

static void
unregisterer_start (Unregisterer * u, GcsHandle handle, gboolean sync, uint32_t timeout_ms)
{
  memset (u, 0, sizeof *u);
  u->handle = handle;
  u->sync = sync;
  u->timeout_ms = timeout_ms;
  gate_init (&u->done);
  SPAWN (&u->thread, unregisterer_thread, u);
}

static void
unregisterer_join (Unregisterer * u)
{
  JOIN (u->thread);
  gate_clear (&u->done);
}

/* ---------------------------------------------------------------------- */

static void
test_release_on_the_thread_that_ends_the_last_access (void)
{
  /* 1. An access held by another thread; unregistered here; released on
   *    the holder's thread when it ends. */
  Tracked t;
  register_tracked (&t, "fakesink", "released-by-holder");
  Holder h;
  holder_start (&h, t.handle);
  CHECK (h.object == t.element);
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (FINALIZED_COUNT (&t.finalized) == 0);
  CHECK (OBJECT_REFCOUNT (t.element) == 1);
  holder_finish (&h);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, h.thread));

  /* 2. Begun here, unregistered by another thread, ended by a third. */
  register_tracked (&t, "identity", "three-threads");
  void *object;
  CHECK_OK (gcs_access_begin (t.handle, &object));
  Unregisterer u;
  unregisterer_start (&u, t.handle, FALSE, 0);
  CHECK (gate_wait_for (&u.done, 1, HANG_MS));  /* never blocks on the access */
  unregisterer_join (&u);
  CHECK_OK (u.result);
  CHECK (FINALIZED_COUNT (&t.finalized) == 0);
  pthread_t ender;
  CHECK_OK (end_access_on_new_thread (t.handle, &ender));
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, ender));

  /* 3. Two holders: only the last one to end releases. */
  register_tracked (&t, "queue", "two-holders");
  Holder first, second;
  holder_start (&first, t.handle);
  holder_start (&second, t.handle);
  CHECK (handle_info_of (t.handle).accesses_in_flight == 2);
  CHECK_OK (gcs_unregister (t.handle));
  holder_finish (&first);
  CHECK (FINALIZED_COUNT (&t.finalized) == 0);
  CHECK (handle_info_of (t.handle).state == GCS_STATE_RELEASING);
  CHECK (handle_info_of (t.handle).accesses_in_flight == 1);
  holder_finish (&second);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, second.thread));

  /* 4. Nothing in flight: released by the unregistering thread, at once. */
  register_tracked (&t, "fakesink", "idle");
  unregisterer_start (&u, t.handle, FALSE, 0);
  unregisterer_join (&u);
  CHECK_OK (u.result);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, u.thread));

  /* 5. GCS_KIND_POINTER: the release function runs once, on the holder. */
  Box box;
  GcsHandle handle = register_box (&box);
  holder_start (&h, handle);
  CHECK (h.object == &box);
  CHECK_OK (gcs_unregister (handle));
  CHECK (box.releases == 0);
  holder_finish (&h);
  CHECK (box.releases == 1);
  CHECK (box.object == &box && box.data == &box);
  CHECK (pthread_equal (box.thread, h.thread));
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  CHECK (box.releases == 1);
}

/* ---- unregister inside an access of the same handle ---- */

typedef struct
{
  Tracked *t;
  int depth;
  int unregister_at;            /* depth at which to unregister */
  GcsResult unregister_result;
  GcsResult second_unregister_result;
  GcsResult nested_after_result;
  GcsHandleState state_after;
  gboolean valid_after;
  gboolean alive_until_return;
} Inside;

static int
unregister_inside (void *object, void *user_data)
{
  Inside *in = user_data;
  in->depth++;
  const int depth = in->depth;
  if (depth < in->unregister_at) {
    if (gcs_safe_access (in->t->handle, unregister_inside, in) != GCS_OK)
      in->alive_until_return = FALSE;
  } else {
    in->unregister_result = gcs_unregister (in->t->handle);
    in->second_unregister_result = gcs_unregister (in->t->handle);
    in->valid_after = gcs_is_valid (in->t->handle);
    in->state_after = handle_info_of (in->t->handle).state;
    Probe p = { 0 };
    in->nested_after_result = gcs_safe_access (in->t->handle, probe, &p);
    if (p.calls != 0)
      in->alive_until_return = FALSE;
  }
  /* Whatever depth: the object is alive until this callback returns. */
  if (FINALIZED_COUNT (&in->t->finalized) != 0 || OBJECT_REFCOUNT (object) < 1)
    in->alive_until_return = FALSE;
  in->depth--;
  return 0;
}

static void
test_unregister_inside_own_access (void)
{
  for (int at = 1; at <= 3; at++) {
    Tracked t;
    register_tracked (&t, "fakesink", "unregistered-inside");
    Inside in;
    memset (&in, 0, sizeof in);
    in.t = &t;
    in.unregister_at = at;
    in.alive_until_return = TRUE;
    CHECK_OK (gcs_safe_access (t.handle, unregister_inside, &in));
    CHECK_OK (in.unregister_result);
    CHECK_RESULT (in.second_unregister_result, GCS_ERROR_RELEASED);
    CHECK (!in.valid_after);
    CHECK (in.state_after == GCS_STATE_RELEASING);
    CHECK_RESULT (in.nested_after_result, GCS_ERROR_RELEASED);
    CHECK (in.alive_until_return);
    /* Released right after the outermost access ended, on this thread. */
    CHECK (FINALIZED_COUNT (&t.finalized) == 1);
    CHECK (pthread_equal (t.finalized.thread, pthread_self ()));
    CHECK_RESULT (gcs_unregister (t.handle), GCS_ERROR_RELEASED);
    CHECK (handle_info_of (t.handle).state == GCS_STATE_RELEASED);
  }

  /* The same with gcs_access_begin/end. */
  Tracked t;
  register_tracked (&t, "identity", NULL);
  void *object;
  CHECK_OK (gcs_access_begin (t.handle, &object));
  CHECK_OK (gcs_access_begin (t.handle, &object));
  CHECK_OK (gcs_unregister (t.handle));
  CHECK_OK (gcs_access_end (t.handle));
  CHECK (FINALIZED_COUNT (&t.finalized) == 0);
  CHECK_OK (gcs_access_end (t.handle));
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  /* Nothing left to end. */
  CHECK (gcs_access_end (t.handle) != GCS_OK);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
}

/* ---- unregister from another thread while a safe_access runs ---- */

typedef struct
{
  Tracked *t;
  TestGate inside;
  TestGate go_on;
  GcsResult result;
  gboolean alive_at_end;
  pthread_t thread;
} SlowAccess;

static int
slow_callback (void *object, void *user_data)
{
  SlowAccess *s = user_data;
  gate_set (&s->inside, 1);
  gate_wait (&s->go_on, 1);
  s->alive_at_end = FINALIZED_COUNT (&s->t->finalized) == 0 && OBJECT_REFCOUNT (object) >= 1
      && GST_IS_ELEMENT (object);
  return 0;
}

static void *
slow_access_thread (void *data)
{
  SlowAccess *s = data;
  s->result = gcs_safe_access (s->t->handle, slow_callback, s);
  return NULL;
}

static void
test_unregister_from_another_thread_during_access (void)
{
  Tracked t;
  register_tracked (&t, "fakesink", "unregistered-meanwhile");
  SlowAccess s;
  memset (&s, 0, sizeof s);
  s.t = &t;
  gate_init (&s.inside);
  gate_init (&s.go_on);
  SPAWN (&s.thread, slow_access_thread, &s);
  gate_wait (&s.inside, 1);

  /* Returns although the access goes on (it would hang if it waited: the
   * callback waits for this thread). */
  Unregisterer u;
  unregisterer_start (&u, t.handle, FALSE, 0);
  CHECK (gate_wait_for (&u.done, 1, HANG_MS));
  unregisterer_join (&u);
  CHECK_OK (u.result);
  CHECK (!gcs_is_valid (t.handle));
  Probe p = { 0 };
  CHECK_RESULT (gcs_safe_access (t.handle, probe, &p), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (p.calls == 0);
  GcsHandleInfo info = handle_info_of (t.handle);
  CHECK (info.state == GCS_STATE_RELEASING);
  CHECK (info.accesses_in_flight == 1);
  CHECK (FINALIZED_COUNT (&t.finalized) == 0);
  CHECK (OBJECT_REFCOUNT (t.element) == 1);

  gate_set (&s.go_on, 1);
  JOIN (s.thread);
  CHECK_OK (s.result);
  CHECK (s.alive_at_end);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, s.thread));
  gate_clear (&s.inside);
  gate_clear (&s.go_on);
}

static void
test_double_unregister (void)
{
  Tracked t;
  register_tracked (&t, "fakesink", "twice-unregistered");
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK_RESULT (gcs_unregister (t.handle), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("twice-unregistered");
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);

  /* While the release is pending too. */
  Box box;
  GcsHandle handle = register_box (&box);
  Holder h;
  holder_start (&h, handle);
  CHECK_OK (gcs_unregister (handle));
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  CHECK_RESULT (gcs_invalidate (handle), GCS_ERROR_RELEASED);
  CHECK (box.releases == 0);
  holder_finish (&h);
  CHECK (box.releases == 1);
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  CHECK (box.releases == 1);

  /* Invalidated, then unregistered twice. */
  register_tracked (&t, "identity", NULL);
  CHECK_OK (gcs_invalidate (t.handle));
  CHECK_OK (gcs_unregister (t.handle));
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK_RESULT (gcs_unregister (t.handle), GCS_ERROR_RELEASED);
}

/* ---- gcs_unregister_sync ---- */

typedef struct
{
  Tracked *t;
  GcsResult sync_result;
  uint64_t elapsed_ms;
  gboolean valid_after;
  GcsHandleState state_after;
  gboolean alive_after;
} SyncInside;

static int
sync_inside (void *object, void *user_data)
{
  SyncInside *s = user_data;
  const uint64_t start = test_now_ms ();
  s->sync_result = gcs_unregister_sync (s->t->handle, HANG_MS);
  s->elapsed_ms = test_now_ms () - start;
  s->valid_after = gcs_is_valid (s->t->handle);
  s->state_after = handle_info_of (s->t->handle).state;
  s->alive_after = FINALIZED_COUNT (&s->t->finalized) == 0 && OBJECT_REFCOUNT (object) == 1;
  return 0;
}

static void
test_unregister_sync (void)
{
  /* No access: the release has happened when it returns. */
  Tracked t;
  register_tracked (&t, "fakesink", "sync-idle");
  CHECK_OK (gcs_unregister_sync (t.handle, HANG_MS));
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, pthread_self ()));
  CHECK_RESULT (gcs_unregister_sync (t.handle, HANG_MS), GCS_ERROR_RELEASED);

  /* Inside its own access on this thread: WOULD_DEADLOCK, at once, and
   * nothing changed. */
  register_tracked (&t, "fakesink", "sync-inside");
  SyncInside s;
  memset (&s, 0, sizeof s);
  s.t = &t;
  CHECK_OK (gcs_safe_access (t.handle, sync_inside, &s));
  CHECK_RESULT (s.sync_result, GCS_ERROR_WOULD_DEADLOCK);
  CHECK (s.elapsed_ms < HANG_MS / 2);   /* did not wait for its timeout */
  CHECK (s.valid_after);
  CHECK (s.state_after == GCS_STATE_LIVE);
  CHECK (s.alive_after);
  CHECK (gcs_is_valid (t.handle));
  CHECK (handle_info_of (t.handle).accesses_in_flight == 0);
  Probe p = { 0 };
  CHECK_OK (gcs_safe_access (t.handle, probe, &p));
  CHECK (p.calls == 1);
  /* With begin/end on this thread too. */
  void *object;
  CHECK_OK (gcs_access_begin (t.handle, &object));
  CHECK_RESULT (gcs_unregister_sync (t.handle, HANG_MS), GCS_ERROR_WOULD_DEADLOCK);
  CHECK (gcs_is_valid (t.handle));
  CHECK_OK (gcs_access_end (t.handle));
  CHECK (FINALIZED_COUNT (&t.finalized) == 0);
  CHECK_OK (gcs_unregister_sync (t.handle, HANG_MS));
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);

  /* An access held on another thread and a short timeout: TIMEOUT, and the
   * release stays pending until that access ends. */
  register_tracked (&t, "fakesink", "sync-timeout");
  Holder h;
  holder_start (&h, t.handle);
  uint64_t start = test_now_ms ();
  CHECK_RESULT (gcs_unregister_sync (t.handle, 60), GCS_ERROR_TIMEOUT);
  CHECK (test_now_ms () - start >= 50);
  CHECK (gcs_last_error ()[0] != '\0');
  CHECK (!gcs_is_valid (t.handle));
  CHECK_RESULT (gcs_safe_access (t.handle, probe, &p), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  GcsHandleInfo info = handle_info_of (t.handle);
  CHECK (info.state == GCS_STATE_RELEASING);
  CHECK (info.accesses_in_flight == 1);
  CHECK (FINALIZED_COUNT (&t.finalized) == 0);
  CHECK (OBJECT_REFCOUNT (t.element) == 1);
  CHECK_RESULT (gcs_unregister (t.handle), GCS_ERROR_RELEASED);
  holder_finish (&h);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, h.thread));

  /* Someone else unregistered and the release is pending: waits for it,
   * then RELEASED. A short timeout on such a handle: TIMEOUT. */
  register_tracked (&t, "identity", "sync-after-other");
  holder_start (&h, t.handle);
  h.delay_ms = 150;             /* read by the holder after go_end */
  CHECK_OK (gcs_unregister (t.handle));
  start = test_now_ms ();
  CHECK_RESULT (gcs_unregister_sync (t.handle, 40), GCS_ERROR_TIMEOUT);
  CHECK (test_now_ms () - start >= 30);
  CHECK (FINALIZED_COUNT (&t.finalized) == 0);
  gate_set (&h.go_end, 1);      /* it ends its access 150 ms from now */
  Unregisterer u;
  unregisterer_start (&u, t.handle, TRUE, GCS_TIMEOUT_INFINITE);
  CHECK (gate_wait_for (&u.done, 1, HANG_MS));
  CHECK_RESULT (u.result, GCS_ERROR_RELEASED);
  /* It returned only after the release. */
  CHECK (g_atomic_int_get (&h.ending) == 1);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  unregisterer_join (&u);
  JOIN (h.thread);
  CHECK_OK (h.end_result);
  CHECK (pthread_equal (t.finalized.thread, h.thread));
  gate_clear (&h.began);
  gate_clear (&h.go_end);

  /* GCS_TIMEOUT_INFINITE with an access that ends later on another thread
   * (once the unregister has begun): OK once released (by that thread). */
  Box box;
  GcsHandle handle = register_box (&box);
  holder_start (&h, handle);
  h.end_after_unregister = TRUE;        /* read by the holder after go_end */
  gate_set (&h.go_end, 1);
  unregisterer_start (&u, handle, TRUE, GCS_TIMEOUT_INFINITE);
  CHECK (gate_wait_for (&u.done, 1, HANG_MS));
  CHECK_OK (u.result);
  CHECK (g_atomic_int_get (&h.ending) == 1);
  CHECK (box.releases == 1);
  CHECK (pthread_equal (box.thread, h.thread));
  unregisterer_join (&u);
  JOIN (h.thread);
  CHECK_OK (h.end_result);
  gate_clear (&h.began);
  gate_clear (&h.go_end);

  /* The same from this thread, with a finite timeout long enough. */
  register_tracked (&t, "queue", "sync-finite");
  holder_start (&h, t.handle);
  h.end_after_unregister = TRUE;
  gate_set (&h.go_end, 1);
  CHECK_OK (gcs_unregister_sync (t.handle, HANG_MS));
  CHECK (g_atomic_int_get (&h.ending) == 1);
  CHECK (FINALIZED_COUNT (&t.finalized) == 1);
  CHECK (pthread_equal (t.finalized.thread, h.thread));
  JOIN (h.thread);
  CHECK_OK (h.end_result);
  gate_clear (&h.began);
  gate_clear (&h.go_end);

  /* Invalid and released handles never wait. */
  CHECK_RESULT (gcs_unregister_sync (GCS_INVALID_HANDLE, GCS_TIMEOUT_INFINITE),
      GCS_ERROR_INVALID_HANDLE);
  CHECK_RESULT (gcs_unregister_sync (t.handle, GCS_TIMEOUT_INFINITE), GCS_ERROR_RELEASED);
}

/* ---- the release function runs with no library lock held ---- */

typedef struct
{
  GcsHandle self;
  gint releases;
  pthread_t thread;
  GcsResult info_result;
  GcsHandleState info_state;
  GcsResult unregister_result;
  GcsResult access_result;
  gboolean valid;
  GcsResult sync_result;
  GcsResult other_register_result;
  GcsResult other_unregister_result;
  gboolean other_finalized;
} Reentrant;

static void
release_reentrant (void *object, void *user_data)
{
  (void) object;
  Reentrant *r = user_data;
  r->thread = pthread_self ();
  g_atomic_int_inc (&r->releases);
  /* Its own handle: described, but no longer usable. */
  GcsHandleInfo info;
  memset (&info, 0, sizeof info);
  info.struct_size = sizeof info;
  r->info_result = gcs_get_info (r->self, &info);
  r->info_state = info.state;
  r->unregister_result = gcs_unregister (r->self);
  /* Waiting for its own release would never end: told RELEASED at once. */
  r->sync_result = gcs_unregister_sync (r->self, GCS_TIMEOUT_INFINITE);
  Probe p = { 0 };
  r->access_result = gcs_safe_access (r->self, probe, &p);
  r->valid = gcs_is_valid (r->self);
  /* Other handles: registered and released from in here. */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  gpointer alive;
  watch_finalize (element, &alive);
  GcsHandle other;
  r->other_register_result = gcs_register (element, NULL, &other);
  r->other_unregister_result = gcs_unregister (other);
  r->other_finalized = alive == NULL;
}

static void
test_release_function_may_reenter (void)
{
  for (int in_flight = 0; in_flight <= 1; in_flight++) {
    Reentrant r;
    memset (&r, 0, sizeof r);
    int payload = 0;
    GcsRegistration registration;
    memset (&registration, 0, sizeof registration);
    registration.struct_size = sizeof registration;
    registration.kind = GCS_KIND_POINTER;
    registration.object = &payload;
    registration.release = release_reentrant;
    registration.release_data = &r;
    CHECK_OK (gcs_register_full (&registration, &r.self));
    Holder h;
    if (in_flight)
      holder_start (&h, r.self);     /* released when the holder ends */
    CHECK_OK (gcs_unregister (r.self));
    if (in_flight)
      holder_finish (&h);
    CHECK (r.releases == 1);
    CHECK (pthread_equal (r.thread, in_flight ? h.thread : pthread_self ()));
    CHECK_OK (r.info_result);
    CHECK (r.info_state == GCS_STATE_RELEASING || r.info_state == GCS_STATE_RELEASED);
    CHECK_RESULT (r.unregister_result, GCS_ERROR_RELEASED);
    CHECK_RESULT (r.sync_result, GCS_ERROR_RELEASED);
    CHECK_RESULT (r.access_result, GCS_ERROR_RELEASED);
    CHECK (!r.valid);
    CHECK_OK (r.other_register_result);
    CHECK_OK (r.other_unregister_result);
    CHECK (r.other_finalized);
    CHECK (handle_info_of (r.self).state == GCS_STATE_RELEASED);
  }
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  test_release_on_the_thread_that_ends_the_last_access ();
  test_unregister_inside_own_access ();
  test_unregister_from_another_thread_during_access ();
  test_double_unregister ();
  test_unregister_sync ();
  test_release_function_may_reenter ();

  TEST_PASSED ();
}

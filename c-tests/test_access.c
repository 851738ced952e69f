/* Access (contract: "Access"): gcs_safe_access and gcs_access_begin/end,
 * callback failures, nesting, concurrency, begin and end on different
 * threads, gcs_get_info and gcs_invalidate. Runs with the default
 * configuration (invalidate_on_callback_error = false). */
#include "common.h"

#define SENTINEL ((void *) (uintptr_t) 0x5e17e1u)

typedef struct
{
  gint calls;
  void *object;
  void *user_data;
  int status;                   /* what the callback returns */
} Probe;

static int
probe (void *object, void *user_data)
{
  Probe *p = user_data;
  g_atomic_int_inc (&p->calls);
  p->object = object;
  p->user_data = user_data;
  return p->status;
}

static uint32_t
in_flight (GcsHandle handle)
{
  return handle_info_of (handle).accesses_in_flight;
}

/* A registered fakesink, with the evidence of its finalization. */
typedef struct
{
  GstElement *element;
  GcsHandle handle;
  gpointer alive;
} Sink;

static void
register_sink (Sink * out, const char *instance_name)
{
  Sink sink;
  sink.element = gst_element_factory_make ("fakesink", NULL);
  CHECK (sink.element != NULL);
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_GST_OBJECT;
  registration.object = sink.element;
  registration.instance_name = instance_name;
  sink.handle = GCS_INVALID_HANDLE;
  CHECK_OK (gcs_register_full (&registration, &sink.handle));
  CHECK (OBJECT_REFCOUNT (sink.element) == 1);
  *out = sink;
  /* The weak pointer lives in the caller's struct, not in this frame. */
  watch_finalize (out->element, &out->alive);
}

static void
unregister_sink (Sink * sink)
{
  CHECK (sink->alive != NULL);
  CHECK_OK (gcs_unregister (sink->handle));
  CHECK (sink->alive == NULL);
}

/* ---------------------------------------------------------------------- */

static int null_user_data_calls;

static int
expect_null_user_data (void *object, void *user_data)
{
  if (user_data == NULL && GST_IS_ELEMENT (object))
    null_user_data_calls++;
  return 0;
}

static void
test_safe_access_passes_object_and_user_data (void)
{
  Sink sink;
  register_sink (&sink, "access-sink");
  Probe p = { 0, NULL, NULL, 0 };
  CHECK_OK (gcs_safe_access (sink.handle, probe, &p));
  CHECK (p.calls == 1);
  CHECK (p.object == sink.element);
  CHECK (p.user_data == &p);
  CHECK (OBJECT_REFCOUNT (sink.element) == 1);
  CHECK (in_flight (sink.handle) == 0);

  /* user_data may be NULL: passed through as is. */
  null_user_data_calls = 0;
  CHECK_OK (gcs_safe_access (sink.handle, expect_null_user_data, NULL));
  CHECK (null_user_data_calls == 1);
  unregister_sink (&sink);
}

static void
test_failing_callback (void)
{
  Sink sink;
  register_sink (&sink, "failing-sink");
  const int statuses[] = { 1, -1, 42, G_MININT, G_MAXINT };
  for (size_t i = 0; i < G_N_ELEMENTS (statuses); i++) {
    Probe p = { 0, NULL, NULL, statuses[i] };
    CHECK_RESULT (gcs_safe_access (sink.handle, probe, &p), GCS_ERROR_CALLBACK_FAILED);
    CHECK (p.calls == 1 && p.object == sink.element);
    CHECK (gcs_last_error ()[0] != '\0');
    /* Default configuration: the handle stays valid. */
    CHECK (gcs_is_valid (sink.handle));
    CHECK (handle_info_of (sink.handle).state == GCS_STATE_LIVE);
    CHECK (in_flight (sink.handle) == 0);
    CHECK (OBJECT_REFCOUNT (sink.element) == 1);
  }
  Probe ok = { 0, NULL, NULL, 0 };
  CHECK_OK (gcs_safe_access (sink.handle, probe, &ok));
  CHECK (ok.calls == 1);
  unregister_sink (&sink);
}

static void
test_null_callback (void)
{
  Sink sink;
  register_sink (&sink, NULL);
  CHECK_RESULT (gcs_safe_access (sink.handle, NULL, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK (gcs_last_error ()[0] != '\0');
  CHECK (gcs_is_valid (sink.handle));
  CHECK (in_flight (sink.handle) == 0);
  /* No access was left behind: the unregister releases at once. */
  unregister_sink (&sink);
}

typedef struct
{
  GcsHandle handle;
  GcsHandle other;
  void *expected;
  int depth;
  int max_depth;
  gint calls;
  gboolean ok;
} Nest;

static int
nest (void *object, void *user_data)
{
  Nest *n = user_data;
  n->calls++;
  n->depth++;
  if (object != n->expected || in_flight (n->handle) != (uint32_t) n->depth)
    n->ok = FALSE;
  if (n->depth < n->max_depth) {
    if (gcs_safe_access (n->handle, nest, n) != GCS_OK)
      n->ok = FALSE;
    /* Back in this level: the inner access has ended. */
    if (in_flight (n->handle) != (uint32_t) n->depth)
      n->ok = FALSE;
  }
  n->depth--;
  return 0;
}

typedef struct
{
  GcsHandle handle;
  void *expected;
  gboolean ok;
} Inner;

static int
inner_access (void *object, void *user_data)
{
  Inner *inner = user_data;
  if (object != inner->expected || in_flight (inner->handle) != 1)
    inner->ok = FALSE;
  return 0;
}

static int
outer_access_of_other (void *object, void *user_data)
{
  (void) object;
  Inner *inner = user_data;
  return gcs_safe_access (inner->handle, inner_access, inner) == GCS_OK ? 0 : 1;
}

static void
test_nested_accesses (void)
{
  Sink sink;
  register_sink (&sink, "nested-sink");
  /* Deeper than GCS_TRACKED_ACCESSES_PER_THREAD, which must still be safe. */
  const int depths[] = { 2, 5, GCS_TRACKED_ACCESSES_PER_THREAD, GCS_TRACKED_ACCESSES_PER_THREAD + 9 };
  for (size_t i = 0; i < G_N_ELEMENTS (depths); i++) {
    Nest n = { sink.handle, 0, sink.element, 0, depths[i], 0, TRUE };
    CHECK_OK (gcs_safe_access (sink.handle, nest, &n));
    CHECK (n.ok);
    CHECK (n.calls == depths[i]);
    CHECK (n.depth == 0);
    CHECK (in_flight (sink.handle) == 0);
    CHECK (OBJECT_REFCOUNT (sink.element) == 1);
  }

  /* An access of another handle inside an access, and begin/end mixed with
   * safe_access. */
  Sink other;
  register_sink (&other, "other-sink");
  Inner inner = { other.handle, other.element, TRUE };
  CHECK_OK (gcs_safe_access (sink.handle, outer_access_of_other, &inner));
  CHECK (inner.ok);
  void *object = NULL;
  CHECK_OK (gcs_access_begin (sink.handle, &object));
  CHECK_OK (gcs_access_begin (sink.handle, &object));
  CHECK (in_flight (sink.handle) == 2);
  Nest n = { sink.handle, 0, sink.element, 2, 3, 0, TRUE };
  CHECK_OK (gcs_safe_access (sink.handle, nest, &n));
  CHECK (n.ok && n.calls == 1);
  CHECK_OK (gcs_access_end (sink.handle));
  CHECK_OK (gcs_access_end (sink.handle));
  CHECK (in_flight (sink.handle) == 0);
  unregister_sink (&other);
  unregister_sink (&sink);
}

static void
test_access_begin_end (void)
{
  Sink sink;
  register_sink (&sink, "begin-end-sink");

  void *object = SENTINEL;
  CHECK_OK (gcs_access_begin (sink.handle, &object));
  CHECK (object == sink.element);
  CHECK (in_flight (sink.handle) == 1);
  CHECK (OBJECT_REFCOUNT (sink.element) == 1);
  CHECK_OK (gcs_access_end (sink.handle));
  CHECK (in_flight (sink.handle) == 0);

  /* NULL object_out: refused, and no access is left in flight. */
  CHECK_RESULT (gcs_access_begin (sink.handle, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK (gcs_last_error ()[0] != '\0');
  CHECK (in_flight (sink.handle) == 0);
  CHECK_RESULT (gcs_access_end (sink.handle), GCS_ERROR_NOT_ACCESSING);

  /* object_out is written only on success. */
  CHECK_OK (gcs_invalidate (sink.handle));
  object = SENTINEL;
  CHECK_RESULT (gcs_access_begin (sink.handle, &object), GCS_ERROR_INVALIDATED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (object == SENTINEL);
  CHECK (handle_info_of (sink.handle).accesses_in_flight == 0);
  CHECK_OK (gcs_unregister (sink.handle));
  CHECK (sink.alive == NULL);
  object = SENTINEL;
  CHECK_RESULT (gcs_access_begin (sink.handle, &object), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (object == SENTINEL);
  CHECK_RESULT (gcs_access_begin (GCS_INVALID_HANDLE, &object), GCS_ERROR_INVALID_HANDLE);
  CHECK (object == SENTINEL);
}

static void
test_end_without_begin (void)
{
  Sink sink;
  register_sink (&sink, "unbegun-sink");
  CHECK_RESULT (gcs_access_end (sink.handle), GCS_ERROR_NOT_ACCESSING);
  CHECK (gcs_last_error ()[0] != '\0');
  CHECK_RESULT (gcs_access_end (sink.handle), GCS_ERROR_NOT_ACCESSING);
  /* Nothing changed: still live, nothing in flight, nothing released. */
  CHECK (gcs_is_valid (sink.handle));
  GcsHandleInfo info = handle_info_of (sink.handle);
  CHECK (info.state == GCS_STATE_LIVE && info.accesses_in_flight == 0);
  CHECK (sink.alive != NULL && OBJECT_REFCOUNT (sink.element) == 1);

  /* One end too many after a balanced pair. */
  void *object;
  CHECK_OK (gcs_access_begin (sink.handle, &object));
  CHECK_OK (gcs_access_end (sink.handle));
  CHECK_RESULT (gcs_access_end (sink.handle), GCS_ERROR_NOT_ACCESSING);
  CHECK (gcs_is_valid (sink.handle));
  CHECK (in_flight (sink.handle) == 0);

  /* An access still works, and an unregister still releases exactly once
   * (at once: nothing is in flight). */
  Probe p = { 0, NULL, NULL, 0 };
  CHECK_OK (gcs_safe_access (sink.handle, probe, &p));
  CHECK (p.calls == 1);
  unregister_sink (&sink);
  CHECK_RESULT (gcs_unregister (sink.handle), GCS_ERROR_RELEASED);

  /* On an invalidated handle with nothing in flight: NOT_ACCESSING too. */
  Sink invalid;
  register_sink (&invalid, NULL);
  CHECK_OK (gcs_invalidate (invalid.handle));
  CHECK_RESULT (gcs_access_end (invalid.handle), GCS_ERROR_NOT_ACCESSING);
  CHECK (handle_info_of (invalid.handle).state == GCS_STATE_INVALIDATED);
  unregister_sink (&invalid);
}

/* ---- begin on one thread, end on another ---- */

typedef struct
{
  GcsHandle handle;
  void *object;
  GcsResult result;
  int repeats;
  TestGate began;               /* value: accesses begun */
  TestGate ended;               /* value: accesses ended by the other side */
} CrossThread;

static void *
begin_repeatedly (void *data)
{
  CrossThread *x = data;
  for (int i = 1; i <= x->repeats; i++) {
    x->result = gcs_access_begin (x->handle, &x->object);
    if (x->result != GCS_OK)
      return NULL;
    gate_set (&x->began, i);
    gate_wait (&x->ended, i);
  }
  return NULL;
}

typedef struct
{
  GcsHandle handle;
  void *expected;
  GcsResult sync_result;
  gboolean ok;
} DeadlockProbe;

static int
unregister_sync_inside (void *object, void *user_data)
{
  DeadlockProbe *d = user_data;
  if (object != d->expected)
    d->ok = FALSE;
  d->sync_result = gcs_unregister_sync (d->handle, 1000);
  if (!gcs_is_valid (d->handle))
    d->ok = FALSE;
  return 0;
}

typedef struct
{
  GcsHandle handle;
  void *expected;
  DeadlockProbe probe;
  GcsResult access_result;
  GcsResult sync_result;
} AfterCross;

/* On the thread whose accesses were ended elsewhere: self-deadlock
 * detection still works for an access it is really inside, and an
 * unregister_sync outside any access is not refused. */
static void *
deadlock_checks_on_beginning_thread (void *data)
{
  AfterCross *a = data;
  a->probe.handle = a->handle;
  a->probe.expected = a->expected;
  a->probe.ok = TRUE;
  a->access_result = gcs_safe_access (a->handle, unregister_sync_inside, &a->probe);
  a->sync_result = gcs_unregister_sync (a->handle, GCS_TIMEOUT_INFINITE);
  return NULL;
}

static void
test_begin_and_end_on_different_threads (void)
{
  Sink sink;
  register_sink (&sink, "cross-thread-sink");

  /* Many accesses begun on a thread and ended on this one: more than
   * GCS_TRACKED_ACCESSES_PER_THREAD, so the tracking must not overflow. */
  CrossThread x;
  memset (&x, 0, sizeof x);
  x.handle = sink.handle;
  x.repeats = 4 * GCS_TRACKED_ACCESSES_PER_THREAD + 3;
  gate_init (&x.began);
  gate_init (&x.ended);
  pthread_t thread;
  SPAWN (&thread, begin_repeatedly, &x);
  for (int i = 1; i <= x.repeats; i++) {
    gate_wait (&x.began, i);
    CHECK_OK (x.result);
    CHECK (x.object == sink.element);
    CHECK (in_flight (sink.handle) == 1);
    CHECK (sink.alive != NULL);
    CHECK_OK (gcs_access_end (sink.handle));
    CHECK (in_flight (sink.handle) == 0);
    gate_set (&x.ended, i);
  }
  JOIN (thread);
  CHECK_OK (x.result);
  CHECK (gcs_is_valid (sink.handle));
  CHECK_RESULT (gcs_access_end (sink.handle), GCS_ERROR_NOT_ACCESSING);

  /* A fresh thread: detection inside its own access, then a sync
   * unregister outside any access that releases. */
  AfterCross a;
  memset (&a, 0, sizeof a);
  a.handle = sink.handle;
  a.expected = sink.element;
  SPAWN (&thread, deadlock_checks_on_beginning_thread, &a);
  JOIN (thread);
  CHECK_OK (a.access_result);
  CHECK (a.probe.ok);
  CHECK_RESULT (a.probe.sync_result, GCS_ERROR_WOULD_DEADLOCK);
  CHECK_OK (a.sync_result);
  CHECK (sink.alive == NULL);
  CHECK (!gcs_is_valid (sink.handle));

  gate_clear (&x.began);
  gate_clear (&x.ended);
}

/* The thread that began accesses ended elsewhere, after they ended: it is
 * inside no access of the handle, so gcs_unregister_sync must not claim
 * WOULD_DEADLOCK while another thread holds an access (it waits, here
 * until its timeout). */
typedef struct
{
  GcsHandle handle;
  int repeats;
  GcsResult begin_result;
  TestGate began;
  TestGate ended;
  TestGate go_sync;
  GcsResult sync_result;
  char sync_error[512];
} Wanderer;

static void *
wanderer_thread (void *data)
{
  Wanderer *w = data;
  for (int i = 1; i <= w->repeats; i++) {
    void *object;
    w->begin_result = gcs_access_begin (w->handle, &object);
    if (w->begin_result != GCS_OK)
      return NULL;
    gate_set (&w->began, i);
    gate_wait (&w->ended, i);
  }
  gate_wait (&w->go_sync, 1);
  w->sync_result = gcs_unregister_sync (w->handle, 100);
  g_strlcpy (w->sync_error, gcs_last_error (), sizeof w->sync_error);
  return NULL;
}

static void
test_stale_tracking_does_not_refuse_sync_unregister (void)
{
  Sink sink;
  register_sink (&sink, "wanderer-sink");
  Wanderer w;
  memset (&w, 0, sizeof w);
  w.handle = sink.handle;
  w.repeats = 3;
  gate_init (&w.began);
  gate_init (&w.ended);
  gate_init (&w.go_sync);
  pthread_t thread;
  SPAWN (&thread, wanderer_thread, &w);
  for (int i = 1; i <= w.repeats; i++) {
    gate_wait (&w.began, i);
    CHECK_OK (w.begin_result);
    CHECK_OK (gcs_access_end (sink.handle));    /* ended on this thread */
    gate_set (&w.ended, i);
  }
  /* This thread now holds an access; the other one holds none. */
  void *object;
  CHECK_OK (gcs_access_begin (sink.handle, &object));
  gate_set (&w.go_sync, 1);
  JOIN (thread);
  if (w.sync_result != GCS_ERROR_TIMEOUT)
    fprintf (stderr, "gcs_unregister_sync on the thread whose accesses ended elsewhere: %s\n",
        w.sync_error);
  CHECK_RESULT (w.sync_result, GCS_ERROR_TIMEOUT);
  /* The release is pending on our access. */
  CHECK (!gcs_is_valid (sink.handle));
  CHECK (sink.alive != NULL);
  CHECK_OK (gcs_access_end (sink.handle));
  CHECK (sink.alive == NULL);
  gate_clear (&w.began);
  gate_clear (&w.ended);
  gate_clear (&w.go_sync);
}

/* ---- concurrency ---- */

enum { N_THREADS = 4, N_ACCESSES = 300 };

typedef struct
{
  GcsHandle handle;
  void *expected;
  TestGate *all_began;
  TestGate *release;
  gint *begun;
  gint failures;
  gint accesses;
} Concurrent;

static int
count_concurrent (void *object, void *user_data)
{
  Concurrent *c = user_data;
  if (object != c->expected || OBJECT_REFCOUNT (object) < 1)
    g_atomic_int_inc (&c->failures);
  g_atomic_int_inc (&c->accesses);
  return 0;
}

static void *
concurrent_thread (void *data)
{
  Concurrent *c = data;
  void *object = NULL;
  if (gcs_access_begin (c->handle, &object) != GCS_OK || object != c->expected)
    g_atomic_int_inc (&c->failures);
  gate_set (c->all_began, g_atomic_int_add (c->begun, 1) + 1);
  gate_wait (c->release, 1);
  for (int i = 0; i < N_ACCESSES; i++)
    if (gcs_safe_access (c->handle, count_concurrent, c) != GCS_OK)
      g_atomic_int_inc (&c->failures);
  if (gcs_access_end (c->handle) != GCS_OK)
    g_atomic_int_inc (&c->failures);
  return NULL;
}

static void
test_concurrent_accesses (void)
{
  Sink sink;
  register_sink (&sink, "concurrent-sink");
  TestGate all_began, release;
  gate_init (&all_began);
  gate_init (&release);
  gint begun = 0;
  Concurrent c[N_THREADS];
  pthread_t threads[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    c[i] = (Concurrent) {
    sink.handle, sink.element, &all_began, &release, &begun, 0, 0};
    SPAWN (&threads[i], concurrent_thread, &c[i]);
  }
  gate_wait (&all_began, N_THREADS);
  /* N accesses in flight at once, one per thread. */
  CHECK (in_flight (sink.handle) == N_THREADS);
  gate_set (&release, 1);
  for (int i = 0; i < N_THREADS; i++)
    JOIN (threads[i]);
  for (int i = 0; i < N_THREADS; i++) {
    CHECK (c[i].failures == 0);
    CHECK (c[i].accesses == N_ACCESSES);
  }
  CHECK (in_flight (sink.handle) == 0);
  CHECK (OBJECT_REFCOUNT (sink.element) == 1);
  unregister_sink (&sink);
  gate_clear (&all_began);
  gate_clear (&release);
}

/* ---- gcs_get_info ---- */

typedef struct
{
  GcsHandle handle;
  GcsHandleInfo info;
  GcsResult result;
} InfoInside;

static int
info_inside (void *object, void *user_data)
{
  (void) object;
  InfoInside *i = user_data;
  i->info.struct_size = sizeof i->info;
  i->result = gcs_get_info (i->handle, &i->info);
  return 0;
}

static void
test_get_info (void)
{
  GstElement *element = gst_element_factory_make ("fakesink", "gst-name-not-used");
  gpointer alive;
  watch_finalize (element, &alive);
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_GST_OBJECT;
  registration.object = element;
  registration.type_name = NULL;        /* the GType name */
  registration.instance_name = "info-sink";
  registration.size_bytes = 777;
  GcsHandle handle;
  const uint64_t registered_at = test_now_ms ();
  CHECK_OK (gcs_register_full (&registration, &handle));

  GcsHandleInfo info = handle_info_of (handle);
  CHECK (info.state == GCS_STATE_LIVE);
  CHECK (info.handle == handle);
  CHECK (info.kind == GCS_KIND_GST_OBJECT);
  CHECK (info.type_name != NULL && strcmp (info.type_name, "GstFakeSink") == 0);
  CHECK (info.instance_name != NULL && strcmp (info.instance_name, "info-sink") == 0);
  CHECK (info.size_bytes == 777);
  CHECK (info.accesses_in_flight == 0);
  CHECK (info.released_ms_ago == 0);

  /* age_ms grows with time (allowing for a coarse clock: up to 10 ms ticks). */
  g_usleep (60 * 1000);
  info = handle_info_of (handle);
  const uint64_t elapsed = test_now_ms () - registered_at;
  CHECK (info.age_ms >= 40);
  CHECK (info.age_ms <= elapsed + 20);

  /* accesses_in_flight during accesses. */
  InfoInside inside = { handle, { 0 }, GCS_ERROR_PANIC };
  CHECK_OK (gcs_safe_access (handle, info_inside, &inside));
  CHECK_OK (inside.result);
  CHECK (inside.info.accesses_in_flight == 1);
  CHECK (inside.info.state == GCS_STATE_LIVE);
  void *object;
  CHECK_OK (gcs_access_begin (handle, &object));
  CHECK_OK (gcs_safe_access (handle, info_inside, &inside));
  CHECK (inside.info.accesses_in_flight == 2);
  CHECK_OK (gcs_access_end (handle));

  /* struct_size too small: refused, nothing written. */
  const uint32_t small_sizes[] = { 0, 4, (uint32_t) sizeof (GcsHandleInfo) - 1 };
  for (size_t i = 0; i < G_N_ELEMENTS (small_sizes); i++) {
    GcsHandleInfo small;
    memset (&small, 0xab, sizeof small);
    small.struct_size = small_sizes[i];
    GcsHandleInfo before = small;
    CHECK_RESULT (gcs_get_info (handle, &small), GCS_ERROR_INVALID_ARGUMENT);
    CHECK (gcs_last_error ()[0] != '\0');
    CHECK (memcmp (&small, &before, sizeof small) == 0);
  }
  CHECK_RESULT (gcs_get_info (handle, NULL), GCS_ERROR_NULL_ARGUMENT);

  /* A later version's bigger struct: accepted; version 1's part written,
   * the rest left alone. */
  struct
  {
    GcsHandleInfo v1;
    unsigned char later[32];
  } bigger;
  memset (&bigger, 0xcd, sizeof bigger);
  bigger.v1.struct_size = sizeof bigger;
  CHECK_OK (gcs_get_info (handle, &bigger.v1));
  CHECK (bigger.v1.handle == handle && bigger.v1.state == GCS_STATE_LIVE);
  for (size_t i = 0; i < sizeof bigger.later; i++)
    CHECK (bigger.later[i] == 0xcd);

  /* Unregistered: released, with released_ms_ago. */
  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);
  g_usleep (40 * 1000);
  info = handle_info_of (handle);
  CHECK (info.state == GCS_STATE_RELEASED);
  CHECK (info.accesses_in_flight == 0);
  CHECK (info.released_ms_ago >= 20);
  CHECK (strcmp (info.type_name, "GstFakeSink") == 0);
}

/* ---- gcs_invalidate ---- */

typedef struct
{
  GcsHandle handle;
  GcsResult invalidate_result;
  gboolean valid_after;
  gpointer *alive;
  gboolean alive_after;
} InvalidateInside;

static int
invalidate_inside (void *object, void *user_data)
{
  InvalidateInside *i = user_data;
  i->invalidate_result = gcs_invalidate (i->handle);
  i->valid_after = gcs_is_valid (i->handle);
  /* The access in flight continues with a live object. */
  i->alive_after = *i->alive != NULL && OBJECT_REFCOUNT (object) >= 1;
  return 0;
}

static void
test_invalidate (void)
{
  Sink sink;
  register_sink (&sink, "invalidated-sink");
  CHECK_OK (gcs_invalidate (sink.handle));
  CHECK (!gcs_is_valid (sink.handle));

  Probe p = { 0, NULL, NULL, 0 };
  CHECK_RESULT (gcs_safe_access (sink.handle, probe, &p), GCS_ERROR_INVALIDATED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK_LAST_ERROR_CONTAINS ("invalidated-sink");
  CHECK (p.calls == 0);
  void *object = SENTINEL;
  CHECK_RESULT (gcs_access_begin (sink.handle, &object), GCS_ERROR_INVALIDATED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (object == SENTINEL);

  /* Still registered: described, and the object is alive. */
  GcsHandleInfo info = handle_info_of (sink.handle);
  CHECK (info.state == GCS_STATE_INVALIDATED);
  CHECK (strcmp (info.instance_name, "invalidated-sink") == 0);
  CHECK (sink.alive != NULL);
  CHECK (OBJECT_REFCOUNT (sink.element) == 1);

  CHECK_RESULT (gcs_invalidate (sink.handle), GCS_ERROR_INVALIDATED);
  CHECK (gcs_last_error ()[0] != '\0');
  CHECK (sink.alive != NULL);

  /* The reference is dropped at unregister. */
  unregister_sink (&sink);
  CHECK_RESULT (gcs_invalidate (sink.handle), GCS_ERROR_RELEASED);
  CHECK_RESULT (gcs_safe_access (sink.handle, probe, &p), GCS_ERROR_RELEASED);

  /* Invalidated inside an access: that access goes on; the next is refused. */
  register_sink (&sink, "invalidated-inside");
  InvalidateInside inside = { sink.handle, GCS_ERROR_PANIC, TRUE, &sink.alive, FALSE };
  CHECK_OK (gcs_safe_access (sink.handle, invalidate_inside, &inside));
  CHECK_OK (inside.invalidate_result);
  CHECK (!inside.valid_after);
  CHECK (inside.alive_after);
  CHECK_RESULT (gcs_safe_access (sink.handle, probe, &p), GCS_ERROR_INVALIDATED);
  CHECK (sink.alive != NULL);

  /* A sync unregister of an invalidated handle releases. */
  CHECK_OK (gcs_unregister_sync (sink.handle, GCS_TIMEOUT_INFINITE));
  CHECK (sink.alive == NULL);
}

/* The callback may re-enter the library (other handles, registrations). */
typedef struct
{
  GcsHandle self;
  gboolean ok;
} Reenter;

static int
reenter (void *object, void *user_data)
{
  Reenter *r = user_data;
  GstElement *element = gst_element_factory_make ("identity", NULL);
  gpointer alive;
  watch_finalize (element, &alive);
  GcsHandle handle;
  if (gcs_register (element, NULL, &handle) != GCS_OK)
    r->ok = FALSE;
  Probe p = { 0, NULL, NULL, 0 };
  if (gcs_safe_access (handle, probe, &p) != GCS_OK || p.object != element)
    r->ok = FALSE;
  if (gcs_unregister (handle) != GCS_OK || alive != NULL)
    r->ok = FALSE;
  if (!gcs_is_valid (r->self) || OBJECT_REFCOUNT (object) != 1)
    r->ok = FALSE;
  return 0;
}

static void
test_callback_reenters (void)
{
  Sink sink;
  register_sink (&sink, NULL);
  Reenter r = { sink.handle, TRUE };
  CHECK_OK (gcs_safe_access (sink.handle, reenter, &r));
  CHECK (r.ok);
  unregister_sink (&sink);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  test_safe_access_passes_object_and_user_data ();
  test_failing_callback ();
  test_null_callback ();
  test_nested_accesses ();
  test_access_begin_end ();
  test_end_without_begin ();
  test_begin_and_end_on_different_threads ();
  test_concurrent_accesses ();
  test_get_info ();
  test_invalidate ();
  test_callback_reenters ();
  /* Last, so that a failure here hides none of the others. */
  test_stale_tracking_does_not_refuse_sync_unregister ();

  TEST_PASSED ();
}

/* Races between accesses and release: reader threads hammer a handle to a
 * real element while another thread unregisters it at a random moment.
 * Every callback must see a live object (never finalized, refcount >= 1),
 * the release must happen exactly once per round, on one of the threads
 * involved, and every reader must end with GCS_ERROR_RELEASED.
 *
 * Variants: GCS_KIND_GST_OBJECT with a weak-ref notify as the evidence;
 * GCS_KIND_POINTER with a counting release function; and accesses begun on
 * reader threads and ended on other threads (gcs_access_begin/end).
 * Odd rounds unregister with gcs_unregister_sync (GCS_TIMEOUT_INFINITE) and
 * check that the release is done when it returns.
 *
 * Rounds: 200 per variant (16 under valgrind, detected from its LD_PRELOAD,
 * or when GCS_SLOW is set), cut short by a time budget per variant but never
 * below MIN_ROUNDS. */
#include "common.h"

enum { N_READERS = 4, N_ENDERS = 2 };

typedef enum
{
  KIND_GST_OBJECT,
  KIND_POINTER,
} PayloadKind;

typedef struct
{
  PayloadKind kind;
  GcsHandle handle;
  void *expected;
  FinalizeRecord finalized;
  gint releases;                /* KIND_POINTER: release function calls */
  pthread_t release_thread;     /* KIND_POINTER: where it ran */
  gint accesses;                /* successful accesses (or begins), all readers */
  gint ended;                   /* mixed variant: accesses ended */
  gint bad;                     /* a callback or ender saw a dead or wrong object */
  int target;                   /* unregister once this many accesses happened */
  gboolean sync;
  TestGate start;
  TestGate reached;             /* set when accesses reaches target */
  GcsResult unregister_result;
  gboolean released_when_sync_returned;
  GcsResult reader_results[N_READERS];
  gboolean reader_messages_ok[N_READERS];
  pthread_t readers[N_READERS];
  pthread_t enders[N_ENDERS];
  pthread_t unregisterer;
  GAsyncQueue *queue;           /* mixed variant: begun accesses to end */
} Round;

typedef struct
{
  Round *round;
  int index;
} ReaderArg;

static uint64_t
next_random (uint64_t * state)
{
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static gboolean
under_valgrind (void)
{
  const char *preload = getenv ("LD_PRELOAD");
  return preload != NULL && strstr (preload, "vgpreload") != NULL;
}

static gboolean
slow_run (void)
{
  return under_valgrind () || getenv ("GCS_SLOW") != NULL;
}

/* Rounds per variant, and a time budget per variant that may cut them
 * short (but never below MIN_ROUNDS). */
#define MIN_ROUNDS 8

static int
rounds_wanted (void)
{
  return slow_run ()? 16 : 200;
}

static uint64_t
budget_ms (void)
{
  return slow_run ()? 2000 : 4000;
}

/* Whether the round's object is still alive and untouched by the release. */
static gboolean
object_is_alive (Round * r, void *object)
{
  return object == r->expected && FINALIZED_COUNT (&r->finalized) == 0
      && g_atomic_int_get (&r->releases) == 0 && OBJECT_REFCOUNT (object) >= 1
      && GST_IS_ELEMENT (object);
}

static gboolean
is_released (Round * r)
{
  return FINALIZED_COUNT (&r->finalized) == 1
      && (r->kind != KIND_POINTER || g_atomic_int_get (&r->releases) == 1);
}

static void
release_element (void *object, void *user_data)
{
  Round *r = user_data;
  r->release_thread = pthread_self ();
  g_atomic_int_inc (&r->releases);
  gst_object_unref (object);
}

static void
register_round_object (Round * r)
{
  static const char *factories[] = { "identity", "fakesink", "queue", "fakesrc" };
  static int n;
  GstElement *element = gst_element_factory_make (factories[n++ % 4], NULL);
  CHECK (element != NULL);
  r->expected = element;
  watch_finalize_record (element, &r->finalized);
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.object = element;
  if (r->kind == KIND_POINTER) {
    gst_object_ref_sink (element);      /* the release function drops it */
    registration.kind = GCS_KIND_POINTER;
    registration.type_name = "RacedElement";
    registration.release = release_element;
    registration.release_data = r;
  } else {
    registration.kind = GCS_KIND_GST_OBJECT;    /* sinks the floating ref */
  }
  CHECK_OK (gcs_register_full (&registration, &r->handle));
  CHECK (OBJECT_REFCOUNT (element) == 1);
}

static void *
unregisterer_thread (void *data)
{
  Round *r = data;
  gate_wait (&r->start, 1);
  if (r->target > 0)
    gate_wait (&r->reached, 1);
  if (r->sync) {
    r->unregister_result = gcs_unregister_sync (r->handle, GCS_TIMEOUT_INFINITE);
    r->released_when_sync_returned = is_released (r);
  } else {
    r->unregister_result = gcs_unregister (r->handle);
  }
  return NULL;
}

/* Count a successful access; the one that reaches the target wakes the
 * unregisterer. */
static void
count_access (Round * r)
{
  if (g_atomic_int_add (&r->accesses, 1) + 1 == r->target)
    gate_set (&r->reached, 1);
}

/* The thread that released must be one of those taking part. */
static gboolean
released_on_a_participant (Round * r, const pthread_t * threads, int n)
{
  pthread_t released = r->kind == KIND_POINTER ? r->release_thread : r->finalized.thread;
  if (pthread_equal (released, r->unregisterer))
    return TRUE;
  for (int i = 0; i < n; i++)
    if (pthread_equal (released, threads[i]))
      return TRUE;
  return FALSE;
}

static void
check_round (Round * r, int round, const pthread_t * releasers, int n_releasers)
{
  if (r->bad != 0 || r->unregister_result != GCS_OK || !is_released (r)
      || (r->sync && !r->released_when_sync_returned)) {
    fprintf (stderr, "round %d (%s, %s, target %d): bad %d, unregister %d, finalized %d, "
        "releases %d, released when sync returned %d\n", round,
        r->kind == KIND_POINTER ? "pointer" : "gst object", r->sync ? "sync" : "async",
        r->target, r->bad, (int) r->unregister_result, FINALIZED_COUNT (&r->finalized),
        r->releases, r->released_when_sync_returned);
  }
  CHECK (r->bad == 0);
  CHECK_OK (r->unregister_result);
  CHECK (FINALIZED_COUNT (&r->finalized) == 1);
  if (r->kind == KIND_POINTER)
    CHECK (g_atomic_int_get (&r->releases) == 1);
  if (r->sync)
    CHECK (r->released_when_sync_returned);
  for (int i = 0; i < N_READERS; i++) {
    CHECK_RESULT (r->reader_results[i], GCS_ERROR_RELEASED);
    CHECK (r->reader_messages_ok[i]);
  }
  CHECK (released_on_a_participant (r, releasers, n_releasers));
  CHECK (!gcs_is_valid (r->handle));
  CHECK_RESULT (gcs_unregister (r->handle), GCS_ERROR_RELEASED);
  /* Still exactly once. */
  CHECK (FINALIZED_COUNT (&r->finalized) == 1);
  if (r->kind == KIND_POINTER)
    CHECK (g_atomic_int_get (&r->releases) == 1);
}

/* ---- readers with gcs_safe_access ---- */

static int
reader_callback (void *object, void *user_data)
{
  Round *r = user_data;
  if (!object_is_alive (r, object))
    g_atomic_int_inc (&r->bad);
  count_access (r);
  return 0;
}

static void *
safe_access_reader (void *data)
{
  ReaderArg *arg = data;
  Round *r = arg->round;
  gate_wait (&r->start, 1);
  GcsResult result;
  do {
    result = gcs_safe_access (r->handle, reader_callback, r);
    /* Let the unregisterer in (2 cores, 5 threads): it then strikes within
     * a few accesses of its target, while other readers are mid-access. */
    g_thread_yield ();
  } while (result == GCS_OK);
  r->reader_results[arg->index] = result;
  r->reader_messages_ok[arg->index] = strstr (gcs_last_error (), "not valid for access") != NULL;
  return NULL;
}

static void
race_safe_access (PayloadKind kind, uint64_t seed)
{
  const int rounds = rounds_wanted ();
  const uint64_t start = test_now_ms ();
  uint64_t rng = seed;
  int round;
  for (round = 0; round < rounds; round++) {
    if (round >= MIN_ROUNDS && test_now_ms () - start > budget_ms ())
      break;
    Round r;
    memset (&r, 0, sizeof r);
    r.kind = kind;
    r.target = (int) (next_random (&rng) % 200);
    r.sync = round % 2 == 1;
    gate_init (&r.start);
    gate_init (&r.reached);
    register_round_object (&r);

    ReaderArg args[N_READERS];
    for (int i = 0; i < N_READERS; i++) {
      args[i] = (ReaderArg) {
      &r, i};
      SPAWN (&r.readers[i], safe_access_reader, &args[i]);
    }
    SPAWN (&r.unregisterer, unregisterer_thread, &r);
    gate_set (&r.start, 1);
    for (int i = 0; i < N_READERS; i++)
      JOIN (r.readers[i]);
    JOIN (r.unregisterer);
    check_round (&r, round, r.readers, N_READERS);
    gate_clear (&r.start);
    gate_clear (&r.reached);
  }
  CHECK (round >= MIN_ROUNDS);
}

/* ---- accesses begun on readers, ended on enders ---- */

#define STOP ((gpointer) & stop_marker)
static int stop_marker;

static void *
begin_reader (void *data)
{
  ReaderArg *arg = data;
  Round *r = arg->round;
  gate_wait (&r->start, 1);
  GcsResult result;
  for (;;) {
    void *object = NULL;
    result = gcs_access_begin (r->handle, &object);
    if (result != GCS_OK)
      break;
    if (!object_is_alive (r, object))
      g_atomic_int_inc (&r->bad);
    count_access (r);
    g_async_queue_push (r->queue, object);      /* ended elsewhere */
    g_thread_yield ();
  }
  r->reader_results[arg->index] = result;
  r->reader_messages_ok[arg->index] = strstr (gcs_last_error (), "not valid for access") != NULL;
  return NULL;
}

static void *
ender (void *data)
{
  Round *r = data;
  for (;;) {
    gpointer object = g_async_queue_pop (r->queue);
    if (object == STOP)
      break;
    /* Begun on another thread and not ended yet: alive. */
    if (!object_is_alive (r, object))
      g_atomic_int_inc (&r->bad);
    if (gcs_access_end (r->handle) != GCS_OK)
      g_atomic_int_inc (&r->bad);
    g_atomic_int_inc (&r->ended);
  }
  return NULL;
}

static void
race_begin_end_across_threads (PayloadKind kind, uint64_t seed)
{
  const int rounds = rounds_wanted ();
  const uint64_t start = test_now_ms ();
  uint64_t rng = seed;
  int round;
  for (round = 0; round < rounds; round++) {
    if (round >= MIN_ROUNDS && test_now_ms () - start > budget_ms ())
      break;
    Round r;
    memset (&r, 0, sizeof r);
    r.kind = kind;
    r.target = (int) (next_random (&rng) % 200);
    r.sync = round % 2 == 1;
    r.queue = g_async_queue_new ();
    gate_init (&r.start);
    gate_init (&r.reached);
    register_round_object (&r);

    ReaderArg args[N_READERS];
    for (int i = 0; i < N_ENDERS; i++)
      SPAWN (&r.enders[i], ender, &r);
    for (int i = 0; i < N_READERS; i++) {
      args[i] = (ReaderArg) {
      &r, i};
      SPAWN (&r.readers[i], begin_reader, &args[i]);
    }
    SPAWN (&r.unregisterer, unregisterer_thread, &r);
    gate_set (&r.start, 1);
    for (int i = 0; i < N_READERS; i++)
      JOIN (r.readers[i]);
    for (int i = 0; i < N_ENDERS; i++)
      g_async_queue_push (r.queue, STOP);
    for (int i = 0; i < N_ENDERS; i++)
      JOIN (r.enders[i]);
    JOIN (r.unregisterer);
    CHECK (g_atomic_int_get (&r.ended) == g_atomic_int_get (&r.accesses));
    /* Released by an ender (the last access's end) or the unregisterer. */
    check_round (&r, round, r.enders, N_ENDERS);
    CHECK_RESULT (gcs_access_end (r.handle), GCS_ERROR_RELEASED);
    g_async_queue_unref (r.queue);
    gate_clear (&r.start);
    gate_clear (&r.reached);
  }
  CHECK (round >= MIN_ROUNDS);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  race_safe_access (KIND_GST_OBJECT, 1);
  race_safe_access (KIND_POINTER, 2);
  race_begin_end_across_threads (KIND_GST_OBJECT, 3);
  race_begin_end_across_threads (KIND_POINTER, 4);

  TEST_PASSED ();
}

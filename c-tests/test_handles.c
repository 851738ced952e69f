/* Handles (contract: "Handles"): 0 is never issued and a value is never
 * issued twice; GCS_INVALID_HANDLE, forged values and bit-flipped copies of a
 * live handle are refused by every function without reaching any object;
 * stale handles report GCS_ERROR_RELEASED with their story; the same object
 * registered twice gets two handles, each with its own reference. */
#include "common.h"

#define SENTINEL ((void *) (uintptr_t) 0x5e17e1u)

typedef struct
{
  gint calls;
  void *last_object;
} Counter;

static int
count_access (void *object, void *user_data)
{
  Counter *counter = user_data;
  g_atomic_int_inc (&counter->calls);
  counter->last_object = object;
  return 0;
}

/* splitmix64: a fixed-seed PRNG, so a failure is reproducible. */
static uint64_t
next_random (uint64_t * state)
{
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void
expect_refused (GcsResult result, GcsHandle value, const char *call, int line)
{
  if (result != GCS_ERROR_INVALID_HANDLE && result != GCS_ERROR_RELEASED) {
    fprintf (stderr, "%s:%d: %s(0x%016" G_GINT64_MODIFIER "x) returned %d (%s), expected "
        "GCS_ERROR_INVALID_HANDLE or GCS_ERROR_RELEASED\n  last error: %s\n", __FILE__, line,
        call, (guint64) value, (int) result, gcs_result_to_string (result), gcs_last_error ());
    exit (1);
  }
  if (gcs_last_error ()[0] == '\0') {
    fprintf (stderr, "%s:%d: %s(0x%016" G_GINT64_MODIFIER "x) failed with an empty gcs_last_error()\n",
        __FILE__, line, call, (guint64) value);
    exit (1);
  }
}

#define EXPECT_REFUSED(call, value) expect_refused ((call), (value), #call, __LINE__)

/* Every handle-taking function, given `value` (not a live handle), refuses
 * it and touches nothing. */
static void
check_value_refused_everywhere (GcsHandle value)
{
  Counter counter = { 0, NULL };
  EXPECT_REFUSED (gcs_safe_access (value, count_access, &counter), value);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (g_atomic_int_get (&counter.calls) == 0);

  void *object = SENTINEL;
  EXPECT_REFUSED (gcs_access_begin (value, &object), value);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (object == SENTINEL);

  EXPECT_REFUSED (gcs_access_end (value), value);
  CHECK (!gcs_is_valid (value));
  EXPECT_REFUSED (gcs_invalidate (value), value);
  EXPECT_REFUSED (gcs_unregister (value), value);
  EXPECT_REFUSED (gcs_unregister_sync (value, 0), value);

  GcsHandleInfo info;
  memset (&info, 0xab, sizeof info);
  info.struct_size = sizeof info;
  GcsResult result = gcs_get_info (value, &info);
  if (result == GCS_OK) {
    /* Only possible when the value is exactly a handle that was issued
     * once and released (a retained stale handle): then it is described as
     * released, never as live. */
    CHECK (info.state == GCS_STATE_RELEASED);
    CHECK (info.handle == value);
    CHECK (info.accesses_in_flight == 0);
  } else {
    EXPECT_REFUSED (result, value);
  }
}

/* A handle with everything known about it, to see that nothing touched it. */
typedef struct
{
  GstElement *element;
  GcsHandle handle;
  gpointer alive;
  int refcount;
} Live;

static void
check_live_untouched (const Live * live, uint32_t accesses_in_flight)
{
  CHECK (live->alive != NULL);
  CHECK (OBJECT_REFCOUNT (live->element) == live->refcount);
  CHECK (gcs_is_valid (live->handle));
  GcsHandleInfo info;
  info.struct_size = sizeof info;
  CHECK_OK (gcs_get_info (live->handle, &info));
  CHECK (info.state == GCS_STATE_LIVE);
  CHECK (info.handle == live->handle);
  CHECK (info.accesses_in_flight == accesses_in_flight);
}

/* ---------------------------------------------------------------------- */

static void
test_zero_is_refused_by_every_function (void)
{
  Counter counter = { 0, NULL };
  CHECK_RESULT (gcs_safe_access (GCS_INVALID_HANDLE, count_access, &counter),
      GCS_ERROR_INVALID_HANDLE);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (counter.calls == 0);

  void *object = SENTINEL;
  CHECK_RESULT (gcs_access_begin (GCS_INVALID_HANDLE, &object), GCS_ERROR_INVALID_HANDLE);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (object == SENTINEL);

  CHECK_RESULT (gcs_access_end (GCS_INVALID_HANDLE), GCS_ERROR_INVALID_HANDLE);
  CHECK (gcs_last_error ()[0] != '\0');
  CHECK (!gcs_is_valid (GCS_INVALID_HANDLE));
  CHECK_RESULT (gcs_unregister (GCS_INVALID_HANDLE), GCS_ERROR_INVALID_HANDLE);
  CHECK (gcs_last_error ()[0] != '\0');
  CHECK_RESULT (gcs_unregister_sync (GCS_INVALID_HANDLE, 0), GCS_ERROR_INVALID_HANDLE);
  CHECK (gcs_last_error ()[0] != '\0');
  /* Must not wait forever for a release that can never happen. */
  CHECK_RESULT (gcs_unregister_sync (GCS_INVALID_HANDLE, GCS_TIMEOUT_INFINITE),
      GCS_ERROR_INVALID_HANDLE);
  CHECK_RESULT (gcs_invalidate (GCS_INVALID_HANDLE), GCS_ERROR_INVALID_HANDLE);
  CHECK (gcs_last_error ()[0] != '\0');

  GcsHandleInfo info;
  memset (&info, 0xab, sizeof info);
  info.struct_size = sizeof info;
  GcsHandleInfo before = info;
  CHECK_RESULT (gcs_get_info (GCS_INVALID_HANDLE, &info), GCS_ERROR_INVALID_HANDLE);
  CHECK (memcmp (&info, &before, sizeof info) == 0);
}

/* Many registrations: no handle is 0, all differ, and after a release no
 * value is ever issued again (slots are reused with a new generation). */
static void
test_handles_never_zero_never_reissued (void)
{
  enum { N = 96, ROUNDS = 3 };
  GcsHandle seen[N * ROUNDS];
  size_t n_seen = 0;

  for (int round = 0; round < ROUNDS; round++) {
    GstElement *elements[N];
    GcsHandle handles[N];
    gpointer alive[N];
    for (int i = 0; i < N; i++) {
      elements[i] = gst_element_factory_make ((i % 2) ? "fakesink" : "identity", NULL);
      CHECK (elements[i] != NULL);
      watch_finalize (elements[i], &alive[i]);
      handles[i] = GCS_INVALID_HANDLE;
      CHECK_OK (gcs_register (elements[i], NULL, &handles[i]));
      CHECK (handles[i] != GCS_INVALID_HANDLE);
      for (size_t j = 0; j < n_seen; j++)
        CHECK (seen[j] != handles[i]);
      seen[n_seen++] = handles[i];
    }
    for (int i = 0; i < N; i++) {
      CHECK (gcs_is_valid (handles[i]));
      CHECK_OK (gcs_unregister (handles[i]));
      CHECK (alive[i] == NULL);
    }
    /* Every earlier handle stays dead, whatever was registered since. */
    for (size_t j = 0; j < n_seen; j++) {
      CHECK (!gcs_is_valid (seen[j]));
      Counter counter = { 0, NULL };
      CHECK_RESULT (gcs_safe_access (seen[j], count_access, &counter), GCS_ERROR_RELEASED);
      CHECK_LAST_ERROR_CONTAINS ("not valid for access");
      CHECK (counter.calls == 0);
    }
  }
}

/* Released states are retained for RETENTION_MS (configured in main), after
 * which their slots are reused: the handles of new registrations must still
 * differ from every handle ever issued, and the old ones stay RELEASED. */
#define RETENTION_MS 250

static void
test_never_reissued_after_slots_are_reused (void)
{
  enum { N = 32, ROUNDS = 3 };
  GcsHandle seen[N * ROUNDS];
  size_t n_seen = 0;
  for (int round = 0; round < ROUNDS; round++) {
    GcsHandle handles[N];
    for (int i = 0; i < N; i++) {
      GstBuffer *buffer = gst_buffer_new ();
      GcsRegistration registration;
      memset (&registration, 0, sizeof registration);
      registration.struct_size = sizeof registration;
      registration.kind = GCS_KIND_MINI_OBJECT;
      registration.object = buffer;
      CHECK_OK (gcs_register_full (&registration, &handles[i]));
      gst_buffer_unref (buffer);        /* the registration holds the last ref */
      CHECK (handles[i] != GCS_INVALID_HANDLE);
      for (size_t j = 0; j < n_seen; j++)
        CHECK (seen[j] != handles[i]);
      seen[n_seen++] = handles[i];
    }
    for (int i = 0; i < N; i++)
      CHECK_OK (gcs_unregister (handles[i]));
    /* Past the retention: the next registrations may reuse these slots. */
    g_usleep ((RETENTION_MS + 50) * 1000);
  }
  /* Every handle ever issued is stale, with or without retained details. */
  for (size_t j = 0; j < n_seen; j++) {
    CHECK (!gcs_is_valid (seen[j]));
    Counter counter = { 0, NULL };
    CHECK_RESULT (gcs_safe_access (seen[j], count_access, &counter), GCS_ERROR_RELEASED);
    CHECK_LAST_ERROR_CONTAINS ("not valid for access");
    CHECK (counter.calls == 0);
    CHECK_RESULT (gcs_unregister (seen[j]), GCS_ERROR_RELEASED);
  }
}

/* Forged values and bit-flipped copies of a live handle: never a crash,
 * never the object, only INVALID_HANDLE or RELEASED. Run with no access in
 * flight and with one in flight (a forged gcs_access_end must not end it). */
static void
test_forged_and_bit_flipped_values (void)
{
  /* Released registrations around the live one, so that some flipped
   * values land on retained slots of the same generation. */
  for (int i = 0; i < 8; i++) {
    GstElement *element = gst_element_factory_make ("fakesink", NULL);
    GcsHandle handle;
    CHECK_OK (gcs_register (element, NULL, &handle));
    CHECK_OK (gcs_unregister (handle));
  }

  Live live;
  live.element = gst_element_factory_make ("fakesink", "forgery-target");
  CHECK (live.element != NULL);
  watch_finalize (live.element, &live.alive);
  CHECK_OK (gcs_register (live.element, NULL, &live.handle));
  live.refcount = OBJECT_REFCOUNT (live.element);
  CHECK (live.refcount == 1);

  for (int in_flight = 0; in_flight <= 1; in_flight++) {
    void *object = NULL;
    if (in_flight) {
      CHECK_OK (gcs_access_begin (live.handle, &object));
      CHECK (object == live.element);
    }

    const GcsHandle fixed[] = { UINT64_MAX, 1, 0x8000000000000000ull, 2, 0xffffffffull,
      0x100000000ull, 0x00000001ffffffffull, 0x7fffffffffffffffull
    };
    for (size_t i = 0; i < G_N_ELEMENTS (fixed); i++) {
      if (fixed[i] == live.handle)
        continue;               /* one chance in 2^64 */
      check_value_refused_everywhere (fixed[i]);
    }

    uint64_t state = 0x6763736166657479ull;     /* fixed seed */
    for (int i = 0; i < 2000; i++) {
      GcsHandle value = next_random (&state);
      if (value == live.handle || value == GCS_INVALID_HANDLE)
        continue;
      check_value_refused_everywhere (value);
    }

    for (int bit = 0; bit < 64; bit++) {
      GcsHandle flipped = live.handle ^ (1ull << bit);
      if (flipped == GCS_INVALID_HANDLE)
        continue;
      check_value_refused_everywhere (flipped);
      /* The real handle is not disturbed by its neighbour. */
      check_live_untouched (&live, in_flight ? 1 : 0);
    }

    check_live_untouched (&live, in_flight ? 1 : 0);
    if (in_flight)
      CHECK_OK (gcs_access_end (live.handle));
    check_live_untouched (&live, 0);
  }

  /* The live handle still works and still releases exactly once. */
  Counter counter = { 0, NULL };
  CHECK_OK (gcs_safe_access (live.handle, count_access, &counter));
  CHECK (counter.calls == 1 && counter.last_object == live.element);
  CHECK_OK (gcs_unregister (live.handle));
  CHECK (live.alive == NULL);
  CHECK_RESULT (gcs_unregister (live.handle), GCS_ERROR_RELEASED);
}

/* A stale handle: RELEASED everywhere, with a message that tells its story. */
static void
test_stale_handle_reports_its_story (void)
{
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  CHECK (element != NULL);
  gpointer alive;
  watch_finalize (element, &alive);

  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_GST_OBJECT;
  registration.object = element;
  registration.instance_name = "stale-sink";
  GcsHandle handle = GCS_INVALID_HANDLE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);

  Counter counter = { 0, NULL };
  CHECK_RESULT (gcs_safe_access (handle, count_access, &counter), GCS_ERROR_RELEASED);
  CHECK (counter.calls == 0);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK_LAST_ERROR_CONTAINS ("GstFakeSink");
  CHECK_LAST_ERROR_CONTAINS ("stale-sink");
  CHECK_LAST_ERROR_CONTAINS ("released ");
  CHECK_LAST_ERROR_CONTAINS (" ago");

  void *object = SENTINEL;
  CHECK_RESULT (gcs_access_begin (handle, &object), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK_LAST_ERROR_CONTAINS ("stale-sink");
  CHECK (object == SENTINEL);

  CHECK (!gcs_is_valid (handle));
  CHECK_RESULT (gcs_access_end (handle), GCS_ERROR_RELEASED);
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("stale-sink");
  CHECK_RESULT (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE), GCS_ERROR_RELEASED);
  CHECK_RESULT (gcs_invalidate (handle), GCS_ERROR_RELEASED);

  GcsHandleInfo info;
  info.struct_size = sizeof info;
  CHECK_OK (gcs_get_info (handle, &info));
  CHECK (info.state == GCS_STATE_RELEASED);
  CHECK (info.handle == handle);
  CHECK (info.kind == GCS_KIND_GST_OBJECT);
  CHECK (info.accesses_in_flight == 0);
  CHECK (info.type_name != NULL && strcmp (info.type_name, "GstFakeSink") == 0);
  CHECK (info.instance_name != NULL && strcmp (info.instance_name, "stale-sink") == 0);
}

/* The same object registered twice: two handles, two references, each
 * dropped by its own unregister. */
static void
test_same_object_twice (void)
{
  /* GstObject kind. */
  GstElement *element = gst_element_factory_make ("identity", "twice");
  CHECK (element != NULL);
  gst_object_ref_sink (element);        /* our own reference */
  CHECK (OBJECT_REFCOUNT (element) == 1);
  gpointer alive;
  watch_finalize (element, &alive);

  GcsHandle first = GCS_INVALID_HANDLE, second = GCS_INVALID_HANDLE;
  CHECK_OK (gcs_register (element, NULL, &first));
  CHECK (OBJECT_REFCOUNT (element) == 2);
  CHECK_OK (gcs_register (element, NULL, &second));
  CHECK (OBJECT_REFCOUNT (element) == 3);
  CHECK (first != second);
  CHECK (first != GCS_INVALID_HANDLE && second != GCS_INVALID_HANDLE);

  Counter counter = { 0, NULL };
  CHECK_OK (gcs_safe_access (first, count_access, &counter));
  CHECK_OK (gcs_safe_access (second, count_access, &counter));
  CHECK (counter.calls == 2 && counter.last_object == element);

  CHECK_OK (gcs_unregister (first));
  CHECK (OBJECT_REFCOUNT (element) == 2);
  CHECK (!gcs_is_valid (first));
  CHECK (gcs_is_valid (second));
  CHECK_OK (gcs_safe_access (second, count_access, &counter));
  CHECK (counter.calls == 3);
  CHECK_RESULT (gcs_safe_access (first, count_access, &counter), GCS_ERROR_RELEASED);
  CHECK (counter.calls == 3);

  CHECK_OK (gcs_unregister (second));
  CHECK (OBJECT_REFCOUNT (element) == 1);
  CHECK (alive != NULL);
  gst_object_unref (element);
  CHECK (alive == NULL);

  /* Mini object kind. */
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 64, NULL);
  CHECK (buffer != NULL && MINI_REFCOUNT (buffer) == 1);
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_MINI_OBJECT;
  registration.object = buffer;
  CHECK_OK (gcs_register_full (&registration, &first));
  CHECK (MINI_REFCOUNT (buffer) == 2);
  CHECK_OK (gcs_register_full (&registration, &second));
  CHECK (MINI_REFCOUNT (buffer) == 3);
  CHECK (first != second);
  CHECK_OK (gcs_unregister (second));
  CHECK (MINI_REFCOUNT (buffer) == 2);
  CHECK_OK (gcs_unregister (first));
  CHECK (MINI_REFCOUNT (buffer) == 1);
  gst_buffer_unref (buffer);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  /* Short retention, swept often, so that slots get reused in this test. */
  GcsConfig config;
  gcs_config_init (&config);
  config.state_retention_ms = RETENTION_MS;
  config.cleanup_interval_ms = 5;
  CHECK_OK (gcs_configure (&config));

  test_zero_is_refused_by_every_function ();
  test_handles_never_zero_never_reissued ();
  test_never_reissued_after_slots_are_reused ();
  test_forged_and_bit_flipped_values ();
  test_stale_handle_reports_its_story ();
  test_same_object_twice ();

  TEST_PASSED ();
}

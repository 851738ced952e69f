/* Shared helpers for the C tests: checks that report file and line, and
 * small GStreamer utilities. Every test is a real C program linked against
 * the built libgcsafety and real GStreamer. */
#ifndef GCS_C_TESTS_COMMON_H
#define GCS_C_TESTS_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

#include "gcsafety.h"

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf (stderr, "%s:%d: CHECK failed: %s\n  last error: %s\n", __FILE__,  \
          __LINE__, #cond, gcs_last_error ());                                   \
      exit (1);                                                                  \
    }                                                                            \
  } while (0)

/* Check that `call` returns `expected` (a GcsResult). */
#define CHECK_RESULT(call, expected)                                             \
  do {                                                                           \
    GcsResult check_result_r_ = (call);                                          \
    if (check_result_r_ != (expected)) {                                         \
      fprintf (stderr, "%s:%d: %s returned %d (%s), expected %s\n  last error: %s\n", \
          __FILE__, __LINE__, #call, (int) check_result_r_,                      \
          gcs_result_to_string (check_result_r_), #expected, gcs_last_error ()); \
      exit (1);                                                                  \
    }                                                                            \
  } while (0)

#define CHECK_OK(call) CHECK_RESULT (call, GCS_OK)

/* Check that the last error message contains `needle`. */
#define CHECK_LAST_ERROR_CONTAINS(needle)                                        \
  do {                                                                           \
    if (strstr (gcs_last_error (), (needle)) == NULL) {                          \
      fprintf (stderr, "%s:%d: last error \"%s\" does not contain \"%s\"\n",     \
          __FILE__, __LINE__, gcs_last_error (), (needle));                      \
      exit (1);                                                                  \
    }                                                                            \
  } while (0)

/* The reference count of a GObject / GstMiniObject, read atomically. */
#define OBJECT_REFCOUNT(obj) ((int) g_atomic_int_get (&G_OBJECT (obj)->ref_count))
#define MINI_REFCOUNT(obj) ((int) g_atomic_int_get (&GST_MINI_OBJECT_CAST (obj)->refcount))

/* A weak pointer that becomes NULL when the object is finalized: the
 * evidence that a reference was (or was not) dropped. */
static inline void
watch_finalize (gpointer object, gpointer * location)
{
  *location = object;
  g_object_add_weak_pointer (G_OBJECT (object), location);
}

#define TEST_PASSED() do { printf ("%s: passed\n", __FILE__); return 0; } while (0)


/* ---- Helpers for the behaviour tests: time, threads, finalize records ---- */
#include <pthread.h>
#include <stdint.h>

/* Milliseconds on the monotonic clock. */
static inline uint64_t
test_now_ms (void)
{
  return (uint64_t) (g_get_monotonic_time () / 1000);
}

/* How often a GObject was finalized (disposed of its last reference), and on
 * which thread: set with watch_finalize_record, read after the fact. */
typedef struct
{
  gint finalized;               /* atomic: number of times the notify ran */
  pthread_t thread;             /* the thread that dropped the last reference */
} FinalizeRecord;

static inline void
finalize_record_notify (gpointer data, GObject * where_the_object_was)
{
  FinalizeRecord *record = data;
  (void) where_the_object_was;
  record->thread = pthread_self ();
  g_atomic_int_inc (&record->finalized);
}

static inline void
watch_finalize_record (gpointer object, FinalizeRecord * record)
{
  g_atomic_int_set (&record->finalized, 0);
  g_object_weak_ref (G_OBJECT (object), finalize_record_notify, record);
}

#define FINALIZED_COUNT(record) g_atomic_int_get (&(record)->finalized)

/* A value threads wait on: gate_wait blocks until it reaches at least `value`. */
typedef struct
{
  GMutex lock;
  GCond cond;
  int value;
} TestGate;

static inline void
gate_init (TestGate * gate)
{
  g_mutex_init (&gate->lock);
  g_cond_init (&gate->cond);
  gate->value = 0;
}

static inline void
gate_clear (TestGate * gate)
{
  g_mutex_clear (&gate->lock);
  g_cond_clear (&gate->cond);
}

static inline void
gate_set (TestGate * gate, int value)
{
  g_mutex_lock (&gate->lock);
  gate->value = value;
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);
}

static inline void
gate_wait (TestGate * gate, int value)
{
  g_mutex_lock (&gate->lock);
  while (gate->value < value)
    g_cond_wait (&gate->cond, &gate->lock);
  g_mutex_unlock (&gate->lock);
}

/* gate_wait with a limit: TRUE if the value was reached within timeout_ms. */
static inline gboolean
gate_wait_for (TestGate * gate, int value, unsigned timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gboolean reached = TRUE;
  g_mutex_lock (&gate->lock);
  while (gate->value < value) {
    if (!g_cond_wait_until (&gate->cond, &gate->lock, deadline)) {
      reached = gate->value >= value;
      break;
    }
  }
  g_mutex_unlock (&gate->lock);
  return reached;
}

/* Long enough never to be reached by a correct library, even under valgrind
 * or on a loaded machine: the timeout of every wait that is expected to
 * succeed (docs/clock-audit.md). */
#define HANG_MS 20000

/* Start a thread or fail the test. */
#define SPAWN(thread_ptr, fn, arg) CHECK (pthread_create ((thread_ptr), NULL, (fn), (arg)) == 0)
#define JOIN(thread) CHECK (pthread_join ((thread), NULL) == 0)


/* ---- Helpers for the lifecycle tests: slow runs, registrations into a
 * manager, statistics, polling, library threads ---- */
#include <dirent.h>

/* Whether this process runs under valgrind (its preload library is in
 * LD_PRELOAD), where everything is ~30 times slower. */
static inline gboolean
test_under_valgrind (void)
{
  const char *preload = getenv ("LD_PRELOAD");
  return preload != NULL && strstr (preload, "vgpreload") != NULL;
}

/* Scale loops down under valgrind or when GCS_SLOW is set. */
static inline gboolean
test_slow_run (void)
{
  return test_under_valgrind () || getenv ("GCS_SLOW") != NULL;
}

/* A version-1 GcsRegistration of `object` (of `kind`) into `manager`
 * (NULL = the default manager). */
static inline GcsRegistration
registration_for (GcsManager * manager, GcsObjectKind kind, void *object)
{
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.manager = manager;
  registration.kind = kind;
  registration.object = object;
  return registration;
}

/* A manager's statistics (NULL = the default manager); the call must succeed. */
#define stats_of(manager) stats_of_at ((manager), __FILE__, __LINE__)
static inline GcsStats
stats_of_at (GcsManager * manager, const char *file, int line)
{
  GcsStats stats;
  memset (&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  GcsResult result = gcs_get_stats (manager, &stats);
  if (result != GCS_OK) {
    fprintf (stderr, "%s:%d: gcs_get_stats returned %d (%s)\n  last error: %s\n", file, line,
        (int) result, gcs_result_to_string (result), gcs_last_error ());
    exit (1);
  }
  return stats;
}

/* A handle's info; the call must succeed. */
#define handle_info_of(handle) handle_info_of_at ((handle), __FILE__, __LINE__)
static inline GcsHandleInfo
handle_info_of_at (GcsHandle handle, const char *file, int line)
{
  GcsHandleInfo info;
  memset (&info, 0, sizeof info);
  info.struct_size = sizeof info;
  GcsResult result = gcs_get_info (handle, &info);
  if (result != GCS_OK) {
    fprintf (stderr, "%s:%d: gcs_get_info returned %d (%s)\n  last error: %s\n", file, line,
        (int) result, gcs_result_to_string (result), gcs_last_error ());
    exit (1);
  }
  return info;
}

/* Wait (polling every millisecond) until `cond` holds or `timeout_ms`
 * passed; check `cond` afterwards. */
#define POLL_UNTIL(cond, timeout_ms)                                             \
  do {                                                                           \
    const uint64_t poll_deadline_ = test_now_ms () + (uint64_t) (timeout_ms);    \
    while (!(cond) && test_now_ms () < poll_deadline_)                           \
      g_usleep (1000);                                                           \
  } while (0)

/* How many threads of this process have a name (/proc/self/task/N/comm)
 * starting with `prefix`. */
static inline int
count_threads_with_prefix (const char *prefix)
{
  int count = 0;
  DIR *tasks = opendir ("/proc/self/task");
  if (tasks == NULL)
    return -1;
  struct dirent *entry;
  while ((entry = readdir (tasks)) != NULL) {
    if (entry->d_name[0] == '.')
      continue;
    gchar *path = g_strdup_printf ("/proc/self/task/%s/comm", entry->d_name);
    gchar *comm = NULL;
    if (g_file_get_contents (path, &comm, NULL, NULL)) {
      if (strncmp (comm, prefix, strlen (prefix)) == 0)
        count++;
      g_free (comm);
    }
    g_free (path);
  }
  closedir (tasks);
  return count;
}

/* Run one test function, naming it on stderr first (so a failure or a hang
 * shows which one). */
#define RUN_TEST(fn)                                                             \
  do {                                                                           \
    fprintf (stderr, "-- %s\n", #fn);                                           \
    test_watchdog_current = #fn;                                                 \
    fn ();                                                                       \
  } while (0)

/* A hang fails the test instead of blocking the harness forever: after
 * `seconds` (multiplied by 10 under valgrind or GCS_SLOW), print which
 * test was running and exit with status 3. */
#include <signal.h>
#include <unistd.h>

static const char *volatile test_watchdog_current = "";

static inline void
test_watchdog_fired (int signal_number)
{
  static const char message[] = "\nTEST HUNG: the watchdog fired during ";
  (void) signal_number;
  if (write (2, message, sizeof message - 1) < 0 ||
      write (2, test_watchdog_current, strlen (test_watchdog_current)) < 0 ||
      write (2, "\n", 1) < 0)
    _exit (3);
  _exit (3);
}

static inline void
test_watchdog (unsigned seconds)
{
  signal (SIGALRM, test_watchdog_fired);
  alarm (test_slow_run ()? seconds * 10 : seconds);
}


/* Wait up to `ms` milliseconds for `cond` to hold (polling every
 * millisecond), then check it. For GStreamer's own asynchrony only, such
 * as a task thread of a just-stopped pipeline dropping its reference a
 * moment after gst_element_set_state() returned; never for gcsafety's
 * guarantees, which are checked without waiting. */
#define CHECK_WITHIN_MS(ms, cond)                                                \
  do {                                                                           \
    for (int waited_ms_ = 0; !(cond) && waited_ms_ < (ms); waited_ms_++)         \
      g_usleep (1000);                                                           \
    CHECK (cond);                                                                \
  } while (0)

/* ---- An access held on another thread ---- */

/* holder_start begins an access of `handle` on a new thread and returns
 * once it is in (checking it began); holder_finish lets it end and joins
 * it (checking it ended). Set `delay_ms` or `end_after_unregister` before
 * holder_finish: the holder reads them after it is told to end. */
typedef struct
{
  GcsHandle handle;
  void *object;                 /* what gcs_access_begin returned */
  GcsResult begin_result;
  GcsResult end_result;
  unsigned delay_ms;            /* wait this long after go_end before ending */
  gboolean end_after_unregister;        /* after go_end, wait until the handle is
                                         * no longer valid (someone unregistered it) */
  TestGate began;
  TestGate go_end;
  gint ending;                  /* set just before gcs_access_end */
  pthread_t thread;
} Holder;

static inline void *
holder_thread (void *data)
{
  Holder *h = data;
  h->begin_result = gcs_access_begin (h->handle, &h->object);
  gate_set (&h->began, 1);
  if (h->begin_result != GCS_OK)
    return NULL;
  gate_wait (&h->go_end, 1);
  if (h->delay_ms)
    g_usleep (h->delay_ms * 1000);
  if (h->end_after_unregister) {
    POLL_UNTIL (!gcs_is_valid (h->handle), HANG_MS);
    CHECK (!gcs_is_valid (h->handle));
  }
  g_atomic_int_set (&h->ending, 1);
  h->end_result = gcs_access_end (h->handle);
  return NULL;
}

static inline void
holder_start (Holder * h, GcsHandle handle)
{
  memset (h, 0, sizeof *h);
  h->handle = handle;
  gate_init (&h->began);
  gate_init (&h->go_end);
  SPAWN (&h->thread, holder_thread, h);
  gate_wait (&h->began, 1);
  CHECK_OK (h->begin_result);
}

static inline void
holder_finish (Holder * h)
{
  gate_set (&h->go_end, 1);
  JOIN (h->thread);
  CHECK_OK (h->end_result);
  gate_clear (&h->began);
  gate_clear (&h->go_end);
}

/* gcs_access_end (handle) on a new thread, which is joined: the call's
 * result, and in `*thread` the thread it ran on (to check that a release
 * happened there). */
typedef struct
{
  GcsHandle handle;
  GcsResult result;
} TestEnder;

static inline void *
test_ender_thread (void *data)
{
  TestEnder *e = data;
  e->result = gcs_access_end (e->handle);
  return NULL;
}

static inline GcsResult
end_access_on_new_thread (GcsHandle handle, pthread_t * thread)
{
  TestEnder e = { handle, GCS_ERROR_PANIC };
  SPAWN (thread, test_ender_thread, &e);
  JOIN (*thread);
  return e.result;
}

/* ---- Forked children ---- */

/* CHECK for a forked child: report on fd 2 and _exit (no atexit handlers,
 * no flush of the parent's stdio buffers). */
#define CHILD_CHECK(cond)                                                        \
  do {                                                                           \
    if (!(cond)) {                                                               \
      char message_[256];                                                        \
      int n_ = snprintf (message_, sizeof message_, "child: %s:%d: CHECK failed: %s (%s)\n", \
          __FILE__, __LINE__, #cond, gcs_last_error ());                         \
      if (write (2, message_, (size_t) n_) < 0)                                  \
        _exit (2);                                                               \
      _exit (2);                                                                 \
    }                                                                            \
  } while (0)

#endif

/* examples/stress/gcs-stress.c: the soak/stress program.
 *
 * Run it with scripts/stress.sh (it builds the library and this program):
 *
 *   scripts/stress.sh --duration 30                  the CI run
 *   scripts/stress.sh --threads 8 --duration 14400   a soak of four hours
 *   scripts/stress.sh --asan --duration 10           under AddressSanitizer
 *
 * N threads run random operations on real GStreamer objects for T seconds,
 * each thread from its own seeded generator (--seed S: the same operations
 * per thread again; the interleaving is the scheduler's). The objects are of
 * every registration kind: GstBuffers (GCS_KIND_MINI_OBJECT), GstElements
 * (identity, fakesink, queue: GCS_KIND_GST_OBJECT, sometimes with
 * GCS_REGISTER_SET_NULL_STATE), plain GObjects and floating elements
 * (GCS_KIND_GOBJECT), GObjects held weakly (GCS_KIND_WEAK_GOBJECT, whose
 * owner reference the program drops at random) and malloc'd structs with a
 * release function (GCS_KIND_POINTER), on the default manager and on three
 * managers of different configurations that are closed (with accesses in
 * flight), freed and recreated now and then.
 *
 * Handles are shared between the threads through a pool (a lock-protected
 * array: the library is what is under test, not the pool). The operations:
 * register, gcs_safe_access and gcs_safe_access_inline, begin/end through
 * the exported functions and the header-inline ones (also mixed), begin on
 * one thread and end on another (a hand-off queue), unregister,
 * unregister_sync with a timeout, unregister inside the handle's own access,
 * unregister_sync inside its own access (GCS_ERROR_WOULD_DEADLOCK),
 * invalidate, add_cleanup, set_finalizer, is_valid (both), get_info,
 * statistics and the leak report of a manager under load, accesses of stale
 * and forged handles, dropping the program's own reference of an object (a
 * weak one's owner), and closing a manager.
 *
 * Every object carries proof of life that an access checks: a stamp in the
 * buffer's memory, qdata on a GObject, a magic number in the struct (poisoned
 * by its release function). A finalization notify (gst_mini_object_weak_ref,
 * g_object_weak_ref, the release function) counts each object's
 * finalizations and checks, when it runs, that the object's handle is no
 * longer live and that no access of it is in flight (the program counts its
 * own accesses per object). See docs/stress.md for the invariants; the exit
 * status is 0 only when every one of them held.
 */

#define _GNU_SOURCE /* pthread_rwlock_t, sigaction */

#include <gcsafety.h>
#include <gst/gst.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif
#ifndef STRESS_ASAN
#define STRESS_ASAN 0
#endif

/* ----- options ------------------------------------------------------------ */

static int opt_threads = 4;
static double opt_duration = 30.0;
static gint64 opt_seed = 0;
static int opt_pool = 256;
static double opt_rss_limit_mib = -1.0; /* < 0: the default bound (see rss_bound) */

static GOptionEntry entries[] = {
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Worker threads (default 4)", "N" },
  { "duration", 'd', 0, G_OPTION_ARG_DOUBLE, &opt_duration, "Seconds to run (default 30; Ctrl-C stops earlier)", "S" },
  { "seed", 's', 0, G_OPTION_ARG_INT64, &opt_seed, "Seed (default: from the clock); thread i runs from seed and i", "S" },
  { "pool", 0, 0, G_OPTION_ARG_INT, &opt_pool, "Handles shared in the pool (default 256)", "N" },
  { "rss-limit-mib", 0, 0, G_OPTION_ARG_DOUBLE, &opt_rss_limit_mib,
    "Fail if RSS grows more than this after the warm-up (default 32 + 25% of the RSS after warm-up; 0 = report only)",
    "MIB" },
  { NULL, 0, 0, 0, NULL, NULL, NULL },
};

/* ----- invariants ---------------------------------------------------------- */

typedef enum {
  INV_ALIVE_IN_ACCESS,
  INV_FINALIZED_ONCE,
  INV_FINALIZED_AFTER_RELEASE,
  INV_NO_ACCESS_AT_FINALIZE,
  INV_RESULT_CODES,
  INV_STALE_REFUSED,
  INV_CLEANUPS,
  INV_END_STATE,
  INV_RSS,
  INV_PROGRESS,
  INV_NO_CRITICALS,
  N_INVARIANTS
} Invariant;

static const char *const invariant_names[N_INVARIANTS] = {
  [INV_ALIVE_IN_ACCESS] = "object alive inside every access",
  [INV_FINALIZED_ONCE] = "every object finalized exactly once",
  [INV_FINALIZED_AFTER_RELEASE] = "finalized only after its handle was released",
  [INV_NO_ACCESS_AT_FINALIZE] = "no access in flight at finalization",
  [INV_RESULT_CODES] = "result codes allowed for the operation",
  [INV_STALE_REFUSED] = "stale and forged handles refused",
  [INV_CLEANUPS] = "cleanups once each, finalizer as documented",
  [INV_END_STATE] = "end: nothing active, live or unfinalized",
  [INV_RSS] = "RSS stable after warm-up",
  [INV_PROGRESS] = "every thread makes progress",
  [INV_NO_CRITICALS] = "no GLib/GStreamer warning or critical",
};

/* ----- operations ------------------------------------------------------------ */

typedef enum {
  OP_REGISTER_BUFFER,
  OP_REGISTER_ELEMENT,
  OP_REGISTER_GOBJECT,
  OP_REGISTER_WEAK,
  OP_REGISTER_POINTER,
  OP_SAFE_ACCESS,
  OP_SAFE_ACCESS_INLINE,
  OP_BEGIN_END,
  OP_BEGIN_END_INLINE,
  OP_BEGIN_END_MIXED,
  OP_HANDOFF_BEGIN,
  OP_HANDOFF_END,
  OP_UNREGISTER,
  OP_UNREGISTER_SYNC,
  OP_UNREGISTER_IN_ACCESS,
  OP_SYNC_IN_OWN_ACCESS,
  OP_INVALIDATE,
  OP_ADD_CLEANUP,
  OP_SET_FINALIZER,
  OP_IS_VALID,
  OP_GET_INFO,
  OP_STATS,
  OP_STALE,
  OP_FORGED,
  OP_DROP_PROGRAM_REF,
  OP_RECYCLE_MANAGER,
  N_OPS
} Op;

/* Name and weight (out of the sum of all weights) of each operation. */
static const struct {
  const char *name;
  int weight;
} ops[N_OPS] = {
  [OP_REGISTER_BUFFER] = { "register buffer", 40 },
  [OP_REGISTER_ELEMENT] = { "register element", 20 },
  [OP_REGISTER_GOBJECT] = { "register gobject", 30 },
  [OP_REGISTER_WEAK] = { "register weak gobject", 30 },
  [OP_REGISTER_POINTER] = { "register pointer", 40 },
  [OP_SAFE_ACCESS] = { "safe_access", 120 },
  [OP_SAFE_ACCESS_INLINE] = { "safe_access_inline", 150 },
  [OP_BEGIN_END] = { "begin/end", 80 },
  [OP_BEGIN_END_INLINE] = { "begin/end inline", 100 },
  [OP_BEGIN_END_MIXED] = { "begin/end mixed", 30 },
  [OP_HANDOFF_BEGIN] = { "begin (ended elsewhere)", 40 },
  [OP_HANDOFF_END] = { "end (begun elsewhere)", 40 },
  [OP_UNREGISTER] = { "unregister", 50 },
  [OP_UNREGISTER_SYNC] = { "unregister_sync", 15 },
  [OP_UNREGISTER_IN_ACCESS] = { "unregister in access", 10 },
  [OP_SYNC_IN_OWN_ACCESS] = { "unregister_sync in access", 4 },
  [OP_INVALIDATE] = { "invalidate", 15 },
  [OP_ADD_CLEANUP] = { "add_cleanup", 30 },
  [OP_SET_FINALIZER] = { "set_finalizer", 20 },
  [OP_IS_VALID] = { "is_valid", 30 },
  [OP_GET_INFO] = { "get_info", 20 },
  [OP_STATS] = { "stats / leak report", 2 },
  [OP_STALE] = { "stale handle", 40 },
  [OP_FORGED] = { "forged handle", 30 },
  [OP_DROP_PROGRAM_REF] = { "drop program's reference", 10 },
  [OP_RECYCLE_MANAGER] = { "close+recreate manager", 0 }, /* by time, see worker */
};

/* What one thread counts (its own cache lines; the monitor reads them). */
typedef struct {
  _Alignas (64) atomic_uint_fast64_t ops[N_OPS];
  atomic_uint_fast64_t checks[N_INVARIANTS];
  atomic_uint_fast64_t ok_results, refused_results;
  atomic_uint_fast64_t last_progress_us;
} Counters;

static Counters *worker_counters;       /* opt_threads of them */
static Counters other_counters;         /* library threads, the main thread */
static _Thread_local Counters *my_counters;

static atomic_uint_fast64_t violations[N_INVARIANTS];
static atomic_int violations_printed;

static Counters *
counters (void)
{
  return my_counters ? my_counters : &other_counters;
}

static void
count_op (Op op)
{
  atomic_fetch_add_explicit (&counters ()->ops[op], 1, memory_order_relaxed);
}

static void violation (Invariant inv, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
violation (Invariant inv, const char *format, ...)
{
  va_list args;
  atomic_fetch_add (&violations[inv], 1);
  if (atomic_fetch_add (&violations_printed, 1) >= 20)
    return;
  char message[512];
  va_start (args, format);
  vsnprintf (message, sizeof message, format, args);
  va_end (args);
  fprintf (stderr, "VIOLATION [%s]: %s\n", invariant_names[inv], message);
}

/* Count a check of `inv`; a false `cond` is a violation described by the rest. */
#define CHECK_INV(inv, cond, ...)                                                \
  do {                                                                          \
    atomic_fetch_add_explicit (&counters ()->checks[inv], 1, memory_order_relaxed); \
    if (!(cond))                                                                \
      violation ((inv), __VA_ARGS__);                                           \
  } while (0)

/* Result codes as a bit set: bit -code. */
#define RES(code) (1u << (unsigned) -(code))
#define RES_OK RES (GCS_OK)

/* Check that `result` of `what` is in `allowed`; returns it. */
static GcsResult
expect_result (Invariant inv, const char *what, GcsHandle handle, GcsResult result, unsigned allowed)
{
  bool ok = result <= 0 && result > -32 && (allowed & RES (result)) != 0;
  CHECK_INV (inv, ok, "%s(0x%016" PRIx64 ") returned %d (%s): %s", what, handle, (int) result,
      gcs_result_to_string (result), gcs_last_error ());
  atomic_fetch_add_explicit (result == GCS_OK ? &counters ()->ok_results : &counters ()->refused_results, 1,
      memory_order_relaxed);
  return result;
}

static uint64_t
now_us (void)
{
  return (uint64_t) g_get_monotonic_time ();
}

/* ----- objects and their records -------------------------------------------- */

#define RECORD_MAGIC 0x5245434f52443031ull      /* "RECORD01" */
#define STAMP_MAGIC 0x5354414d50425546ull       /* "STAMPBUF" */
#define POINTEE_LIVE 0x504f494e5445524cull      /* "POINTERL" */
#define POINTEE_POISON 0xdeaddeaddeaddeadull

/* What a registered object is, as the program knows it. */
typedef enum {
  OBJ_BUFFER,           /* GstBuffer, GCS_KIND_MINI_OBJECT */
  OBJ_ELEMENT,          /* GstElement, GCS_KIND_GST_OBJECT */
  OBJ_GOBJECT,          /* plain GObject or floating GstElement, GCS_KIND_GOBJECT */
  OBJ_WEAK,             /* plain GObject, GCS_KIND_WEAK_GOBJECT */
  OBJ_POINTER,          /* Pointee, GCS_KIND_POINTER */
  N_OBJ
} ObjectType;

static const char *const object_type_names[N_OBJ] = {
  "buffer", "element", "gobject", "weak gobject", "pointer"
};

/* The stamp in a buffer's memory. */
typedef struct Record Record;
typedef struct {
  uint64_t magic;
  Record *record;
  void *self;
} Stamp;

/* The object of a GCS_KIND_POINTER registration. */
typedef struct {
  uint64_t magic;
  Record *record;
} Pointee;

/* One registered object. Freed (after a delay) once nobody refers to it:
 * `refs` counts the pool entry, the object itself (dropped by its
 * finalization notify) and every operation in progress on it (a pin). */
struct Record {
  uint64_t magic;
  ObjectType type;
  GcsObjectKind kind;
  int manager_slot;
  unsigned manager_epoch;       /* of its manager slot at registration */
  uint64_t serial;
  void *object;                 /* never dereferenced once finalized */
  _Atomic GcsHandle handle;     /* 0 until registered (or if refused) */
  atomic_int refs;
  atomic_int in_flight;         /* this program's accesses of the object now */
  atomic_int finalized;         /* times its finalization notify ran */
  atomic_int cleanups_added, cleanups_run;
  atomic_int finalizer_set, finalizer_runs;    /* set: successful gcs_set_finalizer calls */
  atomic_int invalidated, maybe_invalidated;
  atomic_int unattributed_ends; /* accesses the library cannot credit to the thread
                                 * that began them (see do_sync_in_own_access) */
  _Atomic (void *) program_ref; /* a reference of the program's own, or NULL (drop_program_ref) */
  uint64_t retired_us;
  uint64_t postponed;           /* sweeps it waited for its finalizer */
  Record *prev, *next;          /* all records (records_lock) */
  Record *retired_next;         /* the retired list (records_lock) */
};

static GQuark record_quark;
static pthread_mutex_t records_lock = PTHREAD_MUTEX_INITIALIZER;
static Record *all_records;
static Record *retired_head, *retired_tail;
static atomic_uint_fast64_t records_live, records_freed;
static atomic_uint_fast64_t objects_created[N_OBJ], objects_finalized[N_OBJ];
static atomic_uint_fast64_t serials;

static Record *
record_new (ObjectType type, GcsObjectKind kind, int manager_slot)
{
  Record *r = g_new0 (Record, 1);
  r->magic = RECORD_MAGIC;
  r->type = type;
  r->kind = kind;
  r->manager_slot = manager_slot;
  r->serial = atomic_fetch_add (&serials, 1) + 1;
  atomic_init (&r->refs, 2);    /* the pool entry (or the registering thread), the object */
  pthread_mutex_lock (&records_lock);
  r->next = all_records;
  if (all_records)
    all_records->prev = r;
  all_records = r;
  pthread_mutex_unlock (&records_lock);
  atomic_fetch_add (&records_live, 1);
  atomic_fetch_add (&objects_created[type], 1);
  return r;
}

static void
record_ref (Record * r)
{
  atomic_fetch_add (&r->refs, 1);
}

/* Drop one reference; the last puts the record on the retired list, where
 * the monitor checks and frees it RETIRE_DELAY_US later (a margin for a
 * library thread that would still call back with it: the checks then see
 * it; see also awaiting_finalizer). */
#define RETIRE_DELAY_US 100000

static void
record_unref (Record * r)
{
  int before = atomic_fetch_sub (&r->refs, 1);
  if (before != 1)
    return;
  pthread_mutex_lock (&records_lock);
  r->retired_us = now_us ();
  r->retired_next = NULL;
  if (retired_tail)
    retired_tail->retired_next = r;
  else
    retired_head = r;
  retired_tail = r;
  pthread_mutex_unlock (&records_lock);
}

/* The per-record invariants, when it is freed. */
static void
record_check_final (Record * r)
{
  int finalized = atomic_load (&r->finalized);
  CHECK_INV (INV_FINALIZED_ONCE, finalized == 1, "%s #%" PRIu64 " (handle 0x%016" PRIx64
      ") finalized %d times", object_type_names[r->type], r->serial, atomic_load (&r->handle), finalized);
  int added = atomic_load (&r->cleanups_added), run = atomic_load (&r->cleanups_run);
  CHECK_INV (INV_CLEANUPS, added == run, "%s #%" PRIu64 ": %d cleanups added, %d run",
      object_type_names[r->type], r->serial, added, run);
  int set = atomic_load (&r->finalizer_set), runs = atomic_load (&r->finalizer_runs);
  bool finalizer_ok;
  if (!set)
    finalizer_ok = runs == 0;
  else if (atomic_load (&r->invalidated))
    finalizer_ok = runs == 0;   /* only if the handle was not invalidated */
  else if (atomic_load (&r->maybe_invalidated))
    finalizer_ok = runs <= 1;   /* a failed callback may have invalidated it */
  else
    finalizer_ok = runs == 1;
  CHECK_INV (INV_CLEANUPS, finalizer_ok, "%s #%" PRIu64 ": finalizer set %d, invalidated %d, ran %d times",
      object_type_names[r->type], r->serial, set, atomic_load (&r->invalidated), runs);
}

/* Whether the library may still call r's finalizer: a weak registration's
 * finalizer runs on the executor after its object died and the handle was
 * unregistered, when nothing of the program refers to the record any more. */
static bool
awaiting_finalizer (Record * r)
{
  return r->type == OBJ_WEAK && atomic_load (&r->finalizer_set) && !atomic_load (&r->maybe_invalidated)
      && atomic_load (&r->finalizer_runs) == 0;
}

/* Free the records retired at least `age_us` ago (all with 0: at the end,
 * after gcs_shutdown). A record still awaiting its finalizer waits longer,
 * up to 30 s; then the checks say the finalizer never ran. */
static void
sweep_retired (uint64_t age_us)
{
  uint64_t now = now_us ();
  for (;;) {
    pthread_mutex_lock (&records_lock);
    Record *r = retired_head;
    if (r == NULL || (age_us > 0 && now - r->retired_us < age_us)) {
      pthread_mutex_unlock (&records_lock);
      return;
    }
    retired_head = r->retired_next;
    if (retired_head == NULL)
      retired_tail = NULL;
    if (age_us > 0 && r->postponed < 30000000 / age_us && awaiting_finalizer (r)) {
      r->postponed++;
      r->retired_us = now;      /* to the tail again: the loop stops there */
      r->retired_next = NULL;
      if (retired_tail)
        retired_tail->retired_next = r;
      else
        retired_head = r;
      retired_tail = r;
      pthread_mutex_unlock (&records_lock);
      continue;
    }
    if (r->prev)
      r->prev->next = r->next;
    else
      all_records = r->next;
    if (r->next)
      r->next->prev = r->prev;
    pthread_mutex_unlock (&records_lock);
    record_check_final (r);
    r->magic = 0;
    g_free (r);
    atomic_fetch_sub (&records_live, 1);
    atomic_fetch_add (&records_freed, 1);
  }
}

/* Is `object`, seen inside an access of r's handle, r's live object?
 * Reads the object's own proof of life (under ASan a freed object is a
 * heap-use-after-free report right here). */
static void
check_alive (Record * r, void *object, const char *where)
{
  const char *why = NULL;
  if (object == NULL)
    why = "NULL object";
  else if (r->magic != RECORD_MAGIC)
    why = "record freed";
  else if (object != r->object)
    why = "not the registered object";
  else if (atomic_load (&r->finalized) != 0)
    why = "already finalized";
  else {
    switch (r->type) {
      case OBJ_BUFFER:{
        Stamp stamp = { 0, NULL, NULL };
        if (g_atomic_int_get (&GST_MINI_OBJECT_CAST (object)->refcount) < 1)
          why = "buffer refcount 0";
        else if (gst_buffer_extract (GST_BUFFER_CAST (object), 0, &stamp, sizeof stamp) != sizeof stamp
            || stamp.magic != STAMP_MAGIC || stamp.record != r || stamp.self != object)
          why = "buffer stamp wrong";
        break;
      }
      case OBJ_ELEMENT:
      case OBJ_GOBJECT:
      case OBJ_WEAK:
        if (!G_IS_OBJECT (object))
          why = "not a GObject";
        else if (g_atomic_int_get (&G_OBJECT (object)->ref_count) < 1)
          why = "GObject refcount 0";
        else if (g_object_get_qdata (G_OBJECT (object), record_quark) != r)
          why = "GObject qdata wrong";
        break;
      case OBJ_POINTER:{
        Pointee *p = object;
        if (p->magic != POINTEE_LIVE || p->record != r)
          why = "pointer magic wrong (released?)";
        break;
      }
      default:
        why = "unknown type";
    }
  }
  CHECK_INV (INV_ALIVE_IN_ACCESS, why == NULL, "%s: %s #%" PRIu64 " (handle 0x%016" PRIx64 "): %s", where,
      object_type_names[r->type], r->serial, atomic_load (&r->handle), why);
}

/* The finalization of r's object (its last reference dropped, or its
 * release function called). */
static void
object_finalized (Record * r)
{
  int n = atomic_fetch_add (&r->finalized, 1) + 1;
  CHECK_INV (INV_FINALIZED_ONCE, n == 1, "%s #%" PRIu64 " finalized a %dth time", object_type_names[r->type],
      r->serial, n);
  int in_flight = atomic_load (&r->in_flight);
  CHECK_INV (INV_NO_ACCESS_AT_FINALIZE, in_flight == 0, "%s #%" PRIu64 " finalized with %d accesses in flight",
      object_type_names[r->type], r->serial, in_flight);
  CHECK_INV (INV_FINALIZED_AFTER_RELEASE, atomic_load (&r->program_ref) == NULL,
      "%s #%" PRIu64 " finalized while the program still holds a reference of its own",
      object_type_names[r->type], r->serial);
  GcsHandle h = atomic_load (&r->handle);
  /* A weak registration holds no reference: its object dies when its owner
   * lets go, while the handle is live; the library notices (RELEASED). */
  if (h != GCS_INVALID_HANDLE && r->type != OBJ_WEAK) {
    GcsHandleInfo info;
    memset (&info, 0, sizeof info);
    info.struct_size = sizeof info;
    GcsResult result = gcs_get_info (h, &info);
    bool released = (result == GCS_OK && (info.state == GCS_STATE_RELEASING || info.state == GCS_STATE_RELEASED))
        || result == GCS_ERROR_RELEASED || result == GCS_ERROR_SHUT_DOWN;
    CHECK_INV (INV_FINALIZED_AFTER_RELEASE, released && !gcs_is_valid (h),
        "%s #%" PRIu64 " finalized while its handle 0x%016" PRIx64 " is %s (get_info %s, state %d)",
        object_type_names[r->type], r->serial, h, gcs_is_valid (h) ? "valid" : "not valid",
        gcs_result_to_string (result), (int) info.state);
    if (result == GCS_OK)
      CHECK_INV (INV_NO_ACCESS_AT_FINALIZE, info.accesses_in_flight == 0,
          "%s #%" PRIu64 " finalized; the library counts %u accesses in flight", object_type_names[r->type],
          r->serial, info.accesses_in_flight);
  }
  atomic_fetch_add (&objects_finalized[r->type], 1);
  record_unref (r);
}

static void
mini_object_freed (gpointer data, GstMiniObject * object)
{
  (void) object;
  object_finalized (data);
}

static void
gobject_finalized (gpointer data, GObject * where_it_was)
{
  (void) where_it_was;
  object_finalized (data);
}

/* The release function of a GCS_KIND_POINTER registration. */
static void
pointee_release (void *object, void *user_data)
{
  Pointee *p = object;
  Record *r = user_data;
  CHECK_INV (INV_FINALIZED_ONCE, p->magic == POINTEE_LIVE && p->record == r,
      "pointer #%" PRIu64 " released with magic %" PRIx64, r->serial, p->magic);
  object_finalized (r);
  p->magic = POINTEE_POISON;
  free (p);
}

static int
cleanup_cb (void *object, void *user_data)
{
  Record *r = user_data;
  /* A weak registration whose object died elsewhere gets NULL. */
  if (!(object == NULL && r->type == OBJ_WEAK))
    check_alive (r, object, "cleanup");
  atomic_fetch_add (&r->cleanups_run, 1);
  return 0;
}

static int
finalizer_cb (void *object, void *user_data)
{
  Record *r = user_data;
  if (!(object == NULL && r->type == OBJ_WEAK))
    check_alive (r, object, "finalizer");
  atomic_fetch_add (&r->finalizer_runs, 1);
  return 0;
}

/* ----- managers ---------------------------------------------------------------- */

#define N_MANAGERS 4            /* slot 0: the default manager (NULL) */

typedef struct {
  pthread_rwlock_t lock;        /* write: closing/recreating; read: using the pointer */
  GcsManager *manager;
  atomic_uint epoch;            /* raised before each close */
} ManagerSlot;

static ManagerSlot managers[N_MANAGERS];
static atomic_uint_fast64_t managers_recycled;

/* The configurations: each slot its own, so that their paths all run. */
static void
config_for_slot (int slot, GcsConfig * config)
{
  gcs_config_init (config);
  config->cleanup_interval_ms = 500;
  switch (slot) {
    case 0:                    /* the default manager: retention short enough to settle */
      config->state_retention_ms = 2000;
      break;
    case 1:
      config->state_retention_ms = 1000;
      break;
    case 2:                    /* slots reused at once; finalizers on the releasing thread */
      config->state_retention_ms = 0;
      config->enable_finalizer_safety = false;
      break;
    default:                   /* a failed callback invalidates */
      config->state_retention_ms = 500;
      config->invalidate_on_callback_error = true;
      break;
  }
}

static bool
slot_invalidates_on_error (int slot)
{
  return slot == 3;
}

/* ----- the pool of shared handles ------------------------------------------------ */

typedef struct {
  GcsHandle handle;
  Record *record;
} Entry;

static Entry *pool;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

/* Stale handles: unregistered ones (values only; atomics, no lock). */
#define GRAVEYARD 1024
static _Atomic GcsHandle graveyard[GRAVEYARD];
static atomic_uint graveyard_next;

static void
bury (GcsHandle h)
{
  unsigned i = atomic_fetch_add (&graveyard_next, 1) % GRAVEYARD;
  atomic_store (&graveyard[i], h);
}

/* A copy of entry i with its record pinned (entry.record NULL if empty). */
static Entry
pool_peek (int i)
{
  pthread_mutex_lock (&pool_lock);
  Entry e = pool[i];
  if (e.record)
    record_ref (e.record);
  pthread_mutex_unlock (&pool_lock);
  return e;
}

/* Take entry i out of the pool: the caller owns its pool reference. */
static Entry
pool_take (int i)
{
  pthread_mutex_lock (&pool_lock);
  Entry e = pool[i];
  pool[i].handle = GCS_INVALID_HANDLE;
  pool[i].record = NULL;
  pthread_mutex_unlock (&pool_lock);
  return e;
}

/* Put e in slot i, returning what was there (owned by the caller now). */
static Entry
pool_swap (int i, Entry e)
{
  pthread_mutex_lock (&pool_lock);
  Entry old = pool[i];
  pool[i] = e;
  pthread_mutex_unlock (&pool_lock);
  return old;
}

/* What a handle may also answer once its manager was closed (its slot's
 * epoch is raised before the close begins, so a refusal caused by the close
 * is always seen with the new epoch): SHUT_DOWN, or RELEASED once the
 * close has released it (and, on a freed manager, no details are kept). */
static unsigned
closed_refusals (const Record * r)
{
  if (atomic_load (&managers[r->manager_slot].epoch) == r->manager_epoch)
    return 0;
  return RES (GCS_ERROR_SHUT_DOWN) | RES (GCS_ERROR_RELEASED);
}

/* expect_result for a call on r's handle: what closing its manager allows
 * too, evaluated after the call. */
static GcsResult
expect_for (const Record * r, const char *what, GcsHandle handle, GcsResult result, unsigned allowed)
{
  return expect_result (INV_RESULT_CODES, what, handle, result, allowed | closed_refusals (r));
}

/* The results an access of a pooled handle may give. */
static unsigned
access_allowed (const Record * r)
{
  (void) r;
  return RES_OK | RES (GCS_ERROR_RELEASED) | RES (GCS_ERROR_INVALIDATED);
}

/* Drop the program's own reference of the object, if it still holds one:
 * a weak registration's owner, or for the other kinds a reference the
 * program sometimes keeps (until the entry is done, or this is drawn as an
 * operation). While it is held, the object must not be finalized: a library
 * that dropped a reference it does not own (a double unref) is caught there
 * even when the memory is not freed yet. */
static void
drop_program_ref (Record * r)
{
  void *held = atomic_exchange (&r->program_ref, NULL);
  if (held == NULL)
    return;
  if (r->type == OBJ_BUFFER)
    gst_buffer_unref (held);
  else
    g_object_unref (held);
}

/* The pool's reference of a taken entry, after its handle was released. */
static void
entry_done (Entry e)
{
  if (e.record == NULL)
    return;
  bury (e.handle);
  drop_program_ref (e.record);
  record_unref (e.record);
}

/* ----- the hand-off queue: accesses begun on one thread, ended on another ----------- */

typedef struct {
  GcsHandle handle;
  Record *record;               /* pinned */
  void *object;
} Handoff;

#define HANDOFF_MAX 64
static Handoff handoffs[HANDOFF_MAX];
static int handoff_count;
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;

/* ----- the workers -------------------------------------------------------------- */

typedef struct {
  int index;
  GRand *rand;
  pthread_t thread;
  int total_weight;
} Worker;

static atomic_int stopping;

static int
random_slot (Worker * w)
{
  return (int) g_rand_int_range (w->rand, 0, N_MANAGERS);
}

/* Create an object of `type`, register it with the manager of `slot` and
 * put it in the pool at a random place (unregistering what was there). */
static void
do_register (Worker * w, ObjectType type)
{
  static const char *const factories[] = { "identity", "fakesink", "queue" };
  int slot = random_slot (w);
  ManagerSlot *ms = &managers[slot];
  pthread_rwlock_rdlock (&ms->lock);

  GcsRegistration reg;
  memset (&reg, 0, sizeof reg);
  reg.struct_size = sizeof reg;
  reg.manager = ms->manager;
  Record *r;
  bool simple_api = false;
  switch (type) {
    case OBJ_BUFFER:{
      r = record_new (type, GCS_KIND_MINI_OBJECT, slot);
      GstBuffer *buffer = gst_buffer_new_allocate (NULL, sizeof (Stamp) + g_rand_int_range (w->rand, 0, 4096), NULL);
      Stamp stamp = { STAMP_MAGIC, r, buffer };
      gst_buffer_fill (buffer, 0, &stamp, sizeof stamp);
      gst_mini_object_weak_ref (GST_MINI_OBJECT_CAST (buffer), mini_object_freed, r);
      r->object = buffer;
      atomic_store (&r->program_ref, buffer);
      reg.kind = GCS_KIND_MINI_OBJECT;
      reg.size_bytes = gst_buffer_get_size (buffer);
      reg.type_name = "stress.Buffer";
      break;
    }
    case OBJ_ELEMENT:{
      r = record_new (type, GCS_KIND_GST_OBJECT, slot);
      GstElement *element = gst_element_factory_make (factories[g_rand_int_range (w->rand, 0, 3)], NULL);
      g_object_set_qdata (G_OBJECT (element), record_quark, r);
      g_object_weak_ref (G_OBJECT (element), gobject_finalized, r);
      r->object = element;      /* floating: the registration sinks it */
      reg.kind = GCS_KIND_GST_OBJECT;
      if (g_rand_int_range (w->rand, 0, 4) == 0)
        reg.flags |= GCS_REGISTER_SET_NULL_STATE;
      simple_api = slot == 0 && g_rand_boolean (w->rand);
      break;
    }
    case OBJ_GOBJECT:{
      r = record_new (type, GCS_KIND_GOBJECT, slot);
      GObject *object;
      if (g_rand_int_range (w->rand, 0, 4) == 0) {
        object = G_OBJECT (gst_element_factory_make ("identity", NULL));   /* floating: sunk */
      } else {
        object = g_object_new (G_TYPE_OBJECT, NULL);
        atomic_store (&r->program_ref, object);
      }
      g_object_set_qdata (object, record_quark, r);
      g_object_weak_ref (object, gobject_finalized, r);
      r->object = object;
      reg.kind = GCS_KIND_GOBJECT;
      break;
    }
    case OBJ_WEAK:{
      r = record_new (type, GCS_KIND_WEAK_GOBJECT, slot);
      GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
      g_object_set_qdata (object, record_quark, r);
      g_object_weak_ref (object, gobject_finalized, r);
      r->object = object;
      atomic_store (&r->program_ref, object);   /* the owner: dropped on purpose, or at the end */
      reg.kind = GCS_KIND_WEAK_GOBJECT;
      break;
    }
    default:{
      r = record_new (OBJ_POINTER, GCS_KIND_POINTER, slot);
      Pointee *p = malloc (sizeof *p);
      p->magic = POINTEE_LIVE;
      p->record = r;
      r->object = p;
      reg.kind = GCS_KIND_POINTER;
      reg.release = pointee_release;
      reg.release_data = r;
      reg.size_bytes = sizeof *p;
      reg.type_name = "stress.Pointee";
      break;
    }
  }
  reg.object = r->object;
  r->manager_epoch = atomic_load (&ms->epoch);
  if (g_rand_int_range (w->rand, 0, 8) == 0)
    reg.instance_name = "stress-object";
  if (g_rand_int_range (w->rand, 0, 200) == 0)
    reg.flags |= GCS_REGISTER_CAPTURE_STACK;

  GcsHandle h = GCS_INVALID_HANDLE;
  GcsResult result = simple_api ? gcs_register (r->object, NULL, &h) : gcs_register_full (&reg, &h);
  /* The manager cannot be closing: its slot is read-locked. */
  expect_result (INV_RESULT_CODES, "register", h, result, RES_OK);
  if (result == GCS_OK)
    atomic_store (&r->handle, h);
  count_op ((Op) (OP_REGISTER_BUFFER + type));

  if (result == GCS_OK) {
    /* Half of the time the program keeps a reference of its own. */
    bool keep = type == OBJ_WEAK || (type != OBJ_POINTER && g_rand_boolean (w->rand));
    if (keep && atomic_load (&r->program_ref) == NULL)
      atomic_store (&r->program_ref, g_object_ref (r->object));        /* a sunk floating element */
    Entry old = pool_swap ((int) g_rand_int_range (w->rand, 0, (gint32) opt_pool), (Entry) { h, r });
    pthread_rwlock_unlock (&ms->lock);
    if (!keep)
      drop_program_ref (r);
    if (old.record) {
      result = gcs_unregister (old.handle);
      unsigned allowed = RES_OK;
      if (old.record->type == OBJ_WEAK)
        allowed |= RES (GCS_ERROR_RELEASED);
      expect_for (old.record, "unregister (replaced)", old.handle, result, allowed);
      count_op (OP_UNREGISTER);
      entry_done (old);
    }
  } else {
    pthread_rwlock_unlock (&ms->lock);
    /* Not registered: the program's references are the only ones. */
    if (type == OBJ_POINTER)
      pointee_release (r->object, r);
    else if (atomic_load (&r->program_ref))
      drop_program_ref (r);
    else
      g_object_unref (g_object_ref_sink (r->object));     /* the floating element */
    record_unref (r);
  }
}

/* The callback of the safe accesses: the proof of life, counted in flight. */
typedef struct {
  Record *record;
  int fail;                     /* return this (non-zero: a failing callback) */
} AccessData;

static int
access_cb (void *object, void *user_data)
{
  AccessData *data = user_data;
  if (data->record == NULL) {   /* a forged handle was accepted */
    violation (INV_STALE_REFUSED, "an access of a forged handle ran, with object %p", object);
    return 0;
  }
  atomic_fetch_add (&data->record->in_flight, 1);
  check_alive (data->record, object, "safe_access");
  atomic_fetch_sub (&data->record->in_flight, 1);
  return data->fail;
}

static void
do_safe_access (Worker * w, Entry e, bool inline_path)
{
  Record *r = e.record;
  AccessData data = { r, g_rand_int_range (w->rand, 0, 64) == 0 ? 7 : 0 };
  unsigned allowed = access_allowed (r);
  if (data.fail) {
    allowed |= RES (GCS_ERROR_CALLBACK_FAILED);
    if (slot_invalidates_on_error (r->manager_slot))
      atomic_store (&r->maybe_invalidated, 1);
  }
  GcsResult result = inline_path ? gcs_safe_access_inline (e.handle, access_cb, &data)
      : gcs_safe_access (e.handle, access_cb, &data);
  expect_for (r, inline_path ? "safe_access_inline" : "safe_access", e.handle, result, allowed);
}

/* Begin with one path, end with another (0: exported, 1: inline). */
static void
do_begin_end (Entry e, int begin_inline, int end_inline)
{
  Record *r = e.record;
  void *object = NULL;
  GcsResult result = begin_inline ? gcs_access_begin_inline (e.handle, &object)
      : gcs_access_begin (e.handle, &object);
  expect_for (r, "access_begin", e.handle, result, access_allowed (r));
  if (result != GCS_OK)
    return;
  atomic_fetch_add (&r->in_flight, 1);
  check_alive (r, object, "begin/end");
  atomic_fetch_sub (&r->in_flight, 1);
  /* Begun inline (untracked), ended by the library: to the deadlock
   * tracking an end on a thread that began no access of the handle, as a
   * hand-off's is (see do_sync_in_own_access). Counted before the end. */
  if (begin_inline && !end_inline)
    atomic_fetch_add (&r->unattributed_ends, 1);
  result = end_inline ? gcs_access_end_inline (e.handle) : gcs_access_end (e.handle);
  expect_result (INV_RESULT_CODES, "access_end", e.handle, result, RES_OK);
}

/* End one access from the hand-off queue (begun on any thread). */
static bool
end_one_handoff (GRand * rand)
{
  pthread_mutex_lock (&handoff_lock);
  if (handoff_count == 0) {
    pthread_mutex_unlock (&handoff_lock);
    return false;
  }
  int i = rand ? (int) g_rand_int_range (rand, 0, handoff_count) : handoff_count - 1;
  Handoff item = handoffs[i];
  handoffs[i] = handoffs[--handoff_count];
  pthread_mutex_unlock (&handoff_lock);

  check_alive (item.record, item.object, "end of an access begun on another thread");
  atomic_fetch_sub (&item.record->in_flight, 1);
  GcsResult result = rand && g_rand_boolean (rand) ? gcs_access_end_inline (item.handle)
      : gcs_access_end (item.handle);
  expect_result (INV_RESULT_CODES, "access_end (hand-off)", item.handle, result, RES_OK);
  record_unref (item.record);
  return true;
}

static void
do_handoff_begin (Worker * w, Entry e)
{
  Record *r = e.record;
  void *object = NULL;
  GcsResult result = g_rand_boolean (w->rand) ? gcs_access_begin_inline (e.handle, &object)
      : gcs_access_begin (e.handle, &object);
  expect_for (r, "access_begin (hand-off)", e.handle, result, access_allowed (r));
  if (result != GCS_OK)
    return;
  atomic_fetch_add (&r->unattributed_ends, 1);
  atomic_fetch_add (&r->in_flight, 1);
  check_alive (r, object, "begin of an access ended on another thread");
  record_ref (r);               /* the queue's pin */
  pthread_mutex_lock (&handoff_lock);
  bool full = handoff_count == HANDOFF_MAX;
  if (!full)
    handoffs[handoff_count++] = (Handoff) { e.handle, r, object };
  pthread_mutex_unlock (&handoff_lock);
  if (full) {                   /* end it here after all */
    atomic_fetch_sub (&r->in_flight, 1);
    expect_result (INV_RESULT_CODES, "access_end", e.handle, gcs_access_end (e.handle), RES_OK);
    record_unref (r);
  }
}

/* Unregister a taken entry: plainly, or synchronously with a timeout. */
static void
do_unregister (Worker * w, Entry e, bool sync)
{
  Record *r = e.record;
  unsigned allowed = RES_OK;
  if (r->type == OBJ_WEAK)
    allowed |= RES (GCS_ERROR_RELEASED);  /* its object may have died already */
  GcsResult result;
  if (sync) {
    static const uint32_t timeouts[] = { 0, 5, 50 };
    /* TIMEOUT: accesses still in flight (perhaps in the hand-off queue);
     * WOULD_DEADLOCK: one of them was begun on this thread. */
    result = gcs_unregister_sync (e.handle, timeouts[g_rand_int_range (w->rand, 0, 3)]);
    expect_for (r, "unregister_sync", e.handle, result,
        allowed | RES (GCS_ERROR_TIMEOUT) | RES (GCS_ERROR_WOULD_DEADLOCK));
    if (result == GCS_ERROR_WOULD_DEADLOCK) {   /* it changed nothing */
      result = gcs_unregister (e.handle);
      expect_for (r, "unregister", e.handle, result, allowed);
    }
  } else {
    result = gcs_unregister (e.handle);
    expect_for (r, "unregister", e.handle, result, allowed);
  }
  entry_done (e);
}

/* Unregister a taken entry from inside its own access: the object stays
 * alive until the access ends. */
typedef struct {
  Entry entry;
  GcsResult unregister_result;
} InAccess;

static int
unregister_in_access_cb (void *object, void *user_data)
{
  InAccess *data = user_data;
  Record *r = data->entry.record;
  atomic_fetch_add (&r->in_flight, 1);
  check_alive (r, object, "access before its own unregister");
  data->unregister_result = gcs_unregister (data->entry.handle);
  check_alive (r, object, "access after its own unregister");
  atomic_fetch_sub (&r->in_flight, 1);
  return 0;
}

static void
do_unregister_in_access (Entry e)
{
  InAccess data = { e, 1 };
  GcsResult result = gcs_safe_access (e.handle, unregister_in_access_cb, &data);
  expect_for (e.record, "safe_access (unregistering)", e.handle, result, access_allowed (e.record));
  if (result == GCS_OK) {
    unsigned allowed = RES_OK;
    expect_for (e.record, "unregister inside its access", e.handle, data.unregister_result, allowed);
  } else {
    /* Not accessed (invalidated, or its weak object gone): unregister it here. */
    unsigned allowed = RES_OK | RES (GCS_ERROR_RELEASED);
    expect_for (e.record, "unregister", e.handle, gcs_unregister (e.handle), allowed);
  }
  entry_done (e);
}

/* unregister_sync inside an access begun (exported) on this thread, on a
 * taken entry: GCS_ERROR_WOULD_DEADLOCK, changing nothing; then unregister.
 *
 * The README documents the limit of the detection: an end through the
 * library on a thread that did not begin that access through the library
 * (an access handed over from another thread, or one begun inline) is
 * credited to a thread that began an access of that handle, which is exact
 * unless several threads did. Then the note may reach this thread and
 * remove its own entry, and unregister_sync waits for its own access
 * (GCS_ERROR_TIMEOUT, the handle unregistered). A note misattributed
 * earlier can also wait in this thread's mailbox and remove the entry of a
 * later access. So TIMEOUT is allowed, and counted apart, only for a handle
 * that ever had such an end (an access begun for the hand-off queue, or
 * begun inline and ended by gcs_access_end: `unattributed_ends`); for every
 * other handle anything but WOULD_DEADLOCK is a violation. */
static atomic_uint_fast64_t deadlock_detection_best_effort;
static atomic_uint_fast64_t deadlock_detection_strict;  /* every end attributable */
static atomic_uint_fast64_t deadlock_detection_lenient; /* some end was not */

static void
do_sync_in_own_access (Entry e)
{
  Record *r = e.record;
  void *object;
  GcsResult result = gcs_access_begin (e.handle, &object);
  expect_for (r, "access_begin", e.handle, result, access_allowed (r));
  unsigned unregister_allowed = RES_OK | (r->type == OBJ_WEAK ? RES (GCS_ERROR_RELEASED) : 0);
  if (result == GCS_OK) {
    atomic_fetch_add (&r->in_flight, 1);
    result = gcs_unregister_sync (e.handle, 100);
    bool unattributed = atomic_load (&r->unattributed_ends) > 0;
    atomic_fetch_add (unattributed ? &deadlock_detection_lenient : &deadlock_detection_strict, 1);
    if (result == GCS_ERROR_TIMEOUT && unattributed) {
      atomic_fetch_add (&deadlock_detection_best_effort, 1);
      unregister_allowed = RES (GCS_ERROR_RELEASED);    /* it did unregister */
    } else {
      expect_for (r, "unregister_sync inside its own access", e.handle, result, RES (GCS_ERROR_WOULD_DEADLOCK));
    }
    check_alive (r, object, "access after a refused unregister_sync");
    atomic_fetch_sub (&r->in_flight, 1);
    expect_result (INV_RESULT_CODES, "access_end", e.handle, gcs_access_end (e.handle), RES_OK);
  }
  expect_for (r, "unregister", e.handle, gcs_unregister (e.handle), unregister_allowed);
  entry_done (e);
}

static void
do_invalidate (Entry e)
{
  Record *r = e.record;
  atomic_store (&r->maybe_invalidated, 1);
  GcsResult result = gcs_invalidate (e.handle);
  expect_for (r, "invalidate", e.handle, result, access_allowed (r));
  if (result == GCS_OK)
    atomic_store (&r->invalidated, 1);
}

static void
do_add_cleanup (Entry e)
{
  Record *r = e.record;
  atomic_fetch_add (&r->cleanups_added, 1);
  GcsResult result = gcs_add_cleanup (e.handle, cleanup_cb, r);
  unsigned allowed = RES_OK | RES (GCS_ERROR_RELEASED);
  expect_for (r, "add_cleanup", e.handle, result, allowed);
  if (result != GCS_OK)
    atomic_fetch_sub (&r->cleanups_added, 1);
}

static void
do_set_finalizer (Entry e)
{
  Record *r = e.record;
  /* One finalizer per registration: a second is INVALID_ARGUMENT. (The
   * record outlives the finalizer's run: this operation pins it, and the
   * checks of record_check_final come after every pin is gone.) */
  GcsResult result = gcs_set_finalizer (e.handle, finalizer_cb, r);
  unsigned allowed = RES_OK | RES (GCS_ERROR_RELEASED) | RES (GCS_ERROR_INVALID_ARGUMENT);
  expect_for (r, "set_finalizer", e.handle, result, allowed);
  if (result == GCS_OK) {
    int set = atomic_fetch_add (&r->finalizer_set, 1) + 1;
    CHECK_INV (INV_RESULT_CODES, set == 1, "set_finalizer on 0x%016" PRIx64 " succeeded %d times", e.handle, set);
  }
}

static void
do_get_info (Entry e)
{
  Record *r = e.record;
  GcsHandleInfo info;
  memset (&info, 0, sizeof info);
  info.struct_size = sizeof info;
  GcsResult result = gcs_get_info (e.handle, &info);
  expect_for (r, "get_info", e.handle, result,
      RES_OK | RES (GCS_ERROR_RELEASED));
  if (result == GCS_OK)
    CHECK_INV (INV_RESULT_CODES, info.handle == e.handle && info.kind == r->kind
        && info.state >= GCS_STATE_LIVE && info.state <= GCS_STATE_RELEASED,
        "get_info(0x%016" PRIx64 "): handle 0x%016" PRIx64 ", kind %d (registered %d), state %d",
        e.handle, info.handle, (int) info.kind, (int) r->kind, (int) info.state);
}

static void
count_live (const GcsHandleInfo * info, void *user_data)
{
  (void) info;
  ++*(uint64_t *) user_data;
}

static void
do_stats (Worker * w)
{
  int slot = random_slot (w);
  ManagerSlot *ms = &managers[slot];
  pthread_rwlock_rdlock (&ms->lock);
  GcsStats stats;
  memset (&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  expect_result (INV_RESULT_CODES, "get_stats", 0, gcs_get_stats (ms->manager, &stats), RES_OK);
  uint64_t live = 0;
  if (g_rand_int_range (w->rand, 0, 8) == 0)
    expect_result (INV_RESULT_CODES, "foreach_live", 0, gcs_foreach_live (ms->manager, count_live, &live), RES_OK);
  pthread_rwlock_unlock (&ms->lock);
}

/* A stale handle: refused by everything, never valid. */
static void
do_stale (Worker * w)
{
  GcsHandle h = atomic_load (&graveyard[g_rand_int_range (w->rand, 0, GRAVEYARD)]);
  if (h == GCS_INVALID_HANDLE)
    return;
  const unsigned refused = RES (GCS_ERROR_RELEASED) | RES (GCS_ERROR_SHUT_DOWN);
  void *object = NULL;
  GcsResult result;
  /* No gcs_access_end of a stale handle: while its release waits for
   * accesses in flight, an unmatched end would end one of them (the
   * documented misuse, like a double unref). */
  switch (g_rand_int_range (w->rand, 0, 5)) {
    case 0:
      result = gcs_access_begin_inline (h, &object);
      if (result == GCS_OK)
        gcs_access_end (h);
      expect_result (INV_STALE_REFUSED, "access_begin_inline (stale)", h, result, refused);
      break;
    case 1:
      result = gcs_access_begin (h, &object);
      if (result == GCS_OK)
        gcs_access_end (h);
      expect_result (INV_STALE_REFUSED, "access_begin (stale)", h, result, refused);
      break;
    case 2:
      expect_result (INV_STALE_REFUSED, "unregister (stale)", h, gcs_unregister (h), refused);
      break;
    case 3:
      expect_result (INV_STALE_REFUSED, "invalidate (stale)", h, gcs_invalidate (h), refused);
      break;
    default:{
      bool valid = gcs_is_valid (h) || gcs_is_valid_inline (h);
      CHECK_INV (INV_STALE_REFUSED, !valid, "stale handle 0x%016" PRIx64 " is valid", h);
      GcsHandleInfo info;
      memset (&info, 0, sizeof info);
      info.struct_size = sizeof info;
      result = gcs_get_info (h, &info);
      expect_result (INV_STALE_REFUSED, "get_info (stale)", h, result, RES_OK | refused);
      if (result == GCS_OK)
        CHECK_INV (INV_STALE_REFUSED, info.state == GCS_STATE_RELEASING || info.state == GCS_STATE_RELEASED,
            "stale handle 0x%016" PRIx64 " is in state %d", h, (int) info.state);
    }
  }
}

/* A forged handle: 0, random bits, or a known handle with a generation
 * that was never issued. Never accepted, never valid. */
static void
do_forged (Worker * w)
{
  GcsHandle h;
  switch (g_rand_int_range (w->rand, 0, 3)) {
    case 0:
      h = ((uint64_t) g_rand_int (w->rand) << 32) | g_rand_int (w->rand);
      break;
    case 1:{
      GcsHandle known = atomic_load (&graveyard[g_rand_int_range (w->rand, 0, GRAVEYARD)]);
      h = known ^ ((uint64_t) 1 << (32 + g_rand_int_range (w->rand, 24, 32)));
      break;
    }
    default:
      h = GCS_INVALID_HANDLE;
  }
  const unsigned refused = RES (GCS_ERROR_INVALID_HANDLE) | RES (GCS_ERROR_RELEASED) | RES (GCS_ERROR_SHUT_DOWN);
  void *object = NULL;
  GcsResult result = g_rand_boolean (w->rand) ? gcs_access_begin_inline (h, &object)
      : gcs_access_begin (h, &object);
  if (result == GCS_OK)
    gcs_access_end (h);
  expect_result (INV_STALE_REFUSED, "access_begin (forged)", h, result, refused);
  AccessData none = { NULL, 0 };
  expect_result (INV_STALE_REFUSED, "safe_access (forged)", h, gcs_safe_access_inline (h, access_cb, &none), refused);
  expect_result (INV_STALE_REFUSED, "access_end (forged)", h, gcs_access_end (h), refused);
  CHECK_INV (INV_STALE_REFUSED, !gcs_is_valid (h) && !gcs_is_valid_inline (h), "forged handle 0x%016" PRIx64
      " is valid", h);
}

/* Close a manager (accesses of its handles may be in flight, some in the
 * hand-off queue), take its handles out of the pool, free it, make a new one. */
static void
recycle_manager (Worker * w)
{
  int slot = 1 + (int) g_rand_int_range (w->rand, 0, N_MANAGERS - 1);
  ManagerSlot *ms = &managers[slot];
  pthread_rwlock_wrlock (&ms->lock);
  atomic_fetch_add (&ms->epoch, 1);     /* before: see closed_refusals */
  GcsResult result = gcs_manager_close (ms->manager, (uint32_t) g_rand_int_range (w->rand, 0, 20));
  expect_result (INV_RESULT_CODES, "manager_close", 0, result, RES_OK | RES (GCS_ERROR_TIMEOUT));
  /* Every handle of it now says SHUT_DOWN; the pool lets go of them. */
  for (int i = 0; i < opt_pool; i++) {
    pthread_mutex_lock (&pool_lock);
    Entry e = pool[i];
    bool ours = e.record != NULL && e.record->manager_slot == slot;
    if (ours)
      pool[i] = (Entry) { GCS_INVALID_HANDLE, NULL };
    pthread_mutex_unlock (&pool_lock);
    if (ours) {
      void *object = NULL;
      GcsResult refused = gcs_access_begin_inline (e.handle, &object);
      if (refused == GCS_OK)    /* a violation: end it all the same */
        gcs_access_end (e.handle);
      expect_result (INV_RESULT_CODES, "access_begin (closed manager)", e.handle, refused,
          RES (GCS_ERROR_SHUT_DOWN) | RES (GCS_ERROR_RELEASED));
      entry_done (e);
    }
  }
  gcs_manager_free (ms->manager);
  GcsConfig config;
  config_for_slot (slot, &config);
  ms->manager = NULL;
  expect_result (INV_RESULT_CODES, "manager_new", 0, gcs_manager_new (&config, &ms->manager), RES_OK);
  pthread_rwlock_unlock (&ms->lock);
  atomic_fetch_add (&managers_recycled, 1);
  count_op (OP_RECYCLE_MANAGER);
}

static void *
worker_main (void *data)
{
  Worker *w = data;
  my_counters = &worker_counters[w->index];
  uint64_t next_recycle = now_us () + 200000 + g_rand_int_range (w->rand, 0, 800000);
  while (!atomic_load_explicit (&stopping, memory_order_relaxed)) {
    int pick = (int) g_rand_int_range (w->rand, 0, w->total_weight);
    Op op = 0;
    while (pick >= ops[op].weight)
      pick -= ops[op++].weight;

    /* Now and then (about once a second per thread) a manager is recycled. */
    if (now_us () >= next_recycle) {
      recycle_manager (w);
      next_recycle = now_us () + 500000 + g_rand_int_range (w->rand, 0, 1000000);
    }
    atomic_store_explicit (&my_counters->last_progress_us, now_us (), memory_order_relaxed);

    if (op <= OP_REGISTER_POINTER) {
      do_register (w, (ObjectType) (op - OP_REGISTER_BUFFER));
      continue;
    }
    switch (op) {
      case OP_HANDOFF_END:
        if (end_one_handoff (w->rand))
          count_op (op);
        continue;
      case OP_STATS:
        do_stats (w);
        count_op (op);
        continue;
      case OP_STALE:
        do_stale (w);
        count_op (op);
        continue;
      case OP_FORGED:
        do_forged (w);
        count_op (op);
        continue;
      default:
        break;
    }

    int i = (int) g_rand_int_range (w->rand, 0, opt_pool);
    bool taking = op == OP_UNREGISTER || op == OP_UNREGISTER_SYNC || op == OP_UNREGISTER_IN_ACCESS
        || op == OP_SYNC_IN_OWN_ACCESS;
    Entry e = taking ? pool_take (i) : pool_peek (i);
    if (e.record == NULL)
      continue;                 /* an empty place: nothing done */
    switch (op) {
      case OP_SAFE_ACCESS:
        do_safe_access (w, e, false);
        break;
      case OP_SAFE_ACCESS_INLINE:
        do_safe_access (w, e, true);
        break;
      case OP_BEGIN_END:
        do_begin_end (e, 0, 0);
        break;
      case OP_BEGIN_END_INLINE:
        do_begin_end (e, 1, 1);
        break;
      case OP_BEGIN_END_MIXED:
        do_begin_end (e, g_rand_boolean (w->rand), g_rand_boolean (w->rand));
        break;
      case OP_HANDOFF_BEGIN:
        do_handoff_begin (w, e);
        break;
      case OP_UNREGISTER:
        do_unregister (w, e, false);
        break;
      case OP_UNREGISTER_SYNC:
        do_unregister (w, e, true);
        break;
      case OP_UNREGISTER_IN_ACCESS:
        do_unregister_in_access (e);
        break;
      case OP_SYNC_IN_OWN_ACCESS:
        do_sync_in_own_access (e);
        break;
      case OP_INVALIDATE:
        do_invalidate (e);
        break;
      case OP_ADD_CLEANUP:
        do_add_cleanup (e);
        break;
      case OP_SET_FINALIZER:
        do_set_finalizer (e);
        break;
      case OP_IS_VALID:{
        bool a = gcs_is_valid (e.handle), b = gcs_is_valid_inline (e.handle);
        (void) a;
        (void) b;               /* a snapshot each: they may differ under races */
        break;
      }
      case OP_GET_INFO:
        do_get_info (e);
        break;
      case OP_DROP_PROGRAM_REF:
        drop_program_ref (e.record);
        break;
      default:
        break;
    }
    count_op (op);
    if (!taking)
      record_unref (e.record);  /* the pin */
  }
  return NULL;
}

/* ----- RSS ----------------------------------------------------------------------- */

static double
rss_mib (void)
{
  FILE *f = fopen ("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f == NULL)
    return 0;
  if (fscanf (f, "%lu %lu", &size, &resident) != 2)
    resident = 0;
  fclose (f);
  return (double) resident * (double) sysconf (_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
median (const double *values, int n)
{
  double sorted[16];
  if (n > 16)
    n = 16;
  memcpy (sorted, values, (size_t) n * sizeof *values);
  qsort (sorted, (size_t) n, sizeof *sorted, compare_double);
  return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/* ----- the end --------------------------------------------------------------------- */

static void
count_live_handle (const GcsLiveHandle * live, void *user_data)
{
  uint64_t *n = user_data;
  if (++*n <= 5)
    fprintf (stderr, "  still live: 0x%016" PRIx64 " %s\n", live->info.handle,
        live->info.type_name ? live->info.type_name : "?");
}

static GcsStats
stats_of (GcsManager * manager, bool total)
{
  GcsStats stats;
  memset (&stats, 0, sizeof stats);
  stats.struct_size = sizeof stats;
  GcsResult result = total ? gcs_get_total_stats (&stats) : gcs_get_stats (manager, &stats);
  expect_result (INV_END_STATE, "get_stats", 0, result, RES_OK);
  return stats;
}

/* Release everything, close every manager, and check nothing is left. */
static void
finish (void)
{
  while (end_one_handoff (NULL)) {
  }
  for (int i = 0; i < opt_pool; i++) {
    Entry e = pool_take (i);
    if (e.record == NULL)
      continue;
    unsigned allowed = RES_OK | (e.record->type == OBJ_WEAK ? RES (GCS_ERROR_RELEASED) : 0);
    expect_result (INV_END_STATE, "unregister (end)", e.handle, gcs_unregister (e.handle), allowed);
    entry_done (e);
  }
  for (int slot = 0; slot < N_MANAGERS; slot++) {
    GcsManager *m = managers[slot].manager;
    expect_result (INV_END_STATE, "manager_close (end)", 0, gcs_manager_close (m, GCS_TIMEOUT_INFINITE), RES_OK);
    GcsStats stats = stats_of (m, false);
    CHECK_INV (INV_END_STATE, stats.active == 0 && stats.tracked_bytes == 0,
        "manager %d: %" PRIu64 " registrations active, %" PRIu64 " bytes tracked at the end", slot, stats.active,
        stats.tracked_bytes);
  }
  uint64_t live = 0;
  expect_result (INV_END_STATE, "foreach_live_handle", 0, gcs_foreach_live_handle (GCS_LIVE_ALL,
          count_live_handle, &live), RES_OK);
  CHECK_INV (INV_END_STATE, live == 0, "%" PRIu64 " handles still live at the end", live);
  GcsStats total = stats_of (NULL, true);
  CHECK_INV (INV_END_STATE, total.active == 0, "%" PRIu64 " registrations active in all managers", total.active);
  for (int slot = 1; slot < N_MANAGERS; slot++) {
    gcs_manager_free (managers[slot].manager);
    managers[slot].manager = NULL;
  }
  /* Joins the finalizer executor: every release has finished after it. */
  expect_result (INV_END_STATE, "shutdown", 0, gcs_shutdown (GCS_TIMEOUT_INFINITE), RES_OK);
  sweep_retired (0);
  for (int t = 0; t < N_OBJ; t++) {
    uint64_t created = atomic_load (&objects_created[t]), finalized = atomic_load (&objects_finalized[t]);
    CHECK_INV (INV_FINALIZED_ONCE, created == finalized, "%s: %" PRIu64 " created, %" PRIu64 " finalized",
        object_type_names[t], created, finalized);
  }
  uint64_t left = atomic_load (&records_live);
  CHECK_INV (INV_END_STATE, left == 0, "%" PRIu64 " objects never finalized or still referenced", left);
  pthread_mutex_lock (&records_lock);
  int shown = 0;
  for (Record * r = all_records; r && shown < 5; r = r->next, shown++)
    fprintf (stderr, "  left: %s #%" PRIu64 " handle 0x%016" PRIx64 " finalized %d refs %d\n",
        object_type_names[r->type], r->serial, atomic_load (&r->handle), atomic_load (&r->finalized),
        atomic_load (&r->refs));
  pthread_mutex_unlock (&records_lock);
}

/* ----- GLib's log: a warning or critical is a violation -------------------------------- */

/* GStreamer and GLib are not built with AddressSanitizer: a double unref
 * in the library reaches them as a critical ("assertion 'refcount > 0'
 * failed") rather than as a sanitizer report, and a PLAYING element
 * disposed without GST_STATE_NULL as a warning. Every message of GLib's log
 * passes here; WARNING, CRITICAL and ERROR break this invariant. */
static GLogWriterOutput
log_writer (GLogLevelFlags level, const GLogField * fields, gsize n_fields, gpointer user_data)
{
  (void) user_data;
  atomic_fetch_add_explicit (&counters ()->checks[INV_NO_CRITICALS], 1, memory_order_relaxed);
  if ((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) == 0)
    return g_log_writer_default (level, fields, n_fields, user_data);
  const char *message = "?";
  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, "MESSAGE") == 0 && fields[i].length < 0)
      message = fields[i].value;
  violation (INV_NO_CRITICALS, "%s", message);
  return G_LOG_WRITER_HANDLED;
}

/* ----- main ----------------------------------------------------------------------- */

static void
on_signal (int signal_number)
{
  (void) signal_number;
  atomic_store (&stopping, 1);
}

static uint64_t
sum_ops (Op op)
{
  uint64_t n = atomic_load (&other_counters.ops[op]);
  for (int i = 0; i < opt_threads; i++)
    n += atomic_load (&worker_counters[i].ops[op]);
  return n;
}

static uint64_t
sum_all_ops (void)
{
  uint64_t n = 0;
  for (int op = 0; op < N_OPS; op++)
    n += sum_ops ((Op) op);
  return n;
}

static uint64_t
sum_checks (Invariant inv)
{
  uint64_t n = atomic_load (&other_counters.checks[inv]);
  for (int i = 0; i < opt_threads; i++)
    n += atomic_load (&worker_counters[i].checks[inv]);
  return n;
}

static uint64_t
sum_violations (void)
{
  uint64_t n = 0;
  for (int inv = 0; inv < N_INVARIANTS; inv++)
    n += atomic_load (&violations[inv]);
  return n;
}

static uint64_t
sum_objects (atomic_uint_fast64_t * per_type)
{
  uint64_t n = 0;
  for (int t = 0; t < N_OBJ; t++)
    n += atomic_load (&per_type[t]);
  return n;
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  g_log_set_writer_func (log_writer, NULL, NULL);
  GOptionContext *context = g_option_context_new ("- gcsafety soak/stress program");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_group (context, gst_init_get_option_group ());
  g_option_context_set_summary (context,
      "Random operations of every kind on real GStreamer objects from N threads for S seconds, with "
      "invariants checked all along. Exits non-zero if one broke. See docs/stress.md.");
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    fprintf (stderr, "gcs-stress: %s\n", error->message);
    return 2;
  }
  g_option_context_free (context);
  if (opt_threads < 1 || opt_threads > 256 || opt_duration <= 0 || opt_duration > 86400 || opt_pool < 1
      || opt_pool > 1 << 20) {
    fprintf (stderr, "gcs-stress: --threads 1..256, --duration 0..86400, --pool 1..1048576\n");
    return 2;
  }
  gst_init (&argc, &argv);
  if (gcs_abi_version () != GCS_ABI_VERSION) {
    fprintf (stderr, "gcs-stress: library ABI %u, header %d\n", gcs_abi_version (), GCS_ABI_VERSION);
    return 2;
  }
  if (opt_seed == 0)
    opt_seed = g_get_real_time () % 1000000000;
  record_quark = g_quark_from_static_string ("gcs-stress-record");

  GcsConfig config;
  config_for_slot (0, &config);
  expect_result (INV_RESULT_CODES, "configure", 0, gcs_configure (&config), RES_OK);
  for (int slot = 0; slot < N_MANAGERS; slot++) {
    pthread_rwlock_init (&managers[slot].lock, NULL);
    if (slot > 0) {
      config_for_slot (slot, &config);
      expect_result (INV_RESULT_CODES, "manager_new", 0, gcs_manager_new (&config, &managers[slot].manager), RES_OK);
    }
  }
  pool = g_new0 (Entry, (gsize) opt_pool);
  worker_counters = aligned_alloc (64, sizeof (Counters) * (size_t) opt_threads);
  memset (worker_counters, 0, sizeof (Counters) * (size_t) opt_threads);

  struct sigaction action;
  memset (&action, 0, sizeof action);
  action.sa_handler = on_signal;
  sigaction (SIGINT, &action, NULL);
  sigaction (SIGTERM, &action, NULL);

  printf ("gcs-stress: gcsafety %s, %d threads, %.0f s, seed %" G_GINT64_FORMAT ", pool %d%s\n",
      gcs_version_string (), opt_threads, opt_duration, opt_seed, opt_pool, STRESS_ASAN ? ", AddressSanitizer" : "");
  fflush (stdout);

  int total_weight = 0;
  for (int op = 0; op < N_OPS; op++)
    total_weight += ops[op].weight;
  Worker *workers = g_new0 (Worker, (gsize) opt_threads);
  uint64_t start = now_us ();
  for (int i = 0; i < opt_threads; i++) {
    guint32 seed[2] = { (guint32) opt_seed, (guint32) i };
    workers[i].index = i;
    workers[i].total_weight = total_weight;
    workers[i].rand = g_rand_new_with_seed_array (seed, 2);
    worker_counters[i].last_progress_us = start;
    if (pthread_create (&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
      fprintf (stderr, "gcs-stress: cannot start thread %d\n", i);
      return 2;
    }
  }

  /* The monitor: RSS every second, a progress line every 5 s, retired records freed. */
  double warmup_s = opt_duration / 3 < 10 ? opt_duration / 3 : 10;
  enum { MAX_SAMPLES = 1 << 17 };   /* one a second: 36 h (--duration is at most 24 h) */
  double *rss = g_new0 (double, MAX_SAMPLES);
  int samples = 0, warm_index = -1;
  double rss_start = rss_mib ();
  uint64_t last_ops = 0, last_report = start;
  for (int tick = 1; !atomic_load (&stopping); tick++) {
    g_usleep (100000);
    sweep_retired (RETIRE_DELAY_US);
    uint64_t now = now_us ();
    double elapsed = (double) (now - start) / 1e6;
    if (elapsed >= opt_duration)
      break;
    if (tick % 10 == 0) {
      if (samples < MAX_SAMPLES)
        rss[samples++] = rss_mib ();
      if (warm_index < 0 && elapsed >= warmup_s)
        warm_index = samples - 1;
      for (int i = 0; i < opt_threads; i++) {
        uint64_t seen = atomic_load (&worker_counters[i].last_progress_us);
        if (now > seen && now - seen > 60000000) {
          violation (INV_PROGRESS, "thread %d has not started an operation for %.0f s", i,
              (double) (now - seen) / 1e6);
          worker_counters[i].last_progress_us = now;
        }
      }
      atomic_fetch_add (&other_counters.checks[INV_PROGRESS], 1);
    }
    if (tick % 50 == 0) {
      uint64_t total = sum_all_ops ();
      printf ("  %5.0f s  %10.0f ops/s  registered %" PRIu64 "  finalized %" PRIu64 "  records %" PRIu64
          "  managers recycled %" PRIu64 "  rss %.1f MiB  violations %" PRIu64 "\n", elapsed,
          (double) (total - last_ops) / ((double) (now - last_report) / 1e6), sum_objects (objects_created),
          sum_objects (objects_finalized), (uint64_t) atomic_load (&records_live),
          (uint64_t) atomic_load (&managers_recycled), samples ? rss[samples - 1] : rss_start, sum_violations ());
      fflush (stdout);
      last_ops = total;
      last_report = now;
    }
  }
  double run_s = (double) (now_us () - start) / 1e6;
  atomic_store (&stopping, 1);
  for (int i = 0; i < opt_threads; i++)
    pthread_join (workers[i].thread, NULL);
  uint64_t total_ops = sum_all_ops ();
  double rss_before_finish = rss_mib ();
  finish ();

  /* RSS: the median of the last samples against the median just after warm-up. */
  double rss_warm = 0, rss_end = 0, growth = 0, bound = 0;
  bool rss_checked = false;
  /* Up to 5 samples each; at least 2 each (a run of 10 s has about 6). */
  int after_warmup = warm_index >= 0 ? samples - warm_index : 0;
  int window = after_warmup / 2 < 5 ? after_warmup / 2 : 5;
  if (window >= 2) {
    rss_warm = median (rss + warm_index, window);
    rss_end = median (rss + samples - window, window);
    growth = rss_end - rss_warm;
    bound = opt_rss_limit_mib >= 0 ? opt_rss_limit_mib : 32 + 0.25 * rss_warm;
    /* Enforced from 30 s on: the warm-up of a shorter run is too short
     * for malloc's arenas to settle (reported all the same). */
    rss_checked = bound > 0 && !STRESS_ASAN && opt_duration >= 30;
    if (rss_checked)
      CHECK_INV (INV_RSS, growth <= bound, "RSS grew %.1f MiB after warm-up (%.1f -> %.1f MiB), bound %.1f MiB",
          growth, rss_warm, rss_end, bound);
  }

  /* ----- the summary ----- */
  printf ("\ngcs-stress summary\n");
  printf ("  %-28s %d\n", "threads:", opt_threads);
  printf ("  %-28s %.1f s\n", "duration:", run_s);
  printf ("  %-28s %" G_GINT64_FORMAT "\n", "seed:", opt_seed);
  printf ("  %-28s %" PRIu64 " (%.0f ops/s)\n", "operations:", total_ops, (double) total_ops / run_s);
  for (int op = 0; op < N_OPS; op++) {
    uint64_t n = sum_ops ((Op) op);
    printf ("    %-26s %12" PRIu64 "  %10.0f/s\n", ops[op].name, n, (double) n / run_s);
  }
  uint64_t ok = atomic_load (&other_counters.ok_results), refused = atomic_load (&other_counters.refused_results);
  for (int i = 0; i < opt_threads; i++) {
    ok += atomic_load (&worker_counters[i].ok_results);
    refused += atomic_load (&worker_counters[i].refused_results);
  }
  printf ("  %-28s %" PRIu64 " GCS_OK, %" PRIu64 " refused (as allowed or counted below)\n", "results:", ok, refused);
  printf ("  %-28s", "objects registered:");
  for (int t = 0; t < N_OBJ; t++)
    printf (" %s %" PRIu64 "%s", object_type_names[t], (uint64_t) atomic_load (&objects_created[t]),
        t + 1 < N_OBJ ? "," : "\n");
  printf ("  %-28s %" PRIu64 " of %" PRIu64 "\n", "objects finalized:", sum_objects (objects_finalized),
      sum_objects (objects_created));
  printf ("  %-28s %" PRIu64 "\n", "managers recycled:", (uint64_t) atomic_load (&managers_recycled));
  printf ("  %-28s %" PRIu64 " on handles whose every end was attributable (WOULD_DEADLOCK required),\n"
      "  %-28s %" PRIu64 " on handles with an end that was not (best effort, as documented): %" PRIu64 " timed out\n",
      "unregister_sync in access:", (uint64_t) atomic_load (&deadlock_detection_strict),
      "", (uint64_t) atomic_load (&deadlock_detection_lenient), (uint64_t) atomic_load (&deadlock_detection_best_effort));
  printf ("  %-28s start %.1f MiB; at the end of the run %.1f MiB\n", "RSS:", rss_start, rss_before_finish);
  if (window >= 2) {
    printf ("  %-28s after warm-up (%.0f s) %.1f MiB, last %d s %.1f MiB: %+.1f MiB, ", "RSS (medians):", warmup_s,
        rss_warm, window, rss_end, growth);
    if (rss_checked)
      printf ("bound %.1f MiB\n", bound);
    else
      printf ("not enforced (%s)\n", STRESS_ASAN ? "AddressSanitizer's quarantine"
          : opt_duration < 30 ? "a run shorter than 30 s" : "--rss-limit-mib 0");
    /* The trend: the second half of the run after warm-up. malloc's
     * high-water marks grow in steps early on and then stay; a leak keeps
     * the same slope in both halves. */
    int middle = warm_index + after_warmup / 2;
    double half_minutes = (double) (samples - window - middle) / 60.0;
    if (half_minutes >= 1) {    /* a rate over less than a minute says nothing */
      double half_growth = rss_end - median (rss + middle, window);
      printf ("  %-28s %+.1f MiB in %.1f min (%+.3f MiB/min)\n", "RSS, second half:", half_growth, half_minutes,
          half_growth / half_minutes);
    }
  } else {
    printf ("  %-28s not checked: fewer than 4 samples after the warm-up of %.0f s\n", "RSS growth:", warmup_s);
  }
  printf ("  invariants:\n");
  for (int inv = 0; inv < N_INVARIANTS; inv++)
    printf ("    %-48s %12" PRIu64 " checks  %" PRIu64 " violations\n", invariant_names[inv], sum_checks (inv),
        (uint64_t) atomic_load (&violations[inv]));
  uint64_t broken = sum_violations ();
  printf ("  %-28s %s\n", "result:", broken == 0 ? "PASS (every invariant held)" : "FAIL");
  for (int i = 0; i < opt_threads; i++)
    g_rand_free (workers[i].rand);
  g_free (workers);
  g_free (rss);
  g_free (pool);
  free (worker_counters);
  return broken == 0 ? 0 : 1;
}

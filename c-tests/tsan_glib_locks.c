/* Linked into the C tests built for ThreadSanitizer (tests/c_tests.rs,
 * Variant::Tsan), never into a test of its own: it makes GLib's locks
 * visible to TSan.
 *
 * GLib and GStreamer are not instrumented, and on Linux GLib's GMutex,
 * GRecMutex, GRWLock and GCond are built on futex(2) directly, not on
 * pthread_mutex_*, so TSan's interceptors never see them: every piece of
 * data that a test (or GStreamer, e.g. GST_OBJECT_LOCK) protects with a
 * GMutex would be reported as a data race. This file defines those lock
 * functions in the executable, where they take precedence over libglib's
 * (symbol interposition); each calls GLib's own function (dlsym RTLD_NEXT)
 * and tells TSan about the happens-before edge the lock gives: a release on
 * the lock's address before it is unlocked, an acquire after it is locked.
 *
 * Only calls that go through the dynamic linker are interposed: calls from
 * the tests, from libgstreamer and other libraries. GLib's calls to its own
 * locks are bound inside libglib (it has no PLT entries for them), so the
 * synchronisation inside GLib (GAsyncQueue, GObject's weak pointers, ...)
 * stays invisible; that is uninstrumented code, covered by c-tests/tsan.supp.
 *
 * g_main_context_invoke_full, which hands a function to the thread that owns
 * a GMainContext through GLib-internal locks, is wrapped the same way: a
 * release where the function is handed over, an acquire where it runs (the
 * library dispatches releases with it: GcsConfig.release_context).
 *
 * These are happens-before annotations only: TSan's lock-order (deadlock)
 * detection does not see GLib's locks. */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sanitizer/tsan_interface.h>

/* GLib's own definition of `name`, the next one after this executable's. */
static void *
glib_function (const char *name)
{
  void *function = dlsym (RTLD_NEXT, name);
  if (function == NULL) {
    fprintf (stderr, "tsan_glib_locks: %s not found: %s\n", name, dlerror ());
    abort ();
  }
  return function;
}

/* real_NAME (): GLib's NAME, looked up on first use and cached (threads
 * that race to the first use each store the same value, atomically). */
#define REAL(ret, name, params)                                               \
  typedef ret (*name##_fn) params;                                            \
  static name##_fn                                                            \
  real_##name (void)                                                          \
  {                                                                           \
    static name##_fn cached;                                                  \
    name##_fn fn = __atomic_load_n (&cached, __ATOMIC_ACQUIRE);               \
    if (fn == NULL) {                                                         \
      *(void **) &fn = glib_function (#name);                                 \
      __atomic_store_n (&cached, fn, __ATOMIC_RELEASE);                       \
    }                                                                         \
    return fn;                                                                \
  }

/* A lock: an acquire after it is taken. */
#define LOCK(name, type)                                                      \
  REAL (void, name, (type *))                                                 \
  void name (type * lock)                                                     \
  {                                                                           \
    real_##name () (lock);                                                    \
    __tsan_acquire (lock);                                                    \
  }

/* A try-lock: an acquire if it was taken. */
#define TRYLOCK(name, type)                                                   \
  REAL (gboolean, name, (type *))                                             \
  gboolean name (type * lock)                                                 \
  {                                                                           \
    const gboolean taken = real_##name () (lock);                             \
    if (taken)                                                                \
      __tsan_acquire (lock);                                                  \
    return taken;                                                             \
  }

/* An unlock: a release before it is let go. */
#define UNLOCK(name, type)                                                    \
  REAL (void, name, (type *))                                                 \
  void name (type * lock)                                                     \
  {                                                                           \
    __tsan_release (lock);                                                    \
    real_##name () (lock);                                                    \
  }

LOCK (g_mutex_lock, GMutex)
TRYLOCK (g_mutex_trylock, GMutex)
UNLOCK (g_mutex_unlock, GMutex)
LOCK (g_rec_mutex_lock, GRecMutex)
TRYLOCK (g_rec_mutex_trylock, GRecMutex)
UNLOCK (g_rec_mutex_unlock, GRecMutex)
LOCK (g_rw_lock_writer_lock, GRWLock)
TRYLOCK (g_rw_lock_writer_trylock, GRWLock)
UNLOCK (g_rw_lock_writer_unlock, GRWLock)
LOCK (g_rw_lock_reader_lock, GRWLock)
TRYLOCK (g_rw_lock_reader_trylock, GRWLock)
UNLOCK (g_rw_lock_reader_unlock, GRWLock)

/* g_cond_wait unlocks the mutex while it waits and locks it again before it
 * returns (inside libglib, where this file cannot see it). */
REAL (void, g_cond_wait, (GCond *, GMutex *))
void
g_cond_wait (GCond * cond, GMutex * mutex)
{
  __tsan_release (mutex);
  real_g_cond_wait () (cond, mutex);
  __tsan_acquire (mutex);
}

REAL (gboolean, g_cond_wait_until, (GCond *, GMutex *, gint64))
gboolean
g_cond_wait_until (GCond * cond, GMutex * mutex, gint64 end_time)
{
  __tsan_release (mutex);
  const gboolean signalled = real_g_cond_wait_until () (cond, mutex, end_time);
  __tsan_acquire (mutex);
  return signalled;
}

/* What g_main_context_invoke_full was given, handed over with a release. */
typedef struct
{
  GSourceFunc function;
  gpointer data;
  GDestroyNotify notify;
} Invocation;

static gboolean
invocation_run (gpointer data)
{
  Invocation *invocation = data;
  __tsan_acquire (invocation);
  return invocation->function (invocation->data);
}

static void
invocation_free (gpointer data)
{
  Invocation *invocation = data;
  __tsan_acquire (invocation);
  if (invocation->notify != NULL)
    invocation->notify (invocation->data);
  free (invocation);
}

REAL (void, g_main_context_invoke_full,
    (GMainContext *, gint, GSourceFunc, gpointer, GDestroyNotify))
void
g_main_context_invoke_full (GMainContext * context, gint priority,
    GSourceFunc function, gpointer data, GDestroyNotify notify)
{
  Invocation *invocation = malloc (sizeof *invocation);
  if (invocation == NULL)
    abort ();
  invocation->function = function;
  invocation->data = data;
  invocation->notify = notify;
  __tsan_release (invocation);
  real_g_main_context_invoke_full () (context, priority, invocation_run,
      invocation, invocation_free);
}

/* fork() while other threads use the library: the child (only the forking
 * thread exists there) can register, access, unregister, run finalizers and
 * read statistics without deadlocking on a lock a vanished parent thread
 * held, and can use handles registered before the fork. Each fork happens
 * at a random moment of a hammering thread's register/access/unregister
 * loop; the child has alarm() as a deadlock guard and reports by exit code. */
#define _GNU_SOURCE
#include "common.h"

/* A child's deadlock guard, in seconds: longer than HANG_MS. */
#define CHILD_DEADLINE_S 30

#include <errno.h>
#include <sys/wait.h>

typedef struct
{
  gint stop;
  gint rounds;
  pthread_t thread;
} Hammer;

static int
touch (void *object, void *user_data)
{
  (void) user_data;
  return object != NULL ? 0 : 1;
}

static int
set_flag (void *object, void *user_data)
{
  (void) object;
  g_atomic_int_set ((gint *) user_data, 1);
  return 0;
}

static void *
hammer_thread (void *data)
{
  Hammer *h = data;
  GcsManager *manager = NULL;
  CHECK_OK (gcs_manager_new (NULL, &manager));
  gint finalized = 0;
  while (!g_atomic_int_get (&h->stop)) {
    const int round = g_atomic_int_get (&h->rounds);
    GstElement *element = gst_element_factory_make ("fakesink", NULL);
    GcsHandle handle;
    CHECK_OK (gcs_register (element, round % 2 ? "HammerA" : "HammerB", &handle));
    CHECK_OK (gcs_safe_access (handle, touch, NULL));
    void *object;
    CHECK_OK (gcs_access_begin (handle, &object));
    CHECK_OK (gcs_access_end (handle));
    if (round % 8 == 0)
      CHECK_OK (gcs_set_finalizer (handle, set_flag, &finalized));
    if (round % 3 == 0)
      CHECK_OK (gcs_add_cleanup (handle, touch, NULL));
    CHECK_OK (gcs_unregister (handle));
    /* A second manager's locks too. */
    GstBuffer *buffer = gst_buffer_new ();
    GcsRegistration registration = registration_for (manager, GCS_KIND_MINI_OBJECT, buffer);
    registration.size_bytes = 8;
    CHECK_OK (gcs_register_full (&registration, &handle));
    gst_buffer_unref (buffer);
    CHECK_OK (gcs_safe_access (handle, touch, NULL));
    CHECK_OK (gcs_unregister (handle));
    GcsStats stats;
    stats.struct_size = sizeof stats;
    CHECK_OK (gcs_get_stats (manager, &stats));
    g_atomic_int_inc (&h->rounds);
  }
  gcs_manager_free (manager);
  return NULL;
}

typedef struct
{
  GcsHandle handle;
  GstElement *element;
} Inherited;

/* A GCS_KIND_POINTER payload's release function. */
static void
count_release (void *object, void *user_data)
{
  (void) object;
  g_atomic_int_inc ((gint *) user_data);
}

/* What the child does; never returns. It creates no GObject: GLib and
 * GStreamer are not fork-safe (a parent thread may have held one of their
 * global locks at the fork, e.g. while creating or finalizing an element),
 * so it uses GstBuffers and plain pointers, whose creation and destruction
 * take no such lock, and an element created before the fork whose last
 * reference stays with the parent's code. */
static void
child (const Inherited * inherited)
{
  signal (SIGALRM, SIG_DFL);
  alarm (CHILD_DEADLINE_S);     /* a deadlock kills the child: the parent sees SIGALRM */
  /* New registrations in the default manager. */
  for (int i = 0; i < 3; i++) {
    GstBuffer *buffer = gst_buffer_new ();
    CHILD_CHECK (buffer != NULL);
    GcsRegistration registration = registration_for (NULL, GCS_KIND_MINI_OBJECT, buffer);
    registration.type_name = "InChild";
    registration.size_bytes = 100;
    GcsHandle handle;
    CHILD_CHECK (gcs_register_full (&registration, &handle) == GCS_OK);
    CHILD_CHECK (MINI_REFCOUNT (buffer) == 2);
    CHILD_CHECK (gcs_safe_access (handle, touch, NULL) == GCS_OK);
    void *object = NULL;
    CHILD_CHECK (gcs_access_begin (handle, &object) == GCS_OK && object == buffer);
    CHILD_CHECK (gcs_access_end (handle) == GCS_OK);
    CHILD_CHECK (gcs_add_cleanup (handle, touch, NULL) == GCS_OK);
    CHILD_CHECK (gcs_unregister (handle) == GCS_OK);
    CHILD_CHECK (MINI_REFCOUNT (buffer) == 1);
    CHILD_CHECK (gcs_safe_access (handle, touch, NULL) == GCS_ERROR_RELEASED);
    gst_buffer_unref (buffer);
  }
  gint releases = 0;
  int payload = 0;
  GcsRegistration registration = registration_for (NULL, GCS_KIND_POINTER, &payload);
  registration.release = count_release;
  registration.release_data = &releases;
  GcsHandle handle;
  CHILD_CHECK (gcs_register_full (&registration, &handle) == GCS_OK);
  CHILD_CHECK (gcs_unregister_sync (handle, HANG_MS) == GCS_OK);
  CHILD_CHECK (releases == 1);
  /* A manager of its own, closed and freed. */
  GcsManager *manager = NULL;
  CHILD_CHECK (gcs_manager_new (NULL, &manager) == GCS_OK);
  GstBuffer *buffer = gst_buffer_new ();
  registration = registration_for (manager, GCS_KIND_MINI_OBJECT, buffer);
  CHILD_CHECK (gcs_register_full (&registration, &handle) == GCS_OK);
  CHILD_CHECK (gcs_safe_access (handle, touch, NULL) == GCS_OK);
  CHILD_CHECK (gcs_manager_close (manager, HANG_MS) == GCS_OK);
  CHILD_CHECK (MINI_REFCOUNT (buffer) == 1);
  CHILD_CHECK (gcs_safe_access (handle, touch, NULL) == GCS_ERROR_SHUT_DOWN);
  gcs_manager_free (manager);
  /* A finalizer: the executor works in the child. */
  registration = registration_for (NULL, GCS_KIND_MINI_OBJECT, buffer);
  CHILD_CHECK (gcs_register_full (&registration, &handle) == GCS_OK);
  gint finalized = 0;
  CHILD_CHECK (gcs_set_finalizer (handle, set_flag, &finalized) == GCS_OK);
  CHILD_CHECK (gcs_unregister_sync (handle, HANG_MS) == GCS_OK);
  CHILD_CHECK (g_atomic_int_get (&finalized) == 1);
  CHILD_CHECK (MINI_REFCOUNT (buffer) == 1);
  gst_buffer_unref (buffer);
  /* The handle registered before the fork works here. */
  void *object = NULL;
  CHILD_CHECK (gcs_is_valid (inherited->handle));
  CHILD_CHECK (gcs_access_begin (inherited->handle, &object) == GCS_OK);
  CHILD_CHECK (object == inherited->element);
  CHILD_CHECK (gcs_access_end (inherited->handle) == GCS_OK);
  CHILD_CHECK (gcs_safe_access (inherited->handle, touch, NULL) == GCS_OK);
  /* Statistics, the leak report and Prometheus text. */
  GcsStats stats;
  stats.struct_size = sizeof stats;
  CHILD_CHECK (gcs_get_stats (NULL, &stats) == GCS_OK);
  CHILD_CHECK (stats.total_registered >= 6);
  char text[256];
  CHILD_CHECK (gcs_stats_prometheus (NULL, text, sizeof text) > 0);
  /* Unregistering the inherited handle drops the child's copy of the
   * registration's reference (the parent's test holds another). */
  const int refcount = OBJECT_REFCOUNT (inherited->element);
  CHILD_CHECK (gcs_unregister (inherited->handle) == GCS_OK);
  CHILD_CHECK (!gcs_is_valid (inherited->handle));
  CHILD_CHECK (OBJECT_REFCOUNT (inherited->element) == refcount - 1);
  _exit (0);
}

static void
check_child_status (pid_t pid, int round)
{
  int status = 0;
  pid_t waited;
  do
    waited = waitpid (pid, &status, 0);
  while (waited < 0 && errno == EINTR);
  CHECK (waited == pid);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    fprintf (stderr, "fork round %d: child %s %d%s\n", round,
        WIFEXITED (status) ? "exited with" : "killed by signal",
        WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status),
        WIFSIGNALED (status) && WTERMSIG (status) == SIGALRM ? " (SIGALRM: deadlocked)" : "");
    CHECK (FALSE);
  }
}

static void
test_fork_while_hammering (void)
{
  /* Under valgrind the children are leak-checked at their exit, where the
   * memory that the parent's other threads held at the fork (on their
   * stacks, which do not exist in the child) shows as "definitely lost":
   * there the forks happen with no other thread alive (the hammering and
   * the executor's threads joined), and the plain and sanitizer runs cover
   * the forks at random moments of the hammering. */
  const gboolean quiet_forks = test_under_valgrind ();

  /* A finalizer executor exists in the parent before the forks. */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  GcsHandle handle;
  CHECK_OK (gcs_register (element, NULL, &handle));
  gint finalized = 0;
  CHECK_OK (gcs_set_finalizer (handle, set_flag, &finalized));
  CHECK_OK (gcs_unregister_sync (handle, HANG_MS));
  CHECK (g_atomic_int_get (&finalized));
  if (quiet_forks)
    CHECK_OK (gcs_shutdown (HANG_MS));

  /* Registered before the fork, used in the children. */
  Inherited inherited;
  inherited.element = gst_element_factory_make ("fakesink", NULL);
  gpointer alive;
  watch_finalize (inherited.element, &alive);
  CHECK_OK (gcs_register (inherited.element, "Inherited", &inherited.handle));
  gst_object_ref (inherited.element);   /* ours: never finalized in a child */

  Hammer hammers[2];
  memset (hammers, 0, sizeof hammers);
  if (!quiet_forks) {
    for (int i = 0; i < 2; i++)
      SPAWN (&hammers[i].thread, hammer_thread, &hammers[i]);
    POLL_UNTIL (g_atomic_int_get (&hammers[0].rounds) > 2
        && g_atomic_int_get (&hammers[1].rounds) > 2, 20000);
  }

  const int forks = test_slow_run ()? 3 : 10;
  GRand *random = g_rand_new_with_seed ((guint32) test_now_ms ());
  for (int round = 0; round < forks; round++) {
    g_usleep ((gulong) g_rand_int_range (random, 0, 5000));
    fflush (stdout);
    fflush (stderr);
    pid_t pid = fork ();
    CHECK (pid >= 0);
    if (pid == 0)
      child (&inherited);
    check_child_status (pid, round);
  }
  g_rand_free (random);

  if (!quiet_forks) {
    for (int i = 0; i < 2; i++)
      g_atomic_int_set (&hammers[i].stop, 1);
    for (int i = 0; i < 2; i++)
      JOIN (hammers[i].thread);
  }
  fprintf (stderr, "hammer rounds: %d, %d; forks: %d\n", hammers[0].rounds, hammers[1].rounds,
      forks);

  /* The parent's copy of the inherited handle is untouched by the children. */
  CHECK (gcs_is_valid (inherited.handle));
  CHECK (alive != NULL && OBJECT_REFCOUNT (inherited.element) == 2);
  CHECK_OK (gcs_safe_access (inherited.handle, touch, NULL));
  CHECK_OK (gcs_unregister (inherited.handle));
  CHECK (alive != NULL && OBJECT_REFCOUNT (inherited.element) == 1);
  gst_object_unref (inherited.element);
  CHECK (alive == NULL);
}

/* A child forked while this thread itself is inside an access: the access
 * stays counted in the child, which can end it (it is the same thread). */
static void
test_fork_inside_an_access (void)
{
  GstBuffer *buffer = gst_buffer_new ();
  GcsRegistration registration = registration_for (NULL, GCS_KIND_MINI_OBJECT, buffer);
  registration.type_name = "ForkedInside";
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  void *object;
  CHECK_OK (gcs_access_begin (handle, &object));
  fflush (stdout);
  fflush (stderr);
  pid_t pid = fork ();
  CHECK (pid >= 0);
  if (pid == 0) {
    signal (SIGALRM, SIG_DFL);
    alarm (CHILD_DEADLINE_S);
    CHILD_CHECK (gcs_unregister_sync (handle, HANG_MS) == GCS_ERROR_WOULD_DEADLOCK);
    CHILD_CHECK (gcs_unregister (handle) == GCS_OK);
    CHILD_CHECK (gcs_access_end (handle) == GCS_OK);
    CHILD_CHECK (gcs_safe_access (handle, touch, NULL) == GCS_ERROR_RELEASED);
    CHILD_CHECK (MINI_REFCOUNT (buffer) == 1);
    _exit (0);
  }
  check_child_status (pid, 0);
  CHECK (gcs_is_valid (handle));
  CHECK_OK (gcs_access_end (handle));
  CHECK_OK (gcs_unregister (handle));
  CHECK (MINI_REFCOUNT (buffer) == 1);
  gst_buffer_unref (buffer);
}

int
main (int argc, char **argv)
{
  /* GLib before 2.76 allocates GstBuffers from GSlice, whose magazines
   * take global locks a parent thread may hold at the fork: make it plain
   * malloc (fork-safe in glibc), as the test harness does. */
  if (glib_check_version (2, 76, 0) != NULL && g_strcmp0 (getenv ("G_SLICE"), "always-malloc") != 0) {
    setenv ("G_SLICE", "always-malloc", 1);
    execv ("/proc/self/exe", argv);
    perror ("execv");
    return 1;
  }
  gst_init (&argc, &argv);
  test_watchdog (60);

  RUN_TEST (test_fork_while_hammering);
  RUN_TEST (test_fork_inside_an_access);

  CHECK_OK (gcs_shutdown (HANG_MS));
  TEST_PASSED ();
}

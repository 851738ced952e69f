/* The debug mode: with GCS_DEBUG=fatal, the first misuse (a refused access,
 * a double unregister, an unmatched gcs_access_end, a forged handle) prints
 * the handle's story and aborts; without it, the same program gets its error
 * code and goes on. Each case runs in a child process (this program again,
 * with the case in argv[1]), whose stderr and status are checked. */
#include "common.h"

#include <signal.h>
#include <sys/wait.h>

static GcsHandle
register_story_sink (void)
{
  GstElement *sink = gst_element_factory_make ("fakesink", "story-sink");
  GcsRegistration registration = registration_for (NULL, GCS_KIND_GST_OBJECT, sink);
  registration.instance_name = "the-story";
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  return handle;
}

static int
nothing (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  return 0;
}

/* The child: do one misuse; returns only if it was not fatal. */
static int
child (const char *which)
{
  GcsHandle handle = register_story_sink ();
  if (strcmp (which, "refused") == 0) {
    CHECK_OK (gcs_unregister (handle));
    CHECK_RESULT (gcs_safe_access (handle, nothing, NULL), GCS_ERROR_RELEASED);
  } else if (strcmp (which, "double") == 0) {
    CHECK_OK (gcs_unregister (handle));
    CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  } else if (strcmp (which, "unmatched") == 0) {
    CHECK_RESULT (gcs_access_end (handle), GCS_ERROR_NOT_ACCESSING);
    CHECK_OK (gcs_unregister (handle));
  } else if (strcmp (which, "forged") == 0) {
    CHECK_RESULT (gcs_safe_access (handle ^ 0x5a5a000000000000ull, nothing, NULL),
        GCS_ERROR_INVALID_HANDLE);
    CHECK_OK (gcs_unregister (handle));
  } else {
    return 2;
  }
  printf ("survived %s\n", which);
  return 0;
}

/* Run this program on `which` with GCS_DEBUG=`debug`; its stderr and status. */
static gchar *
run_child (const char *self, const char *which, const char *debug, int *status)
{
  gchar **env = g_get_environ ();
  env = g_environ_setenv (env, "GCS_DEBUG", debug, TRUE);
  env = g_environ_unsetenv (env, "GST_DEBUG");
  gchar *argv[] = { (gchar *) self, (gchar *) which, NULL };
  gchar *out = NULL, *err = NULL;
  GError *error = NULL;
  CHECK (g_spawn_sync (NULL, argv, env, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, status, &error));
  g_strfreev (env);
  gchar *both = g_strconcat (out, err, NULL);
  g_free (out);
  g_free (err);
  return both;
}

#define CHECK_CONTAINS(text, needle)                                             \
  do {                                                                           \
    if (strstr ((text), (needle)) == NULL) {                                     \
      fprintf (stderr, "%s:%d: \"%s\" not in:\n%s\n", __FILE__, __LINE__,        \
          (needle), (text));                                                     \
      exit (1);                                                                  \
    }                                                                            \
  } while (0)

static void
expect_abort (const char *self, const char *which, const char *what)
{
  int status;
  gchar *text = run_child (self, which, "fatal,stacks", &status);
  if (!(WIFSIGNALED (status) && WTERMSIG (status) == SIGABRT)) {
    fprintf (stderr, "%s: expected SIGABRT, got status %d:\n%s\n", which, status, text);
    exit (1);
  }
  CHECK_CONTAINS (text, what);
  CHECK (strstr (text, "survived") == NULL);
  if (strcmp (which, "forged") == 0) {
    CHECK_CONTAINS (text, "names nothing this library knows");
  } else {
    /* The story: type, names, where registered (stacks on) and, once
     * unregistered, where. */
    CHECK_CONTAINS (text, "the story of handle");
    CHECK_CONTAINS (text, "a GstFakeSink (GCS_KIND_GST_OBJECT) named 'the-story'");
    CHECK_CONTAINS (text, "registered at:");
    CHECK_CONTAINS (text, "register_story_sink");
    if (strcmp (which, "unmatched") != 0) {
      CHECK_CONTAINS (text, "unregistered at:");
      CHECK_CONTAINS (text, "child");
    }
  }
  CHECK_CONTAINS (text, "misused at:");
  g_free (text);

  /* Without the debug mode: the error code, and the program goes on. */
  text = run_child (self, which, "stacks", &status);
  if (!(WIFEXITED (status) && WEXITSTATUS (status) == 0)) {
    fprintf (stderr, "%s without fatal: status %d:\n%s\n", which, status, text);
    exit (1);
  }
  CHECK_CONTAINS (text, "survived");
  g_free (text);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (argc == 2)
    return child (argv[1]);

  expect_abort (argv[0], "refused", "fatal (refused access; GCS_DEBUG=fatal)");
  expect_abort (argv[0], "double", "fatal (double unregister; GCS_DEBUG=fatal)");
  expect_abort (argv[0], "unmatched", "fatal (unmatched gcs_access_end; GCS_DEBUG=fatal)");
  expect_abort (argv[0], "forged", "fatal (refused access; GCS_DEBUG=fatal)");
  TEST_PASSED ();
}

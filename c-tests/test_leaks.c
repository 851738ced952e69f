/* Diagnostics through the environment (contract: "Environment"): this
 * program runs itself again as a child with GCS_LEAKS=1 / GCS_DEBUG=...
 * and checks the child's stderr:
 * - GCS_LEAKS=1: gcs_shutdown (or closing the default manager) lists every
 *   live handle of the default manager, with type, instance name and age,
 *   and nothing released nor any other manager's handle; with a backtrace
 *   when GCS_DEBUG=stacks or GCS_REGISTER_CAPTURE_STACK recorded one;
 * - GCS_DEBUG=state,finalizers without gst_init: "registered", "released"
 *   and finalizer lines on stderr; with gst_init and GST_DEBUG=gcsafety:6,
 *   with or without GCS_DEBUG, the same through the GStreamer debug
 *   category "gcsafety" (the category is the switch); with gst_init and
 *   GCS_DEBUG alone, on stderr still; with neither, nothing. */
#define _GNU_SOURCE
#include "common.h"

#include <sys/wait.h>

/* ---------------------------------------------------------------------- */
/* The child's side: what it does, by mode. Handles it leaves registered
 * are printed on stdout as "leaked <instance-name> 0x<handle>". */

static GcsHandle
child_register (GcsManager * manager, const char *factory, const char *instance_name,
    uint32_t flags)
{
  GstElement *element = gst_element_factory_make (factory, NULL);
  CHECK (element != NULL);
  GcsRegistration registration = registration_for (manager, GCS_KIND_GST_OBJECT, element);
  registration.instance_name = instance_name;
  registration.size_bytes = 777;
  registration.flags = flags;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  return handle;
}

static void
child_print_leaked (const char *instance_name, GcsHandle handle)
{
  printf ("leaked %s 0x%016llx\n", instance_name, (unsigned long long) handle);
}

/* Four registrations in the default manager, two released; one left in
 * another manager. `flags` for leak-one only. */
static int
child_leaks (uint32_t leak_one_flags, gboolean close_default)
{
  GcsHandle released_one = child_register (NULL, "identity", "released-one", 0);
  GcsHandle leak_one = child_register (NULL, "fakesink", "leak-one", leak_one_flags);
  GcsHandle released_two = child_register (NULL, "queue", "released-two", 0);
  GcsHandle leak_two = child_register (NULL, "identity", "leak-two", 0);
  GcsManager *other;
  CHECK_OK (gcs_manager_new (NULL, &other));
  GcsHandle other_leak = child_register (other, "fakesink", "other-manager-leak", 0);
  (void) other_leak;
  CHECK_OK (gcs_unregister (released_one));
  CHECK_OK (gcs_unregister (released_two));
  child_print_leaked ("leak-one", leak_one);
  child_print_leaked ("leak-two", leak_two);
  fflush (stdout);
  g_usleep (60 * 1000);         /* an age to report */
  if (close_default)
    CHECK_OK (gcs_manager_close (NULL, HANG_MS));
  CHECK_OK (gcs_shutdown (HANG_MS));
  gcs_manager_free (other);
  return 0;
}

static int
child_no_leaks (void)
{
  GcsHandle handle = child_register (NULL, "fakesink", "released", 0);
  CHECK_OK (gcs_unregister (handle));
  CHECK_OK (gcs_shutdown (HANG_MS));
  return 0;
}

static int
finalizer_ok (void *object, void *user_data)
{
  (void) object;
  g_atomic_int_set ((gint *) user_data, 1);
  return 0;
}

/* GObjects only: works without gst_init. */
static int
child_log_state (void)
{
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  GcsRegistration registration = registration_for (NULL, GCS_KIND_GOBJECT, object);
  registration.type_name = "LoggedType";
  registration.instance_name = "logged-instance";
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  g_object_unref (object);
  CHECK_OK (gcs_invalidate (handle));
  CHECK_OK (gcs_unregister (handle));
  /* A finalizer on the executor. */
  object = g_object_new (G_TYPE_OBJECT, NULL);
  registration = registration_for (NULL, GCS_KIND_GOBJECT, object);
  registration.type_name = "FinalizedType";
  CHECK_OK (gcs_register_full (&registration, &handle));
  g_object_unref (object);
  gint done = 0;
  CHECK_OK (gcs_set_finalizer (handle, finalizer_ok, &done));
  CHECK_OK (gcs_unregister (handle));
  POLL_UNTIL (g_atomic_int_get (&done), HANG_MS);
  CHECK (done);
  CHECK_OK (gcs_shutdown (HANG_MS));
  printf ("handle 0x%016llx\n", (unsigned long long) handle);
  return 0;
}

/* A manager configured to log (no environment). */
static int
child_log_config (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.log_state_changes = true;
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (&config, &manager));
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  GcsRegistration registration = registration_for (manager, GCS_KIND_GOBJECT, object);
  registration.type_name = "ConfigLogged";
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  g_object_unref (object);
  CHECK_OK (gcs_unregister (handle));
  gcs_manager_free (manager);
  CHECK_OK (gcs_shutdown (HANG_MS));
  return 0;
}

static int
child_main (const char *mode, int *argc, char ***argv)
{
  if (strcmp (mode, "log-state") == 0 || strcmp (mode, "log-config") == 0) {
    /* GStreamer deliberately not initialised: the log goes to stderr. */
    return strcmp (mode, "log-state") == 0 ? child_log_state () : child_log_config ();
  }
  gst_init (argc, argv);
  if (strcmp (mode, "leaks") == 0)
    return child_leaks (0, FALSE);
  if (strcmp (mode, "leaks-capture-stack") == 0)
    return child_leaks (GCS_REGISTER_CAPTURE_STACK, FALSE);
  if (strcmp (mode, "leaks-close-default") == 0)
    return child_leaks (0, TRUE);
  if (strcmp (mode, "no-leaks") == 0)
    return child_no_leaks ();
  if (strcmp (mode, "log-state-gst") == 0)
    return child_log_state ();
  fprintf (stderr, "unknown child mode %s\n", mode);
  return 2;
}

/* ---------------------------------------------------------------------- */
/* The parent's side. */

static char *self_path;

typedef struct
{
  char *out;
  char *err;
  gchar **err_lines;
} ChildOutput;

/* Run this program in `mode` with `env` (NULL-terminated "NAME=value" /
 * "NAME" to unset) added to ours; it must exit 0. */
static void
run_child (const char *mode, const char *const *env, ChildOutput * output)
{
  gchar **envp = g_get_environ ();
  /* Ours must not leak into the child. */
  const char *const clear[] = { "GCS_DEBUG", "GCS_LEAKS", "GST_DEBUG", "LD_PRELOAD", NULL };
  for (int i = 0; clear[i] != NULL; i++)
    envp = g_environ_unsetenv (envp, clear[i]);
  envp = g_environ_setenv (envp, "GST_DEBUG_NO_COLOR", "1", TRUE);
  for (int i = 0; env[i] != NULL; i++) {
    gchar **kv = g_strsplit (env[i], "=", 2);
    envp = g_environ_setenv (envp, kv[0], kv[1], TRUE);
    g_strfreev (kv);
  }
  gchar *argv[] = { self_path, (gchar *) "--child", (gchar *) mode, NULL };
  gint status = -1;
  GError *error = NULL;
  memset (output, 0, sizeof *output);
  gboolean spawned = g_spawn_sync (NULL, argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &output->out,
      &output->err, &status, &error);
  if (!spawned) {
    fprintf (stderr, "cannot run %s: %s\n", self_path, error->message);
    CHECK (FALSE);
  }
  if (!g_spawn_check_wait_status (status, NULL)) {
    fprintf (stderr, "child %s failed (wait status %d)\n--- stdout\n%s--- stderr\n%s---\n", mode,
        status, output->out, output->err);
    CHECK (FALSE);
  }
  output->err_lines = g_strsplit (output->err, "\n", -1);
  g_strfreev (envp);
}

static void
child_output_clear (ChildOutput * output)
{
  g_free (output->out);
  g_free (output->err);
  g_strfreev (output->err_lines);
}

static void
dump (const ChildOutput * output)
{
  fprintf (stderr, "--- child stdout\n%s--- child stderr\n%s---\n", output->out, output->err);
}

#define CHECK_CHILD(output, cond)                                                \
  do {                                                                           \
    if (!(cond)) {                                                               \
      dump (output);                                                             \
      CHECK (cond);                                                              \
    }                                                                            \
  } while (0)

static int
count_lines_containing (const ChildOutput * output, const char *a, const char *b)
{
  int n = 0;
  for (int i = 0; output->err_lines[i] != NULL; i++)
    if (strstr (output->err_lines[i], a) && (b == NULL || strstr (output->err_lines[i], b)))
      n++;
  return n;
}

static const char *
line_containing (const ChildOutput * output, const char *a, const char *b)
{
  for (int i = 0; output->err_lines[i] != NULL; i++)
    if (strstr (output->err_lines[i], a) && (b == NULL || strstr (output->err_lines[i], b)))
      return output->err_lines[i];
  return NULL;
}

/* The handle the child printed for `instance_name`, as the report writes it. */
static char *
leaked_handle_text (const ChildOutput * output, const char *instance_name)
{
  gchar *needle = g_strdup_printf ("leaked %s 0x", instance_name);
  const char *found = strstr (output->out, needle);
  CHECK_CHILD (output, found != NULL);
  found += strlen (needle) - 2;
  char *text = g_strndup (found, 18);   /* 0x + 16 hex digits */
  g_free (needle);
  return text;
}

/* The leak line of one handle: type, instance name, handle, age. */
static void
check_leak_line (const ChildOutput * output, const char *instance_name, const char *type_name)
{
  char *handle = leaked_handle_text (output, instance_name);
  gchar *quoted = g_strdup_printf ("'%s'", instance_name);
  CHECK_CHILD (output, count_lines_containing (output, handle, NULL) == 1);
  const char *line = line_containing (output, handle, NULL);
  CHECK_CHILD (output, strstr (line, "leak") != NULL);
  CHECK_CHILD (output, strstr (line, quoted) != NULL);
  CHECK_CHILD (output, strstr (line, type_name) != NULL);
  /* Its age: "alive N ms" (at least the 60 ms the child waited). */
  const char *alive = strstr (line, "alive ");
  CHECK_CHILD (output, alive != NULL);
  const unsigned long long age = g_ascii_strtoull (alive + 6, NULL, 10);
  CHECK_CHILD (output, age >= 50 || strstr (alive, " s") != NULL);
  g_free (quoted);
  g_free (handle);
}

/* The lines after the leak line of `instance_name` up to the next leak
 * line: its backtrace, if any. */
static gboolean
has_backtrace (const ChildOutput * output, const char *instance_name)
{
  gchar *quoted = g_strdup_printf ("'%s'", instance_name);
  int i = 0;
  while (output->err_lines[i] != NULL && strstr (output->err_lines[i], quoted) == NULL)
    i++;
  g_free (quoted);
  CHECK_CHILD (output, output->err_lines[i] != NULL);
  gboolean registered_at = FALSE, frames = FALSE;
  for (i++; output->err_lines[i] != NULL && strstr (output->err_lines[i], "leak:") == NULL; i++) {
    if (strstr (output->err_lines[i], "registered at"))
      registered_at = TRUE;
    /* A frame of the registration: the library's entry point or this
     * program's function that called it. */
    if (registered_at && (strstr (output->err_lines[i], "gcs_register")
            || strstr (output->err_lines[i], "child_register")))
      frames = TRUE;
  }
  if (registered_at && !frames) {
    dump (output);
    fprintf (stderr, "a backtrace without the registering frames\n");
    CHECK (FALSE);
  }
  return registered_at;
}

static void
check_leak_report (const ChildOutput * output, gboolean backtrace_one, gboolean backtrace_two)
{
  /* Exactly the two leaked handles, with their names and ages. */
  CHECK_CHILD (output, count_lines_containing (output, "leak:", NULL) == 2);
  CHECK_CHILD (output, count_lines_containing (output, "2 live handles", NULL) == 1);
  check_leak_line (output, "leak-one", "GstFakeSink");
  check_leak_line (output, "leak-two", "GstIdentity");
  /* Released ones and other managers' handles are not listed. */
  CHECK_CHILD (output, strstr (output->err, "released-one") == NULL);
  CHECK_CHILD (output, strstr (output->err, "released-two") == NULL);
  CHECK_CHILD (output, strstr (output->err, "other-manager-leak") == NULL);
  CHECK_CHILD (output, has_backtrace (output, "leak-one") == backtrace_one);
  CHECK_CHILD (output, has_backtrace (output, "leak-two") == backtrace_two);
}

static void
test_leak_report (void)
{
  ChildOutput output;
  const char *leaks[] = { "GCS_LEAKS=1", NULL };
  run_child ("leaks", leaks, &output);
  check_leak_report (&output, FALSE, FALSE);
  child_output_clear (&output);

  /* With GCS_DEBUG=stacks every registration has its backtrace. */
  const char *stacks[] = { "GCS_LEAKS=1", "GCS_DEBUG=stacks", NULL };
  run_child ("leaks", stacks, &output);
  check_leak_report (&output, TRUE, TRUE);
  child_output_clear (&output);

  /* With GCS_REGISTER_CAPTURE_STACK, only the flagged registration. */
  run_child ("leaks-capture-stack", leaks, &output);
  check_leak_report (&output, TRUE, FALSE);
  child_output_clear (&output);

  /* Closing the default manager reports too (once, not again at shutdown). */
  run_child ("leaks-close-default", leaks, &output);
  check_leak_report (&output, FALSE, FALSE);
  child_output_clear (&output);

  /* No GCS_LEAKS: no report. */
  const char *none[] = { NULL };
  run_child ("leaks", none, &output);
  CHECK_CHILD (&output, strstr (output.err, "leak-one") == NULL);
  CHECK_CHILD (&output, count_lines_containing (&output, "leak:", NULL) == 0);
  child_output_clear (&output);

  /* Nothing live: nothing listed. */
  run_child ("no-leaks", leaks, &output);
  CHECK_CHILD (&output, count_lines_containing (&output, "leak:", NULL) == 0);
  CHECK_CHILD (&output, strstr (output.err, "released") == NULL);
  child_output_clear (&output);
}

static void
test_state_log (void)
{
  /* GStreamer not initialised: stderr. */
  ChildOutput output;
  const char *state[] = { "GCS_DEBUG=state,finalizers", NULL };
  run_child ("log-state", state, &output);
  CHECK_CHILD (&output, count_lines_containing (&output, "registered", "LoggedType") >= 1);
  CHECK_CHILD (&output, count_lines_containing (&output, "registered", "logged-instance") >= 1);
  CHECK_CHILD (&output, count_lines_containing (&output, "invalidated", NULL) >= 1);
  CHECK_CHILD (&output, count_lines_containing (&output, "released", NULL) >= 2);
  CHECK_CHILD (&output, count_lines_containing (&output, "finalizer", NULL) >= 1);
  child_output_clear (&output);

  /* Only state: no finalizer lines. */
  const char *state_only[] = { "GCS_DEBUG=state", NULL };
  run_child ("log-state", state_only, &output);
  CHECK_CHILD (&output, count_lines_containing (&output, "registered", NULL) >= 1);
  CHECK_CHILD (&output, count_lines_containing (&output, "finalizer", NULL) == 0);
  child_output_clear (&output);

  /* Nothing asked: nothing logged. */
  const char *none[] = { NULL };
  run_child ("log-state", none, &output);
  CHECK_CHILD (&output, count_lines_containing (&output, "registered", NULL) == 0);
  CHECK_CHILD (&output, count_lines_containing (&output, "released", NULL) == 0);
  child_output_clear (&output);

  /* GcsConfig.log_state_changes on a manager of its own. */
  run_child ("log-config", none, &output);
  CHECK_CHILD (&output, count_lines_containing (&output, "registered", "ConfigLogged") >= 1);
  CHECK_CHILD (&output, count_lines_containing (&output, "released", NULL) >= 1);
  child_output_clear (&output);

  /* GStreamer initialised, GST_DEBUG=gcsafety:6: through the debug
   * category "gcsafety". */
  const char *gst_debug[] = { "GCS_DEBUG=state,finalizers", "GST_DEBUG=gcsafety:6", NULL };
  run_child ("log-state-gst", gst_debug, &output);
  const char *line = line_containing (&output, "registered", "LoggedType");
  CHECK_CHILD (&output, line != NULL);
  CHECK_CHILD (&output, strstr (line, "gcsafety") != NULL);
  CHECK_CHILD (&output, strstr (line, "INFO") != NULL);      /* registrations at INFO */
  CHECK_CHILD (&output, count_lines_containing (&output, "gcsafety", "released") >= 2);
  CHECK_CHILD (&output, count_lines_containing (&output, "gcsafety", "finalizer") >= 1);
  child_output_clear (&output);

  /* GST_DEBUG=gcsafety:6 alone: the category is the switch. */
  const char *gst_alone[] = { "GST_DEBUG=gcsafety:6", NULL };
  run_child ("log-state-gst", gst_alone, &output);
  line = line_containing (&output, "registered", "LoggedType");
  CHECK_CHILD (&output, line != NULL && strstr (line, "INFO") != NULL);
  CHECK_CHILD (&output, strstr (line, "src/registration.rs") != NULL);   /* GStreamer's format */
  CHECK_CHILD (&output, count_lines_containing (&output, "gcsafety", "released") >= 2);
  CHECK_CHILD (&output, count_lines_containing (&output, "gcsafety", "finalizer") >= 1);
  child_output_clear (&output);

  /* GStreamer initialised, the category not enabled, GCS_DEBUG asking:
   * GCS_DEBUG still works, on stderr in gcsafety's own format. */
  const char *gst_quiet[] = { "GCS_DEBUG=state,finalizers", NULL };
  run_child ("log-state-gst", gst_quiet, &output);
  line = line_containing (&output, "registered", "LoggedType");
  CHECK_CHILD (&output, line != NULL && g_str_has_prefix (line, "gcsafety INFO: "));
  CHECK_CHILD (&output, count_lines_containing (&output, "src/registration.rs", NULL) == 0);
  child_output_clear (&output);

  /* GStreamer initialised, neither asking: nothing. */
  run_child ("log-state-gst", none, &output);
  CHECK_CHILD (&output, count_lines_containing (&output, "registered", NULL) == 0);
  CHECK_CHILD (&output, count_lines_containing (&output, "released", NULL) == 0);
  child_output_clear (&output);
}

int
main (int argc, char **argv)
{
  if (argc == 3 && strcmp (argv[1], "--child") == 0) {
    int status = child_main (argv[2], &argc, &argv);
    fflush (stdout);
    return status;
  }
  gst_init (&argc, &argv);
  test_watchdog (60);
  /* Under valgrind /proc/self/exe is valgrind itself; readlink is
   * redirected to the program, and argv[0] names it too. */
  self_path = g_file_read_link ("/proc/self/exe", NULL);
  if (self_path == NULL || strstr (self_path, "valgrind") || strstr (self_path, "memcheck")) {
    g_free (self_path);
    self_path = g_canonicalize_filename (argv[0], NULL);
  }

  RUN_TEST (test_leak_report);
  RUN_TEST (test_state_log);

  g_free (self_path);
  TEST_PASSED ();
}

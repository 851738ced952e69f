/* Configuration and errors: gcs_config_init's defaults, gcs_configure's
 * checks (before the default manager's first use only), calls that take
 * only a handle not starting the default manager, invalidate_on_callback_error,
 * gcs_last_error (thread-local, "" in a fresh thread, set only by failing
 * calls) and gcs_result_to_string.
 *
 * The default manager is process-global: this program configures it before
 * anything starts it, so the order of main() matters. */
#include "common.h"

typedef struct
{
  gint calls;
  int status;
  gboolean alive_inside;
} Probe;

static int
probe (void *object, void *user_data)
{
  Probe *p = user_data;
  p->calls++;
  p->alive_inside = OBJECT_REFCOUNT (object) >= 1;
  return p->status;
}

static void
dummy_pressure (uint64_t tracked_bytes, void *user_data)
{
  (void) tracked_bytes;
  (void) user_data;
}

/* ---------------------------------------------------------------------- */

static void
test_last_error_empty_at_start (void)
{
  const char *message = gcs_last_error ();
  CHECK (message != NULL);
  CHECK (message[0] == '\0');
}

static void
test_result_to_string (void)
{
  const GcsResult known[] = { GCS_OK, GCS_ERROR_INVALID_HANDLE, GCS_ERROR_RELEASED,
    GCS_ERROR_INVALIDATED, GCS_ERROR_NULL_ARGUMENT, GCS_ERROR_WRONG_TYPE,
    GCS_ERROR_CALLBACK_FAILED, GCS_ERROR_PANIC, GCS_ERROR_TABLE_FULL, GCS_ERROR_SHUT_DOWN,
    GCS_ERROR_TIMEOUT, GCS_ERROR_WOULD_DEADLOCK, GCS_ERROR_NOT_ACCESSING,
    GCS_ERROR_INVALID_ARGUMENT, GCS_ERROR_ALREADY_INITIALIZED
  };
  /* The fixed values of the contract. */
  CHECK (GCS_OK == 0 && GCS_ERROR_INVALID_HANDLE == -1 && GCS_ERROR_RELEASED == -2);
  CHECK (GCS_ERROR_INVALIDATED == -3 && GCS_ERROR_NULL_ARGUMENT == -4);
  CHECK (GCS_ERROR_WRONG_TYPE == -5 && GCS_ERROR_CALLBACK_FAILED == -6);
  CHECK (GCS_ERROR_PANIC == -7 && GCS_ERROR_TABLE_FULL == -8 && GCS_ERROR_SHUT_DOWN == -9);
  CHECK (GCS_ERROR_TIMEOUT == -10 && GCS_ERROR_WOULD_DEADLOCK == -11);
  CHECK (GCS_ERROR_NOT_ACCESSING == -12 && GCS_ERROR_INVALID_ARGUMENT == -13);
  CHECK (GCS_ERROR_ALREADY_INITIALIZED == -14);
  CHECK (sizeof (GcsResult) == 4 && sizeof (GcsObjectKind) == 4 && sizeof (GcsHandleState) == 4);

  const char *unknown = gcs_result_to_string (42);
  CHECK (unknown != NULL && strcmp (unknown, "unknown GcsResult value") == 0);
  for (size_t i = 0; i < G_N_ELEMENTS (known); i++) {
    const char *text = gcs_result_to_string (known[i]);
    CHECK (text != NULL && text[0] != '\0');
    CHECK (strcmp (text, unknown) != 0);
    for (size_t j = 0; j < i; j++)
      CHECK (strcmp (text, gcs_result_to_string (known[j])) != 0);
    /* Static: the same pointer every time. */
    CHECK (gcs_result_to_string (known[i]) == text);
  }
  const GcsResult unknown_values[] = { 42, -99, -15, 1, 7, INT32_MIN, INT32_MAX };
  for (size_t i = 0; i < G_N_ELEMENTS (unknown_values); i++) {
    const char *text = gcs_result_to_string (unknown_values[i]);
    CHECK (text != NULL);
    CHECK (strcmp (text, "unknown GcsResult value") == 0);
  }
  /* None of this is a failing call. */
  CHECK (gcs_last_error ()[0] == '\0');
}

static void
test_config_init_defaults (void)
{
  GcsConfig config;
  memset (&config, 0xab, sizeof config);
  gcs_config_init (&config);
  CHECK (config.struct_size == sizeof (GcsConfig));
  CHECK (config.cleanup_interval_ms == 30000);
  CHECK (config.state_retention_ms == 300000);
  CHECK (config.finalizer_timeout_ms == 5000);
  CHECK (config.max_finalizer_retries == 3);
  CHECK (config.enable_state_checking == true);
  CHECK (config.enable_finalizer_safety == true);
  CHECK (config.invalidate_on_callback_error == false);
  CHECK (config.log_state_changes == false);
  CHECK (config.log_finalizers == false);
  CHECK (config.release_context == NULL);
  CHECK (config.memory_limit_bytes == 0);
  CHECK (config.memory_pressure == NULL);
  CHECK (config.memory_pressure_data == NULL);

  gcs_config_init (NULL);       /* does nothing, and does not crash */
  CHECK (gcs_last_error ()[0] == '\0');
}

/* Calls that only take a handle never start the default manager: after
 * all of them, gcs_configure is still accepted (checked by the caller). */
static int
never_called (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  abort ();
}

static void
test_handle_calls_do_not_start_the_manager (void)
{
  const GcsHandle values[] = { GCS_INVALID_HANDLE, 1, UINT64_MAX, 0x8000000000000000ull,
    0x0123456789abcdefull
  };
  for (size_t i = 0; i < G_N_ELEMENTS (values); i++) {
    GcsHandle v = values[i];
    CHECK (!gcs_is_valid (v));
    CHECK (gcs_safe_access (v, never_called, NULL) != GCS_OK);
    void *object = NULL;
    CHECK (gcs_access_begin (v, &object) != GCS_OK);
    CHECK (object == NULL);
    CHECK (gcs_access_end (v) != GCS_OK);
    CHECK (gcs_invalidate (v) != GCS_OK);
    CHECK (gcs_unregister (v) != GCS_OK);
    CHECK (gcs_unregister_sync (v, 0) != GCS_OK);
    GcsHandleInfo info;
    info.struct_size = sizeof info;
    CHECK (gcs_get_info (v, &info) != GCS_OK);
  }
}

static void
check_configure_refused (const GcsConfig * config, GcsResult expected, int line)
{
  GcsResult result = gcs_configure (config);
  if (result != expected || gcs_last_error ()[0] == '\0') {
    fprintf (stderr, "%s:%d: gcs_configure returned %d (%s), expected %d (%s)\n  last error: \"%s\"\n",
        __FILE__, line, (int) result, gcs_result_to_string (result), (int) expected,
        gcs_result_to_string (expected), gcs_last_error ());
    exit (1);
  }
}

#define CHECK_CONFIGURE_REFUSED(config, expected) check_configure_refused ((config), (expected), __LINE__)

static void
test_configure_checks (void)
{
  CHECK_CONFIGURE_REFUSED (NULL, GCS_ERROR_NULL_ARGUMENT);

  GcsConfig config;
  const uint32_t small_sizes[] = { 0, 4, (uint32_t) sizeof (GcsConfig) - 1 };
  for (size_t i = 0; i < G_N_ELEMENTS (small_sizes); i++) {
    gcs_config_init (&config);
    config.struct_size = small_sizes[i];
    CHECK_CONFIGURE_REFUSED (&config, GCS_ERROR_INVALID_ARGUMENT);
  }

  gcs_config_init (&config);
  config.cleanup_interval_ms = 0;
  CHECK_CONFIGURE_REFUSED (&config, GCS_ERROR_INVALID_ARGUMENT);

  gcs_config_init (&config);
  config.finalizer_timeout_ms = 0;
  CHECK_CONFIGURE_REFUSED (&config, GCS_ERROR_INVALID_ARGUMENT);

  gcs_config_init (&config);
  config.max_finalizer_retries = 1001;
  CHECK_CONFIGURE_REFUSED (&config, GCS_ERROR_INVALID_ARGUMENT);

  /* memory_pressure without a memory limit: refused. */
  gcs_config_init (&config);
  config.memory_pressure = dummy_pressure;
  CHECK_CONFIGURE_REFUSED (&config, GCS_ERROR_INVALID_ARGUMENT);
  CHECK_LAST_ERROR_CONTAINS ("memory_limit_bytes");
  config.memory_pressure_data = &config;
  CHECK_CONFIGURE_REFUSED (&config, GCS_ERROR_INVALID_ARGUMENT);
}

/* gcs_manager_new checks a config like gcs_configure: the refused ones are
 * refused with the same code and no manager is made; the others (every
 * field at a valid value) are accepted. */
static void
check_manager_new (const GcsConfig * config, GcsResult expected, int line)
{
  GcsManager *manager = (GcsManager *) (uintptr_t) 0x5e17e1u;
  GcsResult result = gcs_manager_new (config, &manager);
  if (result != expected || (expected != GCS_OK && manager != (GcsManager *) (uintptr_t) 0x5e17e1u)
      || (expected == GCS_OK && (manager == NULL || manager == (GcsManager *) (uintptr_t) 0x5e17e1u))) {
    fprintf (stderr, "%s:%d: gcs_manager_new returned %d (%s), expected %d (%s)\n  last error: \"%s\"\n",
        __FILE__, line, (int) result, gcs_result_to_string (result), (int) expected,
        gcs_result_to_string (expected), gcs_last_error ());
    exit (1);
  }
  if (expected == GCS_OK)
    gcs_manager_free (manager);
}

#define CHECK_MANAGER_NEW(config, expected) check_manager_new ((config), (expected), __LINE__)

static void
test_accepted_configs (void)
{
  GcsConfig config;

  /* The logging flags. */
  gcs_config_init (&config);
  config.log_state_changes = true;
  CHECK_MANAGER_NEW (&config, GCS_OK);
  gcs_config_init (&config);
  config.log_finalizers = true;
  CHECK_MANAGER_NEW (&config, GCS_OK);

  /* A release context: a real GMainContext (the manager takes a reference
   * of its own: ours can go before the manager does). */
  GMainContext *context = g_main_context_new ();
  gcs_config_init (&config);
  config.release_context = context;
  GcsManager *manager = NULL;
  CHECK_OK (gcs_manager_new (&config, &manager));
  g_main_context_unref (context);
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  gpointer alive;
  watch_finalize (element, &alive);
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.manager = manager;
  registration.kind = GCS_KIND_GST_OBJECT;
  registration.object = element;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  /* This thread does not own the context: released when it is iterated. */
  CHECK_OK (gcs_unregister (handle));
  CHECK (alive != NULL);
  while (g_main_context_iteration (context, FALSE))
    ;
  CHECK (alive == NULL);
  gcs_manager_free (manager);

  /* A memory limit, alone or with its callback. */
  gcs_config_init (&config);
  config.memory_limit_bytes = 1 << 20;
  CHECK_MANAGER_NEW (&config, GCS_OK);
  config.memory_pressure = dummy_pressure;
  config.memory_pressure_data = &config;
  CHECK_MANAGER_NEW (&config, GCS_OK);

  /* Every field set at once. */
  context = g_main_context_new ();
  gcs_config_init (&config);
  config.cleanup_interval_ms = 1;
  config.state_retention_ms = 0;
  config.finalizer_timeout_ms = 1;
  config.max_finalizer_retries = 1000;
  config.enable_state_checking = false;
  config.enable_finalizer_safety = false;
  config.invalidate_on_callback_error = true;
  config.log_state_changes = true;
  config.log_finalizers = true;
  config.release_context = context;
  config.memory_limit_bytes = UINT64_MAX;
  config.memory_pressure = dummy_pressure;
  CHECK_MANAGER_NEW (&config, GCS_OK);
  g_main_context_unref (context);

  /* The same refusals as gcs_configure. */
  gcs_config_init (&config);
  config.memory_pressure = dummy_pressure;
  CHECK_MANAGER_NEW (&config, GCS_ERROR_INVALID_ARGUMENT);
  gcs_config_init (&config);
  config.cleanup_interval_ms = 0;
  CHECK_MANAGER_NEW (&config, GCS_ERROR_INVALID_ARGUMENT);
  gcs_config_init (&config);
  config.finalizer_timeout_ms = 0;
  CHECK_MANAGER_NEW (&config, GCS_ERROR_INVALID_ARGUMENT);
  gcs_config_init (&config);
  config.max_finalizer_retries = 1001;
  CHECK_MANAGER_NEW (&config, GCS_ERROR_INVALID_ARGUMENT);
  gcs_config_init (&config);
  config.struct_size = sizeof config - 1;
  CHECK_MANAGER_NEW (&config, GCS_ERROR_INVALID_ARGUMENT);

  /* gcs_configure accepts them too (before the default manager starts;
   * each replaces the one before, and the last one is made in
   * test_configure_then_first_use). */
  gcs_config_init (&config);
  config.log_state_changes = true;
  config.log_finalizers = true;
  CHECK_OK (gcs_configure (&config));
  context = g_main_context_new ();
  gcs_config_init (&config);
  config.release_context = context;
  CHECK_OK (gcs_configure (&config));
  g_main_context_unref (context);
  gcs_config_init (&config);
  config.memory_limit_bytes = 4096;
  config.memory_pressure = dummy_pressure;
  CHECK_OK (gcs_configure (&config));
  gcs_config_init (&config);
  config.memory_limit_bytes = 4096;
  CHECK_OK (gcs_configure (&config));
}

static void
test_last_error_unchanged_by_successful_calls (void)
{
  /* A failing call sets it... */
  CHECK_RESULT (gcs_configure (NULL), GCS_ERROR_NULL_ARGUMENT);
  gchar *saved = g_strdup (gcs_last_error ());
  CHECK (saved[0] != '\0');
  /* ...and calls that succeed (or return no GcsResult) leave it alone. */
  GcsConfig config;
  gcs_config_init (&config);
  (void) gcs_result_to_string (GCS_ERROR_TIMEOUT);
  (void) gcs_is_valid (12345);
  (void) gcs_abi_version ();
  (void) gcs_version_string ();
  CHECK (strcmp (gcs_last_error (), saved) == 0);
  g_free (saved);
}

typedef struct
{
  gboolean empty_at_start;
  GcsResult result;
  gchar *message;
} FreshThread;

static void *
fresh_thread (void *data)
{
  FreshThread *f = data;
  f->empty_at_start = gcs_last_error ()[0] == '\0';
  f->result = gcs_unregister (GCS_INVALID_HANDLE);
  f->message = g_strdup (gcs_last_error ());
  return NULL;
}

/* gcs_last_error is per thread: "" in a fresh thread, and a failure there
 * does not change this thread's. */
static void
test_last_error_is_thread_local (void)
{
  CHECK_RESULT (gcs_access_end (GCS_INVALID_HANDLE), GCS_ERROR_INVALID_HANDLE);
  gchar *mine = g_strdup (gcs_last_error ());
  CHECK (mine[0] != '\0');

  FreshThread f = { FALSE, GCS_OK, NULL };
  pthread_t thread;
  SPAWN (&thread, fresh_thread, &f);
  JOIN (thread);
  CHECK (f.empty_at_start);
  CHECK_RESULT (f.result, GCS_ERROR_INVALID_HANDLE);
  CHECK (f.message != NULL && f.message[0] != '\0');
  CHECK (strcmp (gcs_last_error (), mine) == 0);
  g_free (f.message);
  g_free (mine);
}

/* Configured before first use: invalidate_on_callback_error. */
static void
test_configure_then_first_use (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.invalidate_on_callback_error = true;
  CHECK_OK (gcs_configure (&config));

  /* A refused configure changes nothing (the setting above stays). */
  GcsConfig bad;
  gcs_config_init (&bad);
  bad.cleanup_interval_ms = 0;
  bad.invalidate_on_callback_error = false;
  CHECK_RESULT (gcs_configure (&bad), GCS_ERROR_INVALID_ARGUMENT);

  /* First use: the default manager starts with that configuration. */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  gpointer alive;
  watch_finalize (element, &alive);
  GcsHandle handle;
  CHECK_OK (gcs_register (element, NULL, &handle));

  /* Too late now. */
  CHECK_RESULT (gcs_configure (&config), GCS_ERROR_ALREADY_INITIALIZED);
  CHECK (gcs_last_error ()[0] != '\0');
  gcs_config_init (&config);
  CHECK_RESULT (gcs_configure (&config), GCS_ERROR_ALREADY_INITIALIZED);
  gchar *saved = g_strdup (gcs_last_error ());

  /* A successful callback changes nothing... */
  Probe p = { 0, 0, FALSE };
  CHECK_OK (gcs_safe_access (handle, probe, &p));
  CHECK (gcs_is_valid (handle));
  void *object;
  CHECK_OK (gcs_access_begin (handle, &object));
  CHECK_OK (gcs_access_end (handle));
  CHECK (gcs_is_valid (handle));
  GcsHandleInfo info;
  info.struct_size = sizeof info;
  CHECK_OK (gcs_get_info (handle, &info));
  GstBuffer *buffer = gst_buffer_new ();
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_MINI_OBJECT;
  registration.object = buffer;
  GcsHandle other;
  CHECK_OK (gcs_register_full (&registration, &other));
  CHECK_OK (gcs_unregister_sync (other, HANG_MS));
  gst_buffer_unref (buffer);
  /* ...and none of these successful calls touched gcs_last_error. */
  CHECK (strcmp (gcs_last_error (), saved) == 0);
  g_free (saved);

  /* ...a failing one invalidates the handle. */
  p.status = 3;
  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_CALLBACK_FAILED);
  CHECK (p.calls == 2 && p.alive_inside);
  CHECK (!gcs_is_valid (handle));
  p.status = 0;
  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_INVALIDATED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (p.calls == 2);
  CHECK_RESULT (gcs_access_begin (handle, &object), GCS_ERROR_INVALIDATED);
  CHECK_OK (gcs_get_info (handle, &info));
  CHECK (info.state == GCS_STATE_INVALIDATED);
  CHECK (alive != NULL);        /* still registered */
  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);

  /* Also when the failing access is nested in another one. */
  element = gst_element_factory_make ("identity", NULL);
  watch_finalize (element, &alive);
  CHECK_OK (gcs_register (element, NULL, &handle));
  CHECK_OK (gcs_access_begin (handle, &object));
  p.status = -1;
  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_CALLBACK_FAILED);
  CHECK (!gcs_is_valid (handle));
  CHECK (alive != NULL);
  CHECK_OK (gcs_access_end (handle));
  CHECK (alive != NULL);
  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  /* Nothing here may start the default manager before
   * test_configure_then_first_use. */
  test_last_error_empty_at_start ();
  test_result_to_string ();
  test_config_init_defaults ();
  test_handle_calls_do_not_start_the_manager ();
  test_configure_checks ();
  test_accepted_configs ();
  test_last_error_unchanged_by_successful_calls ();
  test_last_error_is_thread_local ();
  test_configure_then_first_use ();

  TEST_PASSED ();
}

/* Statistics (GcsStats, GcsTypeStats, GcsHandleInfo, Prometheus text):
 * every GcsStats field moves as a scripted sequence says; struct_size
 * checks; exact and consistent counts after a multi-thread churn;
 * gcs_foreach_type_stats per type name; gcs_foreach_live lists exactly the
 * unreleased handles; gcs_stats_prometheus has snprintf semantics and
 * produces text that a strict parser of the exposition format accepts,
 * with escaped labels and values equal to the statistics. */
#define _GNU_SOURCE
#include "common.h"

#define SENTINEL_VALUE 0x5e17e15e17e1ull

static int
ok_callback (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  return 0;
}

static int
failing_callback (void *object, void *user_data)
{
  (void) object;
  (void) user_data;
  return 1;
}

static int
cleanup_status (void *object, void *user_data)
{
  (void) object;
  return GPOINTER_TO_INT (user_data);
}

static GcsHandle
register_element (GcsManager * manager, const char *factory, const char *type_name,
    const char *instance_name, uint64_t size_bytes, gpointer * alive)
{
  GstElement *element = gst_element_factory_make (factory, NULL);
  CHECK (element != NULL);
  if (alive)
    watch_finalize (element, alive);
  GcsRegistration registration = registration_for (manager, GCS_KIND_GST_OBJECT, element);
  registration.type_name = type_name;
  registration.instance_name = instance_name;
  registration.size_bytes = size_bytes;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  return handle;
}

/* Compare every field, reporting the first difference. */
#define CHECK_STATS(actual, expected) check_stats ((actual), (expected), __LINE__)

static void
check_stats (GcsStats a, GcsStats e, int line)
{
#define FIELD(name)                                                              \
  if (a.name != e.name) {                                                        \
    fprintf (stderr, "%s:%d: stats." #name " is %llu, expected %llu\n", __FILE__, line,  \
        (unsigned long long) a.name, (unsigned long long) e.name);               \
    exit (1);                                                                    \
  }
  FIELD (struct_size) FIELD (total_registered) FIELD (active) FIELD (released)
      FIELD (invalidated) FIELD (access_ok) FIELD (access_rejected) FIELD (callback_failures)
      FIELD (panics_recovered) FIELD (cleanups_run) FIELD (cleanup_failures)
      FIELD (finalizers_run) FIELD (finalizer_failures) FIELD (finalizer_timeouts)
      FIELD (tracked_bytes) FIELD (peak_active)
#undef FIELD
}

/* ---------------------------------------------------------------------- */

static void
test_scripted_sequence (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.enable_finalizer_safety = false;       /* finalizers counted at once */
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (&config, &manager));
  GcsStats e;
  memset (&e, 0, sizeof e);
  e.struct_size = sizeof (GcsStats);
  CHECK_STATS (stats_of (manager), e);

  /* Registrations. */
  gpointer alive[6];
  GcsHandle h1 = register_element (manager, "fakesink", "Alpha", "a1", 100, &alive[0]);
  GcsHandle h2 = register_element (manager, "fakesink", "Alpha", "a2", 200, &alive[1]);
  GcsHandle h3 = register_element (manager, "identity", "Beta", "b1", 300, &alive[2]);
  e.total_registered = 3;
  e.active = 3;
  e.tracked_bytes = 600;
  e.peak_active = 3;
  CHECK_STATS (stats_of (manager), e);

  /* Accesses that ran, with a callback or begin/end. */
  for (int i = 0; i < 5; i++)
    CHECK_OK (gcs_safe_access (h1, ok_callback, NULL));
  void *object;
  CHECK_OK (gcs_access_begin (h3, &object));
  CHECK_OK (gcs_access_end (h3));
  e.access_ok = 6;
  CHECK_STATS (stats_of (manager), e);

  /* A failing callback ran too (and is counted as a failure). */
  CHECK_RESULT (gcs_safe_access (h2, failing_callback, NULL), GCS_ERROR_CALLBACK_FAILED);
  e.access_ok = 7;
  e.callback_failures = 1;
  CHECK_STATS (stats_of (manager), e);
  CHECK (gcs_is_valid (h2));    /* invalidate_on_callback_error is off */

  /* Invalidation, then rejected accesses. */
  CHECK_OK (gcs_invalidate (h3));
  e.invalidated = 1;
  CHECK_RESULT (gcs_safe_access (h3, ok_callback, NULL), GCS_ERROR_INVALIDATED);
  CHECK_RESULT (gcs_access_begin (h3, &object), GCS_ERROR_INVALIDATED);
  e.access_rejected = 2;
  CHECK_STATS (stats_of (manager), e);
  /* gcs_access_end without a begin, is_valid and get_info count nothing. */
  CHECK_RESULT (gcs_access_end (h1), GCS_ERROR_NOT_ACCESSING);
  (void) gcs_is_valid (h1);
  (void) handle_info_of (h1);
  CHECK_STATS (stats_of (manager), e);
  /* A value that names no registration is not counted on this manager. */
  CHECK (gcs_safe_access (0x0123456789abcdefull, ok_callback, NULL) != GCS_OK);
  CHECK_STATS (stats_of (manager), e);

  /* Cleanups, one failing; release. */
  CHECK_OK (gcs_add_cleanup (h1, cleanup_status, GINT_TO_POINTER (0)));
  CHECK_OK (gcs_add_cleanup (h1, cleanup_status, GINT_TO_POINTER (7)));
  CHECK_OK (gcs_set_finalizer (h1, cleanup_status, GINT_TO_POINTER (0)));
  CHECK_OK (gcs_unregister (h1));
  CHECK (alive[0] == NULL);
  e.released = 1;
  e.active = 2;
  e.tracked_bytes = 500;
  e.cleanups_run = 2;
  e.cleanup_failures = 1;
  e.finalizers_run = 1;
  CHECK_STATS (stats_of (manager), e);
  CHECK_RESULT (gcs_safe_access (h1, ok_callback, NULL), GCS_ERROR_RELEASED);
  CHECK_RESULT (gcs_unregister (h1), GCS_ERROR_RELEASED);
  e.access_rejected = 3;
  CHECK_STATS (stats_of (manager), e);

  /* A finalizer failing every attempt (inline: 1 + 3 attempts). */
  CHECK_OK (gcs_set_finalizer (h2, cleanup_status, GINT_TO_POINTER (1)));
  CHECK_OK (gcs_unregister (h2));
  e.released = 2;
  e.active = 1;
  e.tracked_bytes = 300;
  e.finalizers_run = 2;
  e.finalizer_failures = 1;
  CHECK_STATS (stats_of (manager), e);

  /* The invalidated one: released at unregister; its finalizer skipped. */
  CHECK_OK (gcs_set_finalizer (h3, cleanup_status, GINT_TO_POINTER (0)));
  CHECK_OK (gcs_unregister (h3));
  e.released = 3;
  e.active = 0;
  e.tracked_bytes = 0;
  CHECK_STATS (stats_of (manager), e);

  /* peak_active: the most at once. */
  GcsHandle more[4];
  for (int i = 0; i < 2; i++)
    more[i] = register_element (manager, "queue", "Gamma", NULL, 0, NULL);
  e.total_registered = 5;
  e.active = 2;
  CHECK_STATS (stats_of (manager), e);
  for (int i = 2; i < 4; i++)
    more[i] = register_element (manager, "queue", "Gamma", NULL, 10, NULL);
  e.total_registered = 7;
  e.active = 4;
  e.peak_active = 4;
  e.tracked_bytes = 20;
  CHECK_STATS (stats_of (manager), e);
  /* A release pending (access in flight) is still active. */
  CHECK_OK (gcs_access_begin (more[3], &object));
  CHECK_OK (gcs_unregister (more[3]));
  e.access_ok = 8;
  CHECK_STATS (stats_of (manager), e);
  CHECK_OK (gcs_access_end (more[3]));
  e.active = 3;
  e.released = 4;
  e.tracked_bytes = 10;
  CHECK_STATS (stats_of (manager), e);

  /* A refused registration counts nothing. */
  GcsRegistration bad = registration_for (manager, GCS_KIND_MINI_OBJECT, alive);
  bad.struct_size = 4;
  GcsHandle none;
  CHECK (gcs_register_full (&bad, &none) != GCS_OK);
  CHECK_STATS (stats_of (manager), e);

  /* Close: every registration released, and its accesses rejected. */
  CHECK_OK (gcs_manager_close (manager, HANG_MS));
  e.active = 0;
  e.released = 7;
  e.tracked_bytes = 0;
  CHECK_STATS (stats_of (manager), e);
  CHECK_RESULT (gcs_safe_access (more[0], ok_callback, NULL), GCS_ERROR_SHUT_DOWN);
  e.access_rejected = 4;
  CHECK_STATS (stats_of (manager), e);
  gcs_manager_free (manager);

  /* invalidate_on_callback_error: a failed callback invalidates, counted. */
  config.invalidate_on_callback_error = true;
  CHECK_OK (gcs_manager_new (&config, &manager));
  GcsHandle h = register_element (manager, "fakesink", NULL, NULL, 0, NULL);
  CHECK_RESULT (gcs_safe_access (h, failing_callback, NULL), GCS_ERROR_CALLBACK_FAILED);
  GcsStats s = stats_of (manager);
  CHECK (s.callback_failures == 1 && s.invalidated == 1 && s.access_ok == 1);
  CHECK (s.panics_recovered == 0);
  gcs_manager_free (manager);
}

static void
test_default_manager_counts_unknown_handles (void)
{
  GcsStats before = stats_of (NULL);
  CHECK (gcs_safe_access (0x0123456789abcdefull, ok_callback, NULL) == GCS_ERROR_INVALID_HANDLE);
  void *object;
  CHECK (gcs_access_begin (GCS_INVALID_HANDLE, &object) == GCS_ERROR_INVALID_HANDLE);
  GcsStats after = stats_of (NULL);
  CHECK (after.access_rejected == before.access_rejected + 2);
}

static void
test_struct_size_checks (void)
{
  GcsStats stats;
  const uint32_t small[] = { 0, 4, (uint32_t) sizeof (GcsStats) - 1,
    (uint32_t) offsetof (GcsStats, peak_active)
  };
  for (size_t i = 0; i < G_N_ELEMENTS (small); i++) {
    memset (&stats, 0xab, sizeof stats);
    stats.struct_size = small[i];
    CHECK_RESULT (gcs_get_stats (NULL, &stats), GCS_ERROR_INVALID_ARGUMENT);
    CHECK_LAST_ERROR_CONTAINS ("struct_size");
    /* Written only on success. */
    CHECK (stats.struct_size == small[i] && stats.total_registered == 0xababababababababull);
  }
  CHECK_RESULT (gcs_get_stats (NULL, NULL), GCS_ERROR_NULL_ARGUMENT);

  /* A bigger struct (a later version's caller) is accepted; the rest of it
   * is left alone. */
  struct
  {
    GcsStats v1;
    uint64_t later;
  } bigger;
  memset (&bigger, 0, sizeof bigger);
  bigger.v1.struct_size = sizeof bigger;
  bigger.later = SENTINEL_VALUE;
  CHECK_OK (gcs_get_stats (NULL, &bigger.v1));
  CHECK (bigger.later == SENTINEL_VALUE);
}

/* ---- per type, and the live list ---- */

typedef struct
{
  char *type_name;
  GcsTypeStats stats;
} TypeRow;

typedef struct
{
  TypeRow rows[64];
  int n;
  GcsResult reentrant_result;
} TypeTable;

static void
collect_type (const GcsTypeStats * stats, void *user_data)
{
  TypeTable *table = user_data;
  CHECK (table->n < (int) G_N_ELEMENTS (table->rows));
  CHECK (stats->struct_size >= sizeof (GcsTypeStats));
  CHECK (stats->type_name != NULL);
  table->rows[table->n].type_name = g_strdup (stats->type_name);
  table->rows[table->n].stats = *stats;
  table->n++;
  /* No library lock is held: other calls work from here. */
  GcsStats s;
  s.struct_size = sizeof s;
  table->reentrant_result = gcs_get_stats (NULL, &s);
}

static void
type_table_collect (TypeTable * table, GcsManager * manager)
{
  memset (table, 0, sizeof *table);
  CHECK_OK (gcs_foreach_type_stats (manager, collect_type, table));
}

static void
type_table_clear (TypeTable * table)
{
  for (int i = 0; i < table->n; i++)
    g_free (table->rows[i].type_name);
  table->n = 0;
}

static const GcsTypeStats *
type_row (const TypeTable * table, const char *type_name)
{
  for (int i = 0; i < table->n; i++)
    if (strcmp (table->rows[i].type_name, type_name) == 0)
      return &table->rows[i].stats;
  fprintf (stderr, "type \"%s\" not listed\n", type_name);
  CHECK (FALSE);
  return NULL;
}

#define CHECK_TYPE(table, name, live_, registered_, released_, accesses_, bytes_)   \
  do {                                                                           \
    const GcsTypeStats *row_ = type_row ((table), (name));                       \
    if (row_->live != (live_) || row_->registered != (registered_)               \
        || row_->released != (released_) || row_->accesses != (accesses_)        \
        || row_->tracked_bytes != (bytes_)) {                                    \
      fprintf (stderr, "%s:%d: type %s: live %llu registered %llu released %llu " \
          "accesses %llu bytes %llu\n", __FILE__, __LINE__, (name),              \
          (unsigned long long) row_->live, (unsigned long long) row_->registered, \
          (unsigned long long) row_->released, (unsigned long long) row_->accesses, \
          (unsigned long long) row_->tracked_bytes);                             \
      exit (1);                                                                  \
    }                                                                            \
  } while (0)

typedef struct
{
  GcsHandleInfo infos[64];
  char *type_names[64];
  char *instance_names[64];
  int n;
} LiveList;

static void
collect_live (const GcsHandleInfo * info, void *user_data)
{
  LiveList *list = user_data;
  CHECK (list->n < (int) G_N_ELEMENTS (list->infos));
  CHECK (info->struct_size >= sizeof (GcsHandleInfo));
  list->infos[list->n] = *info;
  list->type_names[list->n] = g_strdup (info->type_name);
  list->instance_names[list->n] = g_strdup (info->instance_name);
  list->n++;
}

static void
live_list_collect (LiveList * list, GcsManager * manager)
{
  memset (list, 0, sizeof *list);
  CHECK_OK (gcs_foreach_live (manager, collect_live, list));
}

static void
live_list_clear (LiveList * list)
{
  for (int i = 0; i < list->n; i++) {
    g_free (list->type_names[i]);
    g_free (list->instance_names[i]);
  }
  list->n = 0;
}

static int
live_index (const LiveList * list, GcsHandle handle)
{
  for (int i = 0; i < list->n; i++)
    if (list->infos[i].handle == handle)
      return i;
  return -1;
}

static void
test_type_stats_and_live_list (void)
{
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (NULL, &manager));
  TypeTable types;
  type_table_collect (&types, manager);
  CHECK (types.n == 0);
  LiveList live;
  live_list_collect (&live, manager);
  CHECK (live.n == 0);

  /* Registered 20 ms apart: the library's clock ticks every 1-4 ms. */
  GcsHandle s1 = register_element (manager, "fakesink", "Sink", "sink-1", 1000, NULL);
  g_usleep (20000);
  GcsHandle s2 = register_element (manager, "fakesink", "Sink", "sink-2", 500, NULL);
  g_usleep (20000);
  GcsHandle q1 = register_element (manager, "queue", "Queue", NULL, 0, NULL);
  g_usleep (20000);
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 4096, NULL);
  GcsRegistration registration = registration_for (manager, GCS_KIND_MINI_OBJECT, buffer);
  registration.size_bytes = 4096;
  registration.instance_name = "frame";
  GcsHandle b1;
  CHECK_OK (gcs_register_full (&registration, &b1));    /* type name: "GstBuffer" */
  gst_buffer_unref (buffer);
  g_usleep (20000);
  GcsHandle s3 = register_element (manager, "fakesink", "Sink", "sink-3", 1, NULL);

  for (int i = 0; i < 3; i++)
    CHECK_OK (gcs_safe_access (s1, ok_callback, NULL));
  CHECK_OK (gcs_safe_access (s2, ok_callback, NULL));
  CHECK_OK (gcs_safe_access (b1, ok_callback, NULL));
  CHECK_OK (gcs_unregister (s3));
  CHECK_OK (gcs_invalidate (q1));
  /* One releasing: an access in flight here. */
  void *object;
  CHECK_OK (gcs_access_begin (s2, &object));
  CHECK_OK (gcs_unregister (s2));

  type_table_collect (&types, manager);
  CHECK (types.n == 3);
  CHECK_OK (types.reentrant_result);
  /* Sorted by name. */
  for (int i = 1; i < types.n; i++)
    CHECK (strcmp (types.rows[i - 1].type_name, types.rows[i].type_name) < 0);
  CHECK_TYPE (&types, "Sink", 2, 3, 1, 5, 1500);
  CHECK_TYPE (&types, "Queue", 1, 1, 0, 0, 0);
  CHECK_TYPE (&types, "GstBuffer", 1, 1, 0, 1, 4096);
  type_table_clear (&types);

  /* Each handle's age is read when the listing reaches it: allow for the
   * time the listing took (long under valgrind on a loaded machine), plus
   * the coarse clock's tick. */
  const uint64_t listing_started = test_now_ms ();
  live_list_collect (&live, manager);
  const uint64_t listing_took = test_now_ms () - listing_started + 10;
  CHECK (live.n == 4);
  CHECK (live_index (&live, s3) < 0);   /* released: not listed */
  const GcsHandle expected_order[] = { s1, s2, q1, b1 };        /* oldest first */
  for (int i = 0; i < 4; i++) {
    if (live.infos[i].handle != expected_order[i]) {
      for (int k = 0; k < live.n; k++)
        fprintf (stderr, "live[%d]: %s '%s' age %llu ms\n", k, live.type_names[k],
            live.instance_names[k] ? live.instance_names[k] : "", (unsigned long long) live.infos[k].age_ms);
    }
    CHECK (live.infos[i].handle == expected_order[i]);
  }
  for (int i = 1; i < live.n; i++)
    CHECK (live.infos[i - 1].age_ms + listing_took >= live.infos[i].age_ms);
  int i = live_index (&live, s1);
  CHECK (live.infos[i].state == GCS_STATE_LIVE && live.infos[i].kind == GCS_KIND_GST_OBJECT);
  CHECK (strcmp (live.type_names[i], "Sink") == 0 && strcmp (live.instance_names[i], "sink-1") == 0);
  CHECK (live.infos[i].size_bytes == 1000 && live.infos[i].accesses_in_flight == 0);
  CHECK (live.infos[i].released_ms_ago == 0);
  i = live_index (&live, s2);
  CHECK (live.infos[i].state == GCS_STATE_RELEASING && live.infos[i].accesses_in_flight == 1);
  CHECK (strcmp (live.instance_names[i], "sink-2") == 0 && live.infos[i].size_bytes == 500);
  i = live_index (&live, q1);
  CHECK (live.infos[i].state == GCS_STATE_INVALIDATED);
  CHECK (strcmp (live.type_names[i], "Queue") == 0 && live.instance_names[i] == NULL);
  i = live_index (&live, b1);
  CHECK (live.infos[i].kind == GCS_KIND_MINI_OBJECT && live.infos[i].size_bytes == 4096);
  CHECK (strcmp (live.type_names[i], "GstBuffer") == 0 && strcmp (live.instance_names[i], "frame") == 0);
  live_list_clear (&live);

  /* The default manager's list does not show this manager's handles. */
  live_list_collect (&live, NULL);
  for (int k = 0; k < 4; k++)
    CHECK (live_index (&live, expected_order[k]) < 0);
  live_list_clear (&live);

  CHECK_OK (gcs_access_end (s2));
  CHECK_OK (gcs_unregister (q1));
  CHECK_OK (gcs_unregister (s1));
  CHECK_OK (gcs_unregister (b1));
  live_list_collect (&live, manager);
  CHECK (live.n == 0);
  type_table_collect (&types, manager);
  CHECK_TYPE (&types, "Sink", 0, 3, 3, 5, 0);
  CHECK_TYPE (&types, "Queue", 0, 1, 1, 0, 0);
  CHECK_TYPE (&types, "GstBuffer", 0, 1, 1, 1, 0);
  type_table_clear (&types);

  CHECK_RESULT (gcs_foreach_type_stats (manager, NULL, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK_RESULT (gcs_foreach_live (manager, NULL, NULL), GCS_ERROR_NULL_ARGUMENT);
  gcs_manager_free (manager);
}

/* ---- a multi-thread churn ---- */

#define CHURN_THREADS 4
static const char *const churn_types[] = { "ChurnA", "ChurnB", "ChurnC", "ChurnD" };

typedef struct
{
  GcsManager *manager;
  int index;
  int rounds;
  uint64_t accesses_ok;
  uint64_t accesses_rejected;
  uint64_t registered;
  uint64_t failures;
  uint64_t per_type_registered[4];
  uint64_t per_type_accesses[4];
  pthread_t thread;
} Churner;

static void *
churn_thread (void *data)
{
  Churner *c = data;
  uint64_t state = 0x9E3779B97F4A7C15ull * (uint64_t) (c->index + 1);
  for (int round = 0; round < c->rounds; round++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const int type = (int) ((state >> 33) % 4);
    void *object;
    GcsObjectKind kind;
    if (round % 16 == 0) {
      object = gst_element_factory_make ("fakesink", NULL);
      kind = GCS_KIND_GST_OBJECT;
    } else {
      object = gst_buffer_new ();
      kind = GCS_KIND_MINI_OBJECT;
    }
    GcsRegistration registration = registration_for (c->manager, kind, object);
    registration.type_name = churn_types[type];
    registration.size_bytes = 16 + (uint64_t) type;
    GcsHandle handle;
    if (gcs_register_full (&registration, &handle) != GCS_OK) {
      c->failures++;
      continue;
    }
    if (kind == GCS_KIND_MINI_OBJECT)
      gst_mini_object_unref (object);
    c->registered++;
    c->per_type_registered[type]++;
    const int accesses = 1 + (int) ((state >> 40) % 3);
    for (int k = 0; k < accesses; k++) {
      if (gcs_safe_access (handle, ok_callback, NULL) == GCS_OK) {
        c->accesses_ok++;
        c->per_type_accesses[type]++;
      } else {
        c->failures++;
      }
    }
    void *begun;
    if (gcs_access_begin (handle, &begun) == GCS_OK) {
      c->accesses_ok++;
      c->per_type_accesses[type]++;
      if (gcs_access_end (handle) != GCS_OK)
        c->failures++;
    } else {
      c->failures++;
    }
    if (gcs_unregister (handle) != GCS_OK)
      c->failures++;
    /* A stale access: rejected, counted. */
    if (round % 4 == 0) {
      if (gcs_safe_access (handle, ok_callback, NULL) == GCS_ERROR_RELEASED)
        c->accesses_rejected++;
      else
        c->failures++;
    }
  }
  return NULL;
}

typedef struct
{
  GcsManager *manager;
  gint stop;
  int snapshots;
  gboolean inconsistent;
  pthread_t thread;
} Reader;

static void
ignore_type (const GcsTypeStats * stats, void *user_data)
{
  (void) stats;
  (void) user_data;
}

static void
ignore_live (const GcsHandleInfo * info, void *user_data)
{
  (void) info;
  (void) user_data;
}

static void *
reader_thread (void *data)
{
  Reader *r = data;
  char buffer[512];
  while (!g_atomic_int_get (&r->stop)) {
    GcsStats s;
    s.struct_size = sizeof s;
    if (gcs_get_stats (r->manager, &s) != GCS_OK || s.active > s.total_registered
        || s.released > s.total_registered)
      r->inconsistent = TRUE;
    if (gcs_foreach_type_stats (r->manager, ignore_type, NULL) != GCS_OK
        || gcs_foreach_live (r->manager, ignore_live, NULL) != GCS_OK)
      r->inconsistent = TRUE;
    if (gcs_stats_prometheus (r->manager, buffer, sizeof buffer) == 0)
      r->inconsistent = TRUE;
    r->snapshots++;
    g_usleep (500);
  }
  return NULL;
}

static void
test_churn (void)
{
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (NULL, &manager));
  const int rounds = test_slow_run ()? 60 : 1500;
  Churner churners[CHURN_THREADS];
  Reader reader;
  memset (&reader, 0, sizeof reader);
  reader.manager = manager;
  SPAWN (&reader.thread, reader_thread, &reader);
  for (int i = 0; i < CHURN_THREADS; i++) {
    memset (&churners[i], 0, sizeof churners[i]);
    churners[i].manager = manager;
    churners[i].index = i;
    churners[i].rounds = rounds;
    SPAWN (&churners[i].thread, churn_thread, &churners[i]);
  }
  uint64_t registered = 0, ok = 0, rejected = 0;
  uint64_t type_registered[4] = { 0 }, type_accesses[4] = { 0 };
  for (int i = 0; i < CHURN_THREADS; i++) {
    JOIN (churners[i].thread);
    CHECK (churners[i].failures == 0);
    registered += churners[i].registered;
    ok += churners[i].accesses_ok;
    rejected += churners[i].accesses_rejected;
    for (int t = 0; t < 4; t++) {
      type_registered[t] += churners[i].per_type_registered[t];
      type_accesses[t] += churners[i].per_type_accesses[t];
    }
  }
  g_atomic_int_set (&reader.stop, 1);
  JOIN (reader.thread);
  CHECK (!reader.inconsistent);
  CHECK (reader.snapshots > 0);

  GcsStats s = stats_of (manager);
  CHECK (s.total_registered == registered);
  CHECK (s.total_registered == (uint64_t) CHURN_THREADS * (uint64_t) rounds);
  CHECK (s.total_registered == s.released + s.active);
  CHECK (s.active == 0);
  CHECK (s.access_ok == ok);
  CHECK (s.access_rejected == rejected);
  CHECK (s.tracked_bytes == 0);
  CHECK (s.peak_active >= 1 && s.peak_active <= CHURN_THREADS);
  CHECK (s.invalidated == 0 && s.callback_failures == 0);

  TypeTable types;
  type_table_collect (&types, manager);
  CHECK (types.n == 4);
  uint64_t sum_registered = 0, sum_accesses = 0;
  for (int t = 0; t < 4; t++) {
    const GcsTypeStats *row = type_row (&types, churn_types[t]);
    CHECK (row->registered == type_registered[t]);
    CHECK (row->released == type_registered[t]);
    CHECK (row->accesses == type_accesses[t]);
    CHECK (row->live == 0 && row->tracked_bytes == 0);
    sum_registered += row->registered;
    sum_accesses += row->accesses;
  }
  CHECK (sum_registered == s.total_registered);
  CHECK (sum_accesses == s.access_ok);
  type_table_clear (&types);
  gcs_manager_free (manager);
}

/* ---- Prometheus text ---- */

typedef struct
{
  char name[128];
  char type[16];
  gboolean has_help;
  gboolean has_type;
} Family;

typedef struct
{
  char name[128];
  char label_type[256];         /* unescaped value of type="..." ("" if none) */
  gboolean has_label;
  unsigned long long value;
} Sample;

typedef struct
{
  Family families[64];
  int n_families;
  Sample samples[256];
  int n_samples;
} Exposition;

static Family *
family (Exposition * e, const char *name, gboolean create)
{
  for (int i = 0; i < e->n_families; i++)
    if (strcmp (e->families[i].name, name) == 0)
      return &e->families[i];
  if (!create)
    return NULL;
  CHECK (e->n_families < (int) G_N_ELEMENTS (e->families));
  Family *f = &e->families[e->n_families++];
  memset (f, 0, sizeof *f);
  g_strlcpy (f->name, name, sizeof f->name);
  return f;
}

static gboolean
metric_name_char (char c, gboolean first)
{
  return g_ascii_isalpha (c) || c == '_' || c == ':' || (!first && g_ascii_isdigit (c));
}

/* Parse the text exposition format strictly enough for what gcsafety
 * writes: HELP/TYPE comments, then samples `name{label="value",...} value`. */
#define PARSE_FAIL(what, line) \
  do { fprintf (stderr, "prometheus: %s in line \"%s\"\n", (what), (line)); CHECK (FALSE); } while (0)

static void
parse_exposition (const char *text, Exposition * e)
{
  memset (e, 0, sizeof *e);
  CHECK (text[0] != '\0');
  CHECK (text[strlen (text) - 1] == '\n');
  gchar **lines = g_strsplit (text, "\n", -1);
  for (int l = 0; lines[l] != NULL; l++) {
    const char *line = lines[l];
    if (line[0] == '\0') {
      if (lines[l + 1] != NULL)
        PARSE_FAIL ("empty line", line);
      continue;
    }
    if (g_str_has_prefix (line, "# HELP ") || g_str_has_prefix (line, "# TYPE ")) {
      const gboolean help = line[2] == 'H';
      const char *p = line + 7;
      char name[128];
      size_t n = 0;
      while (p[n] != '\0' && p[n] != ' ' && n < sizeof name - 1) {
        if (!metric_name_char (p[n], n == 0))
          PARSE_FAIL ("bad metric name", line);
        name[n] = p[n];
        n++;
      }
      name[n] = '\0';
      if (n == 0 || p[n] != ' ' || p[n + 1] == '\0')
        PARSE_FAIL ("HELP/TYPE without text", line);
      Family *f = family (e, name, TRUE);
      if (help) {
        if (f->has_help)
          PARSE_FAIL ("second HELP", line);
        f->has_help = TRUE;
      } else {
        if (f->has_type)
          PARSE_FAIL ("second TYPE", line);
        const char *type = p + n + 1;
        if (strcmp (type, "counter") != 0 && strcmp (type, "gauge") != 0)
          PARSE_FAIL ("unexpected TYPE", line);
        g_strlcpy (f->type, type, sizeof f->type);
        f->has_type = TRUE;
      }
      continue;
    }
    if (line[0] == '#')
      PARSE_FAIL ("unexpected comment", line);
    /* A sample. */
    CHECK (e->n_samples < (int) G_N_ELEMENTS (e->samples));
    Sample *s = &e->samples[e->n_samples++];
    memset (s, 0, sizeof *s);
    const char *p = line;
    size_t n = 0;
    while (metric_name_char (p[n], n == 0) && n < sizeof s->name - 1) {
      s->name[n] = p[n];
      n++;
    }
    if (n == 0)
      PARSE_FAIL ("sample without a name", line);
    p += n;
    if (*p == '{') {
      p++;
      while (*p != '}') {
        char key[64];
        size_t k = 0;
        while (metric_name_char (*p, k == 0) && k < sizeof key - 1)
          key[k++] = *p++;
        key[k] = '\0';
        if (k == 0 || p[0] != '=' || p[1] != '"')
          PARSE_FAIL ("bad label", line);
        p += 2;
        char value[256];
        size_t v = 0;
        while (*p != '"') {
          if (*p == '\0' || v >= sizeof value - 1)
            PARSE_FAIL ("unterminated label value", line);
          if (*p == '\\') {
            p++;
            if (*p == 'n')
              value[v++] = '\n';
            else if (*p == '\\' || *p == '"')
              value[v++] = *p;
            else
              PARSE_FAIL ("bad escape in label value", line);
            p++;
          } else {
            value[v++] = *p++;
          }
        }
        value[v] = '\0';
        p++;                    /* closing quote */
        if (strcmp (key, "type") == 0) {
          s->has_label = TRUE;
          g_strlcpy (s->label_type, value, sizeof s->label_type);
        }
        if (*p == ',')
          p++;
        else if (*p != '}')
          PARSE_FAIL ("bad label separator", line);
      }
      p++;
    }
    if (*p != ' ')
      PARSE_FAIL ("no space before the value", line);
    p++;
    char *end = NULL;
    s->value = g_ascii_strtoull (p, &end, 10);
    if (end == p || *end != '\0')
      PARSE_FAIL ("bad value", line);
    /* Its family was introduced before it. */
    Family *f = family (e, s->name, FALSE);
    if (f == NULL || !f->has_help || !f->has_type)
      PARSE_FAIL ("sample without a preceding HELP and TYPE", line);
  }
  g_strfreev (lines);

  for (int i = 0; i < e->n_families; i++) {
    Family *f = &e->families[i];
    CHECK (f->has_help && f->has_type);
    CHECK (g_str_has_prefix (f->name, "gcs_"));
    if (strcmp (f->type, "counter") == 0)
      CHECK (g_str_has_suffix (f->name, "_total"));
    else
      CHECK (!g_str_has_suffix (f->name, "_total"));
  }
}

/* The value of an unlabelled sample, or of the one with type="label". */
static unsigned long long
sample_value (const Exposition * e, const char *name, const char *label)
{
  int found = -1;
  for (int i = 0; i < e->n_samples; i++) {
    const Sample *s = &e->samples[i];
    if (strcmp (s->name, name) != 0)
      continue;
    if (label == NULL ? s->has_label : (!s->has_label || strcmp (s->label_type, label) != 0))
      continue;
    if (found >= 0) {
      fprintf (stderr, "prometheus: two samples %s{type=\"%s\"}\n", name, label ? label : "");
      CHECK (FALSE);
    }
    found = i;
  }
  if (found < 0) {
    fprintf (stderr, "prometheus: no sample %s{type=\"%s\"}\n", name, label ? label : "");
    CHECK (FALSE);
  }
  return e->samples[found].value;
}

static char *
prometheus_text (GcsManager * manager)
{
  const size_t length = gcs_stats_prometheus (manager, NULL, 0);
  CHECK (length > 0);
  char *text = g_malloc (length + 1);
  memset (text, 'X', length + 1);
  CHECK (gcs_stats_prometheus (manager, text, length + 1) == length);
  CHECK (text[length] == '\0' && strlen (text) == length);
  return text;
}

static void
test_prometheus (void)
{
  GcsConfig config;
  gcs_config_init (&config);
  config.enable_finalizer_safety = false;
  GcsManager *manager;
  CHECK_OK (gcs_manager_new (&config, &manager));

  /* A type name needing every escape: a double quote, a backslash, a newline. */
  const char *weird = "we\"ird\\type\nname";
  GcsHandle w1 = register_element (manager, "fakesink", weird, NULL, 64, NULL);
  GcsHandle w2 = register_element (manager, "fakesink", weird, NULL, 36, NULL);
  GcsHandle plain = register_element (manager, "identity", "Plain", NULL, 5, NULL);
  CHECK_OK (gcs_safe_access (w1, ok_callback, NULL));
  CHECK_OK (gcs_safe_access (w1, ok_callback, NULL));
  CHECK_RESULT (gcs_safe_access (plain, failing_callback, NULL), GCS_ERROR_CALLBACK_FAILED);
  CHECK_OK (gcs_add_cleanup (w2, cleanup_status, GINT_TO_POINTER (1)));
  CHECK_OK (gcs_set_finalizer (w2, cleanup_status, GINT_TO_POINTER (0)));
  CHECK_OK (gcs_unregister (w2));
  CHECK_RESULT (gcs_safe_access (w2, ok_callback, NULL), GCS_ERROR_RELEASED);
  CHECK_OK (gcs_invalidate (plain));

  /* Sizing, then the whole text. */
  const size_t length = gcs_stats_prometheus (manager, NULL, 0);
  CHECK (length > 0);
  CHECK (gcs_stats_prometheus (manager, NULL, 100) == length);
  char *text = prometheus_text (manager);

  /* Truncated: NUL-terminated, the full length still returned, nothing
   * written past the buffer. */
  char small[41];
  memset (small, 'X', sizeof small);
  CHECK (gcs_stats_prometheus (manager, small, 32) == length);
  CHECK (small[31] == '\0' && strlen (small) == 31);
  CHECK (strncmp (small, text, 31) == 0);
  CHECK (small[32] == 'X');
  char one = 'X';
  CHECK (gcs_stats_prometheus (manager, &one, 1) == length);
  CHECK (one == '\0');
  char untouched = 'X';
  CHECK (gcs_stats_prometheus (manager, &untouched, 0) == length);
  CHECK (untouched == 'X');
  char *exact = g_malloc (length);      /* one byte short of the NUL */
  CHECK (gcs_stats_prometheus (manager, exact, length) == length);
  CHECK (exact[length - 1] == '\0' && strncmp (exact, text, length - 1) == 0);
  g_free (exact);

  Exposition e;
  parse_exposition (text, &e);
  GcsStats s = stats_of (manager);
  const struct
  {
    const char *name;
    uint64_t value;
  } manager_series[] = {
    { "gcs_registrations_total", s.total_registered },
    { "gcs_active_handles", s.active },
    { "gcs_peak_active_handles", s.peak_active },
    { "gcs_releases_total", s.released },
    { "gcs_invalidations_total", s.invalidated },
    { "gcs_accesses_total", s.access_ok },
    { "gcs_accesses_rejected_total", s.access_rejected },
    { "gcs_callback_failures_total", s.callback_failures },
    { "gcs_panics_recovered_total", s.panics_recovered },
    { "gcs_cleanups_total", s.cleanups_run },
    { "gcs_cleanup_failures_total", s.cleanup_failures },
    { "gcs_finalizers_total", s.finalizers_run },
    { "gcs_finalizer_failures_total", s.finalizer_failures },
    { "gcs_finalizer_timeouts_total", s.finalizer_timeouts },
    { "gcs_tracked_bytes", s.tracked_bytes },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (manager_series); i++) {
    const unsigned long long value = sample_value (&e, manager_series[i].name, NULL);
    if (value != manager_series[i].value) {
      fprintf (stderr, "prometheus: %s is %llu, GcsStats says %llu\n", manager_series[i].name,
          value, (unsigned long long) manager_series[i].value);
      CHECK (FALSE);
    }
  }
  /* The values themselves, from the script above. */
  CHECK (s.total_registered == 3 && s.active == 2 && s.released == 1 && s.invalidated == 1);
  CHECK (s.access_ok == 3 && s.access_rejected == 1 && s.callback_failures == 1);
  CHECK (s.cleanups_run == 1 && s.cleanup_failures == 1 && s.finalizers_run == 1);
  CHECK (s.tracked_bytes == 69 && s.peak_active == 3);

  /* Per-type series, labelled type="..." with the escaped name. */
  CHECK (strstr (text, "type=\"we\\\"ird\\\\type\\nname\"") != NULL);
  const struct
  {
    const char *name;
    const char *type;
    uint64_t value;
  } type_series[] = {
    { "gcs_type_live_handles", weird, 1 },
    { "gcs_type_registrations_total", weird, 2 },
    { "gcs_type_releases_total", weird, 1 },
    { "gcs_type_accesses_total", weird, 2 },
    { "gcs_type_tracked_bytes", weird, 64 },
    { "gcs_type_live_handles", "Plain", 1 },
    { "gcs_type_registrations_total", "Plain", 1 },
    { "gcs_type_releases_total", "Plain", 0 },
    { "gcs_type_accesses_total", "Plain", 1 },
    { "gcs_type_tracked_bytes", "Plain", 5 },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (type_series); i++) {
    const unsigned long long value = sample_value (&e, type_series[i].name, type_series[i].type);
    if (value != type_series[i].value) {
      fprintf (stderr, "prometheus: %s{type=%s} is %llu, expected %llu\n", type_series[i].name,
          type_series[i].type, value, (unsigned long long) type_series[i].value);
      CHECK (FALSE);
    }
  }
  /* ...and they agree with gcs_foreach_type_stats. */
  TypeTable types;
  type_table_collect (&types, manager);
  for (int i = 0; i < types.n; i++) {
    const GcsTypeStats *row = &types.rows[i].stats;
    const char *name = types.rows[i].type_name;
    CHECK (sample_value (&e, "gcs_type_live_handles", name) == row->live);
    CHECK (sample_value (&e, "gcs_type_registrations_total", name) == row->registered);
    CHECK (sample_value (&e, "gcs_type_releases_total", name) == row->released);
    CHECK (sample_value (&e, "gcs_type_accesses_total", name) == row->accesses);
    CHECK (sample_value (&e, "gcs_type_tracked_bytes", name) == row->tracked_bytes);
  }
  type_table_clear (&types);
  g_free (text);

  /* An empty manager: the manager series, all zero, still well formed. */
  GcsManager *empty;
  CHECK_OK (gcs_manager_new (NULL, &empty));
  text = prometheus_text (empty);
  parse_exposition (text, &e);
  CHECK (sample_value (&e, "gcs_registrations_total", NULL) == 0);
  CHECK (sample_value (&e, "gcs_tracked_bytes", NULL) == 0);
  g_free (text);
  gcs_manager_free (empty);

  /* The default manager (NULL). */
  text = prometheus_text (NULL);
  parse_exposition (text, &e);
  CHECK (sample_value (&e, "gcs_registrations_total", NULL) == stats_of (NULL).total_registered);
  g_free (text);

  CHECK_OK (gcs_unregister (w1));
  CHECK_OK (gcs_unregister (plain));
  gcs_manager_free (manager);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  test_watchdog (30);

  RUN_TEST (test_scripted_sequence);
  RUN_TEST (test_default_manager_counts_unknown_handles);
  RUN_TEST (test_struct_size_checks);
  RUN_TEST (test_type_stats_and_live_list);
  RUN_TEST (test_churn);
  RUN_TEST (test_prometheus);

  CHECK_OK (gcs_shutdown (HANG_MS));
  TEST_PASSED ();
}

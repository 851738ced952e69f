/* Registration (contract: "Registration"): which reference each kind takes
 * (floating references sunk), when it is dropped, the kinds' validation
 * (GCS_ERROR_WRONG_TYPE before any reference), argument checks
 * (NULL_ARGUMENT / INVALID_ARGUMENT, nothing registered), names copied, and
 * GCS_REGISTER_SET_NULL_STATE. */
#include "common.h"

#define SENTINEL_HANDLE ((GcsHandle) 0x5e17e15e17e1ull)

static GcsRegistration
registration_of (GcsObjectKind kind, void *object)
{
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = kind;
  registration.object = object;
  return registration;
}

typedef struct
{
  gint calls;
  void *object;
} Seen;

static int
see_object (void *object, void *user_data)
{
  Seen *seen = user_data;
  seen->calls++;
  seen->object = object;
  return 0;
}

/* A GCS_KIND_POINTER payload and what its release function saw. */
typedef struct
{
  gint releases;
  void *released_object;
  void *released_data;
  pthread_t thread;
} ReleaseLog;

static void
log_release (void *object, void *user_data)
{
  ReleaseLog *log = user_data;
  log->released_object = object;
  log->released_data = user_data;
  log->thread = pthread_self ();
  g_atomic_int_inc (&log->releases);
}

/* Extract a handle's info (the handle must be describable). */
/* ---------------------------------------------------------------------- */

static void
test_floating_gst_object_is_sunk (void)
{
  GstElement *element = gst_element_factory_make ("fakesink", "floating-sink");
  CHECK (element != NULL);
  CHECK (g_object_is_floating (element));
  CHECK (OBJECT_REFCOUNT (element) == 1);
  gpointer alive;
  watch_finalize (element, &alive);

  GcsHandle handle = GCS_INVALID_HANDLE;
  CHECK_OK (gcs_register (element, NULL, &handle));
  CHECK (!g_object_is_floating (element));
  CHECK (OBJECT_REFCOUNT (element) == 1);       /* the floating ref became the registration's */

  Seen seen = { 0, NULL };
  CHECK_OK (gcs_safe_access (handle, see_object, &seen));
  CHECK (seen.calls == 1 && seen.object == element);
  CHECK (alive != NULL);

  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);        /* finalized exactly at unregister */
}

static void
test_non_floating_gst_object_gets_a_reference (void)
{
  GstElement *element = gst_element_factory_make ("identity", NULL);
  CHECK (element != NULL);
  gst_object_ref_sink (element);
  CHECK (!g_object_is_floating (element));
  CHECK (OBJECT_REFCOUNT (element) == 1);
  gpointer alive;
  watch_finalize (element, &alive);

  GcsHandle handle;
  CHECK_OK (gcs_register (element, NULL, &handle));
  CHECK (OBJECT_REFCOUNT (element) == 2);
  CHECK (!g_object_is_floating (element));

  /* Our reference going away does not end the registration's. */
  gst_object_ref (element);
  gst_object_unref (element);
  CHECK_OK (gcs_unregister (handle));
  CHECK (OBJECT_REFCOUNT (element) == 1);
  CHECK (alive != NULL);
  gst_object_unref (element);
  CHECK (alive == NULL);

  /* A pipeline and a pad are GstObjects too. */
  GstElement *pipeline = gst_pipeline_new ("reg-pipeline");
  CHECK (pipeline != NULL);
  gpointer pipeline_alive;
  watch_finalize (pipeline, &pipeline_alive);
  CHECK_OK (gcs_register (pipeline, "MyPipeline", &handle));
  CHECK (!g_object_is_floating (pipeline));
  CHECK (OBJECT_REFCOUNT (pipeline) == 1);
  GcsHandleInfo info = handle_info_of (handle);
  CHECK (strcmp (info.type_name, "MyPipeline") == 0);
  CHECK (info.kind == GCS_KIND_GST_OBJECT);
  CHECK_OK (gcs_unregister (handle));
  CHECK (pipeline_alive == NULL);
}

static void
test_gobject_kind (void)
{
  /* A plain GObject: not floating, +1. */
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  CHECK (OBJECT_REFCOUNT (object) == 1);
  gpointer alive;
  watch_finalize (object, &alive);
  GcsRegistration registration = registration_of (GCS_KIND_GOBJECT, object);
  GcsHandle handle = SENTINEL_HANDLE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (handle != SENTINEL_HANDLE && handle != GCS_INVALID_HANDLE);
  CHECK (OBJECT_REFCOUNT (object) == 2);
  Seen seen = { 0, NULL };
  CHECK_OK (gcs_safe_access (handle, see_object, &seen));
  CHECK (seen.object == object);
  GcsHandleInfo info = handle_info_of (handle);
  CHECK (info.kind == GCS_KIND_GOBJECT);
  CHECK (strcmp (info.type_name, "GObject") == 0);
  CHECK_OK (gcs_unregister (handle));
  CHECK (OBJECT_REFCOUNT (object) == 1);
  CHECK (alive != NULL);
  g_object_unref (object);
  CHECK (alive == NULL);

  /* A floating GInitiallyUnowned: sunk. */
  GObject *floating = g_object_new (G_TYPE_INITIALLY_UNOWNED, NULL);
  CHECK (g_object_is_floating (floating));
  watch_finalize (floating, &alive);
  registration = registration_of (GCS_KIND_GOBJECT, floating);
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (!g_object_is_floating (floating));
  CHECK (OBJECT_REFCOUNT (floating) == 1);
  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);

  /* A GstElement is a GObject: accepted as GCS_KIND_GOBJECT, sunk. */
  GstElement *element = gst_element_factory_make ("queue", NULL);
  CHECK (element != NULL && g_object_is_floating (element));
  watch_finalize (element, &alive);
  registration = registration_of (GCS_KIND_GOBJECT, element);
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (!g_object_is_floating (element));
  CHECK (OBJECT_REFCOUNT (element) == 1);
  CHECK (strcmp (handle_info_of (handle).type_name, "GstQueue") == 0);
  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);
}

static void
check_mini_object_kind (GstMiniObject * mini, const char *gtype_name)
{
  const int before = MINI_REFCOUNT (mini);
  GcsRegistration registration = registration_of (GCS_KIND_MINI_OBJECT, mini);
  registration.size_bytes = 4096;
  GcsHandle handle = SENTINEL_HANDLE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (handle != SENTINEL_HANDLE && handle != GCS_INVALID_HANDLE);
  CHECK (MINI_REFCOUNT (mini) == before + 1);

  Seen seen = { 0, NULL };
  CHECK_OK (gcs_safe_access (handle, see_object, &seen));
  CHECK (seen.calls == 1 && seen.object == mini);
  CHECK (MINI_REFCOUNT (mini) == before + 1);

  GcsHandleInfo info = handle_info_of (handle);
  CHECK (info.kind == GCS_KIND_MINI_OBJECT);
  CHECK (info.type_name != NULL && strcmp (info.type_name, gtype_name) == 0);
  CHECK (info.size_bytes == 4096);

  CHECK_OK (gcs_unregister (handle));
  CHECK (MINI_REFCOUNT (mini) == before);
}

static void
test_mini_object_kind (void)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 1024, NULL);
  CHECK (buffer != NULL);
  GstCaps *caps = gst_caps_from_string ("video/x-raw,format=I420,width=320,height=240");
  CHECK (caps != NULL);
  GstSample *sample = gst_sample_new (buffer, caps, NULL, NULL);
  CHECK (sample != NULL);

  check_mini_object_kind (GST_MINI_OBJECT_CAST (buffer), "GstBuffer");
  check_mini_object_kind (GST_MINI_OBJECT_CAST (caps), "GstCaps");
  check_mini_object_kind (GST_MINI_OBJECT_CAST (sample), "GstSample");

  /* The registration's reference keeps the mini object alive on its own. */
  GstBuffer *owned = gst_buffer_new_allocate (NULL, 16, NULL);
  GcsRegistration registration = registration_of (GCS_KIND_MINI_OBJECT, owned);
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  gst_buffer_unref (owned);     /* now only the registration holds it */
  CHECK (MINI_REFCOUNT (owned) == 1);
  Seen seen = { 0, NULL };
  CHECK_OK (gcs_safe_access (handle, see_object, &seen));
  CHECK (seen.object == owned);
  CHECK_OK (gcs_unregister (handle));   /* frees it (valgrind/ASan would see a leak otherwise) */

  gst_sample_unref (sample);
  gst_caps_unref (caps);
  gst_buffer_unref (buffer);
}

static void
test_pointer_kind (void)
{
  ReleaseLog log;
  memset (&log, 0, sizeof log);
  int *payload = g_new0 (int, 1);
  GcsRegistration registration = registration_of (GCS_KIND_POINTER, payload);
  registration.release = log_release;
  registration.release_data = &log;
  GcsHandle handle = GCS_INVALID_HANDLE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (log.releases == 0);

  Seen seen = { 0, NULL };
  CHECK_OK (gcs_safe_access (handle, see_object, &seen));
  CHECK (seen.object == payload);
  CHECK (log.releases == 0);
  GcsHandleInfo info = handle_info_of (handle);
  CHECK (info.kind == GCS_KIND_POINTER);
  CHECK (strcmp (info.type_name, "pointer") == 0);

  CHECK_OK (gcs_unregister (handle));
  CHECK (log.releases == 1);
  CHECK (log.released_object == payload);
  CHECK (log.released_data == &log);
  CHECK (pthread_equal (log.thread, pthread_self ()));
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  CHECK_RESULT (gcs_unregister_sync (handle, 0), GCS_ERROR_RELEASED);
  CHECK (log.releases == 1);
  g_free (payload);

  /* A pointer kind may carry anything, e.g. a GstElement released by the
   * caller's own function. */
  GstElement *element = gst_element_factory_make ("fakesrc", NULL);
  gst_object_ref_sink (element);
  gpointer alive;
  watch_finalize (element, &alive);
  memset (&log, 0, sizeof log);
  registration = registration_of (GCS_KIND_POINTER, element);
  registration.type_name = "FakeSrcBox";
  registration.release = log_release;
  registration.release_data = &log;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (OBJECT_REFCOUNT (element) == 1);       /* no reference taken for POINTER */
  CHECK (strcmp (handle_info_of (handle).type_name, "FakeSrcBox") == 0);
  CHECK_OK (gcs_unregister (handle));
  CHECK (log.releases == 1 && log.released_object == element);
  gst_object_unref (element);
  CHECK (alive == NULL);
}

/* A refused registration leaves the object exactly as it was. */
static void
check_refused_full (GcsRegistration * registration, GcsResult expected, GstMiniObject * mini,
    GObject * object, int line)
{
  const int mini_before = mini ? MINI_REFCOUNT (mini) : 0;
  const int object_before = object ? OBJECT_REFCOUNT (object) : 0;
  const gboolean floating_before = object ? g_object_is_floating (object) : FALSE;
  GcsHandle handle = SENTINEL_HANDLE;
  GcsResult result = gcs_register_full (registration, &handle);
  if (result != expected) {
    fprintf (stderr, "%s:%d: gcs_register_full returned %d (%s), expected %d (%s)\n  last error: %s\n",
        __FILE__, line, (int) result, gcs_result_to_string (result), (int) expected,
        gcs_result_to_string (expected), gcs_last_error ());
    exit (1);
  }
  if (handle != SENTINEL_HANDLE || gcs_last_error ()[0] == '\0'
      || (mini && MINI_REFCOUNT (mini) != mini_before)
      || (object && (OBJECT_REFCOUNT (object) != object_before
              || g_object_is_floating (object) != floating_before))) {
    fprintf (stderr, "%s:%d: refused registration changed something (handle_out %s, refcount "
        "%d -> %d, mini refcount %d -> %d); last error: \"%s\"\n", __FILE__, line,
        handle != SENTINEL_HANDLE ? "written" : "untouched", object_before,
        object ? OBJECT_REFCOUNT (object) : 0, mini_before, mini ? MINI_REFCOUNT (mini) : 0,
        gcs_last_error ());
    exit (1);
  }
}

#define CHECK_REFUSED_FULL(registration, expected, mini, object) \
  check_refused_full ((registration), (expected), (GstMiniObject *) (mini), (GObject *) (object), __LINE__)

static void
test_wrong_types_refused (void)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 32, NULL);
  GstCaps *caps = gst_caps_from_string ("audio/x-raw,rate=48000");
  GstSample *sample = gst_sample_new (buffer, caps, NULL, NULL);
  GObject *plain = g_object_new (G_TYPE_OBJECT, NULL);
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  CHECK (buffer && caps && sample && plain && element);
  CHECK (g_object_is_floating (element));

  /* A GstBuffer given to gcs_register (GstObject kind). */
  int before = MINI_REFCOUNT (buffer);
  GcsHandle handle = SENTINEL_HANDLE;
  CHECK_RESULT (gcs_register (buffer, NULL, &handle), GCS_ERROR_WRONG_TYPE);
  CHECK (handle == SENTINEL_HANDLE);
  CHECK (MINI_REFCOUNT (buffer) == before);
  CHECK_LAST_ERROR_CONTAINS ("GstBuffer");

  /* A plain GObject given to gcs_register / as GCS_KIND_GST_OBJECT. */
  before = OBJECT_REFCOUNT (plain);
  CHECK_RESULT (gcs_register (plain, NULL, &handle), GCS_ERROR_WRONG_TYPE);
  CHECK (handle == SENTINEL_HANDLE && OBJECT_REFCOUNT (plain) == before);
  CHECK_LAST_ERROR_CONTAINS ("GObject");
  GcsRegistration registration = registration_of (GCS_KIND_GST_OBJECT, plain);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_WRONG_TYPE, NULL, plain);

  /* A GstElement as GCS_KIND_MINI_OBJECT: refused, and still floating. */
  registration = registration_of (GCS_KIND_MINI_OBJECT, element);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_WRONG_TYPE, NULL, element);
  CHECK_LAST_ERROR_CONTAINS ("GstFakeSink");
  CHECK (g_object_is_floating (element));

  /* A GstCaps / GstSample / GstBuffer as GCS_KIND_GOBJECT or GST_OBJECT. */
  registration = registration_of (GCS_KIND_GOBJECT, caps);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_WRONG_TYPE, caps, NULL);
  CHECK_LAST_ERROR_CONTAINS ("GstCaps");
  registration = registration_of (GCS_KIND_GST_OBJECT, sample);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_WRONG_TYPE, sample, NULL);
  registration = registration_of (GCS_KIND_GOBJECT, buffer);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_WRONG_TYPE, buffer, NULL);

  /* Weak kind: only GObjects. */
  registration = registration_of (GCS_KIND_WEAK_GOBJECT, caps);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_WRONG_TYPE, caps, NULL);
  registration = registration_of (GCS_KIND_WEAK_GOBJECT, buffer);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_WRONG_TYPE, buffer, NULL);

  /* A plain GObject as mini object. */
  registration = registration_of (GCS_KIND_MINI_OBJECT, plain);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_WRONG_TYPE, NULL, plain);

  /* The refused objects are intact and register fine with the right kind. */
  registration = registration_of (GCS_KIND_MINI_OBJECT, caps);
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK_OK (gcs_unregister (handle));
  gpointer alive;
  watch_finalize (element, &alive);
  CHECK_OK (gcs_register (element, NULL, &handle));
  CHECK (OBJECT_REFCOUNT (element) == 1 && !g_object_is_floating (element));
  CHECK_OK (gcs_unregister (handle));
  CHECK (alive == NULL);

  g_object_unref (plain);
  gst_sample_unref (sample);
  gst_caps_unref (caps);
  gst_buffer_unref (buffer);
}

static void
test_null_arguments (void)
{
  GcsHandle handle = SENTINEL_HANDLE;
  CHECK_RESULT (gcs_register (NULL, NULL, &handle), GCS_ERROR_NULL_ARGUMENT);
  CHECK (handle == SENTINEL_HANDLE);
  CHECK (gcs_last_error ()[0] != '\0');
  CHECK_RESULT (gcs_register (NULL, "Named", &handle), GCS_ERROR_NULL_ARGUMENT);
  CHECK (handle == SENTINEL_HANDLE);

  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  CHECK (g_object_is_floating (element) && OBJECT_REFCOUNT (element) == 1);
  CHECK_RESULT (gcs_register (element, NULL, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK (g_object_is_floating (element) && OBJECT_REFCOUNT (element) == 1);
  CHECK (gcs_last_error ()[0] != '\0');

  CHECK_RESULT (gcs_register_full (NULL, &handle), GCS_ERROR_NULL_ARGUMENT);
  CHECK (handle == SENTINEL_HANDLE);
  CHECK_RESULT (gcs_register_full (NULL, NULL), GCS_ERROR_NULL_ARGUMENT);

  GcsRegistration registration = registration_of (GCS_KIND_GST_OBJECT, element);
  CHECK_RESULT (gcs_register_full (&registration, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK (g_object_is_floating (element) && OBJECT_REFCOUNT (element) == 1);

  const GcsObjectKind kinds[] = { GCS_KIND_GST_OBJECT, GCS_KIND_GOBJECT, GCS_KIND_MINI_OBJECT,
    GCS_KIND_WEAK_GOBJECT
  };
  for (size_t i = 0; i < G_N_ELEMENTS (kinds); i++) {
    registration = registration_of (kinds[i], NULL);
    CHECK_REFUSED_FULL (&registration, GCS_ERROR_NULL_ARGUMENT, NULL, NULL);
  }

  /* POINTER kind: NULL object or NULL handle_out registers nothing, so the
   * release function is never called. */
  ReleaseLog log;
  memset (&log, 0, sizeof log);
  registration = registration_of (GCS_KIND_POINTER, NULL);
  registration.release = log_release;
  registration.release_data = &log;
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_NULL_ARGUMENT, NULL, NULL);
  int payload = 0;
  registration.object = &payload;
  CHECK_RESULT (gcs_register_full (&registration, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK (log.releases == 0);

  gst_object_unref (element);
}

static void
test_invalid_arguments (void)
{
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  gst_object_ref_sink (element);
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 8, NULL);
  GObject *plain = g_object_new (G_TYPE_OBJECT, NULL);
  ReleaseLog log;
  memset (&log, 0, sizeof log);
  int payload = 0;

  /* struct_size smaller than version 1's. */
  const uint32_t small_sizes[] = { 0, 4, (uint32_t) sizeof (GcsRegistration) - 1,
    (uint32_t) offsetof (GcsRegistration, flags)
  };
  for (size_t i = 0; i < G_N_ELEMENTS (small_sizes); i++) {
    GcsRegistration registration = registration_of (GCS_KIND_GST_OBJECT, element);
    registration.struct_size = small_sizes[i];
    CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, NULL, element);
  }

  /* A bigger struct (a later version's caller) is accepted. */
  struct
  {
    GcsRegistration v1;
    uint64_t later_fields[4];
  } bigger;
  memset (&bigger, 0, sizeof bigger);
  bigger.v1 = registration_of (GCS_KIND_GST_OBJECT, element);
  bigger.v1.struct_size = sizeof bigger;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&bigger.v1, &handle));
  CHECK (OBJECT_REFCOUNT (element) == 2);
  CHECK_OK (gcs_unregister (handle));
  CHECK (OBJECT_REFCOUNT (element) == 1);

  /* Kind values that are not a GcsObjectKind. */
  const GcsObjectKind bad_kinds[] = { 5, 7, -1, 100, INT32_MIN, INT32_MAX };
  for (size_t i = 0; i < G_N_ELEMENTS (bad_kinds); i++) {
    GcsRegistration registration = registration_of (bad_kinds[i], element);
    CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, NULL, element);
  }

  /* GCS_KIND_POINTER needs a release function. */
  GcsRegistration registration = registration_of (GCS_KIND_POINTER, &payload);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, NULL, NULL);

  /* A release function is only for GCS_KIND_POINTER. */
  struct
  {
    GcsObjectKind kind;
    void *object;
  } with_release[] = {
    { GCS_KIND_GST_OBJECT, element }, { GCS_KIND_GOBJECT, plain },
    { GCS_KIND_MINI_OBJECT, buffer }, { GCS_KIND_WEAK_GOBJECT, plain },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (with_release); i++) {
    registration = registration_of (with_release[i].kind, with_release[i].object);
    registration.release = log_release;
    registration.release_data = &log;
    CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT,
        with_release[i].kind == GCS_KIND_MINI_OBJECT ? (void *) buffer : NULL,
        with_release[i].kind == GCS_KIND_MINI_OBJECT ? NULL : with_release[i].object);
  }
  CHECK (log.releases == 0);

  /* Unknown flag bits. */
  const uint32_t bad_flags[] = { 1u << 2, 1u << 3, 1u << 31, 0xfffffffcu,
    GCS_REGISTER_SET_NULL_STATE | (1u << 7)
  };
  for (size_t i = 0; i < G_N_ELEMENTS (bad_flags); i++) {
    registration = registration_of (GCS_KIND_GST_OBJECT, element);
    registration.flags = bad_flags[i];
    CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, NULL, element);
  }

  /* GCS_REGISTER_CAPTURE_STACK is accepted with every kind (the leak report
   * shows the backtrace: test_leaks.c), alone or with SET_NULL_STATE. */
  registration = registration_of (GCS_KIND_GST_OBJECT, element);
  registration.flags = GCS_REGISTER_CAPTURE_STACK;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (OBJECT_REFCOUNT (element) == 2);
  Seen seen = { 0, NULL };
  CHECK_OK (gcs_safe_access (handle, see_object, &seen));
  CHECK (seen.calls == 1 && seen.object == element);
  CHECK_OK (gcs_unregister (handle));
  CHECK (OBJECT_REFCOUNT (element) == 1);
  registration.flags = GCS_REGISTER_CAPTURE_STACK | GCS_REGISTER_SET_NULL_STATE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  /* A NULL-state release completes on the library's executor. */
  CHECK_OK (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE));
  CHECK (OBJECT_REFCOUNT (element) == 1);
  registration = registration_of (GCS_KIND_MINI_OBJECT, buffer);
  registration.flags = GCS_REGISTER_CAPTURE_STACK;
  const int buffer_refs = MINI_REFCOUNT (buffer);
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (MINI_REFCOUNT (buffer) == buffer_refs + 1);
  CHECK_OK (gcs_unregister (handle));
  CHECK (MINI_REFCOUNT (buffer) == buffer_refs);
  registration = registration_of (GCS_KIND_POINTER, &payload);
  registration.release = log_release;
  registration.release_data = &log;
  registration.flags = GCS_REGISTER_CAPTURE_STACK;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK_OK (gcs_unregister (handle));
  CHECK (log.releases == 1);
  memset (&log, 0, sizeof log);
  registration = registration_of (GCS_KIND_WEAK_GOBJECT, plain);
  registration.flags = GCS_REGISTER_CAPTURE_STACK;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK_OK (gcs_unregister (handle));
  /* CAPTURE_STACK with an unknown bit is still refused. */
  registration = registration_of (GCS_KIND_GST_OBJECT, element);
  registration.flags = GCS_REGISTER_CAPTURE_STACK | (1u << 5);
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, NULL, element);

  /* GCS_REGISTER_SET_NULL_STATE only with GCS_KIND_GST_OBJECT. */
  registration = registration_of (GCS_KIND_GOBJECT, element);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, NULL, element);
  registration = registration_of (GCS_KIND_WEAK_GOBJECT, element);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, NULL, element);
  registration = registration_of (GCS_KIND_MINI_OBJECT, buffer);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, buffer, NULL);
  registration = registration_of (GCS_KIND_POINTER, element);
  registration.release = log_release;
  registration.release_data = &log;
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  CHECK_REFUSED_FULL (&registration, GCS_ERROR_INVALID_ARGUMENT, NULL, element);
  CHECK (log.releases == 0);

  CHECK (OBJECT_REFCOUNT (element) == 1);
  gst_object_unref (element);
  gst_buffer_unref (buffer);
  g_object_unref (plain);
}

static void
test_names_are_copied (void)
{
  GstElement *element = gst_element_factory_make ("identity", NULL);
  gchar *type_name = g_strdup ("CopiedTypeName");
  gchar *instance_name = g_strdup ("copied-instance-name");
  GcsRegistration registration = registration_of (GCS_KIND_GST_OBJECT, element);
  registration.type_name = type_name;
  registration.instance_name = instance_name;
  registration.size_bytes = 123456;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  /* Scribble over and free the caller's buffers. */
  memset (type_name, 'X', strlen (type_name));
  memset (instance_name, 'Y', strlen (instance_name));
  g_free (type_name);
  g_free (instance_name);

  GcsHandleInfo info = handle_info_of (handle);
  CHECK (strcmp (info.type_name, "CopiedTypeName") == 0);
  CHECK (info.instance_name != NULL && strcmp (info.instance_name, "copied-instance-name") == 0);
  CHECK (info.size_bytes == 123456);
  CHECK_OK (gcs_invalidate (handle));
  /* The names appear in messages too. */
  Seen seen = { 0, NULL };
  CHECK_RESULT (gcs_safe_access (handle, see_object, &seen), GCS_ERROR_INVALIDATED);
  CHECK_LAST_ERROR_CONTAINS ("CopiedTypeName");
  CHECK_LAST_ERROR_CONTAINS ("copied-instance-name");
  CHECK_OK (gcs_unregister (handle));

  /* gcs_register copies its type_name too; NULL instance name stays NULL. */
  element = gst_element_factory_make ("identity", NULL);
  type_name = g_strdup ("RegisterTypeName");
  CHECK_OK (gcs_register (element, type_name, &handle));
  memset (type_name, 'Z', strlen (type_name));
  g_free (type_name);
  info = handle_info_of (handle);
  CHECK (strcmp (info.type_name, "RegisterTypeName") == 0);
  CHECK (info.instance_name == NULL);
  CHECK_OK (gcs_unregister (handle));

  /* NULL type_name: the GType name. */
  element = gst_element_factory_make ("identity", NULL);
  CHECK_OK (gcs_register (element, NULL, &handle));
  CHECK (strcmp (handle_info_of (handle).type_name, "GstIdentity") == 0);
  CHECK_OK (gcs_unregister (handle));
}

/* GStreamer's warnings, counted (disposing a PLAYING element is one). */
static gint gst_warnings;

static void
count_gst_warnings (const gchar * domain, GLogLevelFlags level, const gchar * message, gpointer data)
{
  (void) domain;
  (void) level;
  (void) data;
  fprintf (stderr, "(counted GStreamer warning) %s\n", message);
  g_atomic_int_inc (&gst_warnings);
}

static GstElement *
running_pipeline (GstState target, const char *description)
{
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (description, &error);
  CHECK (pipeline != NULL && error == NULL);
  gst_object_ref_sink (pipeline);       /* (transfer floating): make it ours */
  CHECK (gst_element_set_state (pipeline, target) != GST_STATE_CHANGE_FAILURE);
  GstState state = GST_STATE_VOID_PENDING;
  CHECK (gst_element_get_state (pipeline, &state, NULL, GST_CLOCK_TIME_NONE) ==
      GST_STATE_CHANGE_SUCCESS);
  CHECK (state == target);
  return pipeline;
}

static GstState
current_state (GstElement * element)
{
  GstState state = GST_STATE_VOID_PENDING;
  CHECK (gst_element_get_state (element, &state, NULL, 0) != GST_STATE_CHANGE_FAILURE);
  return state;
}

static void
test_set_null_state (void)
{
  g_log_set_handler ("GStreamer", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING, count_gst_warnings,
      NULL);
  const char *description = "fakesrc num-buffers=3 ! fakesink sync=false";

  const GstState targets[] = { GST_STATE_PLAYING, GST_STATE_PAUSED };
  for (size_t i = 0; i < G_N_ELEMENTS (targets); i++) {
    /* With our own reference kept: the state is NULL once the registration
     * has dropped its reference. */
    /* (A running pipeline's refcount moves with the messages on its bus,
     * so the evidence here is its state and its finalization.) */
    GstElement *pipeline = running_pipeline (targets[i], description);
    gpointer alive;
    watch_finalize (pipeline, &alive);
    GcsRegistration registration = registration_of (GCS_KIND_GST_OBJECT, pipeline);
    registration.flags = GCS_REGISTER_SET_NULL_STATE;
    GcsHandle handle;
    CHECK_OK (gcs_register_full (&registration, &handle));
    CHECK (current_state (pipeline) == targets[i]);     /* registration changes nothing */
    CHECK_OK (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE));
    CHECK (alive != NULL);
    CHECK (current_state (pipeline) == GST_STATE_NULL);
    gst_object_unref (pipeline);
    /* Ours was the last reference we know of; a task thread of the stopped
     * pipeline may drop one of its own a moment later. */
    CHECK_WITHIN_MS (5000, g_atomic_pointer_get (&alive) == NULL);

    /* Without the flag, the state is left alone (control). */
    pipeline = running_pipeline (targets[i], description);
    registration = registration_of (GCS_KIND_GST_OBJECT, pipeline);
    CHECK_OK (gcs_register_full (&registration, &handle));
    CHECK_OK (gcs_unregister (handle));
    CHECK (current_state (pipeline) == targets[i]);
    CHECK (gst_element_set_state (pipeline, GST_STATE_NULL) == GST_STATE_CHANGE_SUCCESS);
    gst_object_unref (pipeline);

    /* The registration holding the last reference: set to NULL before the
     * dispose, so GStreamer has nothing to warn about, and finalized. */
    pipeline = running_pipeline (targets[i], description);
    watch_finalize (pipeline, &alive);
    registration = registration_of (GCS_KIND_GST_OBJECT, pipeline);
    registration.flags = GCS_REGISTER_SET_NULL_STATE;
    CHECK_OK (gcs_register_full (&registration, &handle));
    gst_object_unref (pipeline);
    CHECK (alive != NULL);
    g_atomic_int_set (&gst_warnings, 0);
    CHECK_OK (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE));
    /* The registration's was the last reference we know of; a task thread of
     * the just-stopped pipeline may still drop a reference of its own a
     * moment later, so allow a bounded wait for the finalization. */
    CHECK_WITHIN_MS (5000, g_atomic_pointer_get (&alive) == NULL);
    CHECK (g_atomic_int_get (&gst_warnings) == 0);
  }

  /* A single element too (not only bins), with our reference kept... */
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  gst_object_ref_sink (sink);
  g_object_set (sink, "async", FALSE, NULL);
  CHECK (gst_element_set_state (sink, GST_STATE_PLAYING) == GST_STATE_CHANGE_SUCCESS);
  CHECK (current_state (sink) == GST_STATE_PLAYING);
  CHECK (OBJECT_REFCOUNT (sink) == 1);
  GcsRegistration registration = registration_of (GCS_KIND_GST_OBJECT, sink);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (OBJECT_REFCOUNT (sink) == 2);
  CHECK_OK (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE));
  CHECK (OBJECT_REFCOUNT (sink) == 1);
  CHECK (current_state (sink) == GST_STATE_NULL);
  gst_object_unref (sink);

  /* ... and with the registration holding the last reference: GStreamer
   * criticizes disposing a PLAYING element ("Trying to dispose element ...
   * instead of the NULL state"); with the flag it has no reason to. */
  sink = gst_element_factory_make ("fakesink", NULL);
  g_object_set (sink, "async", FALSE, NULL);
  gpointer alive;
  watch_finalize (sink, &alive);
  registration = registration_of (GCS_KIND_GST_OBJECT, sink);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  CHECK_OK (gcs_register_full (&registration, &handle));        /* sinks the floating ref */
  CHECK (OBJECT_REFCOUNT (sink) == 1);
  CHECK (gst_element_set_state (sink, GST_STATE_PLAYING) == GST_STATE_CHANGE_SUCCESS);
  CHECK (current_state (sink) == GST_STATE_PLAYING);
  g_atomic_int_set (&gst_warnings, 0);
  CHECK_OK (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE));
  CHECK (alive == NULL);
  CHECK (g_atomic_int_get (&gst_warnings) == 0);
}

/* The state of an element when its weak references are notified (during
 * its dispose, after GstElement's dispose checked the state). */
typedef struct
{
  gint notified;
  GstState state;
} DisposeState;

static void
record_state_at_dispose (gpointer data, GObject * where_the_object_was)
{
  DisposeState *d = data;
  d->state = GST_STATE (where_the_object_was);
  g_atomic_int_inc (&d->notified);
}

/* A prerolled pipeline (a live source, a sink that prerolls): PAUSED, with a
 * buffer waiting in the sink and streaming threads running. */
static void
test_set_null_state_prerolled (void)
{
  g_log_set_handler ("GStreamer", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING, count_gst_warnings,
      NULL);
  const char *description = "videotestsrc ! video/x-raw,width=64,height=48 ! fakesink";

  /* The registration drops the last reference we hold: NULL at dispose,
   * and no warning from GStreamer. */
  GstElement *pipeline = running_pipeline (GST_STATE_PAUSED, description);
  DisposeState at_dispose = { 0, GST_STATE_VOID_PENDING };
  g_object_weak_ref (G_OBJECT (pipeline), record_state_at_dispose, &at_dispose);
  GcsRegistration registration = registration_of (GCS_KIND_GST_OBJECT, pipeline);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  registration.instance_name = "prerolled";
  GcsHandle handle;
  CHECK_OK (gcs_register_full (&registration, &handle));
  gst_object_unref (pipeline);
  CHECK (current_state (pipeline) == GST_STATE_PAUSED);
  g_atomic_int_set (&gst_warnings, 0);
  CHECK_OK (gcs_unregister (handle));
  CHECK_WITHIN_MS (5000, g_atomic_int_get (&at_dispose.notified) == 1);
  CHECK (at_dispose.state == GST_STATE_NULL);
  CHECK (g_atomic_int_get (&gst_warnings) == 0);

  /* With our own reference kept: NULL right after the unregister. */
  pipeline = running_pipeline (GST_STATE_PAUSED, description);
  gpointer alive;
  watch_finalize (pipeline, &alive);
  registration = registration_of (GCS_KIND_GST_OBJECT, pipeline);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK_OK (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE));
  CHECK (alive != NULL);
  CHECK (GST_STATE (pipeline) == GST_STATE_NULL);
  CHECK (current_state (pipeline) == GST_STATE_NULL);
  gst_object_unref (pipeline);
  CHECK_WITHIN_MS (5000, g_atomic_pointer_get (&alive) == NULL);

  /* Without the flag (control): still PAUSED after the unregister. */
  pipeline = running_pipeline (GST_STATE_PAUSED, description);
  registration = registration_of (GCS_KIND_GST_OBJECT, pipeline);
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK_OK (gcs_unregister (handle));
  CHECK (current_state (pipeline) == GST_STATE_PAUSED);
  CHECK (gst_element_set_state (pipeline, GST_STATE_NULL) == GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (pipeline);

  /* Released by the thread ending the last access, not the unregistering
   * one: set to NULL there too. */
  pipeline = running_pipeline (GST_STATE_PAUSED, description);
  registration = registration_of (GCS_KIND_GST_OBJECT, pipeline);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  void *object;
  CHECK_OK (gcs_access_begin (handle, &object));
  CHECK_OK (gcs_unregister (handle));
  CHECK (current_state (pipeline) == GST_STATE_PAUSED);     /* not yet released */
  CHECK_OK (gcs_access_end (handle));
  /* The state change is handed to the library's executor (the thread
   * ending the access may be a streaming thread): wait for the release. */
  CHECK_RESULT (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE), GCS_ERROR_RELEASED);
  CHECK (current_state (pipeline) == GST_STATE_NULL);
  gst_object_unref (pipeline);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  test_floating_gst_object_is_sunk ();
  test_non_floating_gst_object_gets_a_reference ();
  test_gobject_kind ();
  test_mini_object_kind ();
  test_pointer_kind ();
  test_wrong_types_refused ();
  test_null_arguments ();
  test_invalid_arguments ();
  test_names_are_copied ();
  test_set_null_state ();
  test_set_null_state_prerolled ();

  TEST_PASSED ();
}

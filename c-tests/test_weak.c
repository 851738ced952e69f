/* Weak handles (GCS_KIND_WEAK_GOBJECT, contract: "Access"): no strong
 * reference is held; an access upgrades through the GWeakRef for its
 * duration; once the object is finalized elsewhere the handle reports
 * GCS_ERROR_RELEASED; unregistering a live weak handle leaves the object
 * alone; begin/end keeps the object alive in between. */
#include "common.h"

#define SENTINEL ((void *) (uintptr_t) 0x5e17e1u)

static GcsHandle
register_weak (void *object, const char *instance_name)
{
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_WEAK_GOBJECT;
  registration.object = object;
  registration.instance_name = instance_name;
  GcsHandle handle = GCS_INVALID_HANDLE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (handle != GCS_INVALID_HANDLE);
  return handle;
}

typedef struct
{
  gint calls;
  void *object;
  int refcount_inside;
} Probe;

static int
probe (void *object, void *user_data)
{
  Probe *p = user_data;
  g_atomic_int_inc (&p->calls);
  p->object = object;
  p->refcount_inside = OBJECT_REFCOUNT (object);
  return 0;
}

/* ---------------------------------------------------------------------- */

static void
test_no_strong_reference_and_upgrade (void)
{
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  FinalizeRecord finalized;
  watch_finalize_record (object, &finalized);
  GcsHandle handle = register_weak (object, "weak-gobject");
  CHECK (OBJECT_REFCOUNT (object) == 1);        /* no strong reference */
  CHECK (gcs_is_valid (handle));

  GcsHandleInfo info = handle_info_of (handle);
  CHECK (info.kind == GCS_KIND_WEAK_GOBJECT);
  CHECK (info.state == GCS_STATE_LIVE);
  CHECK (strcmp (info.type_name, "GObject") == 0);
  CHECK (strcmp (info.instance_name, "weak-gobject") == 0);

  Probe p = { 0, NULL, 0 };
  CHECK_OK (gcs_safe_access (handle, probe, &p));
  CHECK (p.calls == 1 && p.object == object);
  CHECK (p.refcount_inside == 2);       /* upgraded for the access */
  CHECK (OBJECT_REFCOUNT (object) == 1);        /* and back */

  void *accessed = SENTINEL;
  CHECK_OK (gcs_access_begin (handle, &accessed));
  CHECK (accessed == object);
  CHECK (OBJECT_REFCOUNT (object) == 2);
  CHECK_OK (gcs_access_end (handle));
  CHECK (OBJECT_REFCOUNT (object) == 1);

  /* Unregistering a live weak handle does not finalize the object. */
  CHECK_OK (gcs_unregister (handle));
  CHECK (FINALIZED_COUNT (&finalized) == 0);
  CHECK (OBJECT_REFCOUNT (object) == 1);
  CHECK (!gcs_is_valid (handle));
  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (p.calls == 1);
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);

  /* The owner's reference is the only one: dropping it finalizes. */
  g_object_unref (object);
  CHECK (FINALIZED_COUNT (&finalized) == 1);

  /* A GstElement, held weakly: its GType name, no reference taken. */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  gst_object_ref_sink (element);
  watch_finalize_record (element, &finalized);
  handle = register_weak (element, NULL);
  CHECK (OBJECT_REFCOUNT (element) == 1);
  CHECK (strcmp (handle_info_of (handle).type_name, "GstFakeSink") == 0);
  CHECK_OK (gcs_safe_access (handle, probe, &p));
  CHECK (p.object == element && p.refcount_inside == 2);
  CHECK_OK (gcs_unregister (handle));
  CHECK (OBJECT_REFCOUNT (element) == 1 && FINALIZED_COUNT (&finalized) == 0);
  gst_object_unref (element);
  CHECK (FINALIZED_COUNT (&finalized) == 1);
}

static void
test_finalized_elsewhere (void)
{
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  FinalizeRecord finalized;
  watch_finalize_record (object, &finalized);
  GcsHandle handle = register_weak (object, "gone-elsewhere");

  Probe p = { 0, NULL, 0 };
  CHECK_OK (gcs_safe_access (handle, probe, &p));
  CHECK (p.calls == 1);

  /* The owner drops the last reference: the weak handle does not stop it. */
  g_object_unref (object);
  CHECK (FINALIZED_COUNT (&finalized) == 1);

  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (p.calls == 1);         /* the callback never ran */
  CHECK (!gcs_is_valid (handle));
  void *accessed = SENTINEL;
  CHECK_RESULT (gcs_access_begin (handle, &accessed), GCS_ERROR_RELEASED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (accessed == SENTINEL);
  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_RELEASED);
  CHECK (p.calls == 1);
  CHECK (handle_info_of (handle).state == GCS_STATE_RELEASED);
  CHECK_RESULT (gcs_unregister (handle), GCS_ERROR_RELEASED);
  CHECK (FINALIZED_COUNT (&finalized) == 1);

  /* Found dead by gcs_access_begin first. */
  object = g_object_new (G_TYPE_OBJECT, NULL);
  watch_finalize_record (object, &finalized);
  handle = register_weak (object, NULL);
  g_object_unref (object);
  CHECK (FINALIZED_COUNT (&finalized) == 1);
  accessed = SENTINEL;
  CHECK_RESULT (gcs_access_begin (handle, &accessed), GCS_ERROR_RELEASED);
  CHECK (accessed == SENTINEL);
  CHECK (!gcs_is_valid (handle));
  CHECK_RESULT (gcs_access_end (handle), GCS_ERROR_RELEASED);
  CHECK_RESULT (gcs_unregister_sync (handle, GCS_TIMEOUT_INFINITE), GCS_ERROR_RELEASED);
}

static void
test_begin_end_keeps_alive (void)
{
  GstElement *element = gst_element_factory_make ("identity", "weakly-held");
  gst_object_ref_sink (element);
  FinalizeRecord finalized;
  watch_finalize_record (element, &finalized);
  GcsHandle handle = register_weak (element, NULL);

  void *accessed = NULL;
  CHECK_OK (gcs_access_begin (handle, &accessed));
  CHECK (accessed == element);
  /* The owner lets go in the middle of the access. */
  gst_object_unref (element);
  CHECK (FINALIZED_COUNT (&finalized) == 0);
  CHECK (OBJECT_REFCOUNT (accessed) == 1);
  gchar *name = gst_object_get_name (GST_OBJECT (accessed));    /* still usable */
  CHECK (name != NULL && strcmp (name, "weakly-held") == 0);
  g_free (name);

  /* Ended on another thread: the last reference goes there. */
  pthread_t ender;
  CHECK_OK (end_access_on_new_thread (handle, &ender));
  CHECK (FINALIZED_COUNT (&finalized) == 1);
  CHECK (pthread_equal (finalized.thread, ender));

  Probe p = { 0, NULL, 0 };
  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_RELEASED);
  CHECK (p.calls == 0);
  CHECK (!gcs_is_valid (handle));

  /* Unregistered while an access holds the upgraded reference and the
   * owner has let go: alive until that access ends, then finalized once. */
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  watch_finalize_record (object, &finalized);
  handle = register_weak (object, NULL);
  CHECK_OK (gcs_access_begin (handle, &accessed));
  g_object_unref (object);
  CHECK_OK (gcs_unregister (handle));
  CHECK (FINALIZED_COUNT (&finalized) == 0);
  CHECK (OBJECT_REFCOUNT (accessed) == 1);
  CHECK_OK (gcs_access_end (handle));
  CHECK (FINALIZED_COUNT (&finalized) == 1);
  CHECK_RESULT (gcs_access_end (handle), GCS_ERROR_RELEASED);
}

static void
test_invalidate_weak (void)
{
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  FinalizeRecord finalized;
  watch_finalize_record (object, &finalized);
  GcsHandle handle = register_weak (object, NULL);
  CHECK_OK (gcs_invalidate (handle));
  Probe p = { 0, NULL, 0 };
  CHECK_RESULT (gcs_safe_access (handle, probe, &p), GCS_ERROR_INVALIDATED);
  CHECK_LAST_ERROR_CONTAINS ("not valid for access");
  CHECK (handle_info_of (handle).state == GCS_STATE_INVALIDATED);
  CHECK (OBJECT_REFCOUNT (object) == 1);
  CHECK_OK (gcs_unregister (handle));
  CHECK (FINALIZED_COUNT (&finalized) == 0);
  g_object_unref (object);
  CHECK (FINALIZED_COUNT (&finalized) == 1);
}

/* A reader accessing a weak handle while the owner drops the object on
 * another thread: every callback sees a live object; then RELEASED. */
typedef struct
{
  GcsHandle handle;
  FinalizeRecord *finalized;
  gint bad;
  gint accesses;
  GcsResult last;
  TestGate started;
} WeakReader;

static int
weak_reader_callback (void *object, void *user_data)
{
  WeakReader *r = user_data;
  if (FINALIZED_COUNT (r->finalized) != 0 || OBJECT_REFCOUNT (object) < 1)
    g_atomic_int_inc (&r->bad);
  g_atomic_int_inc (&r->accesses);
  return 0;
}

static void *
weak_reader_thread (void *data)
{
  WeakReader *r = data;
  for (;;) {
    r->last = gcs_safe_access (r->handle, weak_reader_callback, r);
    if (r->last != GCS_OK)
      break;
    if (g_atomic_int_get (&r->accesses) == 20)
      gate_set (&r->started, 1);
  }
  gate_set (&r->started, 1);
  return NULL;
}

static void
test_weak_reader_while_owner_drops (void)
{
  const int rounds = getenv ("GCS_SLOW") ? 10 : 40;
  for (int round = 0; round < rounds; round++) {
    GstElement *element = gst_element_factory_make ("identity", NULL);
    gst_object_ref_sink (element);
    FinalizeRecord finalized;
    watch_finalize_record (element, &finalized);
    WeakReader r;
    memset (&r, 0, sizeof r);
    r.handle = register_weak (element, NULL);
    r.finalized = &finalized;
    gate_init (&r.started);
    pthread_t thread;
    SPAWN (&thread, weak_reader_thread, &r);
    gate_wait (&r.started, 1);
    if (round % 2)
      g_usleep (round * 10);
    gst_object_unref (element);
    JOIN (thread);
    CHECK_RESULT (r.last, GCS_ERROR_RELEASED);
    CHECK (r.bad == 0);
    CHECK (r.accesses >= 20);
    CHECK (FINALIZED_COUNT (&finalized) == 1);
    CHECK (!gcs_is_valid (r.handle));
    CHECK_RESULT (gcs_unregister (r.handle), GCS_ERROR_RELEASED);
    gate_clear (&r.started);
  }
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  test_no_strong_reference_and_upgrade ();
  test_finalized_elsewhere ();
  test_begin_end_keeps_alive ();
  test_invalidate_weak ();
  test_weak_reader_while_owner_drops ();

  TEST_PASSED ();
}

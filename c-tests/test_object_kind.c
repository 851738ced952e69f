/* gcs_object_kind (for bindings: include/gcsafety.h): the kind a binding registers an
 * object of unknown type with, read from its GType: GstObject, other GObject,
 * GstMiniObject; anything else (a GTypeInstance that is not a GObject, a
 * GValue, NULL) is refused and *kind_out left alone; no reference is taken. */
#include "common.h"

#define UNTOUCHED ((GcsObjectKind) 77)

static GcsObjectKind
kind_of (void *object)
{
  GcsObjectKind kind = UNTOUCHED;
  CHECK_OK (gcs_object_kind (object, &kind));
  CHECK (kind != UNTOUCHED);
  return kind;
}

int
main (void)
{
  gst_init (NULL, NULL);

  /* A GstElement (floating: the call neither sinks nor refs it). */
  GstElement *element = gst_element_factory_make ("fakesink", NULL);
  CHECK (element != NULL);
  CHECK (kind_of (element) == GCS_KIND_GST_OBJECT);
  CHECK (g_object_is_floating (element) && OBJECT_REFCOUNT (element) == 1);

  /* A GstObject that is not an element: a bus. */
  GstBus *bus = gst_bus_new ();
  CHECK (kind_of (bus) == GCS_KIND_GST_OBJECT);

  /* A plain GObject. */
  GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
  CHECK (kind_of (object) == GCS_KIND_GOBJECT);
  CHECK (OBJECT_REFCOUNT (object) == 1);

  /* Mini objects: a buffer, caps, an event. */
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 16, NULL);
  GstCaps *caps = gst_caps_new_empty_simple ("video/x-raw");
  GstEvent *event = gst_event_new_eos ();
  CHECK (kind_of (buffer) == GCS_KIND_MINI_OBJECT);
  CHECK (kind_of (caps) == GCS_KIND_MINI_OBJECT);
  CHECK (kind_of (event) == GCS_KIND_MINI_OBJECT);
  CHECK (MINI_REFCOUNT (buffer) == 1);

  /* The kind it gives is one a checked registration accepts. */
  GcsRegistration registration;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = kind_of (buffer);
  registration.object = buffer;
  GcsHandle handle = GCS_INVALID_HANDLE;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (MINI_REFCOUNT (buffer) == 2);
  CHECK_OK (gcs_unregister (handle));
  CHECK (MINI_REFCOUNT (buffer) == 1);

  /* Not objects: a GValue (its first word a fundamental GType), a
   * GParamSpec (a GTypeInstance that is not a GObject), NULL. */
  GValue value = G_VALUE_INIT;
  g_value_init (&value, G_TYPE_INT);
  GcsObjectKind kind = UNTOUCHED;
  CHECK_RESULT (gcs_object_kind (&value, &kind), GCS_ERROR_WRONG_TYPE);
  CHECK_LAST_ERROR_CONTAINS ("neither a GTypeInstance nor a GstMiniObject");
  GParamSpec *pspec = g_param_spec_int ("n", "n", "n", 0, 10, 1, G_PARAM_READWRITE);
  g_param_spec_ref_sink (pspec);
  CHECK_RESULT (gcs_object_kind (pspec, &kind), GCS_ERROR_WRONG_TYPE);
  CHECK_LAST_ERROR_CONTAINS ("not a GObject");
  CHECK_RESULT (gcs_object_kind (NULL, &kind), GCS_ERROR_NULL_ARGUMENT);
  CHECK_RESULT (gcs_object_kind (object, NULL), GCS_ERROR_NULL_ARGUMENT);
  CHECK (kind == UNTOUCHED);

  g_param_spec_unref (pspec);
  gst_event_unref (event);
  gst_caps_unref (caps);
  gst_buffer_unref (buffer);
  g_object_unref (object);
  gst_object_unref (bus);
  gst_object_unref (gst_object_ref_sink (element));
  CHECK_OK (gcs_shutdown (GCS_TIMEOUT_INFINITE));
  TEST_PASSED ();
}

/* A test plugin for tests/tracer.rs: the element "gcsleaky" registers
 * itself with gcsafety when it goes from NULL to READY and never
 * unregisters: the application's leaked registration that the gcsafety
 * tracer must report at gst_deinit (and the leaks tracer too, since the
 * registration keeps the element alive). */
#define PACKAGE "gcsafety"
#include <string.h>

#include <gst/gst.h>

#include "gcsafety.h"

#define GCS_TYPE_LEAKY (gcs_leaky_get_type ())
G_DECLARE_FINAL_TYPE (GcsLeaky, gcs_leaky, GCS, LEAKY, GstElement)

struct _GcsLeaky
{
  GstElement parent;
};

G_DEFINE_TYPE (GcsLeaky, gcs_leaky, GST_TYPE_ELEMENT)

static GstStateChangeReturn
gcs_leaky_change_state (GstElement * element, GstStateChange transition)
{
  if (transition == GST_STATE_CHANGE_NULL_TO_READY) {
    GcsRegistration registration;
    memset (&registration, 0, sizeof registration);
    registration.struct_size = sizeof registration;
    registration.kind = GCS_KIND_GST_OBJECT;
    registration.object = element;
    registration.instance_name = "leaked-by-gcsleaky";
    registration.flags = GCS_REGISTER_CAPTURE_STACK;
    GcsHandle handle;
    if (gcs_register_full (&registration, &handle) != GCS_OK) {
      GST_ERROR_OBJECT (element, "gcs_register_full: %s", gcs_last_error ());
      return GST_STATE_CHANGE_FAILURE;
    }
    /* The handle is dropped on the floor: the leak. */
  }
  return GST_ELEMENT_CLASS (gcs_leaky_parent_class)->change_state (element, transition);
}

static void
gcs_leaky_class_init (GcsLeakyClass * klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  element_class->change_state = gcs_leaky_change_state;
  gst_element_class_set_static_metadata (element_class, "gcsafety leaky test element",
      "Testing", "Registers itself with gcsafety and never unregisters", "gcsafety");
}

static void
gcs_leaky_init (GcsLeaky * self)
{
  (void) self;
}

static gboolean
plugin_init (GstPlugin * plugin)
{
  return gst_element_register (plugin, "gcsleaky", GST_RANK_NONE, GCS_TYPE_LEAKY);
}

/* GST_PLUGIN_DEFINE leaves the descriptor's padding to zero-initialisation. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, gcsleaky,
    "gcsafety test: an element that leaks its registration", plugin_init,
    "0.1.0", "MIT/X11", "gcsafety", "https://github.com/gcsafety/gcsafety")
#pragma GCC diagnostic pop

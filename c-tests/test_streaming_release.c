/* GCS_REGISTER_SET_NULL_STATE released from an element's own streaming
 * thread: a pad probe (and an appsink callback) ends the last access of a
 * pipeline that was unregistered meanwhile. Setting the pipeline to NULL on
 * that thread would make it join itself (GStreamer warns "Trying to join
 * task ... from its thread would deadlock", or hangs); the release must run
 * gst_element_set_state elsewhere (the library's executor), and the pipeline
 * must still be NULL when it is disposed, and finalized. */
#include "common.h"

#include <gst/app/gstappsink.h>

static gint gst_warnings;

static void
count_gst_warnings (const gchar * domain, GLogLevelFlags level, const gchar * message,
    gpointer data)
{
  (void) domain;
  (void) level;
  (void) data;
  fprintf (stderr, "GStreamer warning: %s\n", message);
  g_atomic_int_inc (&gst_warnings);
}

typedef struct
{
  GcsHandle handle;
  TestGate done;                /* 1: the probe ended the access; 2: disposed */
  pthread_t streaming_thread;   /* the thread that ended the last access */
  pthread_t cleanup_thread;     /* the thread the release began on */
  pthread_t dispose_thread;     /* the thread that dropped the last reference */
  GstState state_at_dispose;
  GcsResult end_result;
} Story;

static int
record_cleanup_thread (void *object, void *user_data)
{
  (void) object;
  Story *story = user_data;
  story->cleanup_thread = pthread_self ();
  return 0;
}

static void
record_dispose (gpointer data, GObject * where_the_object_was)
{
  Story *story = data;
  story->state_at_dispose = GST_STATE (where_the_object_was);
  story->dispose_thread = pthread_self ();
  gate_set (&story->done, 2);
}

/* End the main thread's access from the streaming thread: the last one. */
static void
end_last_access_here (Story * story)
{
  story->streaming_thread = pthread_self ();
  story->end_result = gcs_access_end (story->handle);
  gate_set (&story->done, 1);
}

static GstPadProbeReturn
end_access_in_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  (void) pad;
  (void) info;
  end_last_access_here (user_data);
  return GST_PAD_PROBE_REMOVE;
}

static GstFlowReturn
end_access_in_new_sample (GstAppSink * sink, gpointer user_data)
{
  Story *story = user_data;
  GstSample *sample = gst_app_sink_pull_sample (sink);
  if (sample)
    gst_sample_unref (sample);
  if (!g_atomic_int_get (&story->done.value))  /* only the first sample */
    end_last_access_here (story);
  return GST_FLOW_OK;
}

static void
run (const char *description, gboolean use_appsink)
{
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (description, &error);
  CHECK (pipeline != NULL && error == NULL);
  Story story;
  memset (&story, 0, sizeof story);
  gate_init (&story.done);
  story.state_at_dispose = GST_STATE_VOID_PENDING;
  g_object_weak_ref (G_OBJECT (pipeline), record_dispose, &story);

  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  CHECK (sink != NULL);
  if (use_appsink) {
    GstAppSinkCallbacks callbacks = { 0 };
    callbacks.new_sample = end_access_in_new_sample;
    gst_app_sink_set_callbacks (GST_APP_SINK (sink), &callbacks, &story, NULL);
  } else {
    GstPad *pad = gst_element_get_static_pad (sink, "sink");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, end_access_in_probe, &story, NULL);
    gst_object_unref (pad);
  }
  gst_object_unref (sink);

  /* The registration holds the only reference (it sinks gst_parse_launch's
   * floating one). */
  GcsRegistration registration = registration_for (NULL, GCS_KIND_GST_OBJECT, pipeline);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  registration.instance_name = "streaming-release";
  CHECK_OK (gcs_register_full (&registration, &story.handle));
  CHECK_OK (gcs_add_cleanup (story.handle, record_cleanup_thread, &story));

  /* The main thread's access keeps it alive; unregister while it is in
   * flight, so whoever ends it releases the pipeline. */
  void *object;
  CHECK_OK (gcs_access_begin (story.handle, &object));
  CHECK_OK (gcs_unregister (story.handle));
  g_atomic_int_set (&gst_warnings, 0);
  CHECK (gst_element_set_state (GST_ELEMENT (object), GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  /* From here on `object` is not ours to use: the streaming thread ends
   * the last access. */

  CHECK (gate_wait_for (&story.done, 1, 20000));
  CHECK (story.end_result == GCS_OK);
  /* Generous: a deadlock never gets there. */
  CHECK (gate_wait_for (&story.done, 2, 20000));
  /* And the release completes (the unref was in it). */
  CHECK (gcs_unregister_sync (story.handle, 20000) == GCS_ERROR_RELEASED);
  /* The release began on the streaming thread (its cleanups ran there)... */
  CHECK (pthread_equal (story.cleanup_thread, story.streaming_thread));
  /* ... but the state change and the final unref ran elsewhere, and the
   * pipeline was NULL when disposed, without a GStreamer warning. */
  CHECK (!pthread_equal (story.dispose_thread, story.streaming_thread));
  CHECK (story.state_at_dispose == GST_STATE_NULL);
  CHECK (g_atomic_int_get (&gst_warnings) == 0);
  /* The handle says released (the release is complete). */
  GcsHandleInfo info;
  memset (&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK_OK (gcs_get_info (story.handle, &info));
  CHECK (info.state == GCS_STATE_RELEASED);
  gate_clear (&story.done);
}

/* gcs_unregister_sync from a non-streaming thread still returns after the
 * NULL state and the unref. */
static void
unregister_sync_waits (void)
{
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch ("fakesrc ! fakesink name=sink sync=true", &error);
  CHECK (pipeline != NULL && error == NULL);
  Story story;
  memset (&story, 0, sizeof story);
  gate_init (&story.done);
  g_object_weak_ref (G_OBJECT (pipeline), record_dispose, &story);
  CHECK (gst_element_set_state (pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  GcsRegistration registration = registration_for (NULL, GCS_KIND_GST_OBJECT, pipeline);
  registration.flags = GCS_REGISTER_SET_NULL_STATE;
  /* gst_parse_launch's reference is floating: the registration sinks it
   * and holds the only one. */
  CHECK_OK (gcs_register_full (&registration, &story.handle));
  CHECK_OK (gcs_unregister_sync (story.handle, GCS_TIMEOUT_INFINITE));
  /* A task thread of the stopped pipeline may drop a reference of its own
   * a moment after ours. */
  CHECK (gate_wait_for (&story.done, 2, 20000));
  CHECK (story.state_at_dispose == GST_STATE_NULL);
  gate_clear (&story.done);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_log_set_handler ("GStreamer", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING, count_gst_warnings,
      NULL);
  run ("fakesrc ! fakesink name=sink sync=false", FALSE);
  run ("videotestsrc ! video/x-raw,width=32,height=24 ! appsink name=sink sync=false", TRUE);
  unregister_sync_waits ();
  CHECK_OK (gcs_shutdown (GCS_TIMEOUT_INFINITE));
  TEST_PASSED ();
}

package main

// The GStreamer side of the demo, in C: the pipeline and its appsink, the
// layout of the frames, copying one stripe of a frame out of its buffer, and
// the weak references that witness when each sample is freed. Only C
// pointers cross into Go; Go memory crosses into C only as the destination
// of a copy (a []byte of the BufferPool), for the length of the call.

/*
#cgo pkg-config: gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0
#include <stdlib.h>
#include <string.h>
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

static int capture_glib_warnings;

static void capture_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data) {
	if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
		__atomic_add_fetch(&capture_glib_warnings, 1, __ATOMIC_RELAXED);
	g_log_default_handler(domain, level, message, data);
}

static void capture_init(void) {
	gst_init(NULL, NULL);
	g_log_set_default_handler(capture_log, NULL);
}

static int capture_warnings(void) {
	return __atomic_load_n(&capture_glib_warnings, __ATOMIC_RELAXED);
}

typedef struct {
	GstElement *pipeline;
	GstElement *appsink;
	GstBus *bus;
} capture_pipeline;

// The pipeline of a gst-launch description, or NULL and *error_out (g_free).
static capture_pipeline *capture_pipeline_new(const char *description, char **error_out) {
	GError *error = NULL;
	GstElement *pipeline = gst_parse_launch(description, &error);
	if (pipeline == NULL) {
		*error_out = g_strdup(error->message);
		g_error_free(error);
		return NULL;
	}
	g_clear_error(&error); // a recoverable warning
	GstElement *sink = GST_IS_BIN(pipeline) ? gst_bin_get_by_name(GST_BIN(pipeline), "sink") : NULL;
	if (sink == NULL || !GST_IS_APP_SINK(sink)) {
		if (sink != NULL)
			gst_object_unref(sink);
		gst_object_unref(pipeline);
		*error_out = g_strdup("the pipeline needs an appsink named sink (... ! appsink name=sink)");
		return NULL;
	}
	g_object_set(sink, "max-buffers", 8, "drop", TRUE, NULL);
	capture_pipeline *c = g_new0(capture_pipeline, 1);
	c->pipeline = pipeline;
	c->appsink = sink;
	c->bus = gst_element_get_bus(pipeline);
	return c;
}

static int capture_play(capture_pipeline *c) {
	return gst_element_set_state(c->pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
}

static void capture_pipeline_free(capture_pipeline *c) {
	gst_element_set_state(c->pipeline, GST_STATE_NULL);
	gst_object_unref(c->bus);
	gst_object_unref(c->appsink);
	gst_object_unref(c->pipeline);
	g_free(c);
}

// 0: nothing within the timeout; 1: end of stream; 2: an error (*error_out, g_free).
static int capture_bus_poll(capture_pipeline *c, guint64 timeout_ns, char **error_out) {
	GstMessage *message = gst_bus_timed_pop_filtered(c->bus, timeout_ns, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
	if (message == NULL)
		return 0;
	int status = 1;
	if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
		GError *error = NULL;
		gchar *debug = NULL;
		gst_message_parse_error(message, &error, &debug);
		*error_out = g_strdup_printf("%s: %s (%s)", GST_OBJECT_NAME(message->src), error->message,
			debug ? debug : "no details");
		g_clear_error(&error);
		g_free(debug);
		status = 2;
	}
	gst_message_unref(message);
	return status;
}

// The layout of the frames of one caps: where the luma is.
typedef struct {
	GstCaps *caps;
	GstVideoInfo info;
	int luma_plane; // 8-bit Y (or gray) in a plane of its own, else bytes
	int width, height;
	char description[96];
} capture_format;

static GPtrArray *capture_formats; // used by the pulling goroutine only

static const capture_format *capture_format_for(GstCaps *caps) {
	if (capture_formats == NULL)
		capture_formats = g_ptr_array_new();
	for (guint i = 0; i < capture_formats->len; i++) {
		const capture_format *known = g_ptr_array_index(capture_formats, i);
		if ((caps == NULL && known->caps == NULL) || (caps && known->caps && gst_caps_is_equal(caps, known->caps)))
			return known;
	}
	capture_format *f = g_new0(capture_format, 1);
	f->caps = caps ? gst_caps_ref(caps) : NULL;
	if (caps && gst_video_info_from_caps(&f->info, caps)) {
		const GstVideoFormatInfo *finfo = f->info.finfo;
		f->luma_plane = (GST_VIDEO_FORMAT_INFO_IS_YUV(finfo) || GST_VIDEO_FORMAT_INFO_IS_GRAY(finfo))
			&& GST_VIDEO_FORMAT_INFO_DEPTH(finfo, 0) == 8 && GST_VIDEO_FORMAT_INFO_PSTRIDE(finfo, 0) == 1
			&& !GST_VIDEO_FORMAT_INFO_IS_TILED(finfo);
		f->width = GST_VIDEO_INFO_COMP_WIDTH(&f->info, 0);
		f->height = GST_VIDEO_INFO_COMP_HEIGHT(&f->info, 0);
		g_snprintf(f->description, sizeof f->description, "%dx%d %s, %s", GST_VIDEO_INFO_WIDTH(&f->info),
			GST_VIDEO_INFO_HEIGHT(&f->info), GST_VIDEO_INFO_NAME(&f->info),
			f->luma_plane ? "mean luma of the Y plane" : "mean byte value (no 8-bit luma plane)");
	} else {
		g_snprintf(f->description, sizeof f->description, "not raw video: mean byte value");
	}
	g_ptr_array_add(capture_formats, f);
	return f;
}

static const char *capture_format_description(const capture_format *f) {
	return f->description;
}

// The most bytes capture_copy_stripe copies for a stripe of n.
static size_t capture_max_stripe(const capture_format *f, size_t size, int n) {
	if (f->luma_plane)
		return (size_t)f->width * (size_t)((f->height + n - 1) / n + 1);
	return size / (size_t)n + 1;
}

typedef struct {
	GstSample *sample; // NULL: nothing pulled
	const capture_format *format;
	size_t size;
} capture_pulled;

// A sample of the appsink, within timeout_ns. appsink keeps the sample it
// hands out and reuses it once nobody else holds it; the demo gives each
// frame a GstSample of its own (transfer full), so that a weak reference
// can witness exactly when the last reference goes.
static capture_pulled capture_pull(capture_pipeline *c, guint64 timeout_ns) {
	capture_pulled out = { NULL, NULL, 0 };
	GstSample *pulled = gst_app_sink_try_pull_sample(GST_APP_SINK(c->appsink), timeout_ns);
	if (pulled == NULL)
		return out;
	GstBuffer *buffer = gst_sample_get_buffer(pulled);
	if (buffer != NULL) {
		out.sample = gst_sample_copy(pulled);
		out.format = capture_format_for(gst_sample_get_caps(out.sample));
		out.size = gst_buffer_get_size(buffer);
	}
	gst_sample_unref(pulled);
	return out;
}

static int capture_refcount(GstSample *sample) {
	return GST_MINI_OBJECT_REFCOUNT_VALUE(sample);
}

static void capture_sample_unref(GstSample *sample) {
	gst_sample_unref(sample);
}

// Rows [h*i/n, h*(i+1)/n) of the luma plane (packed, width bytes a row), or
// the stripe's share of the bytes, copied into dst. -1 if the buffer cannot
// be mapped or dst is too small.
static long capture_copy_stripe(GstSample *sample, const capture_format *f, int i, int n, void *dst, size_t dst_len) {
	GstBuffer *buffer = gst_sample_get_buffer(sample);
	guint8 *out = dst;
	long copied = 0;
	if (buffer == NULL)
		return -1;
	if (f->luma_plane) {
		GstVideoFrame video;
		if (!gst_video_frame_map(&video, (GstVideoInfo *)&f->info, buffer, GST_MAP_READ))
			return -1;
		const guint8 *plane = GST_VIDEO_FRAME_COMP_DATA(&video, 0);
		int stride = GST_VIDEO_FRAME_COMP_STRIDE(&video, 0);
		int width = GST_VIDEO_FRAME_COMP_WIDTH(&video, 0);
		int height = GST_VIDEO_FRAME_COMP_HEIGHT(&video, 0);
		for (int row = height * i / n; row < height * (i + 1) / n; row++) {
			if ((size_t)copied + (size_t)width > dst_len) {
				copied = -1;
				break;
			}
			memcpy(out + copied, plane + (size_t)row * stride, width);
			copied += width;
		}
		gst_video_frame_unmap(&video);
		return copied;
	}
	GstMapInfo map;
	if (!gst_buffer_map(buffer, &map, GST_MAP_READ))
		return -1;
	size_t start = map.size * i / n, end = map.size * (i + 1) / n;
	if (end - start <= dst_len) {
		memcpy(out, map.data + start, end - start);
		copied = (long)(end - start);
	} else {
		copied = -1;
	}
	gst_buffer_unmap(buffer, &map);
	return copied;
}

// What a weak reference on a sample saw. The Go side updates in_access,
// unregistering and finalizer_runs (atomically) for the checks made here.
typedef struct {
	int freed;
	int in_access;
	int unregistering;
	int finalizer_runs;
	int violations; // CAPTURE_FREED_* bits
} capture_watch;

enum {
	CAPTURE_FREED_TWICE = 1,
	CAPTURE_FREED_WHILE_INSIDE = 2,
	CAPTURE_FREED_WHILE_REGISTERED = 4,
	CAPTURE_FREED_BEFORE_FINALIZER = 8,
};

static int capture_freed_total;

static void capture_on_freed(gpointer data, GstMiniObject *where_the_object_was) {
	capture_watch *w = data;
	int violations = 0;
	(void)where_the_object_was;
	if (__atomic_fetch_add(&w->freed, 1, __ATOMIC_SEQ_CST) != 0)
		violations |= CAPTURE_FREED_TWICE;
	if (__atomic_load_n(&w->in_access, __ATOMIC_SEQ_CST) != 0)
		violations |= CAPTURE_FREED_WHILE_INSIDE;
	if (__atomic_load_n(&w->unregistering, __ATOMIC_SEQ_CST) == 0)
		violations |= CAPTURE_FREED_WHILE_REGISTERED;
	if (__atomic_load_n(&w->finalizer_runs, __ATOMIC_SEQ_CST) != 1)
		violations |= CAPTURE_FREED_BEFORE_FINALIZER;
	__atomic_or_fetch(&w->violations, violations, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&capture_freed_total, 1, __ATOMIC_SEQ_CST);
}

static capture_watch *capture_watch_new(GstSample *sample) {
	capture_watch *w = g_new0(capture_watch, 1);
	gst_mini_object_weak_ref(GST_MINI_OBJECT_CAST(sample), capture_on_freed, w);
	return w;
}

static int capture_freed(void) {
	return __atomic_load_n(&capture_freed_total, __ATOMIC_SEQ_CST);
}
*/
import "C"

import (
	"errors"
	"sync/atomic"
	"unsafe"
)

func gstInit() { C.capture_init() }

func glibWarnings() int { return int(C.capture_warnings()) }

// pipeline is a running gst-launch pipeline ending in an appsink named sink.
type pipeline struct{ c *C.capture_pipeline }

func newPipeline(description string) (*pipeline, error) {
	desc := C.CString(description)
	defer C.free(unsafe.Pointer(desc))
	var msg *C.char
	c := C.capture_pipeline_new(desc, &msg)
	if c == nil {
		defer C.g_free(C.gpointer(msg))
		return nil, errors.New(C.GoString(msg))
	}
	return &pipeline{c}, nil
}

func (p *pipeline) play() bool { return C.capture_play(p.c) != 0 }

// free sets the pipeline to NULL and drops it.
func (p *pipeline) free() { C.capture_pipeline_free(p.c) }

// pollBus waits up to timeoutNs for an error or the end of the stream.
func (p *pipeline) pollBus(timeoutNs uint64) (eos bool, err error) {
	var msg *C.char
	switch C.capture_bus_poll(p.c, C.guint64(timeoutNs), &msg) {
	case 1:
		return true, nil
	case 2:
		defer C.g_free(C.gpointer(msg))
		return false, errors.New(C.GoString(msg))
	}
	return false, nil
}

// format is the layout of frames of one caps (C memory, kept for the run).
type format = *C.capture_format

func formatDescription(f format) string { return C.GoString(C.capture_format_description(f)) }

// hasLumaPlane reports whether frames of f have an 8-bit luma plane (else
// the analysis averages bytes).
func hasLumaPlane(f format) bool { return f.luma_plane != 0 }

func maxStripe(f format, size, stripes int) int {
	return int(C.capture_max_stripe(f, C.size_t(size), C.int(stripes)))
}

// gstSample is a GstSample as a Go GStreamer binding wraps it: a Go value
// around the C pointer. Its GstMiniObject method is what gcsafety's
// RegisterObject recognises (it registers the C mini object, not the
// wrapper).
type gstSample struct{ ptr *C.GstSample }

func (s *gstSample) GstMiniObject() unsafe.Pointer { return unsafe.Pointer(s.ptr) }

// pull returns the next sample (transfer full: unref), its layout and its
// buffer's size, or a nil sample after timeoutNs.
func (p *pipeline) pull(timeoutNs uint64) (*gstSample, format, int) {
	r := C.capture_pull(p.c, C.guint64(timeoutNs))
	if r.sample == nil {
		return nil, nil, 0
	}
	return &gstSample{r.sample}, r.format, int(r.size)
}

func (s *gstSample) refcount() int { return int(C.capture_refcount(s.ptr)) }

func (s *gstSample) unref() { C.capture_sample_unref(s.ptr) }

// copyStripe copies stripe i of n of the frame into dst: its luma rows or
// its share of the bytes. -1 if the buffer cannot be mapped.
func (s *gstSample) copyStripe(f format, i, n int, dst []byte) int {
	if len(dst) == 0 {
		return -1
	}
	return int(C.capture_copy_stripe(s.ptr, f, C.int(i), C.int(n), unsafe.Pointer(&dst[0]), C.size_t(len(dst))))
}

// watch is the weak reference on one sample (C memory, freed at exit).
type watch struct{ c *C.capture_watch }

func newWatch(s *gstSample) watch { return watch{C.capture_watch_new(s.ptr)} }

func (w watch) field(p *C.int) *int32 { return (*int32)(unsafe.Pointer(p)) }

func (w watch) freed() int32         { return atomic.LoadInt32(w.field(&w.c.freed)) }
func (w watch) enter()               { atomic.AddInt32(w.field(&w.c.in_access), 1) }
func (w watch) leave()               { atomic.AddInt32(w.field(&w.c.in_access), -1) }
func (w watch) inside() int32        { return atomic.LoadInt32(w.field(&w.c.in_access)) }
func (w watch) markUnregistering()   { atomic.StoreInt32(w.field(&w.c.unregistering), 1) }
func (w watch) unregistering() bool  { return atomic.LoadInt32(w.field(&w.c.unregistering)) != 0 }
func (w watch) finalized() int32     { return atomic.AddInt32(w.field(&w.c.finalizer_runs), 1) }
func (w watch) finalizerRuns() int32 { return atomic.LoadInt32(w.field(&w.c.finalizer_runs)) }
func (w watch) violations() int32    { return atomic.LoadInt32(w.field(&w.c.violations)) }
func (w watch) free()                { C.g_free(C.gpointer(unsafe.Pointer(w.c))) }
func samplesFreed() uint64           { return uint64(C.capture_freed()) }

// violationText describes the bits of watch.violations.
func violationText(v int32) string {
	var parts []string
	for _, bit := range []struct {
		bit  int32
		text string
	}{
		{C.CAPTURE_FREED_TWICE, "freed twice"},
		{C.CAPTURE_FREED_WHILE_INSIDE, "freed while a worker was inside"},
		{C.CAPTURE_FREED_WHILE_REGISTERED, "freed while still registered"},
		{C.CAPTURE_FREED_BEFORE_FINALIZER, "freed without its finalizer having run once"},
	} {
		if v&bit.bit != 0 {
			parts = append(parts, bit.text)
		}
	}
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += ", "
		}
		s += p
	}
	return s
}

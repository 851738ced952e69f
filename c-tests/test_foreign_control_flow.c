/* Foreign control flow in C: longjmp out of an access. What is defined is a
 * jump that crosses only C frames: out of a gcs_safe_access_inline callback
 * (the callback runs in the inline function's frame, not the library's), or
 * out of code between gcs_access_begin and gcs_access_end. Such a jump
 * corrupts nothing (other handles, new registrations, gcs_is_valid and
 * gcs_get_info keep answering correctly); what it leaks is the access it
 * skipped the end of: the handle's in-flight count stays one higher, so its
 * release waits for ever (gcs_unregister_sync times out, the reference is
 * kept), and, for an access begun by the exported gcs_access_begin, this
 * thread's record of it (gcs_unregister_sync of that handle on this thread
 * gives GCS_ERROR_WOULD_DEADLOCK). gcs_access_end where the jump lands
 * repays it. A longjmp out of a gcs_safe_access callback crosses the
 * library's Rust frames, which Rust leaves undefined: not done here.
 * See docs/foreign-control-flow.md. Run plainly, under ASan+UBSan and
 * valgrind. */
#include "common.h"

#include <setjmp.h>

/* Generous: a correct release happens at once. */
#define GENEROUS_MS 10000
/* Short: a wait that must time out. */
#define SHORT_MS 50

static jmp_buf landing;

/* An access callback that never returns. */
static int
jump_out (void *object, void *user_data)
{
  CHECK (object != NULL);
  (void) user_data;
  longjmp (landing, 1);
}

/* Work done inside an access that never returns either. */
static void
work_and_jump (void *object)
{
  CHECK (GST_IS_BUFFER (object));
  longjmp (landing, 1);
}

static int
count_call (void *object, void *user_data)
{
  CHECK (object != NULL);
  ++*(int *) user_data;
  return 0;
}

/* A buffer of ours (one reference) registered (the registration's). */
static GcsHandle
register_buffer (GstBuffer * buffer)
{
  GcsRegistration registration;
  GcsHandle handle = GCS_INVALID_HANDLE;
  memset (&registration, 0, sizeof registration);
  registration.struct_size = sizeof registration;
  registration.kind = GCS_KIND_MINI_OBJECT;
  registration.object = buffer;
  CHECK_OK (gcs_register_full (&registration, &handle));
  CHECK (MINI_REFCOUNT (buffer) == 2);
  return handle;
}

/* Whether gcs_*_inline take the inline path (not with GCS_INLINE=0): then
 * an inline access is not in this thread's record of accesses. */
static int
inline_path_available (void)
{
  GcsTableView view;
  memset (&view, 0, sizeof view);
  view.struct_size = sizeof view;
  return gcs_table_view (&view) == GCS_OK && view.layout_version == GCS_TABLE_LAYOUT_VERSION;
}

/* The table answers correctly after a jump: another handle is accessed by
 * every path, a new registration works end to end, values that are no
 * handle are refused. */
static void
check_table_works (GcsHandle bystander)
{
  int calls = 0;
  void *object;
  CHECK (gcs_is_valid (bystander) && gcs_is_valid_inline (bystander));
  CHECK_OK (gcs_safe_access (bystander, count_call, &calls));
  CHECK_OK (gcs_safe_access_inline (bystander, count_call, &calls));
  CHECK_OK (gcs_access_begin (bystander, &object));
  CHECK_OK (gcs_access_end (bystander));
  CHECK (calls == 2);
  CHECK (handle_info_of (bystander).accesses_in_flight == 0);

  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 16, NULL);
  GcsHandle fresh = register_buffer (buffer);
  CHECK_OK (gcs_safe_access_inline (fresh, count_call, &calls));
  CHECK_OK (gcs_unregister_sync (fresh, GENEROUS_MS));
  CHECK (MINI_REFCOUNT (buffer) == 1);
  CHECK (!gcs_is_valid (fresh) && !gcs_is_valid_inline (fresh));
  gst_buffer_unref (buffer);

  CHECK (!gcs_is_valid (GCS_INVALID_HANDLE) && !gcs_is_valid_inline (GCS_INVALID_HANDLE));
  CHECK (!gcs_is_valid ((GcsHandle) 0x1234) && !gcs_is_valid_inline ((GcsHandle) 0x1234));
  CHECK_RESULT (gcs_safe_access_inline ((GcsHandle) 0x1234, count_call, &calls),
      GCS_ERROR_INVALID_HANDLE);
}

typedef struct
{
  GcsHandle handle;
  GcsResult result;
} SyncUnregister;

static void *
unregister_sync_thread (void *data)
{
  SyncUnregister *call = data;
  call->result = gcs_unregister_sync (call->handle, SHORT_MS);
  return NULL;
}

/* longjmp out of a gcs_safe_access_inline callback: only C frames are
 * crossed. The access stays in flight; the release waits until someone
 * ends it. */
static void
test_longjmp_out_of_an_inline_access (void)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 64, NULL);
  GstBuffer *other = gst_buffer_new_allocate (NULL, 64, NULL);
  GcsHandle handle = register_buffer (buffer);
  GcsHandle bystander = register_buffer (other);
  int tracked = !inline_path_available ();
  CHECK (gcs_is_valid_inline (handle));       /* loads the view */

  if (setjmp (landing) == 0) {
    gcs_safe_access_inline (handle, jump_out, NULL);
    CHECK (0);                  /* not reached */
  }

  /* What leaked: one access in flight, for ever. Nothing else changed. */
  GcsHandleInfo info = handle_info_of (handle);
  CHECK (info.accesses_in_flight == 1);
  CHECK (info.state == GCS_STATE_LIVE);
  CHECK (gcs_is_valid (handle) && gcs_is_valid_inline (handle));
  CHECK (MINI_REFCOUNT (buffer) == 2);
  check_table_works (bystander);

  /* Its release waits for that access: a sync unregister times out (on
   * the inline path this thread holds no record of the access; through the
   * exported begin, GCS_INLINE=0, it does and is refused at once). */
  if (tracked) {
    CHECK_RESULT (gcs_unregister_sync (handle, SHORT_MS), GCS_ERROR_WOULD_DEADLOCK);
    CHECK_OK (gcs_unregister (handle));
  } else {
    CHECK_RESULT (gcs_unregister_sync (handle, SHORT_MS), GCS_ERROR_TIMEOUT);
  }
  info = handle_info_of (handle);
  CHECK (info.state == GCS_STATE_RELEASING && info.accesses_in_flight == 1);
  CHECK (!gcs_is_valid (handle) && !gcs_is_valid_inline (handle));
  CHECK (MINI_REFCOUNT (buffer) == 2);        /* the reference is still held */
  check_table_works (bystander);

  /* Repaid: ending the access releases, here, exactly once. */
  CHECK_OK (gcs_access_end (handle));
  CHECK (MINI_REFCOUNT (buffer) == 1);
  CHECK (handle_info_of (handle).state == GCS_STATE_RELEASED);
  CHECK_RESULT (gcs_access_end (handle), GCS_ERROR_RELEASED);
  CHECK (MINI_REFCOUNT (buffer) == 1);

  CHECK_OK (gcs_unregister_sync (bystander, GENEROUS_MS));
  CHECK (MINI_REFCOUNT (other) == 1);
  gst_buffer_unref (buffer);
  gst_buffer_unref (other);
}

/* longjmp out of work between gcs_access_begin and gcs_access_end (the
 * jump crosses only C frames: begin has returned). This thread still records
 * the access: its sync unregister is refused at once; another thread's
 * times out. */
static void
test_longjmp_between_begin_and_end (void)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 64, NULL);
  GstBuffer *other = gst_buffer_new_allocate (NULL, 64, NULL);
  GcsHandle handle = register_buffer (buffer);
  GcsHandle bystander = register_buffer (other);
  void *object;

  CHECK_OK (gcs_access_begin (handle, &object));
  if (setjmp (landing) == 0) {
    work_and_jump (object);
    CHECK (0);                  /* not reached */
  }

  CHECK (handle_info_of (handle).accesses_in_flight == 1);
  check_table_works (bystander);

  uint64_t start = test_now_ms ();
  CHECK_RESULT (gcs_unregister_sync (handle, GENEROUS_MS), GCS_ERROR_WOULD_DEADLOCK);
  CHECK (test_now_ms () - start < GENEROUS_MS / 2);   /* at once */
  CHECK (gcs_is_valid (handle));      /* and changed nothing */
  CHECK (handle_info_of (handle).state == GCS_STATE_LIVE);

  SyncUnregister call = { handle, GCS_OK };
  pthread_t thread;
  SPAWN (&thread, unregister_sync_thread, &call);
  JOIN (thread);
  CHECK_RESULT (call.result, GCS_ERROR_TIMEOUT);
  CHECK (handle_info_of (handle).state == GCS_STATE_RELEASING);
  CHECK (MINI_REFCOUNT (buffer) == 2);
  check_table_works (bystander);

  CHECK_OK (gcs_access_end (handle));
  CHECK (MINI_REFCOUNT (buffer) == 1);
  CHECK (handle_info_of (handle).state == GCS_STATE_RELEASED);

  CHECK_OK (gcs_unregister_sync (bystander, GENEROUS_MS));
  gst_buffer_unref (buffer);
  gst_buffer_unref (other);
}

/* The pattern to use: begin, set the landing, work, end on both paths. */
static GcsResult
access_with_landing (GcsHandle handle, void (*work) (void *object), int *jumped)
{
  void *object;
  GcsResult result = gcs_access_begin (handle, &object);
  if (result != GCS_OK)
    return result;
  if (setjmp (landing) == 0)
    work (object);
  else
    *jumped = 1;
  return gcs_access_end (handle);
}

static void
test_a_landing_that_ends_the_access_leaks_nothing (void)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 64, NULL);
  GcsHandle handle = register_buffer (buffer);
  int jumped = 0;

  CHECK_OK (access_with_landing (handle, work_and_jump, &jumped));
  CHECK (jumped == 1);
  CHECK (handle_info_of (handle).accesses_in_flight == 0);
  CHECK_OK (gcs_unregister_sync (handle, GENEROUS_MS));
  CHECK (MINI_REFCOUNT (buffer) == 1);
  gst_buffer_unref (buffer);
}

/* Many accesses left in flight by jumps on one thread: its record of
 * accesses has a fixed size (it forgets the oldest), so it does not grow,
 * and a new access on that thread is still recorded. */
#define LEFT_IN_FLIGHT 40
static void
test_many_jumps_keep_the_thread_record_bounded (void)
{
  GstBuffer *buffers[LEFT_IN_FLIGHT];
  GcsHandle handles[LEFT_IN_FLIGHT];
  void *object;
  for (int i = 0; i < LEFT_IN_FLIGHT; i++) {
    buffers[i] = gst_buffer_new_allocate (NULL, 8, NULL);
    handles[i] = register_buffer (buffers[i]);
    CHECK_OK (gcs_access_begin (handles[i], &object));
    if (setjmp (landing) == 0)
      work_and_jump (object);
  }
  for (int i = 0; i < LEFT_IN_FLIGHT; i++)
    CHECK (handle_info_of (handles[i]).accesses_in_flight == 1);

  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 8, NULL);
  GcsHandle newest = register_buffer (buffer);
  CHECK_OK (gcs_access_begin (newest, &object));
  CHECK_RESULT (gcs_unregister_sync (newest, GENEROUS_MS), GCS_ERROR_WOULD_DEADLOCK);
  CHECK_OK (gcs_access_end (newest));
  CHECK_OK (gcs_unregister_sync (newest, GENEROUS_MS));
  CHECK (MINI_REFCOUNT (buffer) == 1);
  gst_buffer_unref (buffer);

  for (int i = 0; i < LEFT_IN_FLIGHT; i++) {
    CHECK_OK (gcs_unregister (handles[i]));
    CHECK (MINI_REFCOUNT (buffers[i]) == 2);
    CHECK_OK (gcs_access_end (handles[i]));
    CHECK (MINI_REFCOUNT (buffers[i]) == 1);
    gst_buffer_unref (buffers[i]);
  }
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  test_longjmp_out_of_an_inline_access ();
  test_longjmp_between_begin_and_end ();
  test_a_landing_that_ends_the_access_leaks_nothing ();
  test_many_jumps_keep_the_thread_record_bounded ();

  CHECK_OK (gcs_shutdown (GCS_TIMEOUT_INFINITE));
  TEST_PASSED ();
}

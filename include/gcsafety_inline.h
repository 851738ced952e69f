/*
 * gcsafety: the atomic state table, header-inline.
 *
 * Included by gcsafety.h; do not include it on its own. Hand-written (C99 and
 * C++11, gcc and clang `__atomic` builtins only), for table layout 1: it
 * refuses to compile against a gcsafety.h of another GCS_TABLE_LAYOUT_VERSION.
 *
 * gcs_access_begin_inline, gcs_access_end_inline, gcs_is_valid_inline and
 * gcs_safe_access_inline are the exported functions' twins without a call
 * into the library on the success path: they perform the "Inline begin" and
 * "Inline end" transitions of the slot protocol (src/table/slot.rs) on the
 * table's own words, found through gcs_table_view(). Same results, same
 * guarantees, for every 64-bit handle value: any case other than the plain
 * success path (0, forged, stale, invalidated or releasing handles, a weak
 * registration, the last end of an unregistered handle, which runs the
 * release; a view not loaded yet, unavailable or of another layout) calls
 * the exported function, which decides. An access begun inline may be ended
 * by gcs_access_end and the reverse.
 *
 * What an inline access does not get:
 *  - per-access statistics: it is not counted in GcsStats.access_ok nor in
 *    GcsTypeStats.accesses (those count accesses made through the library);
 *    rejections are counted, since they go through the library;
 *  - per-access logging: the gcsafety debug category's LOG lines for
 *    accesses (refusals still log their WARNING);
 *  - per-thread deadlock detection: gcs_unregister_sync called inside an
 *    inline access of the same handle on the same thread is not refused with
 *    GCS_ERROR_WOULD_DEADLOCK; it waits (up to its timeout) for that access.
 * Every safety guarantee holds: the object cannot be released while the
 * access is in flight, the in-flight count in gcs_get_info includes it, and
 * the leak report and gcs_unregister_sync see it.
 *
 * The view is loaded lazily, once per translation unit, by the first inline
 * call; until then (or if gcs_table_view fails, e.g. with GCS_INLINE=0 in
 * the environment) every inline function calls its exported twin. After
 * dlclose() of the library, inline code must not be called.
 */
#ifndef GCSAFETY_INLINE_H
#define GCSAFETY_INLINE_H

#ifndef GCSAFETY_H
#error "include gcsafety.h, not gcsafety_inline.h"
#endif

#if GCS_TABLE_LAYOUT_VERSION != 1
#error "gcsafety_inline.h is written for table layout 1"
#endif

#if !defined(__GNUC__) && !defined(__clang__)
/* No __atomic builtins: the inline functions are the exported ones. */
#define gcs_access_begin_inline(handle, object_out) gcs_access_begin((handle), (object_out))
#define gcs_access_end_inline(handle) gcs_access_end(handle)
#define gcs_is_valid_inline(handle) gcs_is_valid(handle)
#define gcs_safe_access_inline(handle, callback, user_data) \
  gcs_safe_access((handle), (callback), (user_data))
#else

#ifdef __cplusplus
#define GCS_INLINE_CAST_(type, value) (reinterpret_cast<type>(value))
#else
#define GCS_INLINE_CAST_(type, value) ((type)(value))
#endif

/* Internal: the view of this translation unit, or NULL while it is not
 * (yet) usable. One thread loads it; the others use the exported functions
 * meanwhile. */
static inline const GcsTableView *gcs_table_view_inline_(void)
{
  static GcsTableView view;
  /* 0: not loaded; 1: loading; 2: loaded; 3: unavailable. */
  static int state;
  int seen = __atomic_load_n (&state, __ATOMIC_ACQUIRE);
  if (seen == 2)
    return &view;
  if (seen == 0) {
    int expected = 0;
    if (__atomic_compare_exchange_n (&state, &expected, 1, 0, __ATOMIC_ACQUIRE,
                                      __ATOMIC_RELAXED)) {
      GcsTableView loaded;
      int usable;
      loaded.struct_size = (uint32_t) sizeof loaded;
      usable = gcs_table_view (&loaded) == GCS_OK
          && loaded.layout_version == GCS_TABLE_LAYOUT_VERSION;
      if (usable)
        view = loaded;
      /* Release: `view` is written before any reader sees 2. */
      __atomic_store_n (&state, usable ? 2 : 3, __ATOMIC_RELEASE);
      return usable ? &view : NULL;
    }
  }
  return NULL;
}

/* Internal: the state word of the slot a handle names, and its generation;
 * NULL when the handle names no allocated slot (then the exported function
 * answers). Never dereferences the handle value. */
static inline uint64_t *gcs_table_state_inline_(const GcsTableView *view, GcsHandle handle,
                                                uint32_t *generation, void ***object)
{
  uint64_t raw = handle ^ view->salt;
  uint64_t biased = (raw & view->index_mask) + ((uint64_t) 1 << view->first_page_log2);
  unsigned page = (unsigned) (63 - __builtin_clzll (biased)) - view->first_page_log2;
  char *base;
  uint64_t offset;
  *generation = (uint32_t) (raw >> view->generation_shift);
  if (*generation == 0 || page >= view->page_count)
    return NULL;
  base = GCS_INLINE_CAST_(char *, __atomic_load_n (&view->pages[page], __ATOMIC_ACQUIRE));
  if (base == NULL)
    return NULL;
  offset = (biased - ((uint64_t) 1 << (view->first_page_log2 + page))) * view->slot_stride;
  *object = GCS_INLINE_CAST_(void **, base + offset + view->object_offset);
  return GCS_INLINE_CAST_(uint64_t *, base + offset + view->state_offset);
}

/**
 * gcs_access_begin() without a call into the library on the success path.
 * See the top of gcsafety_inline.h for what an inline access gives up.
 */
static inline GcsResult gcs_access_begin_inline(GcsHandle handle, void **object_out)
{
  const GcsTableView *view = gcs_table_view_inline_ ();
  if (view != NULL && object_out != NULL) {
    uint32_t generation;
    void **object;
    uint64_t *state = gcs_table_state_inline_ (view, handle, &generation, &object);
    if (state != NULL) {
      uint64_t live = ((uint64_t) generation << view->generation_shift)
          | ((uint64_t) view->phase_live << view->phase_shift);
      uint64_t expected = live; /* the guess: live, nothing in flight */
      /* Generation, phase and the slow bit in one compare; count below its limit. */
      while ((expected & ~view->count_mask) == live
             && (expected & view->count_mask) != view->count_mask) {
        /* Acquire: synchronizes with the registration's release store. */
        if (__atomic_compare_exchange_n (state, &expected, expected + 1, 1, __ATOMIC_ACQUIRE,
                                         __ATOMIC_RELAXED)) {
          *object_out = __atomic_load_n (object, __ATOMIC_RELAXED);
          return GCS_OK;
        }
      }
    }
  }
  return gcs_access_begin (handle, object_out);
}

/**
 * gcs_access_end() without a call into the library on the success path (an
 * end that must run the release calls gcs_access_end, which runs it).
 */
static inline GcsResult gcs_access_end_inline(GcsHandle handle)
{
  const GcsTableView *view = gcs_table_view_inline_ ();
  if (view != NULL) {
    uint32_t generation;
    void **object;
    uint64_t *state = gcs_table_state_inline_ (view, handle, &generation, &object);
    if (state != NULL) {
      uint64_t expected = ((uint64_t) generation << view->generation_shift)
          | ((uint64_t) view->phase_live << view->phase_shift) | 1; /* the guess */
      for (;;) {
        uint64_t count = expected & view->count_mask;
        /* The phase: the bits between phase_shift and generation_shift. */
        uint32_t phase = (uint32_t) ((expected >> view->phase_shift)
                                     & (((uint64_t) 1 << (view->generation_shift
                                                          - view->phase_shift)) - 1));
        int fast = (uint32_t) (expected >> view->generation_shift) == generation
            && (expected & view->slow_bit) == 0
            && (((phase == view->phase_live || phase == view->phase_invalidated) && count >= 1)
                || (phase == view->phase_draining && count >= 2));
        if (!fast)
          break;
        /* AcqRel: this access's uses happen-before a release elsewhere. */
        if (__atomic_compare_exchange_n (state, &expected, expected - 1, 1, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED))
          return GCS_OK;
      }
    }
  }
  return gcs_access_end (handle);
}

/**
 * gcs_is_valid() without a call into the library (a snapshot).
 */
static inline bool gcs_is_valid_inline(GcsHandle handle)
{
  const GcsTableView *view = gcs_table_view_inline_ ();
  if (view != NULL) {
    uint32_t generation;
    void **object;
    uint64_t *state = gcs_table_state_inline_ (view, handle, &generation, &object);
    if (state == NULL)
      return false;
    return (__atomic_load_n (state, __ATOMIC_RELAXED) & ~(view->count_mask | view->slow_bit))
        == (((uint64_t) generation << view->generation_shift)
            | ((uint64_t) view->phase_live << view->phase_shift));
  }
  return gcs_is_valid (handle);
}

/**
 * gcs_safe_access() without a call into the library on the success path:
 * `callback(object, user_data)` runs on this thread inside an inline access.
 * A non-zero result is reported as gcs_safe_access reports it
 * (gcs_callback_failed: counted, GCS_ERROR_CALLBACK_FAILED, the handle
 * invalidated when its manager says so).
 */
static inline GcsResult gcs_safe_access_inline(GcsHandle handle, GcsAccessFn callback,
                                               void *user_data)
{
  void *object;
  GcsResult result;
  int status;
  if (callback == NULL)
    return gcs_safe_access (handle, callback, user_data); /* the NULL argument error */
  result = gcs_access_begin_inline (handle, &object);
  if (result != GCS_OK)
    return result;
  status = callback (object, user_data);
  gcs_access_end_inline (handle);
  if (status != 0)
    return gcs_callback_failed (handle, status);
  return GCS_OK;
}

#undef GCS_INLINE_CAST_
#endif /* __GNUC__ || __clang__ */

#endif /* GCSAFETY_INLINE_H */

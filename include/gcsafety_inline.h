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
 *    And an access begun inline but ended with gcs_access_end is, to the
 *    library, an end on a thread that began no access: it is credited to
 *    another thread that began an access of that handle (as a hand-off's
 *    end is), whose own detection may then miss. End an inline-begun access
 *    with gcs_access_end_inline.
 * Every safety guarantee holds: the object cannot be released while the
 * access is in flight, the in-flight count in gcs_get_info includes it, and
 * the leak report and gcs_unregister_sync see it.
 *
 * The view is loaded lazily, once per translation unit, by the first inline
 * call, and checked to describe exactly the layout this header is compiled
 * for (layout 1: the bit fields and slot geometry below); until then, or if
 * gcs_table_view fails (e.g. with GCS_INLINE=0 in the environment) or
 * describes anything else, every inline function calls its exported twin.
 * After dlclose() of the library, inline code must not be called.
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

/* Layout 1, which this header is written for: the bit fields of a handle
 * and of a state word, and the slot geometry. A loaded view must describe
 * exactly these (checked once, in gcs_table_view_inline_), else the inline
 * functions call the exported ones; then only the salt and the page
 * directory are read at run time, which keeps the access path short. */
#define GCS_INLINE_GENERATION_SHIFT_ 32
#define GCS_INLINE_INDEX_MASK_ ((uint64_t) 0xffffffffu)
#define GCS_INLINE_COUNT_MASK_ ((uint64_t) 0x0fffffffu)
#define GCS_INLINE_SLOW_BIT_ ((uint64_t) 1 << 28)
#define GCS_INLINE_PHASE_SHIFT_ 29
#define GCS_INLINE_PHASE_MASK_ ((uint64_t) 7)
#define GCS_INLINE_PHASE_LIVE_ ((uint64_t) 1)
#define GCS_INLINE_PHASE_INVALIDATED_ ((uint64_t) 2)
#define GCS_INLINE_PHASE_DRAINING_ ((uint64_t) 3)
#define GCS_INLINE_FIRST_PAGE_LOG2_ 6
#define GCS_INLINE_PAGE_COUNT_ 32
#define GCS_INLINE_SLOT_STRIDE_ 32
#define GCS_INLINE_STATE_OFFSET_ 0
#define GCS_INLINE_OBJECT_OFFSET_ 8

/* Internal: what the inline functions read at run time. */
typedef struct
{
  uint64_t salt;
  void *const *pages;
} GcsInlineTable_;

/* Internal: whether a view describes layout 1 exactly as above. */
static inline int gcs_table_view_is_layout_1_(const GcsTableView *view)
{
  return view->layout_version == 1 && view->pages != NULL
      && view->page_count == GCS_INLINE_PAGE_COUNT_
      && view->first_page_log2 == GCS_INLINE_FIRST_PAGE_LOG2_
      && view->slot_stride == GCS_INLINE_SLOT_STRIDE_
      && view->state_offset == GCS_INLINE_STATE_OFFSET_
      && view->object_offset == GCS_INLINE_OBJECT_OFFSET_
      && view->generation_shift == GCS_INLINE_GENERATION_SHIFT_
      && view->index_mask == GCS_INLINE_INDEX_MASK_
      && view->count_mask == GCS_INLINE_COUNT_MASK_
      && view->slow_bit == GCS_INLINE_SLOW_BIT_
      && view->phase_shift == GCS_INLINE_PHASE_SHIFT_
      && view->phase_live == GCS_INLINE_PHASE_LIVE_
      && view->phase_invalidated == GCS_INLINE_PHASE_INVALIDATED_
      && view->phase_draining == GCS_INLINE_PHASE_DRAINING_;
}

/* Internal: the table of this translation unit, or NULL while it is not
 * (yet) usable. One thread loads it; the others use the exported functions
 * meanwhile. */
static inline const GcsInlineTable_ *gcs_table_view_inline_(void)
{
  static GcsInlineTable_ table;
  /* 0: not loaded; 1: loading; 2: loaded; 3: unavailable. */
  static int state;
  int seen = __atomic_load_n (&state, __ATOMIC_ACQUIRE);
  if (seen == 2)
    return &table;
  if (seen == 0) {
    int expected = 0;
    if (__atomic_compare_exchange_n (&state, &expected, 1, 0, __ATOMIC_ACQUIRE,
                                      __ATOMIC_RELAXED)) {
      GcsTableView loaded;
      int usable;
      loaded.struct_size = (uint32_t) sizeof loaded;
      usable = gcs_table_view (&loaded) == GCS_OK && gcs_table_view_is_layout_1_ (&loaded);
      if (usable) {
        table.salt = loaded.salt;
        table.pages = loaded.pages;
      }
      /* Release: `table` is written before any reader sees 2. */
      __atomic_store_n (&state, usable ? 2 : 3, __ATOMIC_RELEASE);
      return usable ? &table : NULL;
    }
  }
  return NULL;
}

/* Internal: the slot a handle names (its state word first, the object
 * pointer GCS_INLINE_OBJECT_OFFSET_ after) and its generation; NULL when the
 * handle names no allocated slot (then the exported function answers).
 * Never dereferences the handle value. */
static inline char *gcs_table_slot_inline_(const GcsInlineTable_ *table, GcsHandle handle,
                                           uint64_t *generation)
{
  uint64_t raw = handle ^ table->salt;
  uint64_t biased = (raw & GCS_INLINE_INDEX_MASK_) + ((uint64_t) 1 << GCS_INLINE_FIRST_PAGE_LOG2_);
  unsigned page = (unsigned) (63 - __builtin_clzll (biased)) - GCS_INLINE_FIRST_PAGE_LOG2_;
  char *base;
  *generation = raw >> GCS_INLINE_GENERATION_SHIFT_;
  if (*generation == 0 || page >= GCS_INLINE_PAGE_COUNT_)
    return NULL;
  base = GCS_INLINE_CAST_(char *, __atomic_load_n (&table->pages[page], __ATOMIC_ACQUIRE));
  if (base == NULL)
    return NULL;
  return base + (biased - ((uint64_t) 1 << (GCS_INLINE_FIRST_PAGE_LOG2_ + page)))
      * GCS_INLINE_SLOT_STRIDE_;
}

#define GCS_INLINE_STATE_(slot) GCS_INLINE_CAST_(uint64_t *, (slot) + GCS_INLINE_STATE_OFFSET_)
#define GCS_INLINE_LIVE_WORD_(generation) \
  (((generation) << GCS_INLINE_GENERATION_SHIFT_) \
   | (GCS_INLINE_PHASE_LIVE_ << GCS_INLINE_PHASE_SHIFT_))

/**
 * gcs_access_begin() without a call into the library on the success path.
 * See the top of gcsafety_inline.h for what an inline access gives up.
 */
static inline GcsResult gcs_access_begin_inline(GcsHandle handle, void **object_out)
{
  const GcsInlineTable_ *table = gcs_table_view_inline_ ();
  if (table != NULL && object_out != NULL) {
    uint64_t generation;
    char *slot = gcs_table_slot_inline_ (table, handle, &generation);
    if (slot != NULL) {
      uint64_t live = GCS_INLINE_LIVE_WORD_ (generation);
      uint64_t expected = live; /* the guess: live, nothing in flight */
      /* Generation, phase and the slow bit in one compare; count below its limit. */
      while ((expected & ~GCS_INLINE_COUNT_MASK_) == live
             && (expected & GCS_INLINE_COUNT_MASK_) != GCS_INLINE_COUNT_MASK_) {
        /* Acquire: synchronizes with the registration's release store. */
        if (__atomic_compare_exchange_n (GCS_INLINE_STATE_ (slot), &expected, expected + 1, 1,
                                         __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
          *object_out = __atomic_load_n (GCS_INLINE_CAST_(void **, slot + GCS_INLINE_OBJECT_OFFSET_),
                                         __ATOMIC_RELAXED);
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
  const GcsInlineTable_ *table = gcs_table_view_inline_ ();
  if (table != NULL) {
    uint64_t generation;
    char *slot = gcs_table_slot_inline_ (table, handle, &generation);
    if (slot != NULL) {
      uint64_t expected = GCS_INLINE_LIVE_WORD_ (generation) | 1; /* the guess */
      for (;;) {
        uint64_t count = expected & GCS_INLINE_COUNT_MASK_;
        uint64_t phase = (expected >> GCS_INLINE_PHASE_SHIFT_) & GCS_INLINE_PHASE_MASK_;
        int fast = (expected >> GCS_INLINE_GENERATION_SHIFT_) == generation
            && (expected & GCS_INLINE_SLOW_BIT_) == 0
            && (((phase == GCS_INLINE_PHASE_LIVE_ || phase == GCS_INLINE_PHASE_INVALIDATED_)
                 && count >= 1)
                || (phase == GCS_INLINE_PHASE_DRAINING_ && count >= 2));
        if (!fast)
          break;
        /* AcqRel: this access's uses happen-before a release elsewhere. */
        if (__atomic_compare_exchange_n (GCS_INLINE_STATE_ (slot), &expected, expected - 1, 1,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
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
  const GcsInlineTable_ *table = gcs_table_view_inline_ ();
  if (table != NULL) {
    uint64_t generation;
    char *slot = gcs_table_slot_inline_ (table, handle, &generation);
    if (slot == NULL)
      return false;
    return (__atomic_load_n (GCS_INLINE_STATE_ (slot), __ATOMIC_RELAXED)
            & ~(GCS_INLINE_COUNT_MASK_ | GCS_INLINE_SLOW_BIT_))
        == GCS_INLINE_LIVE_WORD_ (generation);
  }
  return gcs_is_valid (handle);
}

#ifdef __cplusplus
/* Internal: in C++, ends an inline access whose callback throws, while the
 * exception propagates (gcs_safe_access_inline). */
struct GcsInlineAccessEnd_
{
  GcsHandle handle;
  bool armed;
  ~GcsInlineAccessEnd_()
  {
    if (armed)
      gcs_access_end_inline (handle);
  }
};
#endif

/**
 * gcs_safe_access() without a call into the library on the success path:
 * `callback(object, user_data)` runs on this thread inside an inline access.
 * A non-zero result is reported as gcs_safe_access reports it
 * (gcs_callback_failed: counted, GCS_ERROR_CALLBACK_FAILED, the handle
 * invalidated when its manager says so).
 *
 * The callback runs in this function's frame only, never inside the
 * library's (Rust) frames, so foreign control flow out of it is defined
 * (docs/foreign-control-flow.md): compiled as C++, an exception thrown by
 * the callback ends the access and propagates to the caller; a longjmp out
 * of it (in C) leaves the access in flight for ever (the handle's count
 * stays one higher: its release never happens, gcs_unregister_sync times
 * out) but corrupts nothing; end it with gcs_access_end where the jump lands
 * to repay it.
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
#ifdef __cplusplus
  {
    GcsInlineAccessEnd_ end_on_throw = {handle, true};
    status = callback (object, user_data);
    end_on_throw.armed = false;
  }
#else
  status = callback (object, user_data);
#endif
  gcs_access_end_inline (handle);
  if (status != 0)
    return gcs_callback_failed (handle, status);
  return GCS_OK;
}

#endif /* __GNUC__ || __clang__ */

#endif /* GCSAFETY_INLINE_H */

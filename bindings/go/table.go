package gcsafety

// The access fast path: the Go implementation of the slot protocol's
// "Inline begin" and "Inline end" (src/table/slot.rs), performed with
// sync/atomic on the library's own table words, found through
// gcs_table_view. No cgo call is made on the success path of an access;
// every other case (a stale, forged, invalidated or releasing handle, a weak
// registration, the last end of an unregistered handle, which must run the
// release) goes to gcs_access_begin / gcs_access_end, which decide.
//
// The table is C memory: the Go garbage collector never moves or frees it,
// and the library never moves or unmaps a page while it is loaded, so the
// pointers below stay valid for the life of the process. The race detector
// does not track synchronization through C memory; the protocol's orderings
// are those of the C and Rust implementations (sync/atomic's operations are
// sequentially consistent, stronger than the acquire/release they need).
//
// What an access on this path does not get: it is not counted in
// Stats.AccessOk (nor the per-type access counts), and gcs_unregister_sync
// inside such an access of the same handle does not detect the self-wait.
// Setting GCS_INLINE=0 in the environment before the library loads turns
// the fast path off (every access then goes through the library, counted).

/*
#include <string.h>
#include "gcsafety.h"

static GcsTableView gcsgo_table_view(GcsResult *result) {
	GcsTableView view;
	memset(&view, 0, sizeof view);
	view.struct_size = sizeof view;
	*result = gcs_table_view(&view);
	return view;
}
*/
import "C"

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// Layout 1, the GCS_TABLE_LAYOUT_VERSION this file implements: the bit
// fields of a handle and of a state word, and the slot geometry. The view
// the library publishes must describe exactly these (checked once, in
// loadTableView), else the fast path is off; then only the salt and the
// page directory are read at run time, and the shifts and masks below are
// constants (a shift by a variable costs Go a range check).
const (
	tableLayout      = 1
	generationShift  = 32
	indexMask        = 0xffffffff
	countMask        = 0x0fffffff
	slowBit          = 1 << 28
	phaseShift       = 29
	phaseMask        = 7
	phaseLive        = 1
	phaseInvalidated = 2
	phaseDraining    = 3
	firstPageLog2    = 6
	pageCount        = 32
	slotStride       = 32
	stateOffset      = 0
	objectOffset     = 8
)

// tableView is what the fast path reads at run time.
type tableView struct {
	salt  uint64
	pages unsafe.Pointer // C memory: pageCount pointers
}

// fastTable is the view, or nil when the fast path does not apply (another
// layout, GCS_INLINE=0): then every access goes through the library.
var fastTable = loadTableView()

func loadTableView() *tableView {
	var r C.GcsResult
	v := C.gcsgo_table_view(&r)
	layout1 := r == C.GCS_OK && C.GCS_TABLE_LAYOUT_VERSION == tableLayout &&
		v.layout_version == tableLayout && v.pages != nil &&
		v.page_count == pageCount && v.first_page_log2 == firstPageLog2 &&
		v.slot_stride == slotStride && v.state_offset == stateOffset &&
		v.object_offset == objectOffset && v.generation_shift == generationShift &&
		v.index_mask == indexMask && v.count_mask == countMask && v.slow_bit == slowBit &&
		v.phase_shift == phaseShift && v.phase_live == phaseLive &&
		v.phase_invalidated == phaseInvalidated && v.phase_draining == phaseDraining
	if !layout1 {
		return nil
	}
	return &tableView{salt: uint64(v.salt), pages: unsafe.Pointer(v.pages)}
}

// slot finds the slot a handle names (its state word first, the object
// pointer objectOffset after) and its generation; nil when the handle names
// no allocated slot. The handle value is never dereferenced: it only
// selects a page and an offset.
func (v *tableView) slot(h Handle) (slot unsafe.Pointer, generation uint64) {
	raw := uint64(h) ^ v.salt
	generation = raw >> generationShift
	if generation == 0 {
		return nil, 0
	}
	biased := raw&indexMask + 1<<firstPageLog2
	page := uint(63-bits.LeadingZeros64(biased)) - firstPageLog2
	if page >= pageCount {
		return nil, 0
	}
	base := atomic.LoadPointer((*unsafe.Pointer)(unsafe.Add(v.pages, uintptr(page)*unsafe.Sizeof(uintptr(0)))))
	if base == nil {
		return nil, 0
	}
	return unsafe.Add(base, uintptr(biased-1<<(firstPageLog2+page))*slotStride), generation
}

// fastAccess is an access begun on the fast path: the state word it holds a
// count in and the generation, so that its end needs no second decoding.
type fastAccess struct {
	state      *uint64
	generation uint64
}

// fastBegin begins an access of h on the fast path: true if it did, with
// the object and the access to end with fastEnd; false if the library must
// decide (nothing was changed).
func fastBegin(h Handle) (unsafe.Pointer, fastAccess, bool) {
	v := fastTable
	if v == nil {
		return nil, fastAccess{}, false
	}
	slot, generation := v.slot(h)
	if slot == nil {
		return nil, fastAccess{}, false
	}
	state := (*uint64)(unsafe.Add(slot, stateOffset))
	live := generation<<generationShift | phaseLive<<phaseShift
	// The first guess is "live, nothing in flight": no load first.
	for expected := live; expected&^countMask == live && expected&countMask != countMask; expected = atomic.LoadUint64(state) {
		if atomic.CompareAndSwapUint64(state, expected, expected+1) {
			object := atomic.LoadPointer((*unsafe.Pointer)(unsafe.Add(slot, objectOffset)))
			return object, fastAccess{state, generation}, true
		}
	}
	return nil, fastAccess{}, false
}

// fastEnd ends an access on the fast path: true if it did; false if the
// library must (the last end of an unregistered handle, which runs the
// release; a weak registration; an access that did not begin here, a zero
// fastAccess).
func (a fastAccess) fastEnd() bool {
	state := a.state
	if state == nil {
		return false
	}
	for expected := a.generation<<generationShift | phaseLive<<phaseShift | 1; ; expected = atomic.LoadUint64(state) {
		count := expected & countMask
		phase := expected >> phaseShift & phaseMask
		fast := expected>>generationShift == a.generation && expected&slowBit == 0 &&
			((phase == phaseLive || phase == phaseInvalidated) && count >= 1 || phase == phaseDraining && count >= 2)
		if !fast {
			return false
		}
		if atomic.CompareAndSwapUint64(state, expected, expected-1) {
			return true
		}
	}
}

// fastEnd ends an access of h on the fast path, whichever path began it
// (see fastAccess.fastEnd).
func fastEnd(h Handle) bool {
	v := fastTable
	if v == nil {
		return false
	}
	slot, generation := v.slot(h)
	if slot == nil {
		return false
	}
	return fastAccess{(*uint64)(unsafe.Add(slot, stateOffset)), generation}.fastEnd()
}

// FastPathEnabled reports whether accesses (SafeAccess, Handle.Access and
// the helpers built on them) begin and end on the library's table with
// sync/atomic, with no cgo call on their success path. Such accesses are
// not counted in Stats.AccessOk (refusals are counted in AccessRejected).
// It is false when the library was loaded with GCS_INLINE=0, or publishes a
// table layout this package does not know: every access then goes through
// the library, and is counted.
func FastPathEnabled() bool {
	return fastTable != nil
}

func fastPathEnabled() bool { return FastPathEnabled() }

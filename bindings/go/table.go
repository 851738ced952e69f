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

// tableView is GcsTableView (layout 1) in Go types.
type tableView struct {
	pages         unsafe.Pointer // C memory: pageCount pointers
	pageCount     uint32
	firstPageLog2 uint32
	stride        uintptr
	stateOffset   uintptr
	objectOffset  uintptr
	genShift      uint32
	salt          uint64
	indexMask     uint64
	countMask     uint64
	slowBit       uint64
	phaseShift    uint32
	phaseMask     uint64
	live          uint64
	invalidated   uint64
	draining      uint64
}

// tableLayout is the GCS_TABLE_LAYOUT_VERSION this file implements.
const tableLayout = 1

// fastTable is the view, or nil when the fast path does not apply (another
// layout, GCS_INLINE=0): then every access goes through the library.
var fastTable = loadTableView()

func loadTableView() *tableView {
	var r C.GcsResult
	v := C.gcsgo_table_view(&r)
	if r != C.GCS_OK || v.layout_version != tableLayout || C.GCS_TABLE_LAYOUT_VERSION != tableLayout {
		return nil
	}
	return &tableView{
		pages:         unsafe.Pointer(v.pages),
		pageCount:     uint32(v.page_count),
		firstPageLog2: uint32(v.first_page_log2),
		stride:        uintptr(v.slot_stride),
		stateOffset:   uintptr(v.state_offset),
		objectOffset:  uintptr(v.object_offset),
		genShift:      uint32(v.generation_shift),
		salt:          uint64(v.salt),
		indexMask:     uint64(v.index_mask),
		countMask:     uint64(v.count_mask),
		slowBit:       uint64(v.slow_bit),
		phaseShift:    uint32(v.phase_shift),
		phaseMask:     (1<<(uint32(v.generation_shift)-uint32(v.phase_shift)) - 1),
		live:          uint64(v.phase_live),
		invalidated:   uint64(v.phase_invalidated),
		draining:      uint64(v.phase_draining),
	}
}

// slot finds the slot a handle names: its state word and its generation;
// nil when the handle names no allocated slot. The handle value is never
// dereferenced: it only selects a page and an offset.
func (v *tableView) slot(h Handle) (state *uint64, slot unsafe.Pointer, generation uint64) {
	raw := uint64(h) ^ v.salt
	generation = raw >> v.genShift
	if generation == 0 {
		return nil, nil, 0
	}
	biased := raw&v.indexMask + 1<<v.firstPageLog2
	page := uint32(63-bits.LeadingZeros64(biased)) - v.firstPageLog2
	if page >= v.pageCount {
		return nil, nil, 0
	}
	base := atomic.LoadPointer((*unsafe.Pointer)(unsafe.Add(v.pages, uintptr(page)*unsafe.Sizeof(uintptr(0)))))
	if base == nil {
		return nil, nil, 0
	}
	slot = unsafe.Add(base, uintptr(biased-1<<(v.firstPageLog2+page))*v.stride)
	return (*uint64)(unsafe.Add(slot, v.stateOffset)), slot, generation
}

// fastBegin begins an access of h on the fast path: true if it did, with
// the object; false if the library must decide (nothing was changed).
func fastBegin(h Handle) (unsafe.Pointer, bool) {
	v := fastTable
	if v == nil {
		return nil, false
	}
	state, slot, generation := v.slot(h)
	if state == nil {
		return nil, false
	}
	live := generation<<v.genShift | v.live<<v.phaseShift
	// The first guess is "live, nothing in flight": no load first.
	for expected := live; expected&^v.countMask == live && expected&v.countMask != v.countMask; expected = atomic.LoadUint64(state) {
		if atomic.CompareAndSwapUint64(state, expected, expected+1) {
			return atomic.LoadPointer((*unsafe.Pointer)(unsafe.Add(slot, v.objectOffset))), true
		}
	}
	return nil, false
}

// fastEnd ends an access of h on the fast path: true if it did; false if
// the library must (the last end of an unregistered handle, which runs the
// release; a weak registration; an end without a begin).
func fastEnd(h Handle) bool {
	v := fastTable
	if v == nil {
		return false
	}
	state, _, generation := v.slot(h)
	if state == nil {
		return false
	}
	for expected := generation<<v.genShift | v.live<<v.phaseShift | 1; ; expected = atomic.LoadUint64(state) {
		count := expected & v.countMask
		phase := expected >> v.phaseShift & v.phaseMask
		fast := expected>>v.genShift == generation && expected&v.slowBit == 0 &&
			((phase == v.live || phase == v.invalidated) && count >= 1 || phase == v.draining && count >= 2)
		if !fast {
			return false
		}
		if atomic.CompareAndSwapUint64(state, expected, expected-1) {
			return true
		}
	}
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

package gcsafety

import (
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"gcsafety.dev/gcsafety/internal/gsttest"
)

// The fast path begins exactly the accesses the library would, for every
// kind of handle value, and leaves everything else to it untouched.
func TestFastPathAgreesWithTheLibrary(t *testing.T) {
	if !fastPathEnabled() {
		t.Skip("the fast path is off (GCS_INLINE=0)")
	}
	buffer := gsttest.NewBuffer(16)
	defer gsttest.MiniUnref(buffer)
	live, err := RegisterMiniObject(buffer, "")
	if err != nil {
		t.Fatal(err)
	}
	invalidated, _ := RegisterMiniObject(buffer, "")
	stale, _ := RegisterMiniObject(buffer, "")
	if err := invalidated.Invalidate(); err != nil {
		t.Fatal(err)
	}
	if err := stale.Unregister(); err != nil {
		t.Fatal(err)
	}

	obj, _, ok := fastBegin(live)
	if !ok || obj != buffer {
		t.Fatalf("fast begin of a live handle: %v %v", obj, ok)
	}
	if n := gsttest.MiniRefCount(buffer); n != 3 {
		t.Fatalf("refcount %d: want ours and the two registrations'", n)
	}
	if !fastEnd(live) {
		t.Fatal("fast end of a plain access")
	}
	if fastEnd(live) {
		t.Fatal("an end without a begin took the fast path")
	}
	if r := accessBegin(live); r != resultOK {
		t.Fatal(r)
	}
	if !fastEnd(live) {
		t.Fatal("an access begun by the library is ended on the fast path")
	}

	rng := rand.New(rand.NewSource(1))
	for _, h := range []Handle{invalidated, stale, 0, live ^ 1<<40, Handle(rng.Uint64()), ^Handle(0)} {
		if _, _, ok := fastBegin(h); ok {
			t.Fatalf("fast begin of refused handle %v", h)
		}
		if fastEnd(h) {
			t.Fatalf("fast end of refused handle %v", h)
		}
		err := h.Access(func(unsafe.Pointer) error { return nil })
		if !errors.Is(err, ErrNotValid) {
			t.Fatalf("access of %v: %v", h, err)
		}
	}

	// Unregistered during an access: the last end is the library's (it
	// releases), not the fast path's.
	if _, _, ok := fastBegin(live); !ok {
		t.Fatal("fast begin")
	}
	if err := live.Unregister(); err != nil {
		t.Fatal(err)
	}
	if fastEnd(live) {
		t.Fatal("the last end of an unregistered handle took the fast path")
	}
	accessEnd(live)
	invalidated.Unregister()
	if n := gsttest.MiniRefCount(buffer); n != 1 {
		t.Fatalf("refcount %d after every registration was released", n)
	}
}

// Goroutines access (on the fast path and through the library) while a
// reaper unregisters handles and registers new buffers (slot reuse under a
// racing inline access is covered by c-tests/test_inline.c and the loom
// models, with retention 0):
// every access sees its own, live buffer, and every buffer is disposed of
// exactly when its registration is gone.
func TestFastPathRacesUnregister(t *testing.T) {
	const slots, workers = 8, 4
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	var handles [slots]atomic.Uint64
	var owners sync.Map // Handle → the buffer it was registered with
	var watches []gsttest.Watch
	register := func() Handle {
		buffer := gsttest.NewBuffer(8)
		watches = append(watches, gsttest.WatchMiniObject(buffer))
		h, err := RegisterMiniObject(buffer, "RaceBuffer")
		if err != nil {
			t.Fatal(err)
		}
		owners.Store(h, buffer)
		gsttest.MiniUnref(buffer) // the registration holds the only reference
		return h
	}
	for i := range handles {
		handles[i].Store(uint64(register()))
	}

	var stop atomic.Bool
	var accesses, refused atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for !stop.Load() {
				h := Handle(handles[rng.Intn(slots)].Load())
				err := h.Access(func(obj unsafe.Pointer) error {
					owner, _ := owners.Load(h)
					if obj != owner.(unsafe.Pointer) {
						t.Errorf("access of %v reached %p, not its buffer %p", h, obj, owner)
					}
					if gsttest.MiniRefCount(obj) < 1 {
						t.Errorf("access of %v reached a disposed buffer", h)
					}
					return nil
				})
				switch {
				case err == nil:
					accesses.Add(1)
				case errors.Is(err, ErrReleased):
					refused.Add(1)
				default:
					t.Errorf("access of %v: %v", h, err)
				}
			}
		}(int64(w))
	}
	rng := rand.New(rand.NewSource(99))
	for i := 0; i < rounds; i++ {
		old := Handle(handles[rng.Intn(slots)].Swap(uint64(register())))
		if err := old.Unregister(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	for i := range handles {
		Handle(handles[i].Load()).Unregister()
	}
	for i, w := range watches {
		if !w.Finalized() {
			t.Fatalf("buffer %d was never disposed of", i)
		}
	}
	if accesses.Load() == 0 {
		t.Fatal("no access ran")
	}
	t.Logf("%d accesses, %d refused as released, %d buffers", accesses.Load(), refused.Load(), len(watches))
}

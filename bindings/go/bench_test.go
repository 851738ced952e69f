package gcsafety

import (
	"fmt"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"testing"

	"gcsafety.dev/gcsafety/internal/gsttest"
)

// originalManager is the baseline: the original pure-Go design, a map of
// object states behind an RWMutex with an atomic validity flag, and panic
// recovery around the access.
type originalManager struct {
	mu     sync.RWMutex
	states map[uintptr]*originalState
	next   uintptr
}

type originalState struct {
	IsValid     int32
	AccessCount int64
	TypeName    string
}

func newOriginalManager() *originalManager {
	return &originalManager{states: make(map[uintptr]*originalState)}
}

func (m *originalManager) RegisterObject(obj any, typeName string) uintptr {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	m.states[m.next] = &originalState{IsValid: 1, TypeName: typeName}
	return m.next
}

func (m *originalManager) UnregisterObject(id uintptr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if state, ok := m.states[id]; ok {
		atomic.StoreInt32(&state.IsValid, 0)
		delete(m.states, id)
	}
}

func (m *originalManager) SafeAccess(id uintptr, fn func() error) (err error) {
	m.mu.RLock()
	state, ok := m.states[id]
	m.mu.RUnlock()
	if !ok || atomic.LoadInt32(&state.IsValid) != 1 {
		return fmt.Errorf("object %x not valid for access", id)
	}
	atomic.AddInt64(&state.AccessCount, 1)
	defer func() {
		if r := recover(); r != nil {
			atomic.StoreInt32(&state.IsValid, 0)
			err = fmt.Errorf("panic during object access: %v", r)
		}
	}()
	return fn()
}

func nothing() error { return nil }

// BenchmarkAccess compares, in one run, an access of a live handle with the
// original design, a runtime/cgo.Handle lookup and an empty cgo call (the
// floor of any call into C; SafeAccess makes two: gcs_access_begin and
// gcs_access_end). Each is measured on one goroutine, then on GOMAXPROCS
// goroutines accessing the same handle (the "parallel" variants), and on
// GOMAXPROCS goroutines each on its own handle ("parallel-distinct"; the
// empty cgo call has no handle, so its "parallel" is both). The parallel
// variants' ns/op is wall time ÷ all goroutines' operations: multiply by
// GOMAXPROCS for the time of one operation on one goroutine
// (scripts/bench-go.sh runs them with -cpu 1,2 and does so).
func BenchmarkAccess(b *testing.B) {
	m := newTestManager(b, safeConfig())
	id, err := m.RegisterObject(&payload{}, "Bench")
	if err != nil {
		b.Fatal(err)
	}
	original := newOriginalManager()
	originalID := original.RegisterObject(&payload{}, "Bench")
	h := cgo.NewHandle(&payload{})
	defer h.Delete()
	sink := 0

	benchmarks := []struct {
		name string
		op   func()
	}{
		{"SafeAccess", func() { m.SafeAccess(id, nothing) }},
		{"HandleAccess", func() { id.Access(func(unsafePointer) error { return nil }) }},
		// The two cgo calls of an access, with nothing around them.
		{"BeginEndOnly", func() { accessBegin(id); accessEnd(id) }},
		{"OriginalDesign", func() { original.SafeAccess(originalID, nothing) }},
		{"CgoHandleValue", func() { sink += len(h.Value().(*payload).name) }},
		{"EmptyCgoCall", gsttest.Noop},
	}
	for _, bm := range benchmarks {
		op := bm.op
		b.Run(bm.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				op()
			}
		})
	}
	for _, bm := range benchmarks {
		op := bm.op
		if bm.name == "CgoHandleValue" {
			op = func() { _ = h.Value() }
		}
		b.Run(bm.name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					op()
				}
			})
		})
	}
	// Each goroutine its own handle (or, in the original design, id): no
	// counter is shared.
	b.Run("SafeAccess/parallel-distinct", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			own, err := m.RegisterObject(&payload{}, "Bench")
			if err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				m.SafeAccess(own, nothing)
			}
		})
	})
	b.Run("HandleAccess/parallel-distinct", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			own, err := m.RegisterObject(&payload{}, "Bench")
			if err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				own.Access(func(unsafePointer) error { return nil })
			}
		})
	})
	b.Run("OriginalDesign/parallel-distinct", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			own := original.RegisterObject(&payload{}, "Bench")
			for pb.Next() {
				original.SafeAccess(own, nothing)
			}
		})
	})
	b.Run("CgoHandleValue/parallel-distinct", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			own := cgo.NewHandle(&payload{})
			defer own.Delete()
			for pb.Next() {
				_ = own.Value()
			}
		})
	})
	if s := m.GetStats(); s.AccessRejected != 0 {
		b.Fatalf("accesses were refused: %+v", s)
	}
	_ = sink
}

// BenchmarkRegisterUnregister is a Go value's whole registration, against
// the original design's.
func BenchmarkRegisterUnregister(b *testing.B) {
	m := newTestManager(b, safeConfig())
	original := newOriginalManager()
	obj := &payload{}
	b.Run("GoValue", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			id, err := m.RegisterObject(obj, "Bench")
			if err != nil {
				b.Fatal(err)
			}
			m.UnregisterObject(id)
		}
	})
	b.Run("OriginalDesign", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			original.UnregisterObject(original.RegisterObject(obj, "Bench"))
		}
	})
}

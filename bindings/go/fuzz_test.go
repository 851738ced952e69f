package gcsafety

import (
	"encoding/binary"
	"errors"
	"testing"
)

// The model's view of a handle.
type modelState int

const (
	modelLive modelState = iota
	modelInvalidated
	modelReleased
)

// FuzzOperations runs a sequence of operations decoded from the input
// against a manager and a simple model of the handle state machine, and
// checks every result, the statistics, and that Close runs each cleanup
// once and deletes every cgo.Handle. The seed corpus runs with go test.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 0, 3, 0, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 6, 0, 6, 1, 4, 0, 4, 0, 1, 0, 5, 1, 5, 1, 1, 1, 4, 1})
	f.Add([]byte{0, 0, 9, 0, 9, 0, 0, 0, 3, 1, 1, 1, 4, 1, 6, 1})
	f.Add([]byte{0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 2, 6, 0, 6, 1, 6, 2, 5, 0, 3, 1, 9, 2, 8, 0, 4, 0, 4, 1})
	f.Add([]byte{7, 255, 255, 255, 255, 255, 255, 255, 255, 1, 0, 4, 0})
	f.Fuzz(runOperations)
}

func runOperations(t *testing.T, ops []byte) {
	if len(ops) > 2000 {
		ops = ops[:2000]
	}
	m := NewGCSafetyManager(safeConfig())
	defer m.Close()
	var (
		handles   []Handle
		states    []modelState
		issued    = map[Handle]bool{}
		cleanups  = map[Handle]int{} // added, not yet run
		ran       = map[Handle]int{}
		want      Stats
		cleanedUp int
	)
	pick := func(b byte) int { return int(b) % len(handles) }
	expectAccess := func(i int, err error, ok error) {
		t.Helper()
		switch states[i] {
		case modelLive:
			if err != ok && !errors.Is(err, ok) {
				t.Fatalf("access of live %v: %v, want %v", handles[i], err, ok)
			}
		case modelInvalidated:
			if !errors.Is(err, ErrInvalidated) || !errors.Is(err, ErrNotValid) {
				t.Fatalf("access of invalidated %v: %v", handles[i], err)
			}
			want.AccessRejected++
		case modelReleased:
			if !errors.Is(err, ErrReleased) || !errors.Is(err, ErrNotValid) {
				t.Fatalf("access of released %v: %v", handles[i], err)
			}
			want.AccessRejected++
		}
	}
	release := func(i int) {
		states[i] = modelReleased
		want.Released++
		ran[handles[i]] += cleanups[handles[i]]
		cleanedUp += cleanups[handles[i]]
		cleanups[handles[i]] = 0
	}
	for len(ops) > 0 {
		op := ops[0] % 10
		arg := byte(0)
		if len(ops) > 1 {
			arg = ops[1]
		}
		ops = ops[min2(2, len(ops)):]
		if op != 0 && op != 7 && len(handles) == 0 {
			op = 0
		}
		switch op {
		case 0: // register
			h, err := m.RegisterObject(&payload{name: "fuzz"}, "Fuzz")
			if err != nil || issued[h] {
				t.Fatalf("RegisterObject: %v, %v (issued before: %v)", h, err, issued[h])
			}
			handles, states = append(handles, h), append(states, modelLive)
			issued[h] = true
			want.TotalRegistered++
		case 1, 2, 3: // access: fine, failing, panicking
			i := pick(arg)
			ranFn := false
			var err error
			switch op {
			case 1:
				err = m.SafeAccess(handles[i], func() error { ranFn = true; return nil })
				expectAccess(i, err, nil)
			case 2:
				err = m.SafeAccess(handles[i], func() error { ranFn = true; return errFromCallback })
				expectAccess(i, err, errFromCallback)
			case 3:
				err = m.SafeAccess(handles[i], func() error { ranFn = true; panic("fuzz") })
				expectAccess(i, err, ErrPanic)
			}
			if ranFn != (states[i] == modelLive) {
				t.Fatalf("access of %v (state %d) ran fn: %v", handles[i], states[i], ranFn)
			}
			if states[i] == modelLive {
				want.AccessOk += libraryCountsAccesses()
				switch op {
				case 2:
					want.CallbackFailures++
				case 3:
					want.CallbackFailures++
					want.PanicsRecovered++
					want.Invalidated++
					states[i] = modelInvalidated
				}
			}
		case 4: // unregister
			i := pick(arg)
			err := m.UnregisterObject(handles[i])
			if states[i] == modelReleased {
				if !errors.Is(err, ErrReleased) {
					t.Fatalf("second unregister of %v: %v", handles[i], err)
				}
			} else {
				if err != nil {
					t.Fatalf("unregister of %v: %v", handles[i], err)
				}
				release(i)
			}
		case 5: // invalidate
			i := pick(arg)
			err := handles[i].Invalidate()
			switch states[i] {
			case modelLive:
				if err != nil {
					t.Fatalf("invalidate of %v: %v", handles[i], err)
				}
				states[i] = modelInvalidated
				want.Invalidated++
			case modelInvalidated:
				if !errors.Is(err, ErrInvalidated) {
					t.Fatalf("second invalidate of %v: %v", handles[i], err)
				}
			case modelReleased:
				if !errors.Is(err, ErrReleased) {
					t.Fatalf("invalidate of released %v: %v", handles[i], err)
				}
			}
		case 6: // add a cleanup
			i := pick(arg)
			h := handles[i]
			err := m.AddCleanupCallback(h, func() { ran[h]-- })
			if states[i] == modelReleased {
				if !errors.Is(err, ErrReleased) {
					t.Fatalf("cleanup on released %v: %v", h, err)
				}
			} else {
				if err != nil {
					t.Fatalf("cleanup on %v: %v", h, err)
				}
				cleanups[h]++
			}
		case 7: // a forged value
			var forged Handle
			if len(ops) >= 8 {
				forged = Handle(binary.LittleEndian.Uint64(ops))
				ops = ops[8:]
			} else {
				forged = Handle(arg)
			}
			if issued[forged] {
				break
			}
			ranFn := false
			err := m.SafeAccess(forged, func() error { ranFn = true; return nil })
			if ranFn || !errors.Is(err, ErrNotValid) {
				t.Fatalf("access of forged %v: ran %v, %v", forged, ranFn, err)
			}
			for _, err := range []error{m.UnregisterObject(forged), forged.Invalidate(), m.AddCleanupCallback(forged, func() { t.Error("a forged handle's cleanup ran") })} {
				if !errors.Is(err, ErrNotValid) {
					t.Fatalf("call on forged %v: %v", forged, err)
				}
			}
			if forged.Valid() {
				t.Fatalf("forged %v is valid", forged)
			}
		case 8: // validity snapshot
			for i, h := range handles {
				if m.IsObjectValid(h) != (states[i] == modelLive) {
					t.Fatalf("IsObjectValid(%v) disagrees with state %d", h, states[i])
				}
			}
		case 9: // unregister inside its own access
			i := pick(arg)
			h := handles[i]
			before := ran[h]
			err := m.SafeAccess(h, func() error {
				if err := m.UnregisterObject(h); err != nil {
					return err
				}
				if ran[h] != before {
					t.Fatal("cleanups ran inside the access")
				}
				return nil
			})
			expectAccess(i, err, nil)
			if states[i] == modelLive {
				want.AccessOk += libraryCountsAccesses()
				release(i)
			}
		}
	}

	want.Active = want.TotalRegistered - want.Released
	want.TotalObjects, want.ActiveObjects = want.TotalRegistered, want.Active
	want.CleanupsRun = uint64(cleanedUp)
	got := m.GetStats()
	got.PeakActive = 0
	if got != want {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for h, n := range cleanups {
		ran[h] += n
	}
	for h, n := range ran {
		if n != 0 {
			t.Fatalf("the cleanups of %v ran %d times too many", h, -n)
		}
	}
	if m.GetStats().Active != 0 {
		t.Fatal("registrations survived Close")
	}
	checkCgoHandles(t, m)
}

func min2(a, b int) int {
	if a < b {
		return a
	}
	return b
}

package gcsafety_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gcsafety.dev/gcsafety"
)

// MyObject stands for any Go value an application shares between goroutines.
type MyObject struct {
	name  string
	calls int
}

func (o *MyObject) DoSomething() error {
	o.calls++
	return nil
}

// Basic object tracking, as in the original design: register, access
// safely, unregister.
func Example() {
	config := gcsafety.GCSafetyConfig{
		EnableStateChecking:   true,
		EnableFinalizerSafety: true,
	}
	gsm := gcsafety.NewGCSafetyManager(config)
	defer gsm.Close()

	obj := &MyObject{name: "camera"}
	id, err := gsm.RegisterObject(obj, "MyObject")
	if err != nil {
		fmt.Println(err)
		return
	}

	err = gsm.SafeAccess(id, func() error {
		return obj.DoSomething()
	})
	fmt.Println("access:", err, "calls:", obj.calls)

	err = gsm.UnregisterObject(id)
	fmt.Println("unregister:", err, "valid:", gsm.IsObjectValid(id))
	// Output:
	// access: <nil> calls: 1
	// unregister: <nil> valid: false
}

// The memory manager declares each object's size: the library accounts for
// the memory the tracked objects hold.
func ExampleNewMemoryManager() {
	config := gcsafety.MemoryManagerConfig{
		TrackObjectLifecycle: false,
		MemoryLimit:          64 << 20, // past 64 MiB, run the Go GC
	}
	mm := gcsafety.NewMemoryManager(config)
	defer mm.Close()

	obj := &MyObject{name: "frame"}
	id := mm.TrackObject(obj, "MyObject", 1024)

	err := mm.SafeObjectAccess(id, func() error {
		return nil
	})
	fmt.Println("access:", err, "tracked bytes:", mm.GetStats().TrackedBytes)

	mm.ReleaseObject(id)
	fmt.Println("tracked bytes after release:", mm.GetStats().TrackedBytes)
	// Output:
	// access: <nil> tracked bytes: 1024
	// tracked bytes after release: 0
}

// The lifecycle manager names each instance.
func ExampleNewObjectLifecycleManager() {
	config := gcsafety.ObjectLifecycleConfig{
		EnableValidation: true,
	}
	olm := gcsafety.NewObjectLifecycleManager(config)
	defer olm.Close()

	obj := &MyObject{name: "sample"}
	id, err := olm.RegisterObject(obj, "MyObject", "instance1")
	if err != nil {
		fmt.Println(err)
		return
	}
	err = olm.SafeObjectAccess(id, func() error {
		return nil
	})
	fmt.Println("access:", err)
	fmt.Println("unregister:", olm.UnregisterObject(id))
	// Output:
	// access: <nil>
	// unregister: <nil>
}

// After UnregisterObject, an access fails safely: fn does not run.
func ExampleGCSafetyManager_SafeAccess_afterUnregister() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{})
	defer gsm.Close()
	id, _ := gsm.RegisterObject(&MyObject{}, "MyObject")

	gsm.UnregisterObject(id)
	err := gsm.SafeAccess(id, func() error {
		fmt.Println("this code does not run")
		return nil
	})
	fmt.Println(strings.Contains(err.Error(), "not valid for access"))
	fmt.Println(errors.Is(err, gcsafety.ErrNotValid), errors.Is(err, gcsafety.ErrReleased))
	fmt.Println(errors.Is(gsm.UnregisterObject(id), gcsafety.ErrReleased))
	// Output:
	// true
	// true true
	// true
}

// A panic during an access is recovered, and the object invalidated.
func ExampleGCSafetyManager_SafeAccess_panicRecovery() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{})
	defer gsm.Close()
	id, _ := gsm.RegisterObject(&MyObject{}, "MyObject")

	err := gsm.SafeAccess(id, func() error {
		panic("something went wrong")
	})
	fmt.Println(strings.Contains(err.Error(), "panic during object access"), errors.Is(err, gcsafety.ErrPanic))
	fmt.Println("valid:", gsm.IsObjectValid(id))

	err = gsm.SafeAccess(id, func() error { return nil })
	fmt.Println(errors.Is(err, gcsafety.ErrInvalidated))
	// Output:
	// true true
	// valid: false
	// true
}

// Any number of goroutines may access the same object at once.
func ExampleGCSafetyManager_SafeAccess_concurrent() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{})
	defer gsm.Close()
	var hits atomic.Int64
	id, _ := gsm.RegisterObject(&MyObject{}, "MyObject")

	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				gsm.SafeAccess(id, func() error {
					hits.Add(1)
					return nil
				})
			}
		}()
	}
	wg.Wait()
	fmt.Println("accesses:", hits.Load())
	// Output:
	// accesses: 800
}

// Statistics, as the original design printed them.
func ExampleGCSafetyManager_GetStats() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{})
	defer gsm.Close()
	a, _ := gsm.RegisterObject(&MyObject{}, "MyObject")
	gsm.RegisterObject(&MyObject{}, "MyObject")
	gsm.SafeAccess(a, func() error { return nil })
	gsm.UnregisterObject(a)
	gsm.SafeAccess(a, func() error { return nil }) // refused: released

	stats := gsm.GetStats()
	fmt.Printf("Total objects: %d, Active: %d, Finalizer failures: %d\n",
		stats.TotalObjects, stats.ActiveObjects, stats.FinalizerFailures)
	fmt.Printf("Accesses refused: %d, released: %d\n", stats.AccessRejected, stats.Released)
	// Output:
	// Total objects: 2, Active: 1, Finalizer failures: 0
	// Accesses refused: 1, released: 1
}

// A cleanup runs once, when the registration is released.
func ExampleGCSafetyManager_AddCleanupCallback() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{})
	defer gsm.Close()
	id, _ := gsm.RegisterObject(&MyObject{name: "pipeline"}, "MyObject")
	gsm.AddCleanupCallback(id, func() { fmt.Println("cleaned up") })

	fmt.Println("unregistering")
	gsm.UnregisterObject(id)
	// Output:
	// unregistering
	// cleaned up
}

// A safe finalizer runs when the Go garbage collector finds the object
// unreachable, if it is still registered: a forgotten UnregisterObject
// leaks nothing.
func ExampleGCSafetyManager_SetSafeFinalizer() {
	gsm := gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{
		EnableFinalizerSafety: true,
		FinalizerTimeout:      time.Second,
	})
	defer gsm.Close()
	done := make(chan struct{})
	func() {
		obj := &MyObject{name: "forgotten"}
		gsm.RegisterObject(obj, "MyObject")
		gsm.SetSafeFinalizer(obj, func() {
			// Release here what obj held; do not refer to obj itself.
			close(done)
		})
	}()

	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		runtime.GC()
		select {
		case <-done:
			fmt.Println("finalizer ran; active:", gsm.GetStats().ActiveObjects)
			return
		case <-time.After(time.Millisecond):
		}
	}
	fmt.Println("finalizer did not run")
	// Output:
	// finalizer ran; active: 0
}

// The buffer pool of the original design: it never blocks, and allocates
// once closed.
func ExampleBufferPool() {
	bp := gcsafety.NewBufferPool(4096, 16, 10*time.Millisecond)
	buf := bp.GetBuffer(1500)
	fmt.Println(len(buf))
	bp.PutBuffer(buf)

	bp.Close()
	fmt.Println(len(bp.GetBuffer(100)))
	// Output:
	// 1500
	// 100
}

package gcsafety

import (
	"testing"

	"gcsafety.dev/gcsafety/internal/gsttest"
)

// A checkpoint separates what was registered before it from what a piece
// of code registered after it and leaked, with real GStreamer buffers.
func TestLeaksCheckpoint(t *testing.T) {
	m := newTestManager(t, safeConfig())
	before := gsttest.NewBuffer(8)
	defer gsttest.MiniUnref(before)
	old, err := m.RegisterMiniObject(before, RegisterOptions{TypeName: "Before"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.UnregisterObject(old)

	LeaksCheckpoint()
	buffer := gsttest.NewBuffer(8)
	defer gsttest.MiniUnref(buffer)
	leaked, err := m.RegisterMiniObject(buffer, RegisterOptions{TypeName: "Leaked", InstanceName: "after"})
	if err != nil {
		t.Fatal(err)
	}
	released, err := m.RegisterMiniObject(buffer, RegisterOptions{TypeName: "Released"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.UnregisterObject(released); err != nil {
		t.Fatal(err)
	}

	since, err := m.LiveHandlesSinceCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if len(since) != 1 || since[0].Handle != leaked || since[0].TypeName != "Leaked" {
		t.Fatalf("live since the checkpoint: %+v, want only %v", since, leaked)
	}
	all, _ := m.LiveHandles()
	if len(all) != 2 {
		t.Fatalf("live handles: %+v, want the two still registered", all)
	}
	// The default manager's view: none of its own since the checkpoint.
	if d, err := LiveHandlesSinceCheckpoint(); err != nil || len(d) != 0 {
		t.Fatalf("default manager since the checkpoint: %+v, %v", d, err)
	}
	m.UnregisterObject(leaked)
	if since, _ := m.LiveHandlesSinceCheckpoint(); len(since) != 0 {
		t.Fatalf("after unregistering it: %+v", since)
	}
}

package gcsafety

import (
	"sync"
	"testing"
	"time"
)

func TestBufferPool(t *testing.T) {
	bp := NewBufferPool(1024, 2, time.Second)
	for _, size := range []int{0, 1, 1024, 4096, -1} {
		b := bp.GetBuffer(size)
		want := size
		if want < 0 {
			want = 0
		}
		if len(b) != want {
			t.Fatalf("GetBuffer(%d) has len %d", size, len(b))
		}
		bp.PutBuffer(b)
	}
	// A returned buffer is reused.
	b := bp.GetBuffer(100)
	b[0] = 42
	bp.PutBuffer(b)
	var reused bool
	for i := 0; i < 2; i++ {
		if c := bp.GetBuffer(10); len(c) == 10 && &c[0] == &b[0] {
			reused = true
		}
	}
	if !reused {
		t.Error("a returned buffer was not reused")
	}
	bp.PutBuffer(make([]byte, 10)) // too small: dropped

	// An empty pool never waits, even with a long timeout (an hour: any
	// bound far below it, generous for a loaded machine, shows that).
	empty := NewBufferPool(64, 1, time.Hour)
	start := time.Now()
	if len(empty.GetBuffer(64)) != 64 || time.Since(start) > 10*time.Second {
		t.Fatal("GetBuffer on an empty pool waited")
	}

	bp.Close()
	bp.Close()
	for i := 0; i < 3; i++ {
		if len(bp.GetBuffer(512)) != 512 {
			t.Fatal("GetBuffer after Close")
		}
		bp.PutBuffer(make([]byte, 2048))
	}
}

func TestBufferPoolConcurrent(t *testing.T) {
	bp := NewBufferPool(256, 8, time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		g := g
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				size := (g*1000 + i) % 600
				b := bp.GetBuffer(size)
				if len(b) != size {
					t.Errorf("len %d, want %d", len(b), size)
					return
				}
				for j := range b {
					b[j] = byte(g)
				}
				bp.PutBuffer(b)
				if g == 0 && i == 500 {
					bp.Close()
				}
			}
		}()
	}
	wg.Wait()
}

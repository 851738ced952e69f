package gcsafety

import (
	"sync/atomic"
	"time"
)

// BufferPool recycles byte buffers, as the original design's pool did, and
// never blocks a caller: GetBuffer takes a returned buffer if one is ready,
// else allocates. It is safe for concurrent use.
type BufferPool struct {
	pool       chan []byte
	bufferSize int
	closed     atomic.Bool
}

// NewBufferPool creates a pool keeping up to capacity buffers of at least
// bufferSize bytes. timeout is the longest GetBuffer may wait for one: this
// pool never waits (an empty pool allocates at once), so GetBuffer returns
// well within any timeout, including 0.
func NewBufferPool(bufferSize, capacity int, timeout time.Duration) *BufferPool {
	if bufferSize < 0 {
		bufferSize = 0
	}
	if capacity < 0 {
		capacity = 0
	}
	return &BufferPool{pool: make(chan []byte, capacity), bufferSize: bufferSize}
}

// GetBuffer returns a buffer of len size (0 if size is negative): a pooled
// one, when one is ready and large enough, else a new one. A pooled buffer
// keeps its previous contents. After Close it always allocates.
func (bp *BufferPool) GetBuffer(size int) []byte {
	if size < 0 {
		size = 0
	}
	if !bp.closed.Load() {
		select {
		case b := <-bp.pool:
			if cap(b) >= size {
				return b[:size]
			}
		default:
		}
	}
	n := size
	if n < bp.bufferSize {
		n = bp.bufferSize
	}
	return make([]byte, size, n)
}

// PutBuffer returns b to the pool, unless it is smaller than the pool's
// buffer size, the pool is full, or it is closed (b is then left to the
// garbage collector). b must not be used afterwards.
func (bp *BufferPool) PutBuffer(b []byte) {
	if cap(b) < bp.bufferSize || bp.closed.Load() {
		return
	}
	select {
	case bp.pool <- b[:cap(b)]:
	default:
	}
}

// Close empties the pool; GetBuffer then allocates and PutBuffer drops.
// Closing again does nothing.
func (bp *BufferPool) Close() {
	bp.closed.Store(true)
	for {
		select {
		case <-bp.pool:
		default:
			return
		}
	}
}

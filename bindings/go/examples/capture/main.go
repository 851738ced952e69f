// Command capture is the live capture demo in Go: the original Go design's
// desktop capture (DesktopCaptureGst.convertGstSample and its BufferPool)
// made real with the gcsafety Go binding, the twin of the C demo
// examples/capture/gcs-capture-demo.c (same workload, same summary, same
// Prometheus text).
//
// A live pipeline (videotestsrc is-live=true by default, -source ximagesrc,
// or any -pipeline ending in an appsink named sink) hands samples to Go.
// Each GstSample is registered with a GCSafetyManager (a mini object, type
// "gst.Sample") and known to the other goroutines by its handle only:
// workers copy one stripe of the frame out of the buffer inside SafeAccess
// (into a pooled buffer) and compute the mean luma and a checksum of the
// copy; a reaper unregisters each sample after a random short delay, racing
// them; a cleanup callback (the finalizer) counts completed samples. A weak
// reference on each sample (gst_mini_object_weak_ref) checks that it is
// freed exactly once, after its finalizer, never while a worker is inside
// it. The exit status is 0 only if every invariant held.
//
//	scripts/demo.sh --go [-duration 10] [-http :9464] ...
//	cd bindings/go && PKG_CONFIG_PATH=$PWD/../../target/pkgconfig go run ./examples/capture -help
package main

import (
	"container/heap"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gcsafety.dev/gcsafety"
)

const probeBatch = 128 // accesses per timed batch (one per frame)

type options struct {
	duration    float64
	workers     int
	stripes     int
	maxDelayMs  int
	source      string
	pipeline    string
	metricsFile string
	httpAddr    string
	seed        int64
}

// Sample is what convertGstSample returns, as in the original design: data
// copied out of the GstSample (one stripe of the frame here) into a buffer
// of the pool, usable after the GstSample is gone.
type Sample struct {
	Data   []byte
	Stripe int
}

// frame is what the goroutines share about one sample besides its handle.
// It outlives the sample, so checking it is always safe.
type frame struct {
	seq       uint64
	id        gcsafety.Handle
	sample    *gstSample // for the reference checks only; the workers use id
	watch     watch
	format    format
	size      int
	releaseAt time.Time

	stripesDone atomic.Int32
	lumaSum     atomic.Uint64
	lumaCount   atomic.Uint64
	checksum    atomic.Uint32
}

type workItem struct {
	f      *frame // nil: the worker exits
	stripe int
	due    time.Time // when a worker picks it up
}

// DesktopCaptureGst is the original design's capture component: a manager
// for the samples, a pool for the copies of their data.
type DesktopCaptureGst struct {
	opts       options
	gsm        *gcsafety.GCSafetyManager
	bufferPool *gcsafety.BufferPool
	poolOnce   sync.Once

	work   schedule
	reaper chan *frame

	counters
	invariantsBroken atomic.Int64
	reportMu         sync.Mutex
	lastSeq          uint64 // the last complete frame's seq + 1, under reportMu
	lastChecksum     uint32 // under reportMu
}

type counters struct {
	frames, bytesLive, bytesLivePeak              atomic.Uint64
	accessesOk, accessesStripes, accessesRejected atomic.Uint64
	accessesOther, probeNs, probeAccesses         atomic.Uint64
	releases, releasesWhileInside                 atomic.Uint64
	finalizersRun, completed, cutShort            atomic.Uint64
	useAfterFree, mapFailures                     atomic.Uint64
	lumaTotal, lumaPixels                         atomic.Uint64
}

var errMap = errors.New("the buffer cannot be mapped")

// expect reports a broken invariant (the first 20 in full).
func (dc *DesktopCaptureGst) expect(ok bool, format string, args ...any) bool {
	if ok {
		return true
	}
	if n := dc.invariantsBroken.Add(1); n <= 20 {
		dc.reportMu.Lock()
		fmt.Fprintf(os.Stderr, "\n!! INVARIANT BROKEN: "+format+"\n", args...)
		dc.reportMu.Unlock()
	}
	return false
}

// registerSample registers a sample as the C demo does: the wrapper's
// GstMiniObject() gives the C object, guarded with its refcount, under the
// type "gst.Sample" and the instance "capture-sample", with its buffer
// size tracked by the library.
func (dc *DesktopCaptureGst) registerSample(s *gstSample, size int) (gcsafety.Handle, error) {
	return dc.gsm.Register(s, gcsafety.RegisterOptions{
		TypeName:     "gst.Sample",
		InstanceName: "capture-sample",
		Size:         int64(size),
	})
}

// convertGstSample is the original design's: the sample is processed
// inside SafeAccess, so it cannot be freed meanwhile. Here the registration
// happens when the sample is pulled and the unregistration in the reaper, so
// that they race the workers; a handle the reaper released first gives an
// error wrapping gcsafety.ErrReleased, and processSample does not run.
func (dc *DesktopCaptureGst) convertGstSample(f *frame, stripe int) (*Sample, error) {
	var result *Sample
	err := dc.gsm.SafeAccess(f.id, func() error {
		var err error
		result, err = dc.processSample(f, stripe)
		return err
	})
	return result, err
}

// processSample copies the stripe out of the (live) sample into a pooled
// buffer: the analysis works on the copy, after the access has ended.
func (dc *DesktopCaptureGst) processSample(f *frame, stripe int) (*Sample, error) {
	f.watch.enter()
	defer f.watch.leave()
	if f.watch.freed() != 0 {
		dc.useAfterFree.Add(1)
	}
	dc.expect(f.sample.refcount() >= 1, "frame %d: accessed with refcount %d", f.seq, f.sample.refcount())
	buf := dc.bufferPool.GetBuffer(maxStripe(f.format, f.size, dc.opts.stripes))
	n := f.sample.copyStripe(f.format, stripe, dc.opts.stripes, buf)
	if n < 0 {
		dc.bufferPool.PutBuffer(buf)
		return nil, errMap
	}
	return &Sample{Data: buf[:n], Stripe: stripe}, nil
}

// analyze computes the stripe's luma sum and checksum (FNV-1a, combined
// over the stripes as the C demo does) and returns its buffer to the pool.
func (dc *DesktopCaptureGst) analyze(f *frame, s *Sample) {
	var sum uint64
	hash := uint32(2166136261)
	for _, b := range s.Data {
		sum += uint64(b)
		hash = (hash ^ uint32(b)) * 16777619
	}
	f.lumaSum.Add(sum)
	f.lumaCount.Add(uint64(len(s.Data)))
	for {
		old := f.checksum.Load()
		if f.checksum.CompareAndSwap(old, old^(hash*(2*uint32(s.Stripe)+1))) {
			break
		}
	}
	f.stripesDone.Add(1)
	dc.bufferPool.PutBuffer(s.Data)
}

func emptyAccess() error { return nil }

// probe times a batch of accesses of a live sample with an empty function:
// the cost of one access, measured in this run.
func (dc *DesktopCaptureGst) probe(f *frame) {
	start := time.Now()
	ok := 0
	for i := 0; i < probeBatch; i++ {
		if err := dc.gsm.SafeAccess(f.id, emptyAccess); err != nil {
			dc.countRefused(f, err)
			break
		}
		ok++
	}
	took := time.Since(start)
	dc.accessesOk.Add(uint64(ok))
	if ok == probeBatch {
		dc.probeNs.Add(uint64(took.Nanoseconds()))
		dc.probeAccesses.Add(uint64(ok))
	}
}

func (dc *DesktopCaptureGst) countRefused(f *frame, err error) {
	if errors.Is(err, gcsafety.ErrReleased) {
		dc.accessesRejected.Add(1) // the reaper won: a stale handle, refused
		return
	}
	dc.accessesOther.Add(1)
	dc.expect(false, "frame %d: access refused: %v", f.seq, err)
}

func (dc *DesktopCaptureGst) worker(wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		it := dc.work.pop()
		if it.f == nil {
			return
		}
		if d := time.Until(it.due); d > 0 {
			time.Sleep(d)
		}
		if it.stripe == 0 {
			dc.probe(it.f)
		}
		s, err := dc.convertGstSample(it.f, it.stripe)
		switch {
		case err == nil:
			dc.accessesOk.Add(1)
			dc.accessesStripes.Add(1)
			dc.analyze(it.f, s)
		case errors.Is(err, errMap):
			dc.accessesOk.Add(1)
			dc.mapFailures.Add(1)
		default:
			dc.countRefused(it.f, err)
		}
	}
}

// finalize is each sample's finalizer (a cleanup callback): it runs once,
// when the registration is released, after the last access, before the
// reference drops.
func (dc *DesktopCaptureGst) finalize(f *frame) {
	dc.expect(f.watch.finalized() == 1, "frame %d: finalizer ran twice", f.seq)
	dc.expect(f.watch.unregistering(), "frame %d: finalized before its unregister", f.seq)
	dc.expect(f.watch.inside() == 0, "frame %d: finalized while a worker is inside", f.seq)
	dc.expect(f.watch.freed() == 0, "frame %d: finalized after it was freed", f.seq)
	dc.finalizersRun.Add(1)
	dc.bytesLive.Add(^uint64(f.size - 1)) // released: no longer held
	if int(f.stripesDone.Load()) != dc.opts.stripes {
		dc.cutShort.Add(1)
		return
	}
	dc.completed.Add(1)
	dc.lumaTotal.Add(f.lumaSum.Load())
	dc.lumaPixels.Add(f.lumaCount.Load())
	dc.reportMu.Lock()
	if f.seq+1 >= dc.lastSeq {
		dc.lastSeq, dc.lastChecksum = f.seq+1, f.checksum.Load()
	}
	dc.reportMu.Unlock()
}

// pull registers the samples of the appsink and schedules them.
func (dc *DesktopCaptureGst) pull(p *pipeline, stop *atomic.Bool, rng *rand.Rand) []*frame {
	var frames []*frame
	for !stop.Load() {
		s, fmtInfo, size := p.pull(uint64(50 * time.Millisecond))
		if s == nil {
			continue // a timeout, or the end of the stream (the bus says which)
		}
		f := &frame{seq: uint64(len(frames)), sample: s, format: fmtInfo, size: size, watch: newWatch(s)}
		frames = append(frames, f)
		dc.poolOnce.Do(func() {
			dc.bufferPool = gcsafety.NewBufferPool(maxStripe(fmtInfo, size, dc.opts.stripes), 4*dc.opts.workers, 0)
		})
		id, err := dc.registerSample(s, size)
		if !dc.expect(err == nil, "RegisterObject: %v", err) {
			s.unref()
			break
		}
		f.id = id
		err = dc.gsm.AddCleanupCallback(id, func() { dc.finalize(f) })
		dc.expect(err == nil, "AddCleanupCallback: %v", err)
		s.unref() // from here on the registration holds the only reference
		dc.expect(f.watch.freed() == 0 && s.refcount() == 1,
			"frame %d: the registration does not hold the only reference", f.seq)
		dc.frames.Add(1)
		live := dc.bytesLive.Add(uint64(size))
		for peak := dc.bytesLivePeak.Load(); live > peak && !dc.bytesLivePeak.CompareAndSwap(peak, live); {
			peak = dc.bytesLivePeak.Load()
		}

		// The race: the reaper releases the sample at a random moment; the
		// workers pick its stripes up at random moments, mostly before.
		now := time.Now()
		f.releaseAt = now.Add(time.Duration(rng.Int63n(int64(dc.opts.maxDelayMs)*1000+1)) * time.Microsecond)
		dc.reaper <- f
		for i := 0; i < dc.opts.stripes; i++ {
			due := now.Add(time.Duration(rng.Int63n(int64(dc.opts.maxDelayMs)*500+1)) * time.Microsecond)
			dc.work.push(&workItem{f: f, stripe: i, due: due})
		}
	}
	return frames
}

func (dc *DesktopCaptureGst) release(f *frame) {
	f.watch.markUnregistering()
	err := dc.gsm.UnregisterObject(f.id)
	dc.expect(err == nil, "frame %d: UnregisterObject: %v", f.seq, err)
	if f.watch.inside() > 0 { // a worker still inside: the release waits for it
		dc.releasesWhileInside.Add(1)
	}
	dc.releases.Add(1)
}

// reap releases each sample at its deadline; it returns once the channel
// is closed and every sample is released.
func (dc *DesktopCaptureGst) reap(done chan<- struct{}) {
	defer close(done)
	var pending frameHeap
	draining := false
	for {
		now := time.Now()
		for pending.Len() > 0 && !pending[0].releaseAt.After(now) {
			dc.release(heap.Pop(&pending).(*frame))
		}
		if draining && pending.Len() == 0 {
			return
		}
		wait := 100 * time.Millisecond
		if pending.Len() > 0 {
			wait = pending[0].releaseAt.Sub(now)
		}
		timer := time.NewTimer(wait)
		select {
		case f, ok := <-dc.reaper:
			if !ok {
				draining = true
				dc.reaper = nil // a nil channel blocks: wait for deadlines only
			} else {
				heap.Push(&pending, f)
			}
		case <-timer.C:
		}
		timer.Stop()
	}
}

// ----- schedules ------------------------------------------------------------

// schedule is the workers' queue, earliest due first.
type schedule struct {
	mu    sync.Mutex
	cond  *sync.Cond
	items itemHeap
}

func (s *schedule) push(it *workItem) {
	s.mu.Lock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	heap.Push(&s.items, it)
	s.mu.Unlock()
	s.cond.Signal()
}

func (s *schedule) pop() *workItem {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	for s.items.Len() == 0 {
		s.cond.Wait()
	}
	return heap.Pop(&s.items).(*workItem)
}

type itemHeap []*workItem

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)        { *h = append(*h, x.(*workItem)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

type frameHeap []*frame

func (h frameHeap) Len() int           { return len(h) }
func (h frameHeap) Less(i, j int) bool { return h[i].releaseAt.Before(h[j].releaseAt) }
func (h frameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)        { *h = append(*h, x.(*frame)) }
func (h *frameHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	*h = old[:len(old)-1]
	return f
}

// ----- metrics ----------------------------------------------------------------

// prometheus is the Prometheus text of the run: the library's metrics of
// the manager (the names and help texts of gcs_stats_prometheus; the
// per-type series are the manager's, which registers "gst.Sample" only),
// then the demo's, the same as the C demo writes.
func (dc *DesktopCaptureGst) prometheus(elapsed time.Duration) string {
	s := dc.gsm.GetStats()
	var b strings.Builder
	metric := func(name, kind, help string, value any) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, kind, name, value)
	}
	metric("gcs_registrations_total", "counter", "Registrations made.", s.TotalRegistered)
	metric("gcs_active_handles", "gauge", "Registrations not yet released.", s.Active)
	metric("gcs_peak_active_handles", "gauge", "Most registrations active at once.", s.PeakActive)
	metric("gcs_releases_total", "counter", "Registrations released.", s.Released)
	metric("gcs_invalidations_total", "counter", "Handles invalidated.", s.Invalidated)
	metric("gcs_accesses_total", "counter", "Accesses that ran.", s.AccessOk)
	metric("gcs_accesses_rejected_total", "counter", "Accesses refused (stale, invalidated, forged or closed).", s.AccessRejected)
	metric("gcs_callback_failures_total", "counter", "Access callbacks that returned non-zero.", s.CallbackFailures)
	metric("gcs_panics_recovered_total", "counter", "Panics caught.", s.PanicsRecovered)
	metric("gcs_cleanups_total", "counter", "Cleanup callbacks run.", s.CleanupsRun)
	metric("gcs_cleanup_failures_total", "counter", "Cleanup callbacks that returned non-zero.", s.CleanupFailures)
	metric("gcs_finalizers_total", "counter", "Finalizers run.", s.FinalizersRun)
	metric("gcs_finalizer_failures_total", "counter", "Finalizers that failed every attempt.", s.FinalizerFailures)
	metric("gcs_finalizer_timeouts_total", "counter", "Finalizers that overran their timeout.", s.FinalizerTimeouts)
	metric("gcs_tracked_bytes", "gauge", "Bytes declared by registrations not yet released.", s.TrackedBytes)
	typed := func(name, kind, help string, value uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s{type=\"gst.Sample\"} %d\n", name, help, name, kind, name, value)
	}
	typed("gcs_type_live_handles", "gauge", "Registrations not yet released, per type.", s.Active)
	typed("gcs_type_registrations_total", "counter", "Registrations made, per type.", s.TotalRegistered)
	typed("gcs_type_releases_total", "counter", "Registrations released, per type.", s.Released)
	typed("gcs_type_accesses_total", "counter", "Accesses that ran, per type.", s.AccessOk)
	typed("gcs_type_tracked_bytes", "gauge", "Bytes declared by registrations not yet released, per type.", s.TrackedBytes)

	metric("gcs_capture_frames_total", "counter", "Samples pulled from the appsink and registered.", dc.frames.Load())
	metric("gcs_capture_accesses_ok_total", "counter", "Sample accesses that ran.", dc.accessesOk.Load())
	metric("gcs_capture_accesses_rejected_total", "counter", "Sample accesses refused: the sample was released.", dc.accessesRejected.Load())
	metric("gcs_capture_releases_total", "counter", "Samples released by the reaper.", dc.releases.Load())
	metric("gcs_capture_samples_completed_total", "counter", "Samples finalized with every stripe analysed.", dc.completed.Load())
	metric("gcs_capture_samples_freed_total", "counter", "Samples freed (weak reference notifications).", samplesFreed())
	metric("gcs_capture_use_after_free_total", "counter", "Accesses that touched a freed sample.", dc.useAfterFree.Load())
	metric("gcs_capture_access_cost_nanoseconds", "gauge", "Mean cost of one access, timed in batches on live samples.", dc.accessCost())
	metric("gcs_capture_duration_seconds", "gauge", "How long the capture ran.", elapsed.Seconds())
	metric("gcs_capture_invariants_broken", "gauge", "Invariants that did not hold (0 expected).", dc.invariantsBroken.Load())
	return b.String()
}

func (dc *DesktopCaptureGst) accessCost() float64 {
	if n := dc.probeAccesses.Load(); n > 0 {
		return float64(dc.probeNs.Load()) / float64(n)
	}
	return 0
}

// ----- main -------------------------------------------------------------------

func pipelineDescription(o options) string {
	switch {
	case o.pipeline != "":
		return o.pipeline
	case o.source == "" || o.source == "videotestsrc":
		return "videotestsrc is-live=true pattern=ball ! " +
			"video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! appsink name=sink"
	case o.source == "ximagesrc":
		return "ximagesrc use-damage=false ! video/x-raw,framerate=30/1 ! videoconvert ! " +
			"video/x-raw,format=I420 ! appsink name=sink"
	}
	return o.source + " ! videoconvert ! video/x-raw,format=I420 ! appsink name=sink"
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	flag.Float64Var(&o.duration, "duration", 10, "seconds to run (Ctrl-C stops earlier)")
	flag.IntVar(&o.workers, "workers", 4, "worker goroutines")
	flag.IntVar(&o.stripes, "stripes", 8, "accesses per frame, one stripe each")
	flag.IntVar(&o.maxDelayMs, "max-delay", 50, "the reaper releases each sample after a random 0..MS ms; workers pick its stripes up after 0..MS/2 ms")
	flag.StringVar(&o.source, "source", "videotestsrc", "live source element: videotestsrc (headless), ximagesrc (the desktop), or another")
	flag.StringVar(&o.pipeline, "pipeline", "", "a gst-launch description ending in an appsink named sink (overrides -source)")
	flag.StringVar(&o.metricsFile, "metrics-file", "capture-metrics-go.prom", "where to write the Prometheus text at the end")
	flag.StringVar(&o.httpAddr, "http", "", "serve the Prometheus text live at http://ADDR/metrics (for example :9464)")
	flag.Int64Var(&o.seed, "seed", 0, "seed of the random delays (default: from the clock)")
	flag.Parse()
	if o.workers < 1 || o.workers > 256 || o.stripes < 1 || o.stripes > 64 || o.duration <= 0 || o.maxDelayMs < 0 {
		fmt.Fprintln(os.Stderr, "capture: -workers 1..256, -stripes 1..64, -duration > 0, -max-delay >= 0")
		return 2
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano()
	}
	interactive := false
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		interactive = true
	}

	gstInit()
	description := pipelineDescription(o)
	p, err := newPipeline(description)
	if err != nil {
		fmt.Fprintf(os.Stderr, "capture: cannot build the pipeline %q: %v\n", description, err)
		return 2
	}
	dc := &DesktopCaptureGst{
		opts: o,
		gsm: gcsafety.NewGCSafetyManager(gcsafety.GCSafetyConfig{
			EnableStateChecking:   true,
			EnableFinalizerSafety: true,
		}),
		reaper: make(chan *frame, 1024),
	}
	defer dc.gsm.Close()

	start := time.Now()
	if o.httpAddr != "" {
		ln, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "capture: -http %s: %v\n", o.httpAddr, err)
			return 2
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			fmt.Fprint(w, dc.prometheus(time.Since(start)))
		})
		go http.Serve(ln, mux) //nolint:errcheck // ends with the process
		fmt.Printf("  serving the Prometheus text at http://%s/metrics\n", ln.Addr())
	}

	fmt.Printf("capture (Go): guarded by GCSafetyManager.SafeAccess, %d workers, %d accesses per frame, releases after 0..%d ms, %.1f s%s\n",
		o.workers, o.stripes, o.maxDelayMs, o.duration, map[bool]string{true: " (Ctrl-C stops)", false: ""}[interactive])
	fmt.Printf("  pipeline: %s\n", description)

	// A pipeline that cannot start (ximagesrc without an X display, say)
	// is not an invariant: say why and stop.
	if !p.play() {
		_, err := p.pollBus(0)
		if err == nil {
			err = errors.New("it refused to go to PLAYING")
		}
		hint := ""
		if o.source == "ximagesrc" && o.pipeline == "" {
			hint = " (ximagesrc needs an X display: DISPLAY)"
		}
		fmt.Fprintf(os.Stderr, "capture: the pipeline cannot start: %v%s\n", err, hint)
		p.free()
		return 2
	}

	var workers sync.WaitGroup
	for i := 0; i < o.workers; i++ {
		workers.Add(1)
		go dc.worker(&workers)
	}
	reaped := make(chan struct{})
	go dc.reap(reaped)
	var stopPulling atomic.Bool
	pulled := make(chan []*frame, 1)
	go func() { pulled <- dc.pull(p, &stopPulling, rand.New(rand.NewSource(o.seed))) }()

	var pipelineErr error
	sourceEnded := false
	busDone := make(chan struct{})
	busStop := make(chan struct{})
	busResult := make(chan error, 1)
	go func() {
		defer close(busDone)
		for {
			select {
			case <-busStop:
				return
			default:
			}
			eos, err := p.pollBus(uint64(100 * time.Millisecond))
			if eos || err != nil {
				if err == nil {
					err = errEOS
				}
				busResult <- err
				return
			}
		}
	}()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	deadline := time.NewTimer(time.Duration(o.duration * float64(time.Second)))
	ticker := time.NewTicker(250 * time.Millisecond)
	var peakTracked uint64
	lastAt, lastFrames, lastAccesses := start, uint64(0), uint64(0)
	progress := func() {
		s := dc.gsm.GetStats()
		if s.TrackedBytes > peakTracked {
			peakTracked = s.TrackedBytes
		}
		now := time.Now()
		secs := now.Sub(lastAt).Seconds()
		frames, accesses := dc.frames.Load(), dc.accessesOk.Load()
		if interactive && secs > 0 {
			fmt.Printf("\r\033[K%5.1f s  %5.1f frames/s  %8.0f accesses/s  rejected %d  live %d  tracked %.2f MiB",
				now.Sub(start).Seconds(), float64(frames-lastFrames)/secs, float64(accesses-lastAccesses)/secs,
				dc.accessesRejected.Load(), s.Active, float64(s.TrackedBytes)/(1024*1024))
		}
		lastAt, lastFrames, lastAccesses = now, frames, accesses
	}
loop:
	for pipelineErr == nil {
		select {
		case <-ticker.C:
			progress()
		case <-deadline.C:
			break loop
		case <-signals:
			break loop
		case err := <-busResult:
			if errors.Is(err, errEOS) {
				sourceEnded = true
			} else {
				pipelineErr = err
			}
			break loop
		}
	}
	elapsed := time.Since(start)
	ticker.Stop()
	progress()
	if interactive {
		fmt.Println()
	}

	// Stop: no more samples; the workers finish what is queued; the reaper
	// releases the rest at their deadlines; wait for every sample to be freed.
	stopPulling.Store(true)
	frames := <-pulled
	close(busStop)
	<-busDone
	p.free()
	for i := 0; i < o.workers; i++ {
		dc.work.push(&workItem{due: time.Now().Add(24 * time.Hour)}) // sorts last
	}
	workers.Wait()
	close(dc.reaper)
	<-reaped

	registered := dc.frames.Load()
	settle := time.Now().Add(10 * time.Second) // generous: a liveness bound
	for samplesFreed() < uint64(len(frames)) && time.Now().Before(settle) {
		time.Sleep(time.Millisecond)
	}
	stats := dc.gsm.GetStats()
	for stats.Released < stats.TotalRegistered && time.Now().Before(settle) {
		time.Sleep(time.Millisecond)
		stats = dc.gsm.GetStats()
	}

	// ----- the invariants -----
	freed := samplesFreed()
	dc.expect(pipelineErr == nil, "the pipeline failed: %v", pipelineErr)
	dc.expect(registered > 0, "no frame came out of the pipeline")
	dc.expect(freed == registered, "%d samples registered, %d freed", registered, freed)
	for _, f := range frames {
		dc.expect(f.watch.freed() == 1, "frame %d: freed %d times", f.seq, f.watch.freed())
		dc.expect(f.watch.finalizerRuns() == 1, "frame %d: finalizer ran %d times", f.seq, f.watch.finalizerRuns())
		if v := f.watch.violations(); v != 0 {
			dc.expect(false, "frame %d: %s", f.seq, violationText(v))
		}
	}
	dc.expect(dc.useAfterFree.Load() == 0, "%d accesses touched a freed sample", dc.useAfterFree.Load())
	dc.expect(dc.mapFailures.Load() == 0, "%d buffers could not be mapped", dc.mapFailures.Load())
	dc.expect(glibWarnings() == 0, "%d GLib/GStreamer warnings or criticals", glibWarnings())
	dc.expect(dc.accessesOther.Load() == 0, "accesses refused for another reason than a stale handle")
	dc.expect(stats.Active == 0, "leaks: %d handles still live", stats.Active)
	dc.expect(stats.TrackedBytes == 0, "%d bytes still tracked", stats.TrackedBytes)
	dc.expect(stats.TotalRegistered == registered && stats.Released == registered,
		"library: %d registered, %d released; demo: %d", stats.TotalRegistered, stats.Released, registered)
	dc.expect(stats.CleanupsRun == registered && dc.finalizersRun.Load() == registered && stats.CleanupFailures == 0,
		"finalizers: library %d cleanups run, %d failed; demo counted %d", stats.CleanupsRun, stats.CleanupFailures, dc.finalizersRun.Load())
	// Accesses on the binding's fast path are not counted by the library.
	libraryOk := dc.accessesOk.Load()
	if gcsafety.FastPathEnabled() {
		libraryOk = 0
	}
	dc.expect(stats.AccessOk == libraryOk && stats.AccessRejected == dc.accessesRejected.Load(),
		"accesses: library %d ok, %d rejected; demo %d ok, %d rejected",
		stats.AccessOk, stats.AccessRejected, dc.accessesOk.Load(), dc.accessesRejected.Load())

	// ----- Prometheus text -----
	if err := os.WriteFile(o.metricsFile, []byte(dc.prometheus(elapsed)), 0o644); err != nil {
		dc.expect(false, "cannot write %s: %v", o.metricsFile, err)
	}

	// ----- the summary -----
	secs := elapsed.Seconds()
	ok, probes := dc.accessesOk.Load(), dc.probeAccesses.Load()
	formatText := "none"
	if len(frames) > 0 {
		formatText = formatDescription(frames[len(frames)-1].format)
	}
	row := func(key, format string, args ...any) {
		fmt.Printf("  %-22s %s\n", key+":", fmt.Sprintf(format, args...))
	}
	fmt.Printf("\nsummary (guarded, Go)\n")
	ended := ""
	if sourceEnded {
		ended = " (the source ended)"
	}
	row("duration", "%.1f s%s", secs, ended)
	row("frames", "%d (%.1f/s), %s", registered, float64(registered)/secs, formatText)
	row("accesses ok", "%d (%.0f/s: %d stripe analyses, %d timed)", ok, float64(ok)/secs, dc.accessesStripes.Load(), probes)
	row("accesses rejected", "%d (stale handles: the reaper released the sample first)", dc.accessesRejected.Load())
	row("releases", "%d (%d while a worker was inside: the unref waited for it)", dc.releases.Load(), dc.releasesWhileInside.Load())
	row("finalizers", "%d run, %d failed (%d samples completed, %d cut short)", stats.CleanupsRun, stats.CleanupFailures, dc.completed.Load(), dc.cutShort.Load())
	row("samples freed", "%d of %d (weak references)", freed, registered)
	row("use after free", "%d", dc.useAfterFree.Load())
	row("peak live handles", "%d", stats.PeakActive)
	peak := dc.bytesLivePeak.Load()
	if peakTracked > peak {
		peak = peakTracked
	}
	row("tracked", "%.2f MiB at the peak, %d bytes at the end", float64(peak)/(1024*1024), stats.TrackedBytes)
	row("leaks", "%d", stats.Active)
	dc.reportMu.Lock()
	lastChecksum := dc.lastChecksum
	dc.reportMu.Unlock()
	if px := dc.lumaPixels.Load(); px > 0 {
		key := "mean luma"
		if !hasLumaPlane(frames[len(frames)-1].format) {
			key = "mean byte value"
		}
		row(key, "%.2f (complete frames); last frame's checksum 0x%08x", float64(dc.lumaTotal.Load())/float64(px), lastChecksum)
	}
	row("cost per access", "%.1f ns per GCSafetyManager.SafeAccess (%d accesses timed in batches of %d, empty function)", dc.accessCost(), probes, probeBatch)
	row("glib warnings", "%d", glibWarnings())
	row("prometheus text", "%s", o.metricsFile)
	broken := dc.invariantsBroken.Load()
	if broken == 0 {
		row("result", "PASS (every invariant held)")
	} else {
		row("result", "FAIL")
		fmt.Printf("  %d invariant(s) broken: see the messages above\n", broken)
	}
	for _, f := range frames {
		f.watch.free()
	}
	if broken != 0 {
		return 1
	}
	return 0
}

var errEOS = errors.New("end of stream")

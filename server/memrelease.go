package server

import (
	"context"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// Go gives the memory a burst of requests took back to the system slowly.
// The heap keeps its high-water mark of garbage until the next collection,
// which a process that allocates nothing runs only every two minutes, and
// the scavenger then returns what lies above the new goal over minutes
// more. Meanwhile the edge holds megabytes it does not use, on a VPS where
// the homeserver and its database are the ones that need them. So once the
// public listeners have answered nothing for a whole quietTick, after a
// burst that left at least releaseMin the heap could give back, the edge
// collects and returns it at once: a few milliseconds of one core, once
// per quiet spell. A server busy all the time never qualifies, and keeps
// the runtime's own pacing.
//
// The release collects twice: the buffers a burst left in the sync.Pools
// (request and answer buffers, bufio readers and writers) survive one
// collection in the pools' victim caches, and only the second frees them.
const (
	quietTick  = time.Second
	releaseMin = 1 << 20
)

// quietRelease is the loop that does it.
type quietRelease struct {
	tick time.Duration
	// activity changes whenever a request is answered (history.activity).
	activity func() uint64
	// enough says whether there is enough to give back (reclaimable).
	enough  func() bool
	release func()
}

// run releases once per quiet spell that follows activity, until ctx ends.
func (q quietRelease) run(ctx context.Context) {
	t := time.NewTicker(q.tick)
	defer t.Stop()
	last, busy := q.activity(), false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a := q.activity(); a != last {
			last, busy = a, true
			continue
		}
		if busy && q.enough() {
			busy = false
			q.release()
		}
	}
}

// reclaimable estimates what a collection and a scavenge would return: the
// heap's objects beyond what was live at the last collection (garbage since),
// the unused parts of its spans, and its free pages not yet released.
func reclaimable() uint64 {
	s := []rtmetrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	rtmetrics.Read(s)
	heap := s[0].Value.Uint64() + s[1].Value.Uint64() + s[2].Value.Uint64()
	if live := s[3].Value.Uint64(); heap > live {
		return heap - live
	}
	return 0
}

// releaseWhenQuiet runs the edge's quietRelease until ctx ends.
func (s *Server) releaseWhenQuiet(ctx context.Context) {
	quietRelease{
		tick:     quietTick,
		activity: s.hist.activity,
		enough:   func() bool { return reclaimable() >= releaseMin },
		release: func() {
			runtime.GC()
			debug.FreeOSMemory()
			s.m.memoryReleases.Inc()
		},
	}.run(ctx)
}

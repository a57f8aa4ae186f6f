package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestQuietReleaseOncePerSpell: memory is given back once the edge has
// answered nothing for a whole tick after answering something; not while
// requests keep coming, not again in the same quiet spell, not when there
// is too little to give back, and again after the next burst.
func TestQuietReleaseOncePerSpell(t *testing.T) {
	var activity, releases atomic.Uint64
	var enough atomic.Bool
	enough.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const tick = 20 * time.Millisecond
	go quietRelease{tick: tick, activity: activity.Load, enough: enough.Load, release: func() { releases.Add(1) }}.run(ctx)

	// Busy: a request every few milliseconds for 15 ticks. On a loaded
	// machine this loop may itself stall for a tick, which is a quiet
	// spell; only a busy phase without one is judged.
	stalled := false
	last := time.Now()
	for end := last.Add(15 * tick); time.Now().Before(end); time.Sleep(tick / 10) {
		activity.Add(1)
		if now := time.Now(); now.Sub(last) >= tick/2 {
			stalled = true
		} else {
			last = now
		}
		last = time.Now()
	}
	// The release may follow the last tick of the burst, no earlier.
	if n := releases.Load(); n > 1 || (n == 1 && !stalled && time.Since(last) < tick) {
		t.Fatalf("%d releases while busy", n)
	}
	wait.Until(t, "a release after the burst", 5*time.Second, func() error {
		if releases.Load() == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	time.Sleep(10 * tick)
	if n := releases.Load(); n != 1 {
		t.Fatalf("%d releases in one quiet spell, want 1", n)
	}
	// A burst that leaves too little behind is not worth a collection.
	enough.Store(false)
	activity.Add(1)
	time.Sleep(10 * tick)
	if n := releases.Load(); n != 1 {
		t.Fatalf("%d releases with too little to give back", n)
	}
	// And when there is enough once more, the burst's spell releases.
	enough.Store(true)
	wait.Until(t, "a release after the second burst", 5*time.Second, func() error {
		if releases.Load() != 2 {
			return errors.New("not yet")
		}
		return nil
	})
}

// TestEdgeReleasesMemoryWhenQuiet: the running edge, quiet after answering
// requests that left garbage behind, returns it and counts the release.
func TestEdgeReleasesMemoryWhenQuiet(t *testing.T) {
	addr := freeport.Addr(t)
	e := startEdge(t, edgeconf.New(edgeconf.Listen(addr, "", "", "")), onListeners, withAdmin)
	wait.TCP(t, addr)
	for range 50 {
		resp, err := http.Get("http://" + addr + "/.well-known/matrix/server")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Garbage the size of a burst's, so that there is something to give
	// back whatever the other tests in this process have left (each
	// buffer is too large for the stack).
	n := 0
	for i := range 64 {
		b := make([]byte, 128<<10)
		b[i] = 1
		n += int(b[len(b)-1-i])
	}
	if n != 0 {
		t.Fatal("fresh memory was not zero")
	}
	wait.Until(t, "wellknownd_memory_releases_total to count a release", 15*time.Second, func() error {
		for _, l := range strings.Split(e.adminGET(t, "/metrics"), "\n") {
			if strings.HasPrefix(l, "wellknownd_memory_releases_total ") && l != "wellknownd_memory_releases_total 0" {
				return nil
			}
		}
		return errors.New("not yet")
	})
}

package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// staticFileWait is how long a static request waits for a descriptor when
// limits.static_files are all in use, before it is answered 503.
const staticFileWait = 2 * time.Second

// fileSlots cap the files static routes hold open at once. A file is held
// open while it is sent, and a client that stops reading holds it for as
// long as the send timeout: without a cap, such clients ran the process
// out of descriptors (90 connections reached 20,000), and then everyone,
// the homeserver's connections included, got "too many open files".
type fileSlots struct {
	slots chan struct{}
	busy  prometheus.Counter
}

func newFileSlots(n int, m *metrics) *fileSlots {
	f := &fileSlots{slots: make(chan struct{}, n), busy: m.staticBusy}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wellknownd_static_files_open",
		Help: "Files static routes hold open now to send them (limits.static_files caps it).",
	}, func() float64 { return float64(len(f.slots)) }))
	return f
}

// take waits up to staticFileWait for a slot; false when none came (the
// request then gets 503) or the client left.
func (f *fileSlots) take(ctx context.Context) bool {
	select {
	case f.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(staticFileWait)
	defer t.Stop()
	select {
	case f.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	f.busy.Inc()
	return false
}

func (f *fileSlots) put() { <-f.slots }

// writeBusy is the answer when no descriptor came in time.
func writeBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
}

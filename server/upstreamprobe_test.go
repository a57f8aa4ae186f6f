package server

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestReadyzFollowsAnUnsupervisedUpstream: with nothing supervised,
// /readyz follows an active probe of the homeserver: not ready when it
// stops answering, ready again within one interval of its return, with no
// proxied request in between.
func TestReadyzFollowsAnUnsupervisedUpstream(t *testing.T) {
	// Also the probe's timeout: a shorter one fails probes of a live
	// upstream on a busy machine.
	const probe = 500 * time.Millisecond
	var down atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"versions":["v1.11"]}`))
	}))
	defer up.Close()
	adminAddr := freeport.Addr(t)
	startEdge(t, edgeconf.New(edgeconf.Listen("127.0.0.1:0", "", "", adminAddr), edgeconf.Upstream(up.URL)), onListeners, withOptions(WithProbeInterval(probe)))
	readyz := func() int {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	wait.True(t, "ready", 10*time.Second, func() bool { return readyz() == 200 })
	down.Store(true)
	wait.True(t, "not ready while the upstream fails", 10*time.Second, func() bool { return readyz() == 503 })
	down.Store(false)
	start := time.Now()
	wait.True(t, "ready again", 10*time.Second, func() bool { return readyz() == 200 })
	// The next probe (within an interval), taking at most its timeout
	// (an interval too), and 2 s for a busy machine under -race.
	if took := time.Since(start); took > 2*probe+2*time.Second {
		t.Errorf("ready again after %v, with a %v probe", took, probe)
	}
}

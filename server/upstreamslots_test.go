package server

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUpstreamConnectionCap: with every upstream connection busy, a
// request waits limits.upstream_wait and is answered 503 with Retry-After;
// the homeserver never sees more connections than the cap.
func TestUpstreamConnectionCap(t *testing.T) {
	up := newCountingUpstream(t)
	edge := startEdge(t, edgeConfig(up.URL)+"limits: {upstream_conns: 3, upstream_wait: 200ms}\n")
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for range 10 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", edge.URL+"/_matrix/client/v3/sync", nil)
			req.Host = "matrix.example.com"
			resp, err := edge.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
			if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	// The seven that found no connection give up after 200 ms.
	busy := 0
	for range 7 {
		select {
		case c := <-codes:
			if c == 503 {
				busy++
			}
		case <-time.After(5 * time.Second):
			t.Fatal("requests over the cap were not answered")
		}
	}
	if busy != 7 || up.peak.Load() != 3 {
		t.Fatalf("%d of 7 got 503; the upstream saw %d connections at once, cap 3", busy, up.peak.Load())
	}
	if m := edge.adminGET(t, "/metrics"); !strings.Contains(m, `wellknownd_proxy_errors_total{kind="busy"} 7`) {
		t.Errorf("busy not counted:\n%s", grepLines(m, "proxy_errors"))
	}
	close(up.release)
	wg.Wait()
}

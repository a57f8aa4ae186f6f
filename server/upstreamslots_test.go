package server

import (
	"net/http"
	"net/http/httptest"
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

// TestHeadThroughTheSlots: a HEAD answer, and a 304, state a length they
// have no body for; they are passed on as they are, and free their slots.
func TestHeadThroughTheSlots(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "22")
		if r.Header.Get("If-None-Match") == `"v"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method != http.MethodHead {
			w.Write([]byte(`{"versions":["v1.11"]}`))
		}
	}))
	defer up.Close()
	edge := startEdge(t, edgeConfig(up.URL))
	resp, body := send(t, edge, "HEAD", "matrix.example.com", "/_matrix/client/versions", nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 22 {
		t.Fatalf("HEAD: %d, length %d, body %q", resp.StatusCode, resp.ContentLength, body)
	}
	// A 304 may state the length too.
	resp, body = send(t, edge, "GET", "matrix.example.com", "/_matrix/client/versions", nil, "If-None-Match", `"v"`)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("304: %d %q", resp.StatusCode, body)
	}
	if n := edge.slotsInUse(); n != 0 {
		t.Errorf("HEAD and 304 hold %d slots after their answers", n)
	}
}

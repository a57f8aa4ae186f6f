package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
)

// TestUpstreamRoute: a service under a path prefix gets the request as it
// came, with the edge's forwarded headers and body limit, without the
// edge's CORS; a dead one gets a JSON error.
func TestUpstreamRoute(t *testing.T) {
	var got *http.Request
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("service " + r.URL.Path))
	}))
	defer svc.Close()
	cfg := edgeconf.Plain("http://127.0.0.1:1", "1MiB") + "routes:\n  - {host: matrix.example.com, path: /sliding-sync, upstream: " + svc.URL + ", max_body: 1KiB}\n  - {path: /gone, upstream: \"http://127.0.0.1:1\"}\n"
	ts := startEdge(t, cfg)
	resp, body := send(t, ts, "GET", "matrix.example.com", "/sliding-sync/client/v3/sync?pos=1", nil, "X-Forwarded-For", "6.6.6.6", "Origin", "https://app.example")
	if resp.StatusCode != 200 || body != "service /sliding-sync/client/v3/sync" || got.URL.RawQuery != "pos=1" {
		t.Fatalf("proxied: %d %q %q", resp.StatusCode, body, got.URL.RawQuery)
	}
	if xff := got.Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For upstream %q", xff)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("the edge added CORS to a route's answer")
	}
	// Not this route: the prefix is matched by whole segments.
	if resp, _ := send(t, ts, "GET", "matrix.example.com", "/sliding-syncx", nil); resp.StatusCode != 404 {
		t.Errorf("/sliding-syncx: %d", resp.StatusCode)
	}
	resp, body = send(t, ts, "POST", "matrix.example.com", "/sliding-sync/upload", strings.NewReader(strings.Repeat("x", 2048)))
	if resp.StatusCode != 413 || !strings.Contains(body, "M_TOO_LARGE") {
		t.Errorf("over the route's max_body: %d %q", resp.StatusCode, body)
	}
	// The route with no host applies on every name; its service is down.
	resp, body = send(t, ts, "GET", "example.com", "/gone/x", nil)
	if resp.StatusCode != 502 || !strings.Contains(body, `"errcode"`) {
		t.Errorf("a dead route upstream: %d %q", resp.StatusCode, body)
	}
}

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

// TestRootRouteNeverGetsReservedPaths: a route at / (a web site, Element
// Web) takes whatever nothing else does, but never the paths that are
// always the homeserver's or the documents': not on the base domain (which
// does not serve the Matrix APIs here), not on a host of its own, not on
// the delegated host, however the path is spelt.
func TestRootRouteNeverGetsReservedPaths(t *testing.T) {
	var seen []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Host+" "+r.URL.Path)
		w.Write([]byte("site"))
	}))
	defer svc.Close()
	up := newRecorder(t)
	cfg := edgeconf.New(edgeconf.Hosts("example.com", "matrix.example.com", "www.example.com"), edgeconf.Upstream(up.URL)) +
		"routes:\n  - {path: /, upstream: " + svc.URL + "}\n  - {host: www.example.com, path: /, upstream: " + svc.URL + "}\n"
	ts := startEdge(t, cfg)
	// The routes are there: what is not reserved reaches the site.
	for _, host := range []string{"example.com", "www.example.com", "matrix.example.com"} {
		if resp, body := send(t, ts, "GET", host, "/about", nil); resp.StatusCode != 200 || body != "site" {
			t.Fatalf("%s/about: %d %q", host, resp.StatusCode, body)
		}
	}
	seen = nil
	for _, tc := range []struct{ host, path string }{
		{"example.com", "/_matrix/client/versions"},
		{"example.com", "/_matrix"},
		{"example.com", "/_synapse/admin/v1/register"},
		{"example.com", "/_dendrite/admin/evacuateUser/@a:example.com"},
		{"example.com", "/%5Fmatrix/client/versions"},
		{"example.com", "/.well-known/matrix"},
		{"www.example.com", "/_matrix/client/v3/login"},
		{"www.example.com", "/_synapse/client/oidc/callback"},
		{"www.example.com", "/_dendrite"},
		{"matrix.example.com", "/_synapse/admin"},
		{"matrix.example.com", "/_synapse/other"},
		{"matrix.example.com", "/_dendrite/other"},
		{"matrix.example.com", "/_matrix"},
	} {
		resp, body := send(t, ts, "GET", tc.host, tc.path, nil)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "M_UNRECOGNIZED") {
			t.Errorf("%s%s: %d %q, want the edge's 404", tc.host, tc.path, resp.StatusCode, body)
		}
	}
	if len(seen) != 0 {
		t.Errorf("the route at / received reserved paths: %q", seen)
	}
	if n := up.count(); n != 0 {
		t.Errorf("the homeserver received %d requests for paths it does not serve", n)
	}
	// The delegated host's Matrix APIs still go to the homeserver.
	if resp, _ := send(t, ts, "GET", "matrix.example.com", "/_matrix/client/versions", nil); resp.StatusCode != 200 || up.count() != 1 {
		t.Errorf("/_matrix/client/versions on the delegated host: %d, upstream saw %d", resp.StatusCode, up.count())
	}
}

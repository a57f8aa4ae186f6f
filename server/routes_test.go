package server

import (
	"strings"
	"testing"
)

func TestProxyRoutes(t *testing.T) {
	up := newRecorder(t)
	fed := newRecorder(t)
	ts := startEdge(t, edgeConfig(up.URL, "federation_url: "+fed.URL))
	cases := []struct {
		host, path string
		want       *recorder // nil: answered by the edge
		status     int
	}{
		{"matrix.example.com", "/_matrix/client/v3/sync", up, 200},
		{"matrix.example.com", "/_matrix/media/v3/download/example.com/abc", up, 200},
		{"matrix.example.com", "/_synapse/client/oidc/callback", up, 200},
		{"matrix.example.com", "/_matrix/federation/v1/version", fed, 200},
		{"matrix.example.com", "/_matrix/key/v2/server", fed, 200},
		{"matrix.example.com", "/_synapse/metrics", nil, 404},
		{"matrix.example.com", "/", nil, 404},
		// The base domain is neither m.server's nor base_url's host here: it
		// serves documents only.
		{"example.com", "/_matrix/client/v3/sync", nil, 404},
	}
	for _, tc := range cases {
		nUp, nFed := up.count(), fed.count()
		resp, b := send(t, ts, "GET", tc.host, tc.path, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s%s: %d %s, want %d", tc.host, tc.path, resp.StatusCode, b, tc.status)
		}
		gotUp, gotFed := up.count() > nUp, fed.count() > nFed
		if (tc.want == up) != gotUp || (tc.want == fed) != gotFed {
			t.Errorf("%s%s: reached client upstream %v, federation upstream %v", tc.host, tc.path, gotUp, gotFed)
		}
	}
	// Preflights are answered at the edge.
	n := up.count()
	resp, _ := send(t, ts, "OPTIONS", "matrix.example.com", "/_matrix/client/v3/rooms/x/send/m.room.message/1", nil,
		"Origin", "https://app.element.io", "Access-Control-Request-Method", "PUT")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Methods") != "GET, HEAD, POST, PUT, DELETE, OPTIONS" || up.count() != n {
		t.Fatalf("client API preflight: %d %v (upstream asked: %v)", resp.StatusCode, resp.Header, up.count() != n)
	}
}

func TestProxyAdminPaths(t *testing.T) {
	up := newRecorder(t)
	closed := startEdge(t, edgeConfig(up.URL))
	for _, p := range []string{"/_synapse/admin/v1/register", "/_dendrite/admin/evacuateRoom/!a:example.com"} {
		resp, b := send(t, closed, "GET", "matrix.example.com", p, nil)
		if resp.StatusCode != 403 || !strings.Contains(b, `"errcode":"M_FORBIDDEN"`) {
			t.Errorf("%s from outside expose_admin: %d %s", p, resp.StatusCode, b)
		}
		// A forged X-Forwarded-For from an untrusted peer changes nothing.
		resp, _ = send(t, startEdge(t, edgeConfig(up.URL, "expose_admin: [10.0.0.0/8]")), "GET", "matrix.example.com", p, nil, "X-Forwarded-For", "10.1.2.3")
		if resp.StatusCode != 403 {
			t.Errorf("%s with forged X-Forwarded-For: %d", p, resp.StatusCode)
		}
	}
	if up.count() != 0 {
		t.Fatalf("admin requests reached the upstream")
	}
	open := startEdge(t, edgeConfig(up.URL, "expose_admin: [127.0.0.1]"))
	if resp, _ := send(t, open, "GET", "matrix.example.com", "/_synapse/admin/v1/register", nil); resp.StatusCode != 200 || up.last(t).requestURI != "/_synapse/admin/v1/register" {
		t.Fatalf("admin path from expose_admin: %d", resp.StatusCode)
	}
}

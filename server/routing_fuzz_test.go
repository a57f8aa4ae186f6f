package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path"
	"strings"
	"sync"
	"testing"
)

// FuzzRouting sends requests with any Host, path and X-Forwarded-For, from
// a trusted proxy or not, and checks the routing decisions an attacker
// would try to bend: nothing for a name not served is proxied; no path
// with dot-segments reaches the homeserver; an admin path reaches it only
// for a client in expose_admin, as read from the rightmost untrusted hop;
// nothing panics (a 500).
func FuzzRouting(f *testing.F) {
	for _, seed := range []struct{ host, path, xff string }{
		{"matrix.example.com", "/_matrix/client/versions", ""},
		{"matrix.example.com:evil", "/_matrix/client/versions", ""},
		{"[matrix.example.com]", "/.well-known/matrix/server", ""},
		{"MATRIX.example.com.", "/_synapse/admin/v1/register", "10.1.2.3"},
		{"matrix.example.com", "/_matrix/../_synapse/admin/v1/register", "10.0.0.1"},
		{"matrix.example.com", "/_matrix/%2e%2e/_dendrite/admin/x", ""},
		{"matrix.example.com", "/_synapse/admin/v1/users", "6.6.6.6:4711"},
		{"matrix.example.com", "/_synapse/admin/v1/users", "unknown, 10.0.0.1"},
		{"matrix.example.com", "/_synapse/admin/v1/users", "10.0.0.1, 127.0.0.1"},
		{"example.com", "/_matrix/federation/v1/version", ""},
		{"evil.example", "/_matrix/client/versions", ""},
	} {
		f.Add(seed.host, seed.path, seed.xff, true)
		f.Add(seed.host, seed.path, seed.xff, false)
	}
	var (
		mu   sync.Mutex
		seen []*http.Request
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer up.Close()
	edges := map[bool]http.Handler{}
	for _, trusted := range []bool{false, true} {
		extra := []string{"expose_admin: [10.0.0.0/8]"}
		if trusted {
			extra = append(extra, "trusted_proxies: [192.0.2.1]")
		}
		srv, _ := newEdgeServer(f, edgeConfig(up.URL, extra...))
		edges[trusted] = srv
	}
	exposed, _ := netip.ParsePrefix("10.0.0.0/8")

	f.Fuzz(func(t *testing.T, host, target, xff string, fromProxy bool) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		req, err := http.NewRequest("GET", "http://edge"+target, nil)
		if err != nil {
			return // not a request line a server would parse
		}
		req.Host = host
		req.RemoteAddr = "203.0.113.50:1234"
		if fromProxy {
			req.RemoteAddr = "192.0.2.1:1234"
		}
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		mu.Lock()
		seen = seen[:0]
		mu.Unlock()
		rec := httptest.NewRecorder()
		edges[fromProxy].ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("500 for Host %q %q", host, target)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return
		}
		got := seen[0]
		name := hostOnly(host)
		if name != "example.com" && name != "matrix.example.com" || !validHost(host) {
			t.Fatalf("Host %q was proxied", host)
		}
		if hasDotSegment(got.URL.Path) {
			t.Fatalf("%q reached the upstream with dot-segments, as %q", target, got.URL.Path)
		}
		clean := path.Clean(got.URL.Path)
		if strings.HasPrefix(clean, "/_synapse/admin") || strings.HasPrefix(clean, "/_dendrite/admin") {
			client, _ := netip.ParseAddr("203.0.113.50")
			if fromProxy {
				hops := strings.Split(xff, ",")
				client, err = netip.ParseAddr(strings.TrimSpace(hops[len(hops)-1]))
				if err != nil {
					t.Fatalf("admin path %q reached the upstream with an unreadable X-Forwarded-For %q", target, xff)
				}
			}
			if !exposed.Contains(client.Unmap()) {
				t.Fatalf("admin path %q reached the upstream for %s (X-Forwarded-For %q, from proxy %v)", target, client, xff, fromProxy)
			}
		}
	})
}

package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
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
		edges[trusted] = startEdge(f, edgeConfig(up.URL, extra...)).srv
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

// TestMalformedHostAndDotSegments: a Host that only resembles a served
// name, and a path that would climb out of /_matrix once the homeserver
// resolves it, are answered 400 at the edge and never proxied.
func TestMalformedHostAndDotSegments(t *testing.T) {
	up := newRecorder(t)
	edge := startEdge(t, edgeConfig(up.URL))
	raw := func(host, path string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", edge.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s Host %s: %v", path, host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct{ host, path string }{
		{"matrix.example.com:evil", "/_matrix/client/versions"},
		{"[matrix.example.com]", "/_matrix/client/versions"},
		{"[matrix.example.com]:443", "/.well-known/matrix/server"},
		{"matrix.example.com:4433333", "/_matrix/client/versions"},
		{"matrix.example.com", "/_matrix/../_synapse/admin/v1/register"},
		{"matrix.example.com", "/_matrix/%2e%2e/_synapse/admin/v1/register"},
		{"matrix.example.com", "/_matrix/client/./versions"},
		{"matrix.example.com", "/_matrix/client/%2E%2E/%2E%2E/_dendrite/admin/x"},
	} {
		code, body := raw(c.host, c.path)
		if code != 400 || !strings.Contains(body, `"errcode":"M_UNRECOGNIZED"`) {
			t.Errorf("Host %s %s: %d %s", c.host, c.path, code, body)
		}
	}
	if up.count() != 0 {
		t.Fatalf("%d of them reached the upstream", up.count())
	}
	// What stays served: a port, an IPv6 literal (not in hosts: 421), dots
	// inside a segment.
	for _, c := range []struct {
		host, path string
		want       int
	}{
		{"matrix.example.com:443", "/_matrix/client/versions", 200},
		{"MATRIX.example.com.", "/_matrix/client/versions", 200},
		{"[::1]:8448", "/_matrix/client/versions", 421},
		{"matrix.example.com", "/_matrix/media/v3/download/example.com/a..b", 200},
	} {
		if code, body := raw(c.host, c.path); code != c.want {
			t.Errorf("Host %s %s: %d %s, want %d", c.host, c.path, code, body, c.want)
		}
	}
}

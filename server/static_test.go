package server

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
)

// elementWeb lays out a directory as an Element Web release has it, plus
// what must never be served from it.
func elementWeb(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "element")
	for name, body := range map[string]string{
		"index.html":                      "<!doctype html><title>Element</title>",
		"config.json":                     `{"default_server_config":{"m.homeserver":{"base_url":"https://matrix.example.com"}}}`,
		"bundles/0123456789abcdef/app.js": "console.log('app')",
		"vendors.3fa1b2c4d5.css":          "body{}",
		"welcome.html":                    "<p>welcome</p>",
		"themes/light.svg":                "<svg/>",
		"assets/logo.png":                 "png",
		".git/config":                     "[core]",
		".env":                            "SECRET=1",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(secret, []byte("outside"), 0o644)
	os.Symlink(secret, filepath.Join(dir, "escape.txt"))
	return dir
}

// TestStaticRoute: Element Web on a host of its own, served as it needs,
// and nothing else from that host or directory.
func TestStaticRoute(t *testing.T) {
	dir := elementWeb(t)
	cfg := edgeconf.New(edgeconf.Hosts("example.com", "matrix.example.com", "element.example.com"), edgeconf.Upstream("http://127.0.0.1:1", "max_body: 1MiB")) +
		"routes:\n  - {host: element.example.com, static: " + dir + "}\n  - {path: /, upstream: \"http://127.0.0.1:1\"}\n"
	ts := startEdge(t, cfg)
	// The route for every name (its service is down) answers elsewhere;
	// on element.example.com the route for that name wins.
	if resp, _ := send(t, ts, "GET", "example.com", "/about", nil); resp.StatusCode != 502 {
		t.Errorf("the route without a host on example.com: %d", resp.StatusCode)
	}
	for _, tc := range []struct {
		path, method string
		code         int
		body, ctype  string
		cache        string
	}{
		{"/", "GET", 200, "<title>Element</title>", "text/html; charset=utf-8", "no-cache"},
		{"/index.html", "GET", 200, "<title>Element</title>", "text/html; charset=utf-8", "no-cache"},
		{"/config.json", "GET", 200, "default_server_config", "application/json", "no-cache"},
		{"/bundles/0123456789abcdef/app.js", "GET", 200, "console.log", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/vendors.3fa1b2c4d5.css", "GET", 200, "body{}", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/themes/light.svg", "GET", 200, "<svg/>", "image/svg+xml", "public, max-age=3600"},
		{"/welcome.html", "GET", 200, "welcome", "text/html; charset=utf-8", "no-cache"},
		{"/.git/config", "GET", 404, "", "", ""},
		{"/.env", "GET", 404, "", "", ""},
		{"/assets/", "GET", 404, "", "", ""},
		{"/assets", "GET", 404, "", "", ""},
		{"/escape.txt", "GET", 404, "", "", ""},
		{"/missing.js", "GET", 404, "", "", ""},
		{"/config.json", "POST", 405, "", "", ""},
		{"/_matrix/client/versions", "GET", 404, "", "", ""},
		{"/index.html%00", "GET", 404, "", "", ""},
		{"/index.html%00.png", "GET", 404, "", "", ""},
	} {
		resp, body := send(t, ts, tc.method, "element.example.com", tc.path, nil)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s: %d %.80q", tc.method, tc.path, resp.StatusCode, body)
			continue
		}
		if strings.Contains(body, "outside") || strings.Contains(body, "SECRET") || strings.Contains(body, "[core]") {
			t.Errorf("%s %s served a file it must not: %q", tc.method, tc.path, body)
		}
		if tc.code != 200 {
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "SAMEORIGIN" {
			t.Errorf("%s: security headers %v", tc.path, resp.Header)
		}
	}
	// Traversal, as raw request lines: refused at the edge, never a file.
	addr := strings.TrimPrefix(ts.URL, "http://")
	for _, p := range []string{"/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2f..%2fetc%2fpasswd", "/..\\..\\etc\\passwd"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET " + p + " HTTP/1.1\r\nHost: element.example.com\r\nConnection: close\r\n\r\n"))
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		c.Close()
		head := string(buf[:n])
		if strings.HasPrefix(head, "HTTP/1.1 200") || strings.Contains(head, "root:") {
			t.Errorf("GET %s: %.120q", p, head)
		}
	}
}

package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
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

// metricValue is the value of one sample line of the edge's /metrics,
// e.g. `wellknownd_static_compress_total{encoding="zstd"}`.
func (e *testEdge) metricValue(t *testing.T, sample string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(e.adminGET(t, "/metrics"))
	if m == nil {
		t.Fatalf("no %s in /metrics", sample)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// staticGet sends a request to the static route without Go's transparent
// decompression: what crossed the wire.
func staticGet(t *testing.T, ts *testEdge, method, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, nil)
	req.Host = "element.example.com"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func gzipped(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	g := gzip.NewWriter(&out)
	g.Write(b)
	g.Close()
	return out.Bytes()
}

// TestStaticAssetsCompressedOnce: a large asset is compressed once per
// version and encoding, then served from memory, with the headers a
// browser and a cache need; ranges, HEAD and revalidation stay right; a
// precompressed file beside it is sent as it is; a changed file is never
// served stale.
func TestStaticAssetsCompressedOnce(t *testing.T) {
	dir := t.TempDir()
	bundle := jsLike(2 << 20)
	css := []byte(strings.Repeat("body{color:#123456}.mx_RoomView{display:flex}\n", 400))
	write := func(name string, b []byte, mod time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mod, mod)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	write("bundle.0123456789ab.js", bundle, t0)
	write("theme.css", css, t0)
	write("theme.css.gz", gzipped(t, css), t0)
	write("theme.css.br", []byte("made by brotli ahead"), t0)
	// A precompressed file older than its file is stale: never sent.
	write("old.css", css, t0)
	write("old.css.gz", gzipped(t, []byte("body{}")), t0.Add(-time.Minute))
	cfg := edgeconf.New(edgeconf.Hosts("example.com", "matrix.example.com", "element.example.com"), edgeconf.Upstream("http://127.0.0.1:1")) +
		"routes:\n  - {host: element.example.com, static: " + dir + "}\n"
	ts := startEdge(t, cfg)
	compressions := func(enc string) float64 {
		return ts.metricValue(t, `wellknownd_static_compress_total{encoding="`+enc+`"}`)
	}
	vary := func(resp *http.Response) bool {
		return strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Accept-Encoding")
	}

	var zstdTag string
	for i := range 3 {
		for _, enc := range []string{encZstd, encGzip} {
			resp, body := staticGet(t, ts, "GET", "/bundle.0123456789ab.js", "Accept-Encoding", enc)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != enc || !bytes.Equal(decode(t, enc, body), bundle) {
				t.Fatalf("GET %s #%d: %d, Content-Encoding %q", enc, i, resp.StatusCode, resp.Header.Get("Content-Encoding"))
			}
			if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) || !vary(resp) || !strings.HasSuffix(resp.Header.Get("ETag"), "-"+enc+`"`) ||
				resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
				t.Errorf("GET %s: headers %v", enc, resp.Header)
			}
			if enc == encZstd {
				zstdTag = resp.Header.Get("ETag")
			}
		}
	}
	if z, g := compressions(encZstd), compressions(encGzip); z != 1 || g != 1 {
		t.Errorf("three requests in each encoding compressed the bundle %v times in zstd, %v in gzip; want once each", z, g)
	}

	// HEAD says what GET would send, and sends nothing.
	resp, body := staticGet(t, ts, "HEAD", "/bundle.0123456789ab.js", "Accept-Encoding", "zstd")
	if resp.Header.Get("Content-Encoding") != "zstd" || resp.Header.Get("ETag") != zstdTag || resp.Header.Get("Content-Length") == "" || len(body) != 0 {
		t.Errorf("HEAD: %v, %d bytes", resp.Header, len(body))
	}
	// Revalidating the compressed answer: 304 naming the tag held.
	resp, _ = staticGet(t, ts, "GET", "/bundle.0123456789ab.js", "Accept-Encoding", "zstd", "If-None-Match", zstdTag)
	if resp.StatusCode != 304 || resp.Header.Get("ETag") != zstdTag {
		t.Errorf("If-None-Match %s: %d, ETag %q", zstdTag, resp.StatusCode, resp.Header.Get("ETag"))
	}
	// A range is of the file as it is, whatever the client accepts.
	resp, body = staticGet(t, ts, "GET", "/bundle.0123456789ab.js", "Accept-Encoding", "zstd", "Range", "bytes=100-199")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, bundle[100:200]) {
		t.Errorf("Range: %d, Content-Encoding %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Encoding"), len(body))
	}
	// Without Accept-Encoding: the file as it is, still saying Vary.
	resp, body = staticGet(t, ts, "GET", "/bundle.0123456789ab.js")
	if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, bundle) || !vary(resp) {
		t.Errorf("identity: Content-Encoding %q, %d bytes, Vary %q", resp.Header.Get("Content-Encoding"), len(body), resp.Header.Values("Vary"))
	}

	// Precompressed files beside it, by the client's weights.
	for _, tc := range []struct {
		accept, enc string
		body        []byte
	}{
		{"br, gzip;q=0.5", "br", []byte("made by brotli ahead")},
		{"gzip", "gzip", gzipped(t, css)},
		{"zstd, br;q=0.9", "zstd", nil}, // no .zst: compressed here, which zstd preferred
	} {
		resp, body := staticGet(t, ts, "GET", "/theme.css", "Accept-Encoding", tc.accept)
		if resp.Header.Get("Content-Encoding") != tc.enc || !vary(resp) {
			t.Errorf("theme.css for %q: Content-Encoding %q, Vary %q", tc.accept, resp.Header.Get("Content-Encoding"), resp.Header.Values("Vary"))
			continue
		}
		if tc.body != nil && !bytes.Equal(body, tc.body) {
			t.Errorf("theme.css for %q: not the precompressed file (%d bytes)", tc.accept, len(body))
		}
		if !bytes.Equal(decode(t, tc.enc, body), css) && tc.enc != "br" {
			t.Errorf("theme.css for %q: decodes to something else", tc.accept)
		}
	}
	if g := compressions(encGzip); g != 1 {
		t.Errorf("the precompressed theme.css.gz was compressed again: %v gzip compressions", g)
	}
	if resp, body := staticGet(t, ts, "GET", "/old.css", "Accept-Encoding", "gzip"); !bytes.Equal(decode(t, resp.Header.Get("Content-Encoding"), body), css) {
		t.Errorf("old.css: the stale old.css.gz was sent")
	}

	// A new version of the bundle (a deployment rewrote it): never stale.
	bundle2 := jsLike(2<<20 + 1000)
	write("bundle.0123456789ab.js", bundle2, t0.Add(time.Minute))
	for _, enc := range []string{encZstd, encGzip} {
		resp, body := staticGet(t, ts, "GET", "/bundle.0123456789ab.js", "Accept-Encoding", enc)
		if !bytes.Equal(decode(t, enc, body), bundle2) {
			t.Errorf("GET %s after the bundle changed: the old version (%d bytes decoded)", enc, len(decode(t, enc, body)))
		}
		if resp.Header.Get("ETag") == zstdTag {
			t.Errorf("the changed bundle kept its tag %s", zstdTag)
		}
	}
	// The bundle's two versions and theme.css.
	if z := compressions(encZstd); z != 3 {
		t.Errorf("zstd compressions after the change: %v, want 3", z)
	}
}

// openFDs is the number of descriptors this process (the edge, its
// upstream and its clients) has open.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// TestStalledStaticStreamsHoldFewDescriptors: HTTP/2 streams that ask a
// static route for a large file and never read it hold one descriptor
// each at most, and no more at once than limits.static_files; meanwhile
// index.html (from memory) and the homeserver answer everyone else, and a
// request that needs a descriptor past the cap gets 503 in a few seconds.
func TestStalledStaticStreamsHoldFewDescriptors(t *testing.T) {
	const streams, files = 200, 8
	dir := elementWeb(t)
	big := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{3}).Read(big) // incompressible: sent as it is
	os.WriteFile(filepath.Join(dir, "olm.0123456789ab.bin"), big, 0o644)
	up := newRecorder(t)
	addr := freeport.Addr(t)
	edge := startEdge(t, edgeconf.New(edgeconf.Hosts("example.com", "matrix.example.com", "element.example.com"),
		edgeconf.Listen("", addr, "", "", "http3: false"), edgeconf.Internal(t.TempDir()), edgeconf.Upstream(up.URL))+
		"routes:\n  - {host: element.example.com, static: "+dir+"}\n"+
		fmt.Sprintf("limits: {send_timeout: 10m, static_files: %d}\n", files), onListeners)
	roots := edge.localCA(t, addr, "element.example.com")
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	get := func(url string) (*http.Response, string, time.Duration) {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), time.Since(start)
	}
	// The page once, so that index.html is in memory as it is served.
	if resp, body, _ := get("https://element.example.com/"); resp.StatusCode != 200 || !strings.Contains(body, "<title>Element</title>") {
		t.Fatalf("index.html: %d %q", resp.StatusCode, body)
	}
	before := openFDs(t)
	conns := h2StalledStreams(t, addr, "element.example.com", "/olm.0123456789ab.bin", streams)
	wait.True(t, "the stalled streams to be answered", 20*time.Second, func() bool { return edge.inFlight(t) >= streams })
	// The stalled streams' connections, this client's, and the cap.
	bound := files + 2*len(conns) + 16
	wait.True(t, "the descriptors for static files to be taken", 20*time.Second, func() bool {
		return edge.metricValue(t, "wellknownd_static_files_open") == files || openFDs(t)-before > bound
	})
	// Again once the streams that found no descriptor have had 503.
	checkFDs := func() {
		held := openFDs(t) - before
		t.Logf("%d stalled streams for a 4 MiB file hold %d more descriptors (static_files %d)", streams, held, files)
		if held > bound {
			t.Errorf("%d stalled streams hold %d descriptors; want at most %d files and their connections", streams, held, files)
		}
	}
	checkFDs()
	if resp, body, _ := get("https://element.example.com/index.html"); resp.StatusCode != 200 || !strings.Contains(body, "<title>Element</title>") {
		t.Errorf("index.html while the streams stall: %d %q", resp.StatusCode, body)
	}
	if resp, body, _ := get("https://matrix.example.com/_matrix/client/versions"); resp.StatusCode != 200 || !strings.Contains(body, `"ok":true`) {
		t.Errorf("the homeserver while the streams stall: %d %q", resp.StatusCode, body)
	}
	resp, _, took := get("https://element.example.com/olm.0123456789ab.bin")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a file past the cap: %d after %v, Retry-After %q", resp.StatusCode, took, resp.Header.Get("Retry-After"))
	}
	checkFDs()
	for _, c := range conns {
		c.Close()
	}
	wait.True(t, "the files to be closed", 20*time.Second, func() bool { return edge.metricValue(t, "wellknownd_static_files_open") == 0 })
	if resp, body, _ := get("https://element.example.com/olm.0123456789ab.bin"); resp.StatusCode != 200 || len(body) != len(big) {
		t.Errorf("the file once the stalled streams are gone: %d, %d bytes", resp.StatusCode, len(body))
	}
}

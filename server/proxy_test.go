package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// recorder is an upstream that records what crossed the wire to it.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, host, requestURI string
	header                   http.Header
	bodyLen                  int
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{r.Method, r.Host, r.RequestURI, r.Header.Clone(), int(n)})
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "https://only.example")
		w.Header().Set("Connection", "X-Upstream-Secret")
		w.Header().Set("X-Upstream-Secret", "hop")
		fmt.Fprintf(w, `{"ok":true}`)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) last(t *testing.T) recorded {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return rec.reqs[len(rec.reqs)-1]
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

// newEdge serves cfgYAML (with the upstream's URL substituted for UPSTREAM)
// from a real listener.
func newEdge(t *testing.T, cfgYAML string) *httptest.Server { return newEdgeB(t, cfgYAML) }

func newEdgeB(t testing.TB, cfgYAML string) *httptest.Server {
	_, ts := newEdgeServer(t, cfgYAML)
	return ts
}

// newEdgeServer serves the edge's main handler for cfgYAML over httptest,
// and returns the Server too, for its metrics and admin handler.
func newEdgeServer(t testing.TB, cfgYAML string) (*Server, *httptest.Server) {
	t.Helper()
	cfg, problems := config.Parse("test.yaml", []byte(cfgYAML))
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatalf("config: %v", errs)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts
}

// edgeConfig is the test edge with a 1 KiB body cap, so that limits are
// cheap to cross.
func edgeConfig(upstream string, upstreamLines ...string) string {
	return edgeconf.Plain(upstream, "1KiB", upstreamLines...)
}

func send(t *testing.T, ts *httptest.Server, method, host, path string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestProxyForwardedHeaders(t *testing.T) {
	up := newRecorder(t)
	untrusted := newEdge(t, edgeConfig(up.URL))
	send(t, untrusted, "GET", "matrix.example.com", "/_matrix/client/versions", nil,
		"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example", "Forwarded", "for=6.6.6.6", "X-Real-IP", "6.6.6.6")
	got := up.last(t)
	if xff := got.header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("untrusted peer: upstream X-Forwarded-For = %q, want only the peer 127.0.0.1", xff)
	}
	if got.header.Get("X-Forwarded-Proto") != "http" || got.header.Get("X-Forwarded-Host") != "matrix.example.com" {
		t.Errorf("untrusted peer: X-Forwarded-Proto %q Host %q", got.header.Get("X-Forwarded-Proto"), got.header.Get("X-Forwarded-Host"))
	}
	if got.header.Get("Forwarded") != "" || got.header.Get("X-Real-Ip") != "" {
		t.Errorf("untrusted peer's Forwarded/X-Real-IP reached the upstream: %v", got.header)
	}

	trusted := newEdge(t, edgeConfig(up.URL, "trusted_proxies: [127.0.0.0/8]"))
	send(t, trusted, "GET", "matrix.example.com", "/_matrix/client/versions", nil,
		"X-Forwarded-For", "203.0.113.7, 198.51.100.2", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "matrix.example.com")
	got = up.last(t)
	if xff := got.header.Get("X-Forwarded-For"); xff != "203.0.113.7, 198.51.100.2, 127.0.0.1" {
		t.Errorf("trusted peer: upstream X-Forwarded-For = %q", xff)
	}
	if got.header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("trusted peer: X-Forwarded-Proto = %q, want the proxy's https", got.header.Get("X-Forwarded-Proto"))
	}
}

func TestProxyKeepsHostPathAndQueryBytes(t *testing.T) {
	up := newRecorder(t)
	ts := newEdge(t, edgeConfig(up.URL))
	// Event and room IDs travel percent-encoded; %2F and %3A must not be
	// decoded, and an odd query must not be re-encoded.
	uri := "/_matrix/client/v3/rooms/%21abc%3Aexample.com/event/%24ev%2Fx%3Ay%2B?since=s1_2%3B3;x=%zz&filter=%7B%7D"
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: Matrix.Example.com\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nTE: trailers, gzip\r\nX-End-To-End: kept\r\n\r\n", uri)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := up.last(t)
	if got.requestURI != uri {
		t.Errorf("upstream request URI\n got %s\nwant %s", got.requestURI, uri)
	}
	if got.host != "Matrix.Example.com" {
		t.Errorf("upstream Host = %q, want the client's", got.host)
	}
	for _, h := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization"} {
		if v := got.header.Get(h); v != "" {
			t.Errorf("hop-by-hop %s reached the upstream: %q", h, v)
		}
	}
	if te := got.header.Get("Te"); te != "trailers" {
		t.Errorf("upstream TE = %q, want trailers only", te)
	}
	if got.header.Get("X-End-To-End") != "kept" {
		t.Errorf("end-to-end header lost")
	}
	// And on the way back: hop-by-hop stripped, CORS the edge's.
	if resp.Header.Get("X-Upstream-Secret") != "" {
		t.Errorf("upstream's hop-by-hop header reached the client")
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Methods") != "GET, HEAD, POST, PUT, DELETE, OPTIONS" {
		t.Errorf("proxied CORS: %v", resp.Header)
	}
}

func TestProxyBodyLimit(t *testing.T) {
	up := newRecorder(t)
	ts := newEdge(t, edgeConfig(up.URL))

	// Within the limit, the body arrives whole.
	resp, _ := send(t, ts, "POST", "matrix.example.com", "/_matrix/media/v3/upload", strings.NewReader(strings.Repeat("a", 1024)), "Content-Type", "application/octet-stream")
	if resp.StatusCode != 200 || up.last(t).bodyLen != 1024 {
		t.Fatalf("1 KiB upload: %d, upstream read %d bytes", resp.StatusCode, up.last(t).bodyLen)
	}
	before := up.count()

	// A declared length over the limit is refused at once: the client has
	// sent 10 bytes of a claimed 10 MB, and the answer still comes.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Type: image/png\r\nContent-Length: 10485760\r\n\r\n0123456789")
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to an oversized upload before its body: %v", err)
	}
	var body struct{ Errcode string }
	json.NewDecoder(r.Body).Decode(&body)
	if r.StatusCode != 413 || body.Errcode != "M_TOO_LARGE" || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("oversized upload: %d %+v %v", r.StatusCode, body, r.Header)
	}
	if up.count() != before {
		t.Fatalf("the oversized upload reached the upstream")
	}

	// A chunked body is cut where it passes the limit.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(strings.Repeat("b", 4096)))
		pw.Close()
	}()
	resp, b := send(t, ts, "POST", "matrix.example.com", "/_matrix/media/v3/upload", pr)
	if resp.StatusCode != 413 || !strings.Contains(b, "M_TOO_LARGE") {
		t.Fatalf("chunked oversized upload: %d %s", resp.StatusCode, b)
	}
}

func TestProxyAdminPaths(t *testing.T) {
	up := newRecorder(t)
	closed := newEdge(t, edgeConfig(up.URL))
	for _, p := range []string{"/_synapse/admin/v1/register", "/_dendrite/admin/evacuateRoom/!a:example.com"} {
		resp, b := send(t, closed, "GET", "matrix.example.com", p, nil)
		if resp.StatusCode != 403 || !strings.Contains(b, `"errcode":"M_FORBIDDEN"`) {
			t.Errorf("%s from outside expose_admin: %d %s", p, resp.StatusCode, b)
		}
		// A forged X-Forwarded-For from an untrusted peer changes nothing.
		resp, _ = send(t, newEdge(t, edgeConfig(up.URL, "expose_admin: [10.0.0.0/8]")), "GET", "matrix.example.com", p, nil, "X-Forwarded-For", "10.1.2.3")
		if resp.StatusCode != 403 {
			t.Errorf("%s with forged X-Forwarded-For: %d", p, resp.StatusCode)
		}
	}
	if up.count() != 0 {
		t.Fatalf("admin requests reached the upstream")
	}
	open := newEdge(t, edgeConfig(up.URL, "expose_admin: [127.0.0.1]"))
	if resp, _ := send(t, open, "GET", "matrix.example.com", "/_synapse/admin/v1/register", nil); resp.StatusCode != 200 || up.last(t).requestURI != "/_synapse/admin/v1/register" {
		t.Fatalf("admin path from expose_admin: %d", resp.StatusCode)
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	addr := freeport.Addr(t) // nothing listens there
	ts := newEdge(t, edgeConfig("http://"+addr))
	resp, b := send(t, ts, "GET", "matrix.example.com", "/_matrix/client/versions", nil)
	var body struct{ Errcode, Error string }
	if err := json.Unmarshal([]byte(b), &body); err != nil || resp.StatusCode != 502 || body.Errcode != "M_UNKNOWN" {
		t.Fatalf("upstream down: %d %s", resp.StatusCode, b)
	}
	if strings.Contains(b, "127.0.0.1") || strings.Contains(b, "refused") || strings.Contains(b, "dial") {
		t.Fatalf("internal detail in the error body: %s", b)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("502 headers: %v", resp.Header)
	}
}

func TestProxyRoutes(t *testing.T) {
	up := newRecorder(t)
	fed := newRecorder(t)
	ts := newEdge(t, edgeConfig(up.URL, "federation_url: "+fed.URL))
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

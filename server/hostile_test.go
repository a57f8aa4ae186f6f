package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestForwardedTrustFailsClosed: behind a trusted proxy, an X-Forwarded-For
// hop that is not a bare address makes the client unknown, and an unknown
// client is in no list; it used to come out as the proxy itself.
func TestForwardedTrustFailsClosed(t *testing.T) {
	up := newRecorder(t)
	edge := newEdge(t, edgeConfig(up.URL, "trusted_proxies: [127.0.0.1]", "expose_admin: [127.0.0.1]"))
	for _, xff := range []string{"6.6.6.6:4711", "unknown", "_hidden", "", "10.0.0.1, unknown", "not an address, 127.0.0.1"} {
		resp, b := send(t, edge, "GET", "matrix.example.com", "/_synapse/admin/v1/register", nil, "X-Forwarded-For", xff)
		if resp.StatusCode != 403 || !strings.Contains(b, "M_FORBIDDEN") {
			t.Errorf("X-Forwarded-For %q from the trusted proxy reached an admin path: %d %s", xff, resp.StatusCode, b)
		}
	}
	// The proxy itself, naming a client in expose_admin, still gets through.
	if resp, _ := send(t, edge, "GET", "matrix.example.com", "/_synapse/admin/v1/register", nil, "X-Forwarded-For", "127.0.0.1"); resp.StatusCode != 200 {
		t.Errorf("a trusted hop naming an exposed client: %d", resp.StatusCode)
	}
}

// TestClientIPHeadersFromUntrustedPeers: the headers other proxies use to
// name the client never reach the homeserver from a peer that is not
// trusted; from a trusted one they pass.
func TestClientIPHeadersFromUntrustedPeers(t *testing.T) {
	up := newRecorder(t)
	hdrs := []string{"X-Client-IP", "6.6.6.6", "True-Client-IP", "6.6.6.6", "CF-Connecting-IP", "6.6.6.6",
		"X-Forwarded-Port", "1", "X-Forwarded-Server", "evil.example", "X-Real-IP", "6.6.6.6"}
	send(t, newEdge(t, edgeConfig(up.URL)), "GET", "matrix.example.com", "/_matrix/client/versions", nil, hdrs...)
	got := up.last(t)
	for i := 0; i < len(hdrs); i += 2 {
		if v := got.header.Get(hdrs[i]); v != "" {
			t.Errorf("untrusted peer's %s: %q reached the upstream", hdrs[i], v)
		}
	}
	send(t, newEdge(t, edgeConfig(up.URL, "trusted_proxies: [127.0.0.1]")), "GET", "matrix.example.com", "/_matrix/client/versions", nil, "CF-Connecting-IP", "203.0.113.9")
	if v := up.last(t).header.Get("CF-Connecting-IP"); v != "203.0.113.9" {
		t.Errorf("trusted proxy's CF-Connecting-IP: %q", v)
	}
}

// adminGET answers path from the server's admin handler.
func adminGET(t *testing.T, srv *Server, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1"+path, nil))
	return rec.Body.String()
}

// TestExpectContinueCountsTheFinalStatus: an upload that asks for 100
// Continue is counted and logged with its final status, not 100.
func TestExpectContinueCountsTheFinalStatus(t *testing.T) {
	up := newRecorder(t)
	srv, edge := newEdgeServer(t, edgeConfig(up.URL))
	conn, err := net.Dial("tcp", edge.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(conn)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first answer %q, want 100 Continue", line)
	}
	br.ReadString('\n')
	conn.Write([]byte("hello"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("final answer: %v %v", resp, err)
	}
	resp.Body.Close()
	metrics := adminGET(t, srv, "/metrics")
	if !strings.Contains(metrics, `wellknownd_http_requests_total{code="200",host="matrix.example.com",route="client"} 1`) ||
		strings.Contains(metrics, `code="100"`) {
		t.Fatalf("request counted as:\n%s", grepLines(metrics, "wellknownd_http_requests_total"))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// countingUpstream is a homeserver that counts the connections it has open
// and holds each request until release is closed (but for the edge's
// readiness probe, /_matrix/client/versions).
type countingUpstream struct {
	*httptest.Server
	open, peak atomic.Int32
	// held are the requests being held now.
	held    atomic.Int32
	release chan struct{}
}

func newCountingUpstream(t *testing.T) *countingUpstream {
	u := &countingUpstream{release: make(chan struct{})}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/_matrix/client/versions" {
			u.held.Add(1)
			<-u.release
			u.held.Add(-1)
		}
		w.Write([]byte(`{}`))
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			if n := u.open.Add(1); n > u.peak.Load() {
				u.peak.Store(n)
			}
		case http.StateClosed, http.StateHijacked:
			u.open.Add(-1)
		}
	}
	u.Start()
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.Close()
	})
	return u
}

// TestStalledBodyNeverReachesTheUpstream: a client that sends its headers
// and then no body holds no connection to the homeserver, and is answered
// 408 once the body idle bound passes; a slow upload that keeps moving
// goes through whole.
func TestStalledBodyNeverReachesTheUpstream(t *testing.T) {
	up := newCountingUpstream(t)
	close(up.release)
	// The bound is ten times the slow upload's pauses: a writer a busy
	// machine resumes late must not look idle.
	edge := newEdge(t, edgeConfig(up.URL)+"limits: {body_idle_timeout: 1s}\n")
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", edge.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprint(c, "POST /_matrix/client/v3/rooms/x/send/m.room.message/1 HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Length: 100\r\n\r\n")
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled body: %v %v", resp, err)
		}
		c.Close()
	}
	// Not while they waited, not when they were answered.
	if n := up.peak.Load(); n != 0 {
		t.Fatalf("20 clients with stalled bodies made %d connections to the upstream", n)
	}

	// 1000 bytes in 20 pieces 100 ms apart: 2 s in all, twice the bound,
	// never idle for more than a tenth of it.
	pr, pw := io.Pipe()
	go func() {
		for range 20 {
			pw.Write(bytes.Repeat([]byte("x"), 50))
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", edge.URL+"/_matrix/media/v3/upload", pr)
	req.Host, req.ContentLength = "matrix.example.com", 1000
	resp, err := edge.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a slow upload that keeps moving: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestMalformedChunkedBodyIs400: a broken chunked body is the client's
// fault, and the answer says so instead of blaming the homeserver (502).
func TestMalformedChunkedBodyIs400(t *testing.T) {
	up := newRecorder(t)
	edge := newEdge(t, edgeConfig(up.URL))
	for _, body := range []string{"zz\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n3\r\nhel"} {
		c, err := net.Dial("tcp", edge.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: matrix.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"+body)
		if tcp, ok := c.(*net.TCPConn); ok {
			tcp.CloseWrite()
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("chunked %q: %v", body, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(b), `"errcode":"M_UNKNOWN"`) || strings.Contains(string(b), "homeserver") {
			t.Errorf("chunked %q: %d %s", body, resp.StatusCode, b)
		}
		c.Close()
	}
}

// TestUpstreamConnectionCap: with every upstream connection busy, a
// request waits limits.upstream_wait and is answered 503 with Retry-After;
// the homeserver never sees more connections than the cap.
func TestUpstreamConnectionCap(t *testing.T) {
	up := newCountingUpstream(t)
	srv, edge := newEdgeServer(t, edgeConfig(up.URL)+"limits: {upstream_conns: 3, upstream_wait: 200ms}\n")
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
	if m := adminGET(t, srv, "/metrics"); !strings.Contains(m, `wellknownd_proxy_errors_total{kind="busy"} 7`) {
		t.Errorf("busy not counted:\n%s", grepLines(m, "proxy_errors"))
	}
	close(up.release)
	wg.Wait()
}

// TestConnectionLimit: at limits.max_conns, a new connection takes the
// place of one that only waits on its client (a body that has not
// started, an idle keep-alive); with every connection busy it waits, the
// admin listener still answers and says so, and a slot freed lets it in.
func TestConnectionLimit(t *testing.T) {
	up := newCountingUpstream(t)
	httpAddr, adminAddr := freeport.Addr(t), freeport.Addr(t)
	srv, _ := runEdge(t, fmt.Sprintf(`server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
listen: {http: %q, https: "", federation: "", admin: %q}
tls: {mode: "off"}
upstream: {url: %q}
limits: {max_conns: 3}
`, httpAddr, adminAddr, up.URL))
	wait.TCP(t, adminAddr) // listening on both: they open together
	wellKnown := func(timeout time.Duration) (int, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/.well-known/matrix/server", nil)
		req.Host = "example.com"
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	send := func(request string) net.Conn {
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, request)
		return c
	}

	// Three clients whose bodies never start: a fourth is served, in the
	// place of the one that waited longest. Each is accepted, and has
	// 100 ms to start waiting on its body, before the next comes: which
	// waited longest is not left to how the goroutines were scheduled.
	var slow []net.Conn
	for i := range 3 {
		slow = append(slow, send("POST /_matrix/client/v3/rooms/x/send/m.room.message/1 HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Length: 10\r\n\r\n"))
		wait.True(t, "the edge to accept it", 5*time.Second, func() bool { return srv.conns.open() == i+1 })
		time.Sleep(100 * time.Millisecond)
	}
	if code, err := wellKnown(2 * time.Second); err != nil || code != 200 {
		t.Fatalf("well-known with the cap full of stalled bodies: %d %v", code, err)
	}
	slow[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := slow[0].Read(make([]byte, 1)); err == nil {
		t.Fatal("the oldest stalled client was not the one closed")
	}
	for _, c := range slow {
		c.Close()
	}
	wait.True(t, "the stalled clients to be gone", 5*time.Second, func() bool {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), "\nwellknownd_connections_open 0\n")
	})

	// Three requests being answered (the upstream holds them): nothing is
	// closed, the fourth waits.
	var busy []net.Conn
	for range 3 {
		busy = append(busy, send("GET /_matrix/client/v3/sync HTTP/1.1\r\nHost: matrix.example.com\r\n\r\n"))
	}
	wait.True(t, "three requests at the upstream", 5*time.Second, func() bool { return up.held.Load() == 3 })
	if _, err := wellKnown(300 * time.Millisecond); err == nil {
		t.Fatal("a fourth connection was served past max_conns 3 with all three busy")
	}
	resp, err := http.Get("http://" + adminAddr + "/healthz")
	if err != nil {
		t.Fatalf("admin listener while the public ones are full: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "connection limit reached: 3 of 3") {
		t.Fatalf("/healthz at the limit: %d %q", resp.StatusCode, b)
	}
	busy[0].Close()
	if code, err := wellKnown(5 * time.Second); err != nil || code != 200 {
		t.Fatalf("after a slot was freed: %d %v", code, err)
	}
	close(up.release)
	for _, c := range busy[1:] {
		c.Close()
	}
}

// TestMalformedHostAndDotSegments: a Host that only resembles a served
// name, and a path that would climb out of /_matrix once the homeserver
// resolves it, are answered 400 at the edge and never proxied.
func TestMalformedHostAndDotSegments(t *testing.T) {
	up := newRecorder(t)
	edge := newEdge(t, edgeConfig(up.URL))
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

// TestOversizedUploadReadsThe413: a client that sends a body over max_body
// whole before it reads (no Expect: 100-continue) reads the 413, instead
// of a reset connection.
func TestOversizedUploadReadsThe413(t *testing.T) {
	up := newRecorder(t)
	edge := newEdge(t, edgeConfig(up.URL)) // max_body 1KiB
	c, err := net.Dial("tcp", edge.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := bytes.Repeat([]byte("x"), 8<<20)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body); err != nil {
		t.Fatalf("sending 8 MiB to a 1 KiB limit: %v (the edge cut the connection instead of draining)", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"errcode":"M_TOO_LARGE"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if up.count() != 0 {
		t.Fatal("the oversized upload reached the upstream")
	}
}

// TestAdminListenerRefusesBrowsers: DNS rebinding (a foreign name for
// 127.0.0.1) reads nothing, and a cross-origin POST /reload is refused;
// the tools' own requests pass.
func TestAdminListenerRefusesBrowsers(t *testing.T) {
	srv, _ := newEdgeServer(t, edgeConfig("http://127.0.0.1:1"))
	admin := httptest.NewServer(srv.adminHandler())
	defer admin.Close()
	do := func(method, host, path string, hdr ...string) int {
		req, _ := http.NewRequest(method, admin.URL+path, nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bound := admin.Listener.Addr().String()
	for _, c := range []struct {
		method, host, path string
		hdr                []string
		want               int
	}{
		{"GET", "rebind.attacker.example:9090", "/status", nil, 421},
		{"GET", "rebind.attacker.example", "/metrics", nil, 421},
		{"POST", bound, "/reload", []string{"Origin", "https://attacker.example"}, 403},
		{"POST", "localhost:9090", "/reload", []string{"Origin", "null"}, 403},
		{"GET", bound, "/status", nil, 200},
		{"GET", "localhost:9090", "/healthz", nil, 200},
		{"GET", "[::1]:9090", "/healthz", nil, 200},
		{"GET", bound, "/metrics", []string{"Origin", "https://attacker.example"}, 200}, // a read; CORS keeps the answer from the page
		{"POST", bound, "/reload", nil, 501},                                            // wellknownd reload: no Origin (no reloader in this test)
		{"POST", bound, "/reload", []string{"Origin", "http://" + bound}, 501},
	} {
		if got := do(c.method, c.host, c.path, c.hdr...); got != c.want {
			t.Errorf("%s %s Host %s %v: %d, want %d", c.method, c.path, c.host, c.hdr, got, c.want)
		}
	}
}

// TestReadyzFollowsAnUnsupervisedUpstream: with nothing supervised,
// /readyz follows an active probe of the homeserver: not ready when it
// stops answering, ready again within one interval of its return, with no
// proxied request in between.
func TestReadyzFollowsAnUnsupervisedUpstream(t *testing.T) {
	// Also the probe's timeout: a shorter one fails probes of a live
	// upstream on a busy machine.
	const probe = 500 * time.Millisecond
	var down atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"versions":["v1.11"]}`))
	}))
	defer up.Close()
	adminAddr := freeport.Addr(t)
	runEdge(t, fmt.Sprintf(`server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
listen: {http: "127.0.0.1:0", https: "", federation: "", admin: %q}
tls: {mode: "off"}
upstream: {url: %q}
`, adminAddr, up.URL), WithProbeInterval(probe))
	readyz := func() int {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	wait.True(t, "ready", 10*time.Second, func() bool { return readyz() == 200 })
	down.Store(true)
	wait.True(t, "not ready while the upstream fails", 10*time.Second, func() bool { return readyz() == 503 })
	down.Store(false)
	start := time.Now()
	wait.True(t, "ready again", 10*time.Second, func() bool { return readyz() == 200 })
	// The next probe (within an interval), taking at most its timeout
	// (an interval too), and a second for a busy machine.
	if took := time.Since(start); took > 2*probe+time.Second {
		t.Errorf("ready again after %v, with a %v probe", took, probe)
	}
}

// TestUnreadBodyDoesNotHoldTheConnection: a request with a body that the
// edge answers without reading it (here the redirect to https of the plain
// listener) does not leave its connection waiting for that body for ever.
func TestUnreadBodyDoesNotHoldTheConnection(t *testing.T) {
	httpAddr, tlsAddr := freeport.Addr(t), freeport.Addr(t)
	runEdge(t, fmt.Sprintf(`server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
listen: {http: %q, https: %q, federation: "", admin: ""}
tls: {mode: internal, storage: %q}
`, httpAddr, tlsAddr, t.TempDir()))
	wait.TCP(t, tlsAddr)
	c, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST /_matrix/client/v3/rooms/x/send/m.room.message/1 HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Length: 100\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusPermanentRedirect {
		t.Fatalf("%v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	start := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("more than the answer came")
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("the connection was held %v waiting for the unread body", took)
	}
}

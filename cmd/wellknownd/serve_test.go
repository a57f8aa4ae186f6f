package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// exampleConfig is a deployment of example.com delegated to
// matrix.example.com, served on ephemeral loopback ports.
const exampleConfig = `server_name: example.com
delegation:
  server: matrix.example.com:443
  client_base_url: https://matrix.example.com
  identity_server: https://vector.im
  client_extra:
    org.matrix.msc3575.proxy: {url: "https://sync.example.com"}
  support:
    contacts:
      - {matrix_id: "@admin:example.com", role: m.role.admin}
    support_page: https://example.com/support
  max_age: 2h
hosts: [example.com, matrix.example.com]
base_domain:
  redirect: https://www.example.com
listen:
  http: 127.0.0.1:0
  https: ""
  federation: ""
  admin: 127.0.0.1:0
tls:
  mode: "off"
`

const (
	wantServer  = `{"m.server":"matrix.example.com:443"}`
	wantClient  = `{"m.homeserver":{"base_url":"https://matrix.example.com"},"m.identity_server":{"base_url":"https://vector.im"},"org.matrix.msc3575.proxy":{"url":"https://sync.example.com"}}`
	wantSupport = `{"contacts":[{"matrix_id":"@admin:example.com","role":"m.role.admin"}],"support_page":"https://example.com/support"}`
)

func TestWellKnownOnTheWire(t *testing.T) {
	d := startDaemon(t, exampleConfig, "http", "admin")
	addr := d.addrs["http"]

	// Exactly what crosses the wire for the server document.
	got := rawResponse(t, addr, "GET /.well-known/matrix/server HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	etag := d.do("GET", "http", "example.com", "/.well-known/matrix/server").Header.Get("ETag")
	want := strings.Join([]string{
		"HTTP/1.1 200 OK",
		"Access-Control-Allow-Headers: X-Requested-With, Content-Type, Authorization",
		"Access-Control-Allow-Methods: GET, HEAD, OPTIONS",
		"Access-Control-Allow-Origin: *",
		"Cache-Control: public, max-age=7200",
		"Content-Type: application/json",
		"Etag: " + etag,
		"Content-Length: 37",
		"Connection: close",
		"",
		wantServer,
	}, "\n")
	if got != want {
		t.Fatalf("wire:\n%s\nwant:\n%s", got, want)
	}

	for path, body := range map[string]string{"server": wantServer, "client": wantClient, "support": wantSupport} {
		for _, host := range []string{"example.com", "EXAMPLE.com:80", "matrix.example.com", "example.com."} {
			resp := d.do("GET", "http", host, "/.well-known/matrix/"+path, "Origin", "https://app.element.io")
			if b := readBody(t, resp); resp.StatusCode != 200 || b != body {
				t.Errorf("GET %s on %s = %d %s, want 200 %s", path, host, resp.StatusCode, b, body)
			}
			assertCORS(t, resp, "GET "+path+" on "+host)
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("GET %s Content-Type = %q", path, ct)
			}
		}
	}
}

// assertCORS checks the CORS headers the spec asks for: the client API's
// methods on a host that serves it, the documents' methods elsewhere.
func assertCORS(t *testing.T, resp *http.Response, what string) {
	t.Helper()
	methods := "GET, HEAD, OPTIONS"
	if strings.HasPrefix(resp.Request.Host, "matrix.example.com") {
		methods = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": methods,
		"Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

func TestWellKnownConditionalHeadAndErrors(t *testing.T) {
	d := startDaemon(t, exampleConfig, "http")
	first := d.do("GET", "http", "example.com", "/.well-known/matrix/client")
	readBody(t, first)
	etag := first.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("ETag %q is not a strong entity tag", etag)
	}

	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		resp := d.do("GET", "http", "example.com", "/.well-known/matrix/client", "If-None-Match", inm)
		if b := readBody(t, resp); resp.StatusCode != 304 || b != "" {
			t.Errorf("If-None-Match %s: %d %q, want 304 and no body", inm, resp.StatusCode, b)
		}
		assertCORS(t, resp, "304")
		if resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") != "public, max-age=7200" {
			t.Errorf("304 headers: %v", resp.Header)
		}
	}
	resp := d.do("GET", "http", "example.com", "/.well-known/matrix/client", "If-None-Match", `"stale"`)
	if b := readBody(t, resp); resp.StatusCode != 200 || b != wantClient {
		t.Errorf("stale If-None-Match: %d %s", resp.StatusCode, b)
	}

	head := d.do("HEAD", "http", "example.com", "/.well-known/matrix/client")
	if b := readBody(t, head); head.StatusCode != 200 || b != "" || head.ContentLength != int64(len(wantClient)) || head.Header.Get("ETag") != etag {
		t.Errorf("HEAD: %d body %q length %d etag %q", head.StatusCode, b, head.ContentLength, head.Header.Get("ETag"))
	}
	assertCORS(t, head, "HEAD")

	pre := d.do("OPTIONS", "http", "example.com", "/.well-known/matrix/client",
		"Origin", "https://app.element.io", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	if b := readBody(t, pre); pre.StatusCode != 204 || b != "" {
		t.Errorf("preflight: %d %q", pre.StatusCode, b)
	}
	assertCORS(t, pre, "preflight")

	errorCases := []struct {
		method, host, path string
		status             int
		errcode            string
	}{
		{"GET", "example.com", "/.well-known/matrix/nope", 404, "M_NOT_FOUND"},
		{"GET", "example.com", "/.well-known/matrix/", 404, "M_NOT_FOUND"},
		{"POST", "example.com", "/.well-known/matrix/client", 405, "M_UNRECOGNIZED"},
		{"DELETE", "example.com", "/.well-known/matrix/server", 405, "M_UNRECOGNIZED"},
		{"GET", "evil.example.net", "/.well-known/matrix/server", 421, "M_UNRECOGNIZED"},
		{"GET", "evil.example.net", "/_matrix/client/versions", 421, "M_UNRECOGNIZED"},
		{"GET", "127.0.0.1", "/.well-known/matrix/server", 421, "M_UNRECOGNIZED"},
		{"GET", "matrix.example.com", "/unknown", 404, "M_UNRECOGNIZED"},
	}
	for _, tc := range errorCases {
		resp := d.do(tc.method, "http", tc.host, tc.path)
		var body struct{ Errcode, Error string }
		raw := readBody(t, resp)
		if err := json.Unmarshal([]byte(raw), &body); err != nil || resp.StatusCode != tc.status || body.Errcode != tc.errcode || body.Error == "" {
			t.Errorf("%s %s%s = %d %s, want %d with errcode %s", tc.method, tc.host, tc.path, resp.StatusCode, raw, tc.status, tc.errcode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s%s: Content-Type %q", tc.method, tc.host, tc.path, ct)
		}
		assertCORS(t, resp, tc.method+" "+tc.path)
		if tc.status == 405 && resp.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("405 Allow = %q", resp.Header.Get("Allow"))
		}
	}
}

func TestSupportAbsentIs404(t *testing.T) {
	cfg := strings.Replace(exampleConfig, "  support:\n    contacts:\n      - {matrix_id: \"@admin:example.com\", role: m.role.admin}\n    support_page: https://example.com/support\n", "", 1)
	d := startDaemon(t, cfg, "http")
	resp := d.do("GET", "http", "example.com", "/.well-known/matrix/support")
	if b := readBody(t, resp); resp.StatusCode != 404 || !strings.Contains(b, `"errcode":"M_NOT_FOUND"`) {
		t.Fatalf("support without config: %d %s", resp.StatusCode, b)
	}
	assertCORS(t, resp, "404 support")
}

func TestBaseDomainRedirect(t *testing.T) {
	d := startDaemon(t, exampleConfig, "http")
	for path, want := range map[string]string{
		"/":              "https://www.example.com/",
		"/about?lang=de": "https://www.example.com/about?lang=de",
		"/a/b/":          "https://www.example.com/a/b/",
	} {
		resp := d.do("GET", "http", "example.com", path)
		readBody(t, resp)
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("GET %s on the base domain: %d Location %q, want 308 %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	// The delegated host is not the base domain: no redirect there.
	resp := d.do("GET", "http", "matrix.example.com", "/about")
	if readBody(t, resp); resp.StatusCode != 404 {
		t.Errorf("GET /about on matrix.example.com: %d, want 404", resp.StatusCode)
	}
}

func TestBaseDomainProxy(t *testing.T) {
	type seen struct{ host, path, xff, xfh string }
	got := make(chan seen, 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host")}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<h1>Example</h1>"))
	}))
	defer site.Close()
	cfg := strings.Replace(exampleConfig, "  redirect: https://www.example.com", "  proxy: "+site.URL, 1)
	d := startDaemon(t, cfg, "http")
	resp := d.do("GET", "http", "example.com", "/blog/post?id=7", "X-Forwarded-For", "6.6.6.6")
	if b := readBody(t, resp); resp.StatusCode != 200 || b != "<h1>Example</h1>" {
		t.Fatalf("proxied base domain: %d %s", resp.StatusCode, b)
	}
	s := <-got
	if s.host != "example.com" || s.path != "/blog/post?id=7" || s.xff != "127.0.0.1" || s.xfh != "example.com" {
		t.Fatalf("web site saw %+v; want Host example.com, the path, and X-Forwarded-For from the real peer only", s)
	}
	site.Close()
	resp = d.do("GET", "http", "example.com", "/")
	if b := readBody(t, resp); resp.StatusCode != 502 || !strings.Contains(b, "M_UNKNOWN") || strings.Contains(b, "127.0.0.1") {
		t.Fatalf("web site down: %d %s", resp.StatusCode, b)
	}
}

func TestAdminHealthz(t *testing.T) {
	d := startDaemon(t, exampleConfig, "http", "admin")
	resp := d.do("GET", "admin", "localhost", "/healthz")
	if b := readBody(t, resp); resp.StatusCode != 200 || b != "ok\n" {
		t.Fatalf("/healthz: %d %q", resp.StatusCode, b)
	}
	// The admin endpoints are not on the public listener.
	resp = d.do("GET", "http", "example.com", "/healthz")
	if readBody(t, resp); resp.StatusCode == 200 {
		t.Fatalf("/healthz answered on the public listener")
	}
}

func TestGracefulStop(t *testing.T) {
	d := startDaemon(t, exampleConfig, "http")
	if err := d.stop(); err != nil {
		t.Fatalf("run after stop: %v", err)
	}
	if !strings.Contains(d.stderr.String(), "shutting down") {
		t.Fatalf("no shutdown log:\n%s", d.stderr)
	}
	if _, err := http.Get("http://" + d.addrs["http"] + "/"); err == nil {
		t.Fatalf("listener still accepting after stop")
	}
}

func TestRequestLog(t *testing.T) {
	d := startDaemon(t, exampleConfig+"log: {requests: true}\n", "http")
	readBody(t, d.do("GET", "http", "example.com", "/.well-known/matrix/server"))
	d.waitLog(`msg=request method=GET host=example.com path=/.well-known/matrix/server status=200 bytes=37`, 5*time.Second)
}

// TestLogJSON: with log.format json every line on stderr is one JSON
// object, and a request log record carries its fields as JSON values.
func TestLogJSON(t *testing.T) {
	d := startDaemon(t, exampleConfig+"log: {requests: true, format: json}\n", "http")
	readBody(t, d.do("GET", "http", "example.com", "/.well-known/matrix/server?access_token=secret"))
	type record struct {
		Level  string `json:"level"`
		Msg    string `json:"msg"`
		Method string `json:"method"`
		Host   string `json:"host"`
		Path   string `json:"path"`
		Status int    `json:"status"`
		Bytes  int    `json:"bytes"`
		Took   string `json:"took"`
		Peer   string `json:"peer"`
	}
	var req *record
	for deadline := time.Now().Add(5 * time.Second); req == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no request record:\n%s", d.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(d.stderr.String(), "\n"), "\n")
		for i, line := range lines {
			var r record
			dec := json.NewDecoder(strings.NewReader(line))
			if err := dec.Decode(&r); err != nil || dec.More() {
				t.Fatalf("log line %d is not one JSON object (%v): %s", i+1, err, line)
			}
			if r.Msg == "request" {
				req = &r
			}
		}
	}
	want := record{Level: "INFO", Msg: "request", Method: "GET", Host: "example.com", Path: "/.well-known/matrix/server", Status: 200, Bytes: 37}
	got := *req
	// A duration is written as Go writes it ("1.2ms"), as in the text format.
	if took, err := time.ParseDuration(got.Took); err != nil || took <= 0 || !strings.HasPrefix(got.Peer, "127.0.0.1:") {
		t.Errorf("took %q, peer %q: want a duration and the client's address", got.Took, got.Peer)
	}
	got.Took, got.Peer = "", ""
	if got != want {
		t.Errorf("request record %+v, want %+v", got, want)
	}
	// The query can hold an access token: it must never reach the log.
	if strings.Contains(d.stderr.String(), "secret") {
		t.Errorf("the query string reached the log:\n%s", d.stderr)
	}
}

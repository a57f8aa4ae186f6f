package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// h3Config is an edge with the local CA (in a directory of t's) and HTTP/3
// (or not) on tlsAddr (TCP and UDP), in front of up.
func h3Config(t testing.TB, tlsAddr, up string, http3 bool) string {
	return edgeconf.New(
		edgeconf.Listen("", tlsAddr, "", "", fmt.Sprintf("http3: %t", http3)),
		edgeconf.Internal(t.TempDir()),
		edgeconf.Upstream(up, "max_body: 10MiB"))
}

// h3Client speaks HTTP/3 to addr whatever the URL's host, verifying the
// certificate against roots for the URL's name.
func h3Client(addr string, roots *x509.CertPool) (*http.Client, *http3.Transport) {
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			return quic.DialAddrEarly(ctx, addr, tlsCfg, cfg)
		},
	}
	return &http.Client{Transport: tr}, tr
}

// TestHTTP3: quic-go's HTTP/3 client against the daemon: the documents, a
// proxied request, a 5 MiB upload and a long-poll held longer than a QUIC
// client's own idle timeout; Alt-Svc on the TCP answers, and the requests
// counted by protocol.
func TestHTTP3(t *testing.T) {
	t.Parallel()
	hold := 35 * time.Second
	if testing.Short() {
		hold = 2 * time.Second
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_matrix/media/v3/upload":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, `{"bytes":%d,"sha256":"%x"}`, n, h.Sum(nil))
		case "/_matrix/client/v3/sync":
			select {
			case <-time.After(hold):
			case <-r.Context().Done():
				return
			}
			w.Write([]byte(`{"next_batch":"s2"}`))
		default:
			w.Write([]byte(`{"versions":["v1.11"]}`))
		}
	}))
	defer up.Close()
	addr := freeport.Addr(t)
	edge := startEdge(t, h3Config(t, addr, up.URL, true), onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	client, tr := h3Client(addr, roots)
	defer tr.Close()
	get := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s over HTTP/3: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 3 {
			t.Fatalf("GET %s: %s, not HTTP/3", url, resp.Proto)
		}
		return resp, string(b)
	}
	if resp, body := get("https://example.com/.well-known/matrix/server"); resp.StatusCode != 200 || body != `{"m.server":"matrix.example.com:443"}` ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("server document over HTTP/3: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("https://matrix.example.com/_matrix/client/versions"); resp.StatusCode != 200 || !strings.Contains(body, "v1.11") {
		t.Fatalf("proxied over HTTP/3: %d %q", resp.StatusCode, body)
	}

	media := make([]byte, 5<<20)
	rand.Read(media)
	req, _ := http.NewRequest("POST", "https://matrix.example.com/_matrix/media/v3/upload", bytes.NewReader(media))
	req.ContentLength = int64(len(media))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("5 MiB upload over HTTP/3: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`{"bytes":%d,"sha256":"%x"}`, len(media), sha256.Sum256(media)); string(body) != want {
		t.Fatalf("upload over HTTP/3: %d %s", resp.StatusCode, body)
	}

	start := time.Now()
	if resp, body := get("https://matrix.example.com/_matrix/client/v3/sync?timeout=30000"); resp.StatusCode != 200 || body != `{"next_batch":"s2"}` {
		t.Fatalf("long-poll over HTTP/3: %d %q", resp.StatusCode, body)
	}
	t.Logf("long-poll held %v over HTTP/3", time.Since(start).Round(100*time.Millisecond))

	// Over TCP the same edge says where HTTP/3 is.
	h2 := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	resp, err = h2.Get("https://matrix.example.com/_matrix/client/versions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(addr)
	if got := resp.Header.Get("Alt-Svc"); resp.ProtoMajor != 2 || got != `h3=":`+port+`"; ma=86400` {
		t.Errorf("%s answer: Alt-Svc %q", resp.Proto, got)
	}
	metrics := edge.adminGET(t, "/metrics")
	for _, want := range []string{`wellknownd_http_requests_by_protocol_total{protocol="h3"} 4`, `wellknownd_http_requests_by_protocol_total{protocol="h2"} `} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// An answer the edge gives itself, which over HTTP/1 closes the
	// connection: over HTTP/3 and HTTP/2 the client reads the status, and
	// no connection-specific header (RFC 9114, section 4.2).
	for name, c := range map[string]*http.Client{"HTTP/3": client, "HTTP/2": h2} {
		big := make([]byte, 11<<20)
		req, _ := http.NewRequest("POST", "https://matrix.example.com/_matrix/media/v3/upload", bytes.NewReader(big))
		req.ContentLength = int64(len(big))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("an upload over max_body over %s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "M_TOO_LARGE") {
			t.Errorf("an upload over max_body over %s: %d %q", name, resp.StatusCode, body)
		}
		if v := resp.Header.Values("Connection"); len(v) != 0 {
			t.Errorf("%s answer carries Connection: %q", name, v)
		}
	}
}

// TestHTTP3Off: with listen.http3 false nothing listens on UDP and no
// Alt-Svc is sent.
func TestHTTP3Off(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	for _, on := range []bool{true, false} {
		addr := freeport.Addr(t)
		roots := startEdge(t, h3Config(t, addr, up.URL, on), onListeners).localCA(t, addr, "matrix.example.com")
		pc, err := net.ListenPacket("udp", addr)
		if err == nil {
			pc.Close()
		}
		if (err != nil) != on {
			t.Errorf("http3 %t: binding UDP %s: %v", on, addr, err)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "matrix.example.com"}}}
		resp, err := c.Get("https://" + addr + "/.well-known/matrix/client")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if (resp.Header.Get("Alt-Svc") != "") != on {
			t.Errorf("http3 %t: Alt-Svc %q", on, resp.Header.Get("Alt-Svc"))
		}
	}
}

// TestHTTP3AnswersCarryNoConnectionHeaders: the answers the edge gives
// itself on its error paths (413, 408, 429) and a proxied answer whose
// upstream sent Connection, Keep-Alive, Upgrade and a chunked body all
// reach quic-go's HTTP/3 client, which refuses an answer carrying any
// connection-specific header (RFC 9114, section 4.2) as malformed.
func TestHTTP3AnswersCarryNoConnectionHeaders(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Connection", "keep-alive, X-Hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Upgrade", "h2c")
		w.Header().Set("X-Hop", "1")
		w.Write([]byte(`{"a":`))
		w.(http.Flusher).Flush() // no Content-Length: chunked over HTTP/1.1
		w.Write([]byte(`1}`))
	}))
	defer up.Close()
	addr := freeport.Addr(t)
	edge := startEdge(t, edgeconf.New(
		edgeconf.Listen("", addr, "", "", "http3: true"),
		edgeconf.Internal(t.TempDir()),
		edgeconf.Upstream(up.URL, "max_body: 1KiB"))+"limits: {body_idle_timeout: 1s, h2_max_streams: 1}\n", onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	const url = "https://matrix.example.com/_matrix/client/v3/rooms/r/send/m.room.message/1"
	// Each case on a connection of its own: h2_max_streams 1 gives each a
	// stream budget of 2.
	do := func(name string, body io.Reader, length int64, wantCode int, wantBody string) {
		t.Helper()
		p := newH3Peer(t, addr, roots)
		for range 10 {
			req, _ := http.NewRequestWithContext(t.Context(), "PUT", url, body)
			req.ContentLength = length
			resp, err := p.Do(req)
			if err != nil {
				t.Errorf("%s over HTTP/3: %v", name, err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "X-Hop"} {
				if v := resp.Header.Values(h); len(v) != 0 {
					t.Errorf("%s: the answer carries %s: %q", name, h, v)
				}
			}
			if wantCode == http.StatusTooManyRequests && resp.StatusCode == 200 {
				continue // the budget is not spent yet
			}
			if resp.StatusCode != wantCode || !strings.Contains(string(b), wantBody) {
				t.Errorf("%s over HTTP/3: %d %q, want %d %q", name, resp.StatusCode, b, wantCode, wantBody)
			}
			return
		}
		t.Errorf("%s: never answered %d", name, wantCode)
	}
	do("a proxied answer", strings.NewReader(`{}`), 2, 200, `{"a":1}`)
	do("a body over max_body", bytes.NewReader(make([]byte, 2048)), 2048, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	stalled, _ := io.Pipe() // a body that never starts
	defer stalled.Close()
	do("a body that never starts", stalled, 10, http.StatusRequestTimeout, "M_UNKNOWN")
	do("requests past the stream budget", nil, 0, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
}

package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

func TestProxyKeepsHostPathAndQueryBytes(t *testing.T) {
	up := newRecorder(t)
	ts := startEdge(t, edgeConfig(up.URL))
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

func TestProxyUpstreamDown(t *testing.T) {
	addr := freeport.Addr(t) // nothing listens there
	ts := startEdge(t, edgeConfig("http://"+addr))
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

// TestProxyHeadersLargerThanItsBuffers: the upstream transport's buffers are
// small (upstreamReadBuffer, upstreamWriteBuffer) because every held
// long-poll keeps them; headers and bodies larger than both cross whole.
func TestProxyHeadersLargerThanItsBuffers(t *testing.T) {
	long := strings.Repeat("v", 6000)
	body := strings.Repeat("0123456789abcdef", 1<<12) // 64 KiB
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Long-Answer", long)
		w.Header().Set("X-Got-Header", strconv.Itoa(len(r.Header.Get("X-Long-Request"))))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	}))
	t.Cleanup(up.Close)
	ts := startEdge(t, edgeconf.Plain(up.URL, "1MiB"))
	for _, size := range []int{0, 100, upstreamReadBuffer - 200, upstreamReadBuffer + 1, len(body)} {
		req, _ := http.NewRequest("PUT", ts.URL+"/_matrix/media/v3/upload", strings.NewReader(body[:size]))
		req.Host = "matrix.example.com"
		req.Header.Set("X-Long-Request", long)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(got) != body[:size] {
			t.Fatalf("%d-byte body: status %d, %d bytes back (err %v)", size, resp.StatusCode, len(got), err)
		}
		if resp.Header.Get("X-Long-Answer") != long || resp.Header.Get("X-Got-Header") != strconv.Itoa(len(long)) {
			t.Fatalf("%d-byte body: the long headers did not cross whole (answer %d bytes, request %s)",
				size, len(resp.Header.Get("X-Long-Answer")), resp.Header.Get("X-Got-Header"))
		}
	}
}

package server

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// answersUpstream is a homeserver with a small JSON answer (that fits the
// edge's answer buffer) sent in two parts, as a busy homeserver's may
// arrive, a large one, and a media download.
func answersUpstream(t *testing.T) *httptest.Server {
	small := bytes.Repeat([]byte("s"), 8<<10)
	large := bytes.Repeat([]byte("l"), 256<<10)
	media := bytes.Repeat([]byte("m"), 8<<20)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b []byte
		switch r.URL.Path {
		case "/_matrix/client/v3/small":
			b = small
		case "/_matrix/client/v3/large":
			b = large
		case "/_matrix/client/v1/media/download/example.com/m":
			b = media
		default:
			b = []byte(`{"versions":["v1.11"]}`)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if len(b) == len(small) {
			w.Write(b[:6<<10])
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
			b = b[6<<10:]
		}
		w.Write(b)
	}))
	t.Cleanup(up.Close)
	return up
}

// slotsInUse is the number of upstream connections the edge's requests
// hold now.
func (e *testEdge) slotsInUse() int {
	n := 0
	for _, c := range e.srv.up.slots.inUse() {
		n += c
	}
	return n
}

// inFlight is the edge's wellknownd_http_requests_in_flight.
func (e *testEdge) inFlight(t *testing.T) int {
	m := regexp.MustCompile(`(?m)^wellknownd_http_requests_in_flight (\d+)$`).FindStringSubmatch(e.adminGET(t, "/metrics"))
	if m == nil {
		t.Fatal("no wellknownd_http_requests_in_flight in /metrics")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestClientThatStopsReadingOverHTTP1: clients that ask for a media
// download and never read it hold the homeserver's connections no longer
// than the send timeout; meanwhile everyone else is served.
func TestClientThatStopsReadingOverHTTP1(t *testing.T) {
	up := answersUpstream(t)
	// On the configured listeners: the bound is on each socket write.
	// A disk budget far below the downloads: they cannot be spooled ahead
	// of their clients (answerspool.go), and are passed on at the
	// clients' speed, which is what the send timeout bounds.
	addr := freeport.Addr(t)
	edge := startEdge(t, edgeconf.New(edgeconf.Listen(addr, "", "", ""), edgeconf.Upstream(up.URL, "max_body: 1MiB"))+
		"limits: {send_timeout: 1s, upstream_conns: 8, upstream_wait: 100ms, buffer_disk: 1MiB}\n", onListeners)
	wait.TCP(t, addr)
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = "matrix.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		// A receive buffer of 4 KiB: the 8 MiB answer cannot hide in it.
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	var stalled []net.Conn
	for range 8 {
		c, err := dialer.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET /_matrix/client/v1/media/download/example.com/m HTTP/1.1\r\nHost: matrix.example.com\r\n\r\n")
		stalled = append(stalled, c)
	}
	wait.True(t, "the downloads to reach the homeserver", 10*time.Second, func() bool { return edge.slotsInUse() == 8 })
	// Past the send timeout, each stalled download is ended and its
	// connection to the homeserver freed.
	wait.True(t, "the stalled downloads to free the homeserver", 15*time.Second, func() bool { return edge.slotsInUse() == 0 })
	if resp, body := get("/_matrix/client/versions"); resp.StatusCode != 200 || !strings.Contains(body, "v1.11") {
		t.Fatalf("another client while the downloads stall: %d %q", resp.StatusCode, body)
	}
	// The stalled clients' connections were closed: what they can still
	// read ends before the 8 MiB.
	for _, c := range stalled {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		if n >= 8<<20 {
			t.Errorf("a stalled client still got the whole answer (%d bytes)", n)
		}
	}
	// A client that reads, however large the answer, gets all of it.
	resp, body := get("/_matrix/client/v1/media/download/example.com/m")
	if resp.StatusCode != 200 || len(body) != 8<<20 {
		t.Fatalf("a download that is read: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// h2Dial opens a raw HTTP/2 connection to addr, as a client that speaks
// frames itself, with settings.
func h2Dial(t *testing.T, addr string, settings ...http2.Setting) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "matrix.example.com", InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %q, not h2", c.ConnectionState().NegotiatedProtocol)
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(settings...)
	return c, fr
}

// h2Get returns a function that sends a GET of path on a stream.
func h2Get(fr *http2.Framer) func(id uint32, path string) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	return func(id uint32, path string) {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "matrix.example.com"}, {":path", path}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	}
}

// h2Stalled opens an HTTP/2 connection to addr that grants no stream any
// window (SETTINGS_INITIAL_WINDOW_SIZE 0) and asks for path on n streams;
// it reads frames until the connection ends and counts the streams the
// server reset.
func h2Stalled(t *testing.T, addr, path string, n int) (conn *tls.Conn, resets <-chan uint32) {
	t.Helper()
	c, fr := h2Dial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	get := h2Get(fr)
	for i := range n {
		get(uint32(2*i+1), path)
	}
	rst := make(chan uint32, n)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.RSTStreamFrame:
				rst <- f.StreamID
			}
		}
	}()
	return c, rst
}

// TestStalledHTTP2StreamsReleaseTheHomeserver: an HTTP/2 client that keeps
// every stream's window at zero holds no connection to the homeserver for
// an answer that fits the edge's buffer, and one for a larger answer no
// longer than the send timeout, after which the stream is reset; the
// connection's other users are not affected.
func TestStalledHTTP2StreamsReleaseTheHomeserver(t *testing.T) {
	up := answersUpstream(t)

	// A send timeout far beyond the test: what frees the homeserver here
	// is the answer being read ahead, not the timeout.
	addr := freeport.Addr(t)
	edge := startEdge(t, h3Config(t, addr, up.URL, false)+"limits: {send_timeout: 10m}\n", onListeners)
	edge.localCA(t, addr, "matrix.example.com")
	h2Stalled(t, addr, "/_matrix/client/v3/small", 100)
	wait.True(t, "the small answers to reach the edge", 10*time.Second, func() bool {
		return edge.inFlight(t) >= 100
	})
	// They stay in flight, their answers unsent, but the homeserver has
	// its connections back as soon as it has answered.
	wait.True(t, "the stalled small answers to free the homeserver", 10*time.Second, func() bool { return edge.slotsInUse() == 0 })
	// At least: the edge's self-check may have a request of its own under way.
	if n := edge.inFlight(t); n < 100 {
		t.Errorf("the stalled streams ended early: %d in flight", n)
	}
	// Each holds a buffer sized to its 8 KiB answer, not the largest
	// answer buffer (32 KiB): the edge's self-check may hold a few more.
	if held := edge.metric(t, "wellknownd_buffer_memory_bytes"); held < 100*8<<10 || held > 100*8<<10+4*32<<10 {
		t.Errorf("stalled 8 KiB answers hold %.0f bytes of buffers, want about %d", held, 100*8<<10)
	}

	// Larger answers go out as they arrive: the send timeout ends them.
	addr2 := freeport.Addr(t)
	edge2 := startEdge(t, h3Config(t, addr2, up.URL, false)+"limits: {send_timeout: 1s}\n", onListeners)
	edge2.localCA(t, addr2, "matrix.example.com")
	_, resets := h2Stalled(t, addr2, "/_matrix/client/v3/large", 20)
	for range 20 {
		select {
		case <-resets:
		case <-time.After(20 * time.Second):
			t.Fatal("a stalled stream was not reset")
		}
	}
	wait.True(t, "the stalled streams to free the homeserver", 10*time.Second, func() bool { return edge2.slotsInUse() == 0 })
}

// TestStalledHTTP3StreamIsEnded: an HTTP/3 client that stops reading a
// download (its stream's window runs out) holds the homeserver's
// connection no longer than the send timeout; the stream is ended.
func TestStalledHTTP3StreamIsEnded(t *testing.T) {
	up := answersUpstream(t)
	// As over HTTP/1, a disk budget that cannot spool the download.
	addr := freeport.Addr(t)
	edge := startEdge(t, edgeconf.New(edgeconf.Listen("", addr, "", "", "http3: true"), edgeconf.Internal(t.TempDir()),
		edgeconf.Upstream(up.URL, "max_body: 1MiB"))+"limits: {send_timeout: 1s, buffer_disk: 1MiB}\n", onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	client, tr := h3Client(addr, roots)
	defer tr.Close()
	resp, err := client.Get("https://matrix.example.com/_matrix/client/v1/media/download/example.com/m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 {
		t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
	}
	wait.True(t, "the stalled stream to free the homeserver", 15*time.Second, func() bool { return edge.slotsInUse() == 0 })
	if n, err := io.Copy(io.Discard, resp.Body); err == nil || n >= 8<<20 {
		t.Errorf("the stalled stream went on: %d bytes, %v", n, err)
	}
}

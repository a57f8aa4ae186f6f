package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// activeUpstream is a homeserver that counts its connections busy with a
// request now (net/http's StateActive), as opposed to idle in the edge's
// pool.
type activeUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	states map[net.Conn]http.ConnState
}

func newActiveUpstream(t *testing.T, h http.HandlerFunc) *activeUpstream {
	u := &activeUpstream{states: map[net.Conn]http.ConnState{}}
	u.Server = httptest.NewUnstartedServer(h)
	u.Config.ConnState = func(c net.Conn, s http.ConnState) {
		u.mu.Lock()
		defer u.mu.Unlock()
		if s == http.StateClosed || s == http.StateHijacked {
			delete(u.states, c)
			return
		}
		u.states[c] = s
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *activeUpstream) active() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, s := range u.states {
		if s == http.StateActive {
			n++
		}
	}
	return n
}

// metric is a gauge or counter of the edge's /metrics, by its full name
// with labels.
func (e *testEdge) metric(t *testing.T, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(e.adminGET(t, "/metrics"))
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// filesIn counts this process's descriptors open on files in dir (a
// temporary file keeps its directory in /proc/self/fd after it is
// unlinked).
func filesIn(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// uploadSink is a homeserver that records, for each upload it is sent,
// when its handler was called and what arrived: what the homeserver sees.
type uploadSink struct {
	*activeUpstream
	mu      sync.Mutex
	uploads []upload
}

type upload struct {
	at            time.Time
	contentLength int64
	chunked       bool
	expect        string
	sum           [32]byte
	n             int64
}

func newUploadSink(t *testing.T) *uploadSink {
	s := &uploadSink{}
	s.activeUpstream = newActiveUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Write([]byte(`{}`))
			return
		}
		u := upload{at: time.Now(), contentLength: r.ContentLength, chunked: len(r.TransferEncoding) > 0, expect: r.Header.Get("Expect")}
		h := sha256.New()
		u.n, _ = io.Copy(h, r.Body)
		h.Sum(u.sum[:0])
		s.mu.Lock()
		s.uploads = append(s.uploads, u)
		s.mu.Unlock()
		fmt.Fprintf(w, `{"content_uri":"mxc://example.com/%d"}`, u.n)
	})
	return s
}

func (s *uploadSink) all() []upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]upload(nil), s.uploads...)
}

// pacedBody is a body that sends data in pieces of piece bytes, at rate
// bytes a second overall (the pauses are worked out from the start, so a
// late wake-up on a busy machine is caught up, not accumulated); last is
// when its final byte was handed over.
type pacedBody struct {
	data        []byte
	piece, rate int
	start       time.Time
	sent        int
	last        time.Time
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.sent == len(b.data) {
		return 0, io.EOF
	}
	if b.start.IsZero() {
		b.start = time.Now()
	}
	time.Sleep(time.Until(b.start.Add(time.Duration(float64(b.sent) / float64(b.rate) * float64(time.Second)))))
	n := copy(p[:min(len(p), b.piece)], b.data[b.sent:])
	b.sent += n
	if b.sent == len(b.data) {
		b.last = time.Now()
	}
	return n, nil
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// TestUpload50MBAt256KiBsIsBufferedAtTheEdge: a 50 MB media upload over a
// slow link (256 KiB/s, about 200 s), sent chunked, is read whole at the
// edge before the homeserver is dialled: all the while no upstream
// connection or slot is held, and the homeserver's handler is called only
// once the client has sent the last byte; it then receives every byte,
// with a Content-Length.
func TestUpload50MBAt256KiBsIsBufferedAtTheEdge(t *testing.T) {
	t.Parallel()
	const size = 50_000_000
	sink := newUploadSink(t)
	edge := startEdge(t, edgeconf.Plain(sink.URL, "100MiB")+fmt.Sprintf("limits: {buffer_dir: %q}\n", t.TempDir()))
	data := randomBytes(size, 50)
	body := &pacedBody{data: data, piece: 16 << 10, rate: 256 << 10}
	// Meanwhile, every second: nothing of the upload has reached the
	// homeserver.
	stop, watched := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				watched <- nil
				return
			case <-tick.C:
				if n := edge.slotsInUse(); n != 0 || len(sink.all()) != 0 {
					watched <- fmt.Errorf("while the upload was arriving: %d upstream slots held, %d uploads at the homeserver", n, len(sink.all()))
					return
				}
			}
		}
	}()
	req, _ := http.NewRequest("POST", edge.URL+"/_matrix/media/v3/upload?filename=big.bin", io.NopCloser(body))
	req.Host = "matrix.example.com"
	resp, err := edge.Client().Do(req)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := <-watched; err != nil {
		t.Error(err)
	}
	if resp.StatusCode != 200 || !strings.Contains(string(answer), fmt.Sprint(size)) {
		t.Fatalf("upload: %d %s", resp.StatusCode, answer)
	}
	ups := sink.all()
	if len(ups) != 1 {
		t.Fatalf("the homeserver got %d uploads", len(ups))
	}
	u := ups[0]
	if u.n != size || u.sum != sha256.Sum256(data) {
		t.Errorf("the homeserver got %d bytes, not the %d sent", u.n, size)
	}
	if u.contentLength != size || u.chunked {
		t.Errorf("the homeserver got Content-Length %d (chunked %t), want the body's length", u.contentLength, u.chunked)
	}
	if !u.at.After(body.last) {
		t.Errorf("the homeserver was sent the upload at %v, before its last byte arrived (%v)", u.at, body.last)
	}
}

// TestUploadReachesTheHomeserverWhole: over HTTP/1.1, HTTP/2 and HTTP/3
// alike, a body that arrives in pieces reaches the homeserver only once it
// is whole, with its length, without "Expect", byte for byte; a small one
// (in memory) and one past the memory bound (a temporary file).
func TestUploadReachesTheHomeserverWhole(t *testing.T) {
	sink := newUploadSink(t)
	addr := freeport.Addr(t)
	dir := t.TempDir()
	edge := startEdge(t, h3Config(t, addr, sink.URL, true)+fmt.Sprintf("limits: {buffer_dir: %q}\n", dir), onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	h3, h3tr := h3Client(addr, roots)
	defer h3tr.Close()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DialContext: dial}}
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true, DialContext: dial}}
	for i, c := range []struct {
		proto  string
		client *http.Client
		size   int
		sized  bool
	}{
		{"HTTP/1.1", h1, 5000, false}, {"HTTP/1.1", h1, 300 << 10, true},
		{"HTTP/2.0", h2, 5000, true}, {"HTTP/2.0", h2, 300 << 10, false},
		{"HTTP/3.0", h3, 5000, false}, {"HTTP/3.0", h3, 300 << 10, true},
	} {
		data := randomBytes(c.size, byte(i))
		// In 5 pieces, 300 ms apart.
		body := &pacedBody{data: data, piece: c.size/5 + 1, rate: (c.size/5 + 1) * 10 / 3}
		req, _ := http.NewRequest("POST", "https://matrix.example.com/_matrix/media/v3/upload", io.NopCloser(body))
		if c.sized {
			req.ContentLength = int64(c.size)
		}
		req.Header.Set("Expect", "100-continue")
		before := len(sink.all())
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatalf("%s, %d bytes: %v", c.proto, c.size, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ups := sink.all()
		if resp.StatusCode != 200 || resp.Proto != c.proto || len(ups) != before+1 {
			t.Fatalf("%s, %d bytes: %d over %s; %d uploads at the homeserver", c.proto, c.size, resp.StatusCode, resp.Proto, len(ups)-before)
		}
		u := ups[len(ups)-1]
		if u.n != int64(c.size) || u.sum != sha256.Sum256(data) || u.contentLength != int64(c.size) || u.chunked || u.expect != "" {
			t.Errorf("%s, %d bytes (declared %t): the homeserver got %d bytes (same: %t), Content-Length %d, chunked %t, Expect %q",
				c.proto, c.size, c.sized, u.n, u.sum == sha256.Sum256(data), u.contentLength, u.chunked, u.expect)
		}
		if !u.at.After(body.last) {
			t.Errorf("%s, %d bytes: the homeserver was sent the body before its last byte arrived", c.proto, c.size)
		}
	}
	if n := filesIn(t, dir); n != 0 {
		t.Errorf("%d temporary files still open after the uploads", n)
	}
}

// TestClientGoneMidBodyLeavesNothing: a client that goes away halfway
// through an upload leaves no temporary file open or on disk, and gives
// its share of the budget back; the homeserver never hears of it.
func TestClientGoneMidBodyLeavesNothing(t *testing.T) {
	sink := newUploadSink(t)
	dir := t.TempDir()
	edge := startEdge(t, edgeconf.Plain(sink.URL, "10MiB")+fmt.Sprintf("limits: {buffer_dir: %q}\n", dir), withAdmin)
	for _, chunked := range []bool{false, true} {
		c, err := net.Dial("tcp", edge.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		framing := "Content-Length: 1000000"
		if chunked {
			framing = "Transfer-Encoding: chunked"
		}
		fmt.Fprintf(c, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: matrix.example.com\r\n%s\r\n\r\n", framing)
		part := strings.Repeat("x", 300_000)
		if chunked {
			part = fmt.Sprintf("%x\r\n%s\r\n", len(part), part)
		}
		io.WriteString(c, part)
		wait.True(t, "the body to reach a temporary file", 10*time.Second, func() bool {
			return filesIn(t, dir) == 1 && edge.metric(t, "wellknownd_buffer_files") == 1 && edge.metric(t, "wellknownd_buffer_disk_bytes") > 0
		})
		c.Close()
		wait.True(t, "the temporary file to be closed and its budget given back", 10*time.Second, func() bool {
			return filesIn(t, dir) == 0 && edge.metric(t, "wellknownd_buffer_files") == 0 &&
				edge.metric(t, "wellknownd_buffer_disk_bytes") == 0 && edge.metric(t, "wellknownd_buffer_memory_bytes") == 0
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left in buffer_dir: %v", entries)
	}
	if n := len(sink.all()); n != 0 {
		t.Errorf("the homeserver got %d of the abandoned uploads", n)
	}
}

// TestBufferBudgetSpentIs503: when the disk budget is held by uploads in
// progress, another upload is answered 503 with Retry-After at once: one
// that asked for 100 Continue before it sends its body, one that did not
// after it (the edge reads it away, so that the client reads the answer);
// once the budget is free again, uploads go through.
func TestBufferBudgetSpentIs503(t *testing.T) {
	sink := newUploadSink(t)
	edge := startEdge(t, edgeconf.Plain(sink.URL, "1MiB")+fmt.Sprintf("limits: {buffer_dir: %q, buffer_disk: 1MiB}\n", t.TempDir()), withAdmin)
	addr := edge.Listener.Addr().String()
	const size = 800_000
	header := fmt.Sprintf("POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Length: %d\r\n", size)
	// The first upload holds 800 KB of the 1 MiB.
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, header+"\r\n"+strings.Repeat("a", 100_000))
	wait.True(t, "the first upload to take its budget", 10*time.Second, func() bool {
		return edge.metric(t, "wellknownd_buffer_disk_bytes") == size
	})

	// One with Expect: 503 instead of 100 Continue.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, header+"Expect: 100-continue\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("an upload past the budget, with Expect: %v %v", resp, err)
	}
	// One without: its whole body is read away, then it reads the 503.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c2, header+"\r\n"+strings.Repeat("b", size)); err != nil {
		t.Fatalf("sending the body past the budget: %v", err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"errcode":"M_UNKNOWN"`) {
		t.Fatalf("an upload past the budget: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	if got := edge.metric(t, `wellknownd_proxy_errors_total{kind="buffers"}`); got != 2 {
		t.Errorf(`wellknownd_proxy_errors_total{kind="buffers"} = %v, want 2`, got)
	}

	// The first one ends; the budget is free again.
	io.WriteString(first, strings.Repeat("a", size-100_000))
	first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(first), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the first upload: %v %v", resp, err)
	}
	resp2, body := send(t, edge, "POST", "matrix.example.com", "/_matrix/media/v3/upload", strings.NewReader(strings.Repeat("c", size)))
	if resp2.StatusCode != 200 || !strings.Contains(body, fmt.Sprint(size)) {
		t.Fatalf("an upload once the budget is free: %d %s", resp2.StatusCode, body)
	}
	if ups := sink.all(); len(ups) != 2 {
		t.Errorf("the homeserver got %d uploads, want the 2 that were taken", len(ups))
	}
}

// TestAnswerBeforeTheBodyIsRead: a homeserver that answers an upload
// without reading its body (an auth error) is simply answered, and the
// body's temporary file is closed with the request, though the upstream
// never read it to its end.
func TestAnswerBeforeTheBodyIsRead(t *testing.T) {
	up := newActiveUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}`)
	})
	dir := t.TempDir()
	edge := startEdge(t, edgeconf.Plain(up.URL, "10MiB")+fmt.Sprintf("limits: {buffer_dir: %q}\n", dir), withAdmin)
	resp, body := send(t, edge, "POST", "matrix.example.com", "/_matrix/media/v3/upload", strings.NewReader(strings.Repeat("x", 4<<20)))
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "M_MISSING_TOKEN") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	wait.True(t, "the body's file to be closed", 10*time.Second, func() bool {
		return filesIn(t, dir) == 0 && edge.metric(t, "wellknownd_buffer_files") == 0 && edge.metric(t, "wellknownd_buffer_disk_bytes") == 0
	})
}

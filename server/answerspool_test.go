package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// tinyReceiver dials addr with a 4 KiB receive buffer: an answer cannot
// hide in it.
func tinyReceiver(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClientsThatNeverReadReleaseTheHomeserver: 50 HTTP/1.1 clients ask
// for a 4 MiB download and never read it. The edge reads each answer from
// the homeserver at the homeserver's speed into its buffers, so every
// upstream connection is free again within seconds (the homeserver counts
// none busy) while the clients are still connected; another client is
// answered meanwhile, though the upstream cap (10) is far below 50, and a
// client that reads gets the download byte for byte. When the clients go,
// their temporary files go with them.
func TestClientsThatNeverReadReleaseTheHomeserver(t *testing.T) {
	media := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{1}).Read(media)
	up := newActiveUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/versions" {
			w.Write([]byte(`{"versions":["v1.11"]}`))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(media)))
		w.Write(media)
	})
	dir := t.TempDir()
	edge := startEdge(t, edgeconf.Plain(up.URL, "1MiB")+
		fmt.Sprintf("limits: {upstream_conns: 10, upstream_wait: 30s, buffer_dir: %q}\n", dir), withAdmin)
	addr := edge.Listener.Addr().String()
	const path = "/_matrix/client/v1/media/download/example.com/m"
	var stalled []net.Conn
	for range 50 {
		c := tinyReceiver(t, addr)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: matrix.example.com\r\n\r\n", path)
		stalled = append(stalled, c)
	}
	wait.True(t, "the 50 downloads to reach the edge", 20*time.Second, func() bool { return edge.inFlight(t) == 50 })
	wait.True(t, "the homeserver's connections to be released", 20*time.Second, func() bool {
		return up.active() == 0 && edge.slotsInUse() == 0
	})
	// Held at the edge, not by the homeserver.
	if n := edge.inFlight(t); n != 50 {
		t.Fatalf("%d downloads in flight at the edge, want the 50 stalled ones", n)
	}
	if disk := edge.metric(t, "wellknownd_buffer_disk_bytes"); disk < 50*(4<<20-answerBufferSize)-float64(4<<20)*10 {
		t.Errorf("wellknownd_buffer_disk_bytes = %v while 50 clients lag behind 4 MiB downloads", disk)
	}
	if resp, body := send(t, edge, "GET", "matrix.example.com", "/_matrix/client/versions", nil); resp.StatusCode != 200 || !strings.Contains(body, "v1.11") {
		t.Fatalf("another client meanwhile: %d %q", resp.StatusCode, body)
	}
	resp, body := send(t, edge, "GET", "matrix.example.com", path, nil)
	if resp.StatusCode != 200 || sha256.Sum256([]byte(body)) != sha256.Sum256(media) {
		t.Fatalf("a client that reads: %d, %d bytes, not the homeserver's", resp.StatusCode, len(body))
	}
	// One stalled client reads after all: the same bytes, from the spool.
	br := bufio.NewReader(stalled[0])
	stalled[0].SetReadDeadline(time.Now().Add(30 * time.Second))
	sresp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(sresp.Body)
	if err != nil || !bytes.Equal(got, media) {
		t.Fatalf("a client that read late: %d bytes (%v), not the homeserver's", len(got), err)
	}
	for _, c := range stalled {
		c.Close()
	}
	wait.True(t, "the buffers to be given back", 20*time.Second, func() bool {
		return edge.metric(t, "wellknownd_buffer_disk_bytes") == 0 && edge.metric(t, "wellknownd_buffer_files") == 0 &&
			edge.metric(t, "wellknownd_buffer_memory_bytes") == 0 && filesIn(t, dir) == 0
	})
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left in buffer_dir: %v", entries)
	}
}

// TestStreamedAnswerReachesTheClientAsWritten: an answer the homeserver
// streams (chunked, or text/event-stream) is spooled, yet each part
// reaches the client as soon as it is written, long before the answer
// ends; the client never waits for the whole of it.
func TestStreamedAnswerReachesTheClientAsWritten(t *testing.T) {
	next, left := make(chan struct{}), make(chan struct{}, 1)
	up := newActiveUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/versions" {
			return
		}
		defer func() {
			if r.Context().Err() != nil {
				left <- struct{}{}
			}
		}()
		if strings.HasSuffix(r.URL.Path, "/events") {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		for i := range 3 {
			fmt.Fprintf(w, "part %d;", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	edge := startEdge(t, edgeconf.Plain(up.URL, "1MiB"), withAdmin)
	for _, path := range []string{"/_matrix/client/v3/sync", "/_matrix/client/unstable/events"} {
		c, err := net.Dial("tcp", edge.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: matrix.example.com\r\n\r\n", path)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		part := make([]byte, len("part 0;"))
		for i := range 3 {
			if _, err := io.ReadFull(resp.Body, part); err != nil || string(part) != fmt.Sprintf("part %d;", i) {
				t.Fatalf("%s: part %d: %q %v (it did not reach the client while the homeserver was still answering)", path, i, part, err)
			}
			next <- struct{}{}
		}
		if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
			t.Fatalf("%s: after the parts: %q %v", path, rest, err)
		}
	}

	// A client that leaves a stream halfway: the homeserver's request is
	// ended, and the spool given back.
	c, err := net.Dial("tcp", edge.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET /_matrix/client/unstable/events HTTP/1.1\r\nHost: matrix.example.com\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, len("part 0;"))); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-left:
	case <-time.After(10 * time.Second):
		t.Fatal("the homeserver's stream went on after its client left")
	}
	wait.True(t, "the spool to be given back", 10*time.Second, func() bool {
		return edge.metric(t, "wellknownd_buffer_memory_bytes") == 0 && up.active() == 0
	})
}

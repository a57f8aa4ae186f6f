package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestStalledBodyNeverReachesTheUpstream: a client that sends its headers
// and then no body holds no connection to the homeserver, and is answered
// 408 once the body idle bound passes; a slow upload that keeps moving
// goes through whole.
func TestStalledBodyNeverReachesTheUpstream(t *testing.T) {
	up := newCountingUpstream(t)
	close(up.release)
	// The bound is ten times the slow upload's pauses: a writer a busy
	// machine resumes late must not look idle. The slow upload is below
	// the default body_min_rate, which is not what this test is about.
	edge := startEdge(t, edgeConfig(up.URL)+"limits: {body_idle_timeout: 1s, body_min_rate: 100}\n")
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
	edge := startEdge(t, edgeConfig(up.URL))
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

// TestOversizedUploadReadsThe413: a client that sends a body over max_body
// whole before it reads (no Expect: 100-continue) reads the 413, instead
// of a reset connection.
func TestOversizedUploadReadsThe413(t *testing.T) {
	up := newRecorder(t)
	edge := startEdge(t, edgeConfig(up.URL)) // max_body 1KiB
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

// TestUnreadBodyDoesNotHoldTheConnection: a request with a body that the
// edge answers without reading it (here the redirect to https of the plain
// listener) does not leave its connection waiting for that body for ever.
func TestUnreadBodyDoesNotHoldTheConnection(t *testing.T) {
	httpAddr, tlsAddr := freeport.Addr(t), freeport.Addr(t)
	startEdge(t, edgeconf.New(edgeconf.Listen(httpAddr, tlsAddr, "", ""), edgeconf.Internal(t.TempDir())), onListeners)
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

// TestTricklingBodyIs408: a body that keeps arriving, a byte at a time,
// just often enough never to be idle, is ended with 408 once it has had
// body_idle_timeout to reach body_min_rate; one above the rate goes through
// whole.
func TestTricklingBodyIs408(t *testing.T) {
	up := newRecorder(t)
	edge := startEdge(t, edgeconf.Plain(up.URL, "1MiB")+"limits: {body_idle_timeout: 2s, body_min_rate: 1KiB}\n")
	trickle := func(total, piece int, every time.Duration) (*http.Response, error) {
		pr, pw := io.Pipe()
		go func() {
			for sent := 0; sent < total; sent += piece {
				if _, err := pw.Write(bytes.Repeat([]byte("x"), piece)); err != nil {
					return
				}
				time.Sleep(every)
			}
			pw.Close()
		}()
		defer pw.Close()
		req, _ := http.NewRequest("POST", edge.URL+"/_matrix/media/v3/upload", pr)
		req.Host, req.ContentLength = "matrix.example.com", int64(total)
		return edge.Client().Do(req)
	}
	// A byte every 200 ms: 5 bytes a second, never idle for the 2 s bound,
	// and it would take 20 s.
	start := time.Now()
	resp, err := trickle(100, 1, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || time.Since(start) > 15*time.Second {
		t.Fatalf("a trickling body: %d %q after %v", resp.StatusCode, b, time.Since(start))
	}
	// 8 KB a second, eight times the rate, for 2 s: through whole, with
	// room for a busy machine's late writer.
	resp, err = trickle(16000, 800, 100*time.Millisecond)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a slow body above the rate: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := up.last(t).bodyLen; got != 16000 {
		t.Errorf("the homeserver got %d bytes of %d", got, 16000)
	}
}

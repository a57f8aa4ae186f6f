package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// scriptedUpstream is an upstream spoken to at the socket: serve runs once
// per accepted connection, numbered from 1, and says what crosses it.
type scriptedUpstream struct {
	ln    net.Listener
	conns atomic.Int32
	mu    sync.Mutex
	// seen are the requests read, as "METHOD /path on N".
	seen []string
}

func startScriptedUpstream(t *testing.T, serve func(u *scriptedUpstream, n int, c net.Conn, br *bufio.Reader)) *scriptedUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &scriptedUpstream{ln: ln}
	var wg sync.WaitGroup
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for _, c := range open {
			c.Close()
		}
		u.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			open = append(open, c)
			u.mu.Unlock()
			n := int(u.conns.Add(1))
			wg.Go(func() {
				defer c.Close()
				serve(u, n, c, bufio.NewReader(c))
			})
		}
	})
	return u
}

func (u *scriptedUpstream) URL() string { return "http://" + u.ln.Addr().String() }

// read reads one request on connection n and notes it.
func (u *scriptedUpstream) read(n int, br *bufio.Reader) (*http.Request, bool) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, false
	}
	io.Copy(io.Discard, req.Body)
	u.mu.Lock()
	u.seen = append(u.seen, fmt.Sprintf("%s %s on %d", req.Method, req.URL.Path, n))
	u.mu.Unlock()
	return req, true
}

func (u *scriptedUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

// keepAlive answers every request 200 on the same connection.
func keepAlive(u *scriptedUpstream, n int, c net.Conn, br *bufio.Reader) {
	for {
		req, ok := u.read(n, br)
		if !ok {
			return
		}
		if req.Method == "HEAD" {
			io.WriteString(c, strings.TrimSuffix(okAnswer, "{}"))
			continue
		}
		io.WriteString(c, okAnswer)
	}
}

func proxied(t *testing.T, e *testEdge, method, path string) (int, string) {
	t.Helper()
	resp, body := send(t, e, method, "matrix.example.com", path, nil)
	return resp.StatusCode, body
}

// TestUpstreamConnectionsKeptAndRenewed: requests without a body go over
// kept-alive upstream connections, one at a time; a connection the upstream
// closed while it was idle, or that it asked to close, is not used again.
func TestUpstreamConnectionsKeptAndRenewed(t *testing.T) {
	t.Run("reused", func(t *testing.T) {
		up := startScriptedUpstream(t, keepAlive)
		e := startEdge(t, edgeConfig(up.URL()))
		for _, m := range []string{"GET", "HEAD", "DELETE", "PUT", "GET"} {
			if code, _ := proxied(t, e, m, "/_matrix/client/v3/x"); code != 200 {
				t.Fatalf("%s: %d", m, code)
			}
		}
		if n := up.conns.Load(); n != 1 {
			t.Errorf("5 requests one after another took %d upstream connections, want 1: %q", n, up.requests())
		}
	})
	t.Run("closed while idle", func(t *testing.T) {
		closed := make(chan struct{}, 4)
		up := startScriptedUpstream(t, func(u *scriptedUpstream, n int, c net.Conn, br *bufio.Reader) {
			// Answers one request as kept alive, then closes the
			// connection (an upstream's keep-alive timeout).
			if _, ok := u.read(n, br); ok {
				io.WriteString(c, okAnswer)
			}
			c.(*net.TCPConn).CloseWrite()
			closed <- struct{}{}
			io.Copy(io.Discard, c)
		})
		e := startEdge(t, edgeConfig(up.URL()))
		for i := range 3 {
			if code, body := proxied(t, e, "DELETE", fmt.Sprintf("/_matrix/client/v3/d%d", i)); code != 200 {
				t.Fatalf("request %d after the upstream closed the last connection: %d %s", i, code, body)
			}
			<-closed
			// The close has reached the edge's socket (on a busy
			// machine the kernel may deliver it a moment later): the
			// next DELETE, which is not sent twice, must not go there.
			wait.Until(t, "the upstream's close to reach the edge", 10*time.Second, func() error {
				h1 := e.srv.up.h1
				h1.mu.Lock()
				defer h1.mu.Unlock()
				for _, list := range h1.idle {
					for _, c := range list {
						if c.idleAndOpen() {
							return fmt.Errorf("an idle connection still looks open")
						}
					}
				}
				return nil
			})
		}
		if got := up.requests(); strings.Join(got, ",") != "DELETE /_matrix/client/v3/d0 on 1,DELETE /_matrix/client/v3/d1 on 2,DELETE /_matrix/client/v3/d2 on 3" {
			t.Errorf("upstream saw %q", got)
		}
	})
	t.Run("Connection: close", func(t *testing.T) {
		up := startScriptedUpstream(t, func(u *scriptedUpstream, n int, c net.Conn, br *bufio.Reader) {
			for {
				if _, ok := u.read(n, br); !ok {
					return
				}
				// Says so, but keeps the socket open: the edge must
				// not send another request on it.
				io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
			}
		})
		e := startEdge(t, edgeConfig(up.URL()))
		for range 3 {
			if code, _ := proxied(t, e, "GET", "/_matrix/client/v3/x"); code != 200 {
				t.Fatalf("status %d", code)
			}
		}
		if n := up.conns.Load(); n != 3 {
			t.Errorf("3 answers with Connection: close took %d connections, want 3: %q", n, up.requests())
		}
	})
}

// TestUpstreamClosingAtTheRequest: an upstream that closes a kept-alive
// connection as the request arrives on it (its idle timeout racing the
// request) has not answered it; the request is sent again on a new
// connection only if doing it twice does no harm.
func TestUpstreamClosingAtTheRequest(t *testing.T) {
	up := startScriptedUpstream(t, func(u *scriptedUpstream, n int, c net.Conn, br *bufio.Reader) {
		if n == 1 {
			// The first connection answers one request, reads the
			// next and drops the connection without a word.
			if _, ok := u.read(n, br); ok {
				io.WriteString(c, okAnswer)
			}
			u.read(n, br)
			return
		}
		keepAlive(u, n, c, br)
	})
	e := startEdge(t, edgeConfig(up.URL()))
	if code, _ := proxied(t, e, "GET", "/_matrix/client/v3/a"); code != 200 {
		t.Fatalf("first: %d", code)
	}
	if code, body := proxied(t, e, "GET", "/_matrix/client/v3/b"); code != 200 {
		t.Fatalf("a GET whose connection the upstream dropped unanswered: %d %s, want 200 from a second try", code, body)
	}
	want := "GET /_matrix/client/v3/a on 1,GET /_matrix/client/v3/b on 1,GET /_matrix/client/v3/b on 2"
	if got := strings.Join(up.requests(), ","); got != want {
		t.Errorf("upstream saw\n %s\nwant\n %s", got, want)
	}

	up2 := startScriptedUpstream(t, func(u *scriptedUpstream, n int, c net.Conn, br *bufio.Reader) {
		if _, ok := u.read(n, br); ok {
			io.WriteString(c, okAnswer)
		}
		u.read(n, br)
	})
	e2 := startEdge(t, edgeConfig(up2.URL()))
	proxied(t, e2, "GET", "/_matrix/client/v3/a")
	code, body := proxied(t, e2, "DELETE", "/_matrix/client/v3/room/alias")
	if code != http.StatusBadGateway || !strings.Contains(body, "M_UNKNOWN") {
		t.Errorf("a DELETE whose connection was dropped unanswered: %d %s, want 502 M_UNKNOWN", code, body)
	}
	if got := strings.Join(up2.requests(), ","); got != "GET /_matrix/client/v3/a on 1,DELETE /_matrix/client/v3/room/alias on 1" {
		t.Errorf("the DELETE was sent again, or not at all: upstream saw %s", got)
	}
}

// TestHeldLongPollsHoldNoTransportGoroutines: a long-poll waiting for its
// answer holds its upstream connection and no goroutine of the transport's
// (http.Transport keeps two per connection, a third of what each held
// /sync cost).
func TestHeldLongPollsHoldNoTransportGoroutines(t *testing.T) {
	up := newCountingUpstream(t)
	e := startEdge(t, edgeConfig(up.URL))
	const n = 20
	before := transportGoroutines()
	var conns []net.Conn
	for i := range n {
		c, err := net.Dial("tcp", e.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /_matrix/client/v3/sync?timeout=30000&n=%d HTTP/1.1\r\nHost: matrix.example.com\r\n\r\n", i)
	}
	wait.Until(t, "the long-polls held upstream", 10*time.Second, func() error {
		if h := up.held.Load(); h != n {
			return fmt.Errorf("%d held", h)
		}
		return nil
	})
	// Earlier tests' clients may still be closing connections of their
	// own: only what appeared since counts (http.Transport: 2n).
	if k := transportGoroutines() - before; k >= n/2 {
		t.Errorf("%d held long-polls: %d more goroutines of http.Transport's connections", n, k)
	}
	close(up.release)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("long-poll %d: %v %v", i, resp, err)
		}
		c.Close()
	}
}

// transportGoroutines counts the goroutines of http.Transport's
// connections, in the whole test process.
func transportGoroutines() int {
	buf := make([]byte, 1<<22)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "net/http.(*persistConn)")
}

// TestClientLeavingEndsItsUpstreamRequest: a client that leaves while its
// request waits upstream has its upstream connection closed, not kept:
// the homeserver stops working for nobody, and the connection, which has
// an answer on its way, serves nobody else.
func TestClientLeavingEndsItsUpstreamRequest(t *testing.T) {
	ended := make(chan error, 1)
	up := startScriptedUpstream(t, func(u *scriptedUpstream, n int, c net.Conn, br *bufio.Reader) {
		if n > 1 {
			keepAlive(u, n, c, br)
			return
		}
		u.read(n, br)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := br.ReadByte()
		ended <- err
	})
	e := startEdge(t, edgeConfig(up.URL()))
	c, err := net.Dial("tcp", e.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /_matrix/client/v3/sync?timeout=30000 HTTP/1.1\r\nHost: matrix.example.com\r\n\r\n")
	wait.Until(t, "the upstream to see the request", 10*time.Second, func() error {
		if len(up.requests()) == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	c.Close()
	if err := <-ended; err != io.EOF {
		t.Fatalf("upstream connection after the client left: %v, want it closed (EOF)", err)
	}
	if code, _ := proxied(t, e, "GET", "/_matrix/client/v3/x"); code != 200 {
		t.Fatalf("next request: %d", code)
	}
	if got := up.conns.Load(); got != 2 {
		t.Errorf("the next request found %d connections, want a new one (2)", got)
	}
}

// TestUpstreamAnswersOutOfBounds: headers without end, and interim answers
// without end, are cut off with a 502, not buffered or waited for; interim
// answers within bounds reach the client.
func TestUpstreamAnswersOutOfBounds(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		status       int
	}{
		{"headers over 1 MiB", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 1100) + "Content-Length: 2\r\n\r\n{}", 502},
		{"six interim answers", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6) + okAnswer, 502},
		{"101 unasked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", 502},
		{"an early hint", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + okAnswer, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startScriptedUpstream(t, func(u *scriptedUpstream, n int, c net.Conn, br *bufio.Reader) {
				if _, ok := u.read(n, br); ok {
					io.WriteString(c, tc.answer)
				}
				io.Copy(io.Discard, c)
			})
			e := startEdge(t, edgeConfig(up.URL()))
			var hints []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", e.URL+"/_matrix/client/v3/x", nil)
			req.Host = "matrix.example.com"
			resp, err := e.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == 502 && !strings.Contains(string(body), "M_UNKNOWN") {
				t.Errorf("body %s", body)
			}
			if tc.status == 200 && (len(hints) != 1 || hints[0] != "103 </s.css>; rel=preload") {
				t.Errorf("interim answers the client saw: %q", hints)
			}
		})
	}
}

// TestIdleUpstreamConnectionsExpire: connections idle for h1IdleTimeout are
// closed by the pool's sweep, the others kept, and the sweep comes back for
// them.
func TestIdleUpstreamConnectionsExpire(t *testing.T) {
	tr := newH1Transport(newTransport())
	peers := map[*h1Conn]net.Conn{}
	add := func(key string, idleFor time.Duration) *h1Conn {
		a, b := net.Pipe()
		c := &h1Conn{Conn: a, key: key}
		peers[c] = b
		tr.putIdle(c)
		c.idle = time.Now().Add(-idleFor)
		return c
	}
	old1 := add("a:80", 2*h1IdleTimeout)
	old2 := add("a:80", h1IdleTimeout+time.Second)
	fresh := add("a:80", time.Second)
	old3 := add("b:80", h1IdleTimeout)
	tr.closeExpired()
	closed := func(c *h1Conn) bool {
		p := peers[c]
		p.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := p.Read(make([]byte, 1))
		return err == io.EOF
	}
	for _, c := range []*h1Conn{old1, old2, old3} {
		if !closed(c) {
			t.Errorf("a connection idle for h1IdleTimeout or longer is still open")
		}
	}
	if closed(fresh) {
		t.Errorf("a connection idle for a second was closed")
	}
	if got := tr.takeIdle("a:80"); got != fresh {
		t.Errorf("the fresh connection is not the one left")
	}
	if tr.takeIdle("b:80") != nil || tr.nidle != 0 {
		t.Errorf("expired connections left in the pool (%d counted)", tr.nidle)
	}
	tr.mu.Lock()
	armed := tr.armed
	tr.mu.Unlock()
	if !armed {
		t.Errorf("sweep not scheduled for the connection that was left")
	}
	for _, p := range peers {
		p.Close()
	}
}

package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestHeadersAndHandshakesAreBounded: on the public listeners a client has
// the header timeout for its TLS handshake and first request, and for each
// later request's headers from their first byte, and an HTTP/1 connection
// the idle timeout between requests (sweepHeaders); a keep-alive
// connection idle for less is not cut, nor an idle HTTP/2 connection that
// pings.
func TestHeadersAndHandshakesAreBounded(t *testing.T) {
	const bound, idle = 1500 * time.Millisecond, 6 * time.Second
	// Closed no earlier than the bound, and not much later: the sweep looks
	// every bound/4; a busy machine may be late, never early.
	const late = bound + 5*time.Second
	httpAddr, tlsAddr := freeport.Addr(t), freeport.Addr(t)
	e := startEdge(t, edgeconf.New(edgeconf.Listen(httpAddr, tlsAddr, "", ""), edgeconf.Internal(t.TempDir())),
		onListeners, withOptions(withHeaderTimeout(bound), withIdleTimeout(idle)))
	wait.TCP(t, tlsAddr)
	roots := e.localCA(t, tlsAddr, "example.com")
	const get = "GET /.well-known/matrix/server HTTP/1.1\r\nHost: example.com\r\n\r\n"

	t.Run("a new connection that sends nothing", func(t *testing.T) {
		t.Parallel()
		c := dialT(t, httpAddr)
		closedAfter(t, c, time.Now(), bound, late)
	})
	t.Run("headers a byte at a time", func(t *testing.T) {
		t.Parallel()
		c := dialT(t, httpAddr)
		start := time.Now()
		go trickle(c, get)
		closedAfter(t, c, start, bound, late)
	})
	t.Run("a TLS handshake never finished", func(t *testing.T) {
		t.Parallel()
		c := dialT(t, tlsAddr)
		closedAfter(t, c, time.Now(), bound, late)
	})
	t.Run("idle keep-alive, then slow headers", func(t *testing.T) {
		t.Parallel()
		c := dialT(t, httpAddr)
		br := bufio.NewReader(c)
		for i := range 2 {
			if i == 1 {
				// Idle for twice the bound between requests: not cut.
				time.Sleep(2 * bound)
			}
			fmt.Fprint(c, get)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d on a kept-alive connection: %v %v", i+1, resp, err)
			}
			io.Copy(io.Discard, resp.Body)
		}
		// The third request's headers trickle: bounded from their first
		// byte.
		start := time.Now()
		go trickle(c, get)
		closedAfter(t, c, start, bound, late)
	})
	for _, tc := range []struct {
		name, addr string
		tls        bool
	}{{"an idle keep-alive connection", httpAddr, false}, {"an idle keep-alive TLS connection", tlsAddr, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialT(t, tc.addr)
			if tc.tls {
				tc := tls.Client(c, &tls.Config{ServerName: "example.com", RootCAs: roots, NextProtos: []string{"http/1.1"}})
				t.Cleanup(func() { tc.Close() })
				c = tc
			}
			fmt.Fprint(c, get)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%v %v", resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			closedAfter(t, c, time.Now(), idle, idle+5*time.Second)
		})
	}
	// What the operator sees: the connections closed for slow headers or
	// handshakes (four above), not those closed idle.
	t.Cleanup(func() {
		if n := e.srv.conns.headerTimeouts.Load(); n != 4 {
			t.Errorf("wellknownd_connections_header_timeouts_total would say %d, want 4", n)
		}
	})
	t.Run("idle HTTP/2 with pings", func(t *testing.T) {
		t.Parallel()
		tc, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "example.com", RootCAs: roots, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		//lint:ignore SA1019 net/http's own ClientConn sends no PING frame, which this test needs
		cc, err := (&http2.Transport{}).NewClientConn(tc)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if i == 1 {
				for end := time.Now().Add(2 * bound); time.Now().Before(end); time.Sleep(bound / 5) {
					if err := cc.Ping(context.Background()); err != nil {
						t.Fatalf("ping on an idle HTTP/2 connection: %v", err)
					}
				}
			}
			req, _ := http.NewRequest("GET", "https://example.com/.well-known/matrix/server", nil)
			resp, err := cc.RoundTrip(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d on one HTTP/2 connection: %v %v", i+1, resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle writes s a byte at a time, one every 100 ms, until it is done or
// the connection is closed.
func trickle(c net.Conn, s string) {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// closedAfter waits for the edge to close c, and fails unless that came
// between min and max after start, with no answer before.
func closedAfter(t *testing.T, c net.Conn, start time.Time, min, max time.Duration) {
	t.Helper()
	c.SetReadDeadline(start.Add(max))
	n, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("still open after %v", took.Round(time.Millisecond))
	}
	if n != 0 {
		t.Fatalf("%d bytes of answer before the close", n)
	}
	// The edge starts its clock when it accepts, reads the first byte or
	// sends the last answer, which may be a moment before start.
	if took < min-50*time.Millisecond {
		t.Fatalf("closed after %v, before the %v bound", took.Round(time.Millisecond), min)
	}
}

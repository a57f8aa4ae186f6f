package server

import (
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

// TestConnectionLimit: at limits.max_conns, a new connection takes the
// place of one that only waits on its client (a body that has not
// started, an idle keep-alive); with every connection busy it waits, the
// admin listener still answers and says so, and a slot freed lets it in.
func TestConnectionLimit(t *testing.T) {
	up := newCountingUpstream(t)
	httpAddr, adminAddr := freeport.Addr(t), freeport.Addr(t)
	edge := startEdge(t, edgeconf.New(edgeconf.Listen(httpAddr, "", "", adminAddr), edgeconf.Upstream(up.URL))+"limits: {max_conns: 3}\n", onListeners)
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
		wait.True(t, "the edge to accept it", 5*time.Second, func() bool { return edge.srv.conns.open() == i+1 })
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

package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// TestRapidResetReachesTheHomeserverBoundedly: an HTTP/2 client that opens
// streams and resets them at once (CVE-2023-44487) gets no more requests
// to the homeserver than its connection's stream budget; another client
// is served meanwhile.
func TestRapidResetReachesTheHomeserverBoundedly(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/v3/joined_rooms" {
			hits.Add(1)
		}
		w.Write([]byte(`{"joined_rooms":[]}`))
	}))
	defer up.Close()
	addr := freeport.Addr(t)
	// h2_max_streams 32: a burst of 64, then 32 a second.
	edge := startEdge(t, h3Config(t, addr, up.URL, false)+"limits: {h2_max_streams: 32}\n", onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	c, fr := h2Dial(t, addr)
	pong := make(chan struct{})
	go func() { // the attacker drains what it is sent, and waits for a PING's answer
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
				close(pong)
			}
		}
	}()
	get := h2Get(fr)
	// In batches of h2_max_streams: each batch is opened, left a moment
	// for the handlers to start (streams reset before that never reach a
	// handler; net/http's own defence closes such a connection), then reset.
	start := time.Now()
	const batches, batch = 100, 32
	attempts := 0
	for b := range batches {
		for i := range batch {
			get(uint32(2*(b*batch+i)+1), "/_matrix/client/v3/joined_rooms")
		}
		time.Sleep(5 * time.Millisecond)
		for i := range batch {
			if err := fr.WriteRSTStream(uint32(2*(b*batch+i)+1), http2.ErrCodeCancel); err != nil {
				t.Fatalf("after %d streams: %v", attempts, err)
			}
			attempts++
		}
	}
	// The server reads frames in order: its answer to a PING says it has
	// read every stream before it.
	fr.WritePing(false, [8]byte{1})
	select {
	case <-pong:
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to the PING")
	}
	time.Sleep(500 * time.Millisecond) // what was under way arrives
	c.Close()
	// Every request counted was let through before this moment: the
	// budget since the first is the bound, however busy the machine.
	n := hits.Load()
	took := time.Since(start)
	bound := int64(64 + 32*took.Seconds() + 1)
	if n > bound {
		t.Errorf("%d of %d reset streams reached the homeserver in %v; the budget is %d", n, attempts, took, bound)
	} else {
		t.Logf("%d of %d reset streams reached the homeserver in %v (budget %d)", n, attempts, took, bound)
	}
	// Another client, on a connection of its own, is served as usual.
	h2 := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	for range 10 {
		resp, err := h2.Get("https://matrix.example.com/_matrix/client/v3/joined_rooms")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("another client: %s %d", resp.Proto, resp.StatusCode)
		}
	}
}

// TestHTTP3RapidResetReachesTheHomeserverBoundedly: the same over HTTP/3.
// quic-go's client opens requests on one QUIC connection and cancels them
// at once (the stream is reset, its credit given back): no more of them
// reach the homeserver than the connection's stream budget, and another
// client is served meanwhile.
func TestHTTP3RapidResetReachesTheHomeserverBoundedly(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/v3/joined_rooms" {
			hits.Add(1)
		}
		w.Write([]byte(`{"joined_rooms":[]}`))
	}))
	defer up.Close()
	addr := freeport.Addr(t)
	// h2_max_streams 32: 32 concurrent streams per QUIC connection, a
	// burst of 64 requests, then 32 a second.
	edge := startEdge(t, h3Config(t, addr, up.URL, true)+"limits: {h2_max_streams: 32}\n", onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	attacker := newH3Peer(t, addr, roots)
	const url = "https://matrix.example.com/_matrix/client/v3/joined_rooms"
	if code, _, err := attacker.get(t.Context(), "https://example.com/.well-known/matrix/server"); err != nil || code != 200 {
		t.Fatalf("the connection: %d %v", code, err)
	}
	// In batches of h2_max_streams, as over HTTP/2: each batch is opened,
	// left a moment for the handlers to start, then cancelled.
	start := time.Now()
	const batches, batch = 100, 32
	var limited atomic.Int64
	for range batches {
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for range batch {
			wg.Go(func() {
				if code, _, _ := attacker.get(ctx, url); code == http.StatusTooManyRequests {
					limited.Add(1)
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		cancel()
		wg.Wait()
	}
	// What was under way arrives; every request counted was let through
	// before this moment.
	time.Sleep(500 * time.Millisecond)
	n := hits.Load()
	took := time.Since(start)
	if c := attacker.conn.Load(); c.Context().Err() != nil {
		t.Logf("the attacker's connection was closed: %v", context.Cause(c.Context()))
	}
	bound := int64(64 + 32*took.Seconds() + 1)
	if n > bound {
		t.Errorf("%d of %d cancelled requests reached the homeserver in %v; the budget is %d", n, batches*batch, took, bound)
	} else {
		t.Logf("%d of %d cancelled requests reached the homeserver in %v (budget %d); %d answered 429 before their cancel", n, batches*batch, took, bound, limited.Load())
	}
	// Another client, on a connection of its own, is served as usual.
	other := newH3Peer(t, addr, roots)
	for range 10 {
		if code, _, err := other.get(t.Context(), url); err != nil || code != 200 {
			t.Fatalf("another client: %d %v", code, err)
		}
	}
}

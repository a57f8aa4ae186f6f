package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// h3Peer is one client of quic-go's HTTP/3 stack, on a UDP socket of its
// own, the QUIC connection it dialled last, and the Retry packets it
// received.
type h3Peer struct {
	*http.Client
	tr      *http3.Transport
	conn    atomic.Pointer[quic.Conn]
	retries atomic.Int64
}

func newH3Peer(t *testing.T, addr string, roots *x509.CertPool) *h3Peer {
	p := &h3Peer{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	qt := &quic.Transport{Conn: retryCounter{pc, udpBuffers{pc}, &p.retries}}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.tr = &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			c, err := qt.DialEarly(ctx, raddr, tlsCfg, cfg)
			if err == nil {
				p.conn.Store(c)
			}
			return c, err
		},
	}
	p.Client = &http.Client{Transport: p.tr}
	t.Cleanup(func() {
		p.tr.Close()
		qt.Close()
		pc.Close()
	})
	return p
}

// udpBuffers lets quic-go size a wrapped socket's buffers as it would a
// *net.UDPConn's (without them it warns).
type udpBuffers struct{ pc net.PacketConn }

func (u udpBuffers) SetReadBuffer(n int) error  { return u.pc.(*net.UDPConn).SetReadBuffer(n) }
func (u udpBuffers) SetWriteBuffer(n int) error { return u.pc.(*net.UDPConn).SetWriteBuffer(n) }

// retryCounter counts the QUIC version 1 Retry packets its socket
// receives (RFC 9000, section 17.2.5: long header, type 3).
type retryCounter struct {
	net.PacketConn
	udpBuffers
	n *atomic.Int64
}

func (c retryCounter) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if n >= 5 && b[0]&0xf0 == 0xf0 && b[1] == 0 && b[2] == 0 && b[3] == 0 && b[4] == 1 {
		c.n.Add(1)
	}
	return n, addr, err
}

// get asks for url and returns the status and body, or the error.
func (p *h3Peer) get(ctx context.Context, url string) (int, string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := p.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 3 {
		return 0, "", fmt.Errorf("answered over %s", resp.Proto)
	}
	return resp.StatusCode, string(b), err
}

// metric is the value of the unlabelled sample name in the edge's metrics.
func metric(t *testing.T, edge *testEdge, name string) float64 {
	t.Helper()
	for l := range strings.SplitSeq(edge.adminGET(t, "/metrics"), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// closedWith is the application error code the edge closed c with, and
// false while c is open or was closed otherwise.
func closedWith(c *quic.Conn) (http3.ErrCode, bool) {
	if c.Context().Err() == nil {
		return 0, false
	}
	var appErr *quic.ApplicationError
	if !errors.As(context.Cause(c.Context()), &appErr) || !appErr.Remote {
		return 0, false
	}
	return http3.ErrCode(appErr.ErrorCode), true
}

// TestHTTP3ConnectionCapEvictsIdle: at limits.max_conns QUIC connections,
// a new HTTP/3 client takes the place of the one idle longest, which is
// closed with H3_NO_ERROR and whose client simply reconnects for its next
// request; with every connection holding a long-poll, a new one is
// refused (H3_EXCESSIVE_LOAD) and the long-polls are answered in full.
func TestHTTP3ConnectionCapEvictsIdle(t *testing.T) {
	// The homeserver holds each /sync until release (the edge's own
	// self-check asks it other things).
	var held atomic.Int32
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_matrix/client/v3/sync" {
			held.Add(1)
			<-release
		}
		w.Write([]byte(`{}`))
	}))
	defer up.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	addr := freeport.Addr(t)
	edge := startEdge(t, h3Config(t, addr, up.URL, true)+"limits: {max_conns: 3}\n", onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	ctx := t.Context()
	const doc = "https://example.com/.well-known/matrix/server"

	// Three clients, each idle after its answer; the first idle longest.
	var idle []*h3Peer
	for i := range 3 {
		p := newH3Peer(t, addr, roots)
		if code, _, err := p.get(ctx, doc); err != nil || code != 200 {
			t.Fatalf("client %d: %d %v", i, code, err)
		}
		idle = append(idle, p)
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(evictGrace)
	late := newH3Peer(t, addr, roots)
	if code, body, err := late.get(ctx, doc); err != nil || code != 200 || !strings.Contains(body, "m.server") {
		t.Fatalf("a fourth client with the cap full of idle connections: %d %q %v", code, body, err)
	}
	wait.True(t, "the idle-longest connection to be closed", 5*time.Second, func() bool {
		code, ok := closedWith(idle[0].conn.Load())
		return ok && code == http3.ErrCodeNoError
	})
	for i, p := range idle[1:] {
		if err := p.conn.Load().Context().Err(); err != nil {
			t.Errorf("client %d was closed too: %v", i+1, err)
		}
	}
	if n := metric(t, edge, "wellknownd_quic_connections_evicted_total"); n != 1 {
		t.Errorf("evicted_total %v, want 1", n)
	}
	// The evicted client sees nothing but a new connection.
	time.Sleep(evictGrace)
	if code, _, err := idle[0].get(ctx, doc); err != nil || code != 200 {
		t.Fatalf("the evicted client's next request: %d %v", code, err)
	}
	for _, p := range append(idle, late) {
		p.tr.Close()
	}
	wait.True(t, "every QUIC connection to be gone", 10*time.Second, func() bool {
		return metric(t, edge, "wellknownd_quic_connections_open") == 0
	})

	// Three long-polls held by the homeserver: nothing is evicted, a new
	// client is refused, and the long-polls end as the homeserver says.
	type answer struct {
		code int
		body string
		err  error
	}
	answers := make(chan answer, 3)
	var busy []*h3Peer
	for range 3 {
		p := newH3Peer(t, addr, roots)
		busy = append(busy, p)
		go func() {
			code, body, err := p.get(ctx, "https://matrix.example.com/_matrix/client/v3/sync?timeout=30000")
			answers <- answer{code, body, err}
		}()
	}
	wait.Until(t, "three long-polls at the homeserver", 10*time.Second, func() error {
		select {
		case a := <-answers:
			t.Fatalf("a long-poll ended early: %d %q %v", a.code, a.body, a.err)
		default:
		}
		if n := held.Load(); n != 3 {
			return fmt.Errorf("%d held", n)
		}
		return nil
	})
	time.Sleep(evictGrace)
	refused := newH3Peer(t, addr, roots)
	shortCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	code, _, err := refused.get(shortCtx, doc)
	cancel()
	if err == nil {
		t.Fatalf("a fourth client was answered (%d) with all three connections busy", code)
	}
	// The request fails as soon as its stream reads the close; the
	// connection's context records it a moment later.
	var refusedCode http3.ErrCode
	var closed bool
	wait.For(10*time.Second, func() error {
		if refusedCode, closed = closedWith(refused.conn.Load()); !closed {
			return errors.New("not closed yet")
		}
		return nil
	})
	if !closed || refusedCode != http3.ErrCodeExcessiveLoad {
		t.Errorf("the refused connection: closed %t with %v (%v), want H3_EXCESSIVE_LOAD", closed, refusedCode, err)
	}
	if n := metric(t, edge, "wellknownd_quic_connections_refused_total"); n < 1 {
		t.Errorf("refused_total %v", n)
	}
	for i, p := range busy {
		if err := p.conn.Load().Context().Err(); err != nil {
			t.Errorf("busy client %d was closed: %v", i, err)
		}
	}
	close(release)
	for range 3 {
		a := <-answers
		if a.err != nil || a.code != 200 || a.body != "{}" {
			t.Errorf("a held long-poll: %d %q %v", a.code, a.body, a.err)
		}
	}
}

// deafConn sends what its client sends and drops what it receives: a
// client whose Initial packets reach the edge but which never answers, as
// one whose source address is forged.
type deafConn struct {
	net.PacketConn
	udpBuffers
}

func (c deafConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if _, _, err := c.PacketConn.ReadFrom(b); err != nil {
			return 0, nil, err
		}
	}
}

// TestHTTP3RetryUnderLoad: below the thresholds a new QUIC connection is
// accepted without a Retry (no round trip added); with half of
// limits.max_conns held, or with quicRetryHandshakes handshakes that never
// finish (a flood of forged Initial packets), a new one is sent a Retry:
// the flood stops adding handshake state, and a real client, which
// answers the Retry from its address, still gets its answer.
func TestHTTP3RetryUnderLoad(t *testing.T) {
	up := newRecorder(t)
	const doc = "https://example.com/.well-known/matrix/server"

	t.Run("connections", func(t *testing.T) {
		addr := freeport.Addr(t)
		// Retry from 2 connections held.
		edge := startEdge(t, h3Config(t, addr, up.URL, true)+"limits: {max_conns: 4}\n", onListeners)
		roots := edge.localCA(t, addr, "matrix.example.com")
		for i, retried := range []bool{false, false, true} {
			p := newH3Peer(t, addr, roots)
			if code, _, err := p.get(t.Context(), doc); err != nil || code != 200 {
				t.Fatalf("client %d: %d %v", i, code, err)
			}
			// A ClientHello may take two Initial packets: each is sent a Retry.
			if n, got := metric(t, edge, "wellknownd_quic_retries_total"), p.retries.Load(); (n > 0) != retried || (got > 0) != retried {
				t.Errorf("with %d connections open: retries_total %v, Retry packets at the client %d; want Retry %t", i, n, got, retried)
			}
		}
	})

	t.Run("handshakes", func(t *testing.T) {
		addr := freeport.Addr(t)
		edge := startEdge(t, h3Config(t, addr, up.URL, true), onListeners)
		roots := edge.localCA(t, addr, "matrix.example.com")
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		flood := &quic.Transport{Conn: deafConn{pc, udpBuffers{pc}}}
		defer pc.Close()
		defer flood.Close()
		raddr, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		forge := func(n int) {
			for range n {
				wg.Go(func() {
					flood.Dial(ctx, raddr, &tls.Config{ServerName: "matrix.example.com", NextProtos: []string{http3.NextProtoH3}},
						&quic.Config{HandshakeIdleTimeout: time.Minute})
				})
			}
		}
		forge(quicRetryHandshakes)
		wait.True(t, "the forged handshakes to be in progress", 10*time.Second, func() bool {
			return metric(t, edge, "wellknownd_quic_handshakes") == quicRetryHandshakes
		})
		if n := metric(t, edge, "wellknownd_quic_retries_total"); n != 0 {
			t.Fatalf("retries_total %v below the threshold", n)
		}
		forge(20)
		wait.True(t, "Retry for the forged connections past the threshold", 10*time.Second, func() bool {
			return metric(t, edge, "wellknownd_quic_retries_total") >= 20
		})
		if n := metric(t, edge, "wellknownd_quic_handshakes"); n > quicRetryHandshakes {
			t.Errorf("%v handshakes in progress past the threshold", n)
		}
		p := newH3Peer(t, addr, roots)
		if code, _, err := p.get(t.Context(), doc); err != nil || code != 200 {
			t.Fatalf("a real client during the flood: %d %v", code, err)
		}
		if n := p.retries.Load(); n == 0 {
			t.Error("the real client was sent no Retry")
		}
	})
}

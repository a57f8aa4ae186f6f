package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimiter caps the connections open at once across the public
// listeners (give or take the one each listener holds while it waits for
// a slot), so that descriptors never run out.
//
// At the cap, a new connection takes the place of the one that has waited
// longest without a request being served on it: a keep-alive connection
// between requests, one that has not finished its request headers, or one
// whose request body has not started. Those are what a flood of slow
// clients is made of; a client being answered is never closed. Only when
// every connection is busy does Accept wait, and new clients wait in the
// kernel's accept queue.
type connLimiter struct {
	slots chan struct{}
	// reached counts the times a connection found the cap reached.
	reached atomic.Uint64
	// evicted counts the waiting connections closed to make room.
	evicted atomic.Uint64

	mu    sync.Mutex
	conns map[*limitedConn]struct{}
	// sendTimeout bounds each write to a client's socket.
	sendTimeout time.Duration
	// headerTimeout bounds a new connection's TLS handshake and first
	// request headers, and each later request's headers from their first
	// byte (sweepHeaders).
	headerTimeout time.Duration
	// headerTimeouts counts the connections closed for it (not those
	// closed idle: net/http's idle timeout was not counted either).
	headerTimeouts atomic.Uint64
}

// headerTimeout is what a client has for its request headers, and a new
// connection for its TLS handshake too, as nginx's client_header_timeout.
const headerTimeout = 10 * time.Second

func newConnLimiter(n int, sendTimeout, headerTimeout time.Duration) *connLimiter {
	return &connLimiter{slots: make(chan struct{}, n), conns: map[*limitedConn]struct{}{}, sendTimeout: sendTimeout,
		headerTimeout: headerTimeout}
}

// sweepHeaders closes, every tick until ctx ends, the connections that
// have spent longer than headerTimeout on a TLS handshake or on a
// request's headers, and the HTTP/1 ones idle past net/http's IdleTimeout
// (SetReadDeadline). net/http did both with deadlines, four per request,
// each a timer to move in the runtime, which sometimes woke another
// thread: about 6% of a small request's cost. One look a second at every
// connection costs nothing per request, and the bounds are kept to within
// a tick.
func (c *connLimiter) sweepHeaders(ctx context.Context) {
	tick := min(time.Second, c.headerTimeout/4)
	t := time.NewTicker(tick)
	defer t.Stop()
	var late []*limitedConn
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		since := now - int64(c.headerTimeout)
		slow := 0
		c.mu.Lock()
		for lc := range c.conns {
			if h := lc.headerSince.Load(); h != 0 && h <= since {
				late = append(late, lc)
				slow++
			} else if u := lc.idleUntil.Load(); u != 0 && u <= now {
				late = append(late, lc)
			}
		}
		c.mu.Unlock()
		c.headerTimeouts.Add(uint64(slow))
		for _, lc := range late {
			lc.Close()
		}
		clear(late)
		late = late[:0]
	}
}

// evictGrace is how long a connection must have waited before it may be
// closed to make room: in a burst of new clients, one whose request is
// still on its way is not taken for an idle one.
const evictGrace = 250 * time.Millisecond

// evictOldest closes the connection that has waited longest without being
// served, if it has waited evictGrace, and reports whether there was one.
func (c *connLimiter) evictOldest() bool {
	c.mu.Lock()
	var oldest *limitedConn
	since := time.Now().Add(-evictGrace).UnixNano()
	for lc := range c.conns {
		if t := lc.waitingSince.Load(); t != 0 && t <= since {
			oldest, since = lc, t
		}
	}
	c.mu.Unlock()
	if oldest == nil {
		return false
	}
	c.evicted.Add(1)
	oldest.Close()
	return true
}

// take gets a slot for a new connection, making room by eviction when it
// can, else waiting; false when the listener closed meanwhile.
func (c *connLimiter) take(closed <-chan struct{}) bool {
	select {
	case c.slots <- struct{}{}:
		return true
	default:
	}
	c.reached.Add(1)
	for {
		if !c.evictOldest() {
			// Everything is busy: wait for a connection to close, looking
			// again now and then for one that has started to wait.
			select {
			case c.slots <- struct{}{}:
				return true
			case <-closed:
				return false
			case <-time.After(100 * time.Millisecond):
				continue
			}
		}
		select {
		case c.slots <- struct{}{}:
			return true
		case <-closed:
			return false
		case <-time.After(10 * time.Millisecond):
			// Another listener took the slot; evict again.
		}
	}
}

// markWaiting says the connection of a request (an HTTP/1 one) is waiting
// on its client, or (false) that it is being served again.
func markWaiting(ctx context.Context, waiting bool) {
	if lc := connOf(ctx); lc != nil {
		lc.setWaiting(waiting)
	}
}

type connKey struct{}

// limitedOf is the limitedConn under a connection the server hands its
// hooks (a TLS connection wraps it), or nil.
func limitedOf(c net.Conn) *limitedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, _ := c.(*limitedConn)
	return lc
}

// connState marks connections waiting between requests or on their
// request headers, for the limiter to evict first, and keeps what
// sweepHeaders bounds: from a connection's start until its first request
// is read, and, on HTTP/1, from the first byte of each later request until
// it is read.
func connState(c net.Conn, st http.ConnState) {
	lc := limitedOf(c)
	if lc == nil {
		return
	}
	lc.setWaiting(st == http.StateNew || st == http.StateIdle)
	switch st {
	case http.StateActive:
		lc.headerSince.Store(0)
		lc.h1Idle.Store(false)
		lc.idleUntil.Store(0)
	case http.StateIdle:
		// An HTTP/2 connection without streams reads frames (PING,
		// SETTINGS) that start no request; its idleness is net/http's
		// IdleTimeout's.
		if !lc.http2(c) {
			lc.h1Idle.Store(true)
		}
	}
}

// connContext lets a request find its connection (startBody marks it
// while the body has not started).
func connContext(ctx context.Context, c net.Conn) context.Context {
	if lc := limitedOf(c); lc != nil {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// open is the number of connections held now; full says it is the cap.
func (c *connLimiter) open() int  { return len(c.slots) }
func (c *connLimiter) full() bool { return len(c.slots) == cap(c.slots) }

func (c *connLimiter) wrap(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, c: c, closed: make(chan struct{})}
}

type limitedListener struct {
	net.Listener
	c         *connLimiter
	closed    chan struct{}
	closeOnce sync.Once
}

// Accept takes a slot only once a connection has arrived: taking one
// ahead would evict a waiting connection for a client that is not there.
// While it waits for a slot, that one connection is held unserved: each
// listener holds at most one past the cap.
func (l *limitedListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.c.take(l.closed) {
		conn.Close()
		return nil, net.ErrClosed
	}
	lc := &limitedConn{Conn: conn, c: l.c}
	lc.setWaiting(true)
	lc.headerSince.Store(time.Now().UnixNano())
	l.c.mu.Lock()
	l.c.conns[lc] = struct{}{}
	l.c.mu.Unlock()
	return lc, nil
}

func (l *limitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn gives its slot back once, when it is closed.
type limitedConn struct {
	net.Conn
	c    *connLimiter
	once sync.Once
	// waitingSince is when it began to wait on its client (UnixNano), 0
	// while a request is being served.
	waitingSince atomic.Int64
	// streams is the HTTP/2 connection's budget of new requests to an
	// upstream.
	streams streamBucket
	// headerSince is when the connection began what sweepHeaders bounds
	// (UnixNano): its TLS handshake and first request, or a later
	// request's headers; 0 when it is in none.
	headerSince atomic.Int64
	// h1Idle: an HTTP/1 connection between requests, whose next byte
	// starts a request's headers.
	h1Idle atomic.Bool
	// writeDeadline is the write deadline last set (UnixNano).
	writeDeadline atomic.Int64
	// proto is protoH1 or protoH2 once http2 has looked, else 0.
	proto atomic.Int32
	// idleUntil is when this HTTP/1 connection, idle between requests, is
	// closed (UnixNano): net/http's IdleTimeout, kept by sweepHeaders
	// instead of a read deadline; 0 when it is not idle.
	idleUntil atomic.Int64
	// readArmed: a read deadline is set on the socket.
	readArmed atomic.Bool
}

// http2 reports whether c, the connection net/http serves over lc, speaks
// HTTP/2; asked once, the answer kept.
func (lc *limitedConn) http2(c net.Conn) bool {
	switch lc.proto.Load() {
	case protoH1:
		return false
	case protoH2:
		return true
	}
	p := protoH1
	if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		p = protoH2
	}
	lc.proto.Store(p)
	return p == protoH2
}

const (
	protoH1 int32 = 1 + iota
	protoH2
)

// Read notes the first byte of an HTTP/1 request after an idle spell: its
// headers are then bounded by sweepHeaders.
func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.h1Idle.Load() {
		c.h1Idle.Store(false)
		c.idleUntil.Store(0)
		c.headerSince.Store(time.Now().UnixNano())
	}
	return n, err
}

// SetReadDeadline passes deadlines on, but for two: the idle deadline
// net/http sets on an HTTP/1 connection between requests becomes
// idleUntil, for sweepHeaders; and lifting a deadline that is not set is
// not passed on. All of an HTTP/1 connection's read deadlines are set by
// the goroutine serving it, one after the other.
func (c *limitedConn) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && c.h1Idle.Load() {
		c.idleUntil.Store(t.UnixNano())
		if c.readArmed.Swap(false) {
			return c.Conn.SetReadDeadline(time.Time{})
		}
		return nil
	}
	if t.IsZero() && !c.readArmed.Load() {
		return nil
	}
	c.readArmed.Store(!t.IsZero())
	return c.Conn.SetReadDeadline(t)
}

// connOf is the limitedConn a request came on, or nil.
func connOf(ctx context.Context) *limitedConn {
	lc, _ := ctx.Value(connKey{}).(*limitedConn)
	return lc
}

func (c *limitedConn) setWaiting(waiting bool) {
	var t int64
	if waiting {
		t = time.Now().UnixNano()
	}
	c.waitingSince.Store(t)
}

// Write bounds each write to the socket by the send timeout: a client that
// stops reading (its receive window full) has its connection closed
// instead of holding it, and whatever answer was being written, for ever.
// Every byte to a client crosses here, HTTP/1 answers, HTTP/2 frames and
// TLS records alike, the final flush of a handler's answer included. A
// write moves the deadline to the send timeout from now before it starts,
// so one that passed while the connection had nothing to write (a
// long-poll that waits, an idle keep-alive) never cuts the next; it is not
// lifted afterwards. Moving a deadline is a runtime timer to update, so a
// deadline still more than sendSlack short of a full send timeout ahead is
// left as it is: a write has at least the send timeout less sendSlack.
func (c *limitedConn) Write(p []byte) (int, error) {
	if d := c.c.sendTimeout; d > 0 {
		now := time.Now()
		if dl := now.Add(d); dl.UnixNano()-c.writeDeadline.Load() > int64(min(sendSlack, d/8)) {
			c.SetWriteDeadline(dl)
		}
	}
	return c.Conn.Write(p)
}

// sendSlack is how much of the send timeout a write may find already
// spent: a keep-alive connection answering many requests a second moves
// its deadline once a second, not once a write.
const sendSlack = time.Second

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.c.mu.Lock()
		delete(c.c.conns, c)
		c.c.mu.Unlock()
		<-c.c.slots
	})
	return err
}

// SetWriteDeadline keeps Write's record of the deadline true and, under a
// send timeout, ignores a request to lift it: net/http lifts it after every
// request, though Write sets one before every write that needs it, and
// lifting it moved a runtime timer for nothing.
func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() && c.c.sendTimeout > 0 {
		return nil
	}
	c.writeDeadline.Store(unixNanoOrZero(t))
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline is SetReadDeadline and SetWriteDeadline.
func (c *limitedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func unixNanoOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

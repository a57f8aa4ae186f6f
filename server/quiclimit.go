package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// quicLimiter caps the QUIC connections of the HTTP/3 listeners (the UDP
// twins of https and federation, together), as connLimiter caps the TCP
// ones, and decides when a new connection must first prove its address.
//
// At the cap, a new connection takes the place of the one that has been
// idle longest (no request in flight, for evictGrace at least), closed
// with H3_NO_ERROR: an HTTP/3 client opens a new connection for its next
// request, as after an idle timeout. Only when every connection has a
// request in flight is the new one refused (H3_EXCESSIVE_LOAD): QUIC has
// no accept queue to wait in that would not cost memory. A connection is
// counted against the cap only once its handshake is complete, that is
// once the client has shown it receives at its address: a flood of Initial
// packets from spoofed addresses can never evict anyone.
//
// Such a flood costs handshake state instead (keys, TLS, buffers, for up to
// quic-go's 5 s handshake idle timeout each). So past quicRetryHandshakes
// handshakes in progress, or half the cap of connections held, a new
// connection is sent a Retry (RFC 9000, section 8.1.2): a token the client
// must echo from its address before the edge keeps any state. A spoofed
// packet then costs one small Retry; a real client, one round trip.
type quicLimiter struct {
	max int
	// retryAt is the connections held (handshakes included) from which
	// new ones are asked to Retry.
	retryAt int64
	m       *metrics

	// handshaking counts connections not yet accepted; held counts those
	// and the accepted ones, until each closes.
	handshaking, held atomic.Int64

	mu sync.Mutex
	// open are the accepted connections, each holding a slot of max.
	open map[*quicConn]struct{}
}

// quicRetryHandshakes is the handshakes in progress from which new
// connections are asked to Retry. A real handshake lasts a round trip or
// two: 64 at once is hundreds of new connections a second, far more than
// the clients of one homeserver make; past it the edge is most likely
// answering packets whose source is forged.
const quicRetryHandshakes = 64

func newQUICLimiter(n int, m *metrics) *quicLimiter {
	return &quicLimiter{max: n, retryAt: int64(max(n/2, 1)), m: m, open: map[*quicConn]struct{}{}}
}

// quicConn is what the edge knows of one QUIC connection, from its first
// packet to its close; requests find it through their context.
type quicConn struct {
	conn *quic.Conn
	// accepted and closed are guarded by the limiter's mu.
	accepted, closed bool

	mu       sync.Mutex
	inflight int
	// waitingSince is when its last request ended (UnixNano), 0 while one
	// is in flight.
	waitingSince atomic.Int64
	// streams is the connection's budget of new requests to an upstream,
	// as an HTTP/2 connection's (streamBucket).
	streams streamBucket
}

type quicConnKey struct{}

// quicConnOf is the QUIC connection a request came on, or nil.
func quicConnOf(ctx context.Context) *quicConn {
	qc, _ := ctx.Value(quicConnKey{}).(*quicConn)
	return qc
}

// transport is the quic.Transport of one UDP socket, hooked to the
// limiter.
func (l *quicLimiter) transport(pc net.PacketConn) *quic.Transport {
	return &quic.Transport{Conn: pc, ConnContext: l.connContext, VerifySourceAddress: l.verifySourceAddress}
}

// verifySourceAddress is asked for each new connection's first packet
// that carries no valid token.
func (l *quicLimiter) verifySourceAddress(net.Addr) bool {
	if l.handshaking.Load() < quicRetryHandshakes && l.held.Load() < l.retryAt {
		return false
	}
	l.m.quicRetries.Inc()
	return true
}

// connContext is called when quic-go creates a connection (after any
// Retry), with a context that ends when the connection closes or its
// handshake fails: the connection is counted from here to there.
func (l *quicLimiter) connContext(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	qc := &quicConn{}
	qc.waitingSince.Store(time.Now().UnixNano())
	l.held.Add(1)
	l.handshaking.Add(1)
	l.m.quicHandshakes.Inc()
	context.AfterFunc(ctx, func() { l.release(qc) })
	return context.WithValue(ctx, quicConnKey{}, qc), nil
}

func (l *quicLimiter) release(qc *quicConn) {
	l.mu.Lock()
	qc.closed = true
	if !qc.accepted {
		l.handshaking.Add(-1)
		l.m.quicHandshakes.Dec()
	} else if _, ok := l.open[qc]; ok {
		delete(l.open, qc)
		l.m.quicOpen.Dec()
	}
	l.mu.Unlock()
	l.held.Add(-1)
}

// admit gives an accepted connection a slot, evicting the longest idle
// one at the cap; false when every connection is busy.
func (l *quicLimiter) admit(qc *quicConn, c *quic.Conn) bool {
	l.mu.Lock()
	if qc.closed {
		// Gone between its handshake and Accept: release has counted it.
		l.mu.Unlock()
		return false
	}
	qc.accepted, qc.conn = true, c
	l.handshaking.Add(-1)
	l.m.quicHandshakes.Dec()
	var victim *quicConn
	if len(l.open) >= l.max {
		since := time.Now().Add(-evictGrace).UnixNano()
		for o := range l.open {
			if t := o.waitingSince.Load(); t != 0 && t <= since {
				victim, since = o, t
			}
		}
		if victim == nil {
			l.mu.Unlock()
			l.m.quicRefused.Inc()
			c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad), "too many connections")
			return false
		}
		// Its slot is the new one's from now, whenever its close is done.
		delete(l.open, victim)
		l.m.quicOpen.Dec()
	}
	l.open[qc] = struct{}{}
	l.m.quicOpen.Inc()
	l.mu.Unlock()
	if victim != nil {
		l.m.quicEvicted.Inc()
		victim.conn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "idle connection closed to make room")
	}
	return true
}

// listener is ln with the cap applied at Accept.
func (l *quicLimiter) listener(ln *quic.Listener) *quicLimitedListener {
	return &quicLimitedListener{Listener: ln, l: l}
}

// track marks the connection of each request busy while it is answered,
// so that the cap never evicts a connection with a request in flight.
func (l *quicLimiter) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		qc := quicConnOf(r.Context())
		if qc == nil {
			next.ServeHTTP(w, r)
			return
		}
		qc.begin()
		defer qc.end()
		next.ServeHTTP(w, r)
	})
}

func (qc *quicConn) begin() {
	qc.mu.Lock()
	qc.inflight++
	qc.waitingSince.Store(0)
	qc.mu.Unlock()
}

func (qc *quicConn) end() {
	qc.mu.Lock()
	if qc.inflight--; qc.inflight == 0 {
		qc.waitingSince.Store(time.Now().UnixNano())
	}
	qc.mu.Unlock()
}

// quicLimitedListener hands http3.Server only the connections the limiter
// admits. It wraps a quic.Listener, not an EarlyListener: its Accept
// returns a connection once the handshake is complete, so that only a
// client proven to receive at its address can take a slot (and evict).
type quicLimitedListener struct {
	*quic.Listener
	l *quicLimiter
}

func (ll *quicLimitedListener) Accept(ctx context.Context) (*quic.Conn, error) {
	for {
		c, err := ll.Listener.Accept(ctx)
		if err != nil {
			return nil, err
		}
		if ll.l.admit(quicConnOf(c.Context()), c) {
			return c, nil
		}
	}
}

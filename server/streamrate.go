package server

import (
	"context"
	"sync"
	"time"
)

// streamBucket bounds the rate at which one HTTP/2 or HTTP/3 connection
// sends requests on to an upstream. HTTP/2 lets a client open a stream and
// reset it at once ("rapid reset", CVE-2023-44487), and HTTP/3 as much
// (a QUIC stream is cancelled as cheaply, and a reset stream gives its
// credit back): the concurrent-stream cap never fills, yet every stream
// that got as far as the proxy may have reached the homeserver, a thousand
// times a second on one connection.
// A token bucket per connection: a burst of twice h2_max_streams (what a
// web client's first load needs), refilled at h2_max_streams a second.
// Past it a request is answered 429 M_LIMIT_EXCEEDED at the edge, with a
// Retry-After header that Matrix clients honour.
type streamBucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take spends one token of a bucket of size burst refilled at rate per
// second, and reports whether there was one.
func (b *streamBucket) take(now time.Time, burst, rate float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// streamsOf is the stream budget of the connection a request came on: its
// QUIC connection's over HTTP/3, its TCP connection's otherwise; nil for
// a connection the edge does not track (the admin listener's).
func streamsOf(ctx context.Context) *streamBucket {
	if qc := quicConnOf(ctx); qc != nil {
		return &qc.streams
	}
	if lc := connOf(ctx); lc != nil {
		return &lc.streams
	}
	return nil
}

package server

import (
	"log/slog"
	"net"
	"net/http"
	"time"
)

// upstreamDeps are what every proxy of a server shares, across reloads:
// connections to upstreams are kept when the configuration changes.
type upstreamDeps struct {
	transport *http.Transport
	// h1 is what the proxies send through: requests without a body go
	// from the handler's goroutine (h1Transport), the rest to transport.
	h1 *h1Transport
	// buffers are the body copy buffers; without them ReverseProxy
	// allocates (and the GC clears) 32 KiB for every response.
	buffers *bufferPool
	log     *slog.Logger
	// ready reports whether the supervised stack can answer; nil when
	// nothing is supervised (the proxy then always tries).
	ready   func() bool
	metrics *metrics
	// limits are the process's resource bounds; slots the upstream
	// connections in use, per host.
	limits limits
	slots  *upstreamSlots
	// budget holds request bodies and answers at the edge, in memory and
	// temporary files.
	budget *bufferBudget
	// encoders cap the answers being compressed; static are what the
	// static routes share (descriptors, memory). Both are the process's,
	// kept across reloads.
	encoders *encoderBudget
	static   *staticShared
	// slidingSync is the Server's MSC4186 service, kept across reloads.
	slidingSync *slidingSync
}

func newUpstreamDeps(log *slog.Logger, l limits) upstreamDeps {
	t := newTransport()
	// The proxies' slots keep below this; it is the backstop for the web
	// site behind base_domain.proxy.
	t.MaxConnsPerHost = l.upstreamConns
	return upstreamDeps{transport: t, h1: newH1Transport(t), buffers: newBufferPool(32 << 10), log: log, limits: l,
		slots: &upstreamSlots{size: l.upstreamConns, wait: l.upstreamWait}, budget: newBufferBudget(l)}
}

// newTransport returns the transport for every upstream this edge proxies
// to. It differs from http.DefaultTransport where a proxy needs it to:
//   - no proxy from the environment: an HTTP_PROXY meant for the host's
//     outgoing traffic must not capture loopback traffic to Dendrite;
//   - many idle connections per host: the default keeps 2, and under load
//     the proxy would then dial for nearly every request;
//   - no response-header timeout: a /sync long-poll legitimately sends no
//     headers for as long as its timeout parameter says;
//   - smaller buffers (upstreamReadBuffer, upstreamWriteBuffer).
func newTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		// Upstreams are spoken to in HTTP/1.1: Dendrite's plain listener has
		// no h2c, and a web site behind base_domain.proxy rarely does.
		ForceAttemptHTTP2: false,
		// Pass Content-Encoding through as the upstream chose it: without
		// this, the transport would ask for gzip on the client's behalf and
		// hand the client a body it decompressed itself.
		DisableCompression: true,
		ReadBufferSize:     upstreamReadBuffer,
		WriteBufferSize:    upstreamWriteBuffer,
	}
}

// A connection of http.Transport (the requests with a body, see
// h1Transport) keeps a read and a write buffer for as long as it lives; with
// the transport's 4 KiB each, they were 8 of the 37 KiB a held long-poll
// cost, before long-polls left it. h1Transport's connections take a read
// buffer of the same size from a pool only while an answer's headers and
// body are read. Neither size limits what passes: a longer header line is
// read in pieces, a longer request header is written in two, and a body
// larger than the buffer is read and written past it, straight between the
// socket and the proxy's own buffers (answerspool, requestbuffer). 2 KiB
// holds a Matrix answer's headers and a small JSON body in one read; 1 KiB
// holds a request's headers, bar a browser's rarely.
const (
	upstreamReadBuffer  = 2 << 10
	upstreamWriteBuffer = 1 << 10
)

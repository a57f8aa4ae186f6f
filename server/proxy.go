package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"syscall"
	"time"
)

// upstreamProxy forwards requests to one upstream: the homeserver (the
// Matrix APIs) or a service of routes:.
type upstreamProxy struct {
	rp      *httputil.ReverseProxy
	target  *url.URL
	trusted netList
	log     *slog.Logger
	// supervised: the upstream is a process this daemon restarts, so a
	// refused connection means "restarting", not "broken".
	supervised bool
	metrics    *metrics
	// slots are the connections to the upstream's host; wait is how long
	// a request waits for one.
	slots chan struct{}
	wait  time.Duration
	// homeserver: the upstream is the homeserver, whose answers get the
	// client API's CORS headers from the edge; a service of routes: sets
	// its own.
	homeserver bool
}

func newUpstreamProxy(target *url.URL, up upstreamDeps, trusted netList, homeserver bool) *upstreamProxy {
	p := &upstreamProxy{target: target, homeserver: homeserver, trusted: trusted, log: up.log, supervised: up.ready != nil, metrics: up.metrics,
		slots: up.slots.forHost(target.Host), wait: up.slots.wait}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: &slotTransport{next: up.h1, slots: p.slots, wait: p.wait, budget: up.budget, copies: up.buffers},
		// No periodic flushing: ReverseProxy already flushes every write of
		// a response without Content-Length (a stream) or of type
		// text/event-stream, and one with a length goes out as fast as the
		// socket takes it, a buffer at a time. A /sync long-poll sends
		// nothing until its answer is ready. FlushInterval -1 would instead
		// flush the headers from a timer goroutine and cost every response
		// an extra write: a third of the proxy's throughput, measured.
		FlushInterval:  0,
		BufferPool:     up.buffers,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(up.log.Handler(), slog.LevelDebug),
	}
	return p
}

func (p *upstreamProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.rp.ServeHTTP(w, r)
}

// rewrite keeps the request as the client sent it: the same Host, and the
// same bytes of path and query, since event and room IDs travel
// percent-encoded in paths and signatures cover them.
func (p *upstreamProxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.target)
	pr.Out.Host = pr.In.Host
	// ReverseProxy re-encodes a query it finds unusual (';', a bad escape)
	// before Rewrite runs; the edge never reads the query, so the upstream
	// gets it exactly as sent.
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	// Inbound X-Forwarded-* are already gone: add back only what a trusted
	// proxy said, then append the peer.
	if p.trusted.contains(peerAddr(pr.In)) {
		if v := pr.In.Header["X-Forwarded-For"]; v != nil {
			pr.Out.Header["X-Forwarded-For"] = v
		}
		pr.SetXForwarded()
		for _, k := range []string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := pr.In.Header[k]; v != nil {
				pr.Out.Header[k] = v
			}
		}
		return
	}
	// What other proxies and CDNs use to name the client: from a peer
	// that is not trusted, each is a claim the client made about itself.
	for _, k := range untrustedClientHeaders {
		pr.Out.Header.Del(k)
	}
	pr.SetXForwarded()
}

// untrustedClientHeaders name the client or the front end in some proxy's
// dialect; only a trusted proxy may send them on.
var untrustedClientHeaders = []string{
	"X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip",
	"X-Cluster-Client-Ip", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Ssl", "Forwarded",
}

// modifyResponse puts the client API's CORS headers on every answer,
// replacing what the upstream sent, so that they are right even when
// Dendrite errs before its own CORS middleware runs.
func (p *upstreamProxy) modifyResponse(resp *http.Response) error {
	if p.homeserver {
		setCORS(resp.Header, corsClientAPI)
	}
	dropTransportPolicy(resp.Header)
	if !p.metrics.upstreamUp.Load() {
		p.metrics.upstreamUp.Store(true)
	}
	return nil
}

// dropTransportPolicy removes an upstream's Strict-Transport-Security: the
// upstream speaks plain HTTP to the edge, and the policy for the
// browser's connection is the edge's (tls.hsts), sent once.
func dropTransportPolicy(h http.Header) {
	h.Del("Strict-Transport-Security")
}

// errorHandler answers for an upstream that could not be reached, in JSON a
// Matrix client understands. The cause goes to the log, never to the
// client: addresses and Go errors are nobody's business outside.
func (p *upstreamProxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errUpstreamBusy):
		p.metrics.proxyErrors.WithLabelValues("busy").Inc()
		p.log.Warn("no upstream connection free; answered 503", "upstream", p.target.Redacted(), "limit", cap(p.slots), "waited", p.wait)
		w.Header()["Retry-After"] = retryAfter
		writeMatrixError(w, corsClientAPI, http.StatusServiceUnavailable, codeUnknown, "The homeserver is busy; try again shortly")
		return
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody is left to answer.
		p.metrics.proxyErrors.WithLabelValues("canceled").Inc()
		p.log.Debug("client closed the request", "path", r.URL.Path)
		w.WriteHeader(499)
		return
	}
	status, msg, kind := http.StatusBadGateway, "The homeserver is not reachable", "other"
	var ne net.Error
	refused := errors.Is(err, syscall.ECONNREFUSED)
	if refused {
		kind = "refused"
		p.metrics.upstreamUp.Store(false)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		status, msg, kind = http.StatusGatewayTimeout, "The homeserver did not answer in time", "timeout"
	case p.supervised && (refused || (idempotent(r.Method) && connectionLost(err))):
		// The process died an instant ago and the supervisor has not seen
		// it yet: nothing reached it (refused), or the request can be sent
		// again without harm (a GET it died answering), so a retry once it
		// is back will work. A POST it died in the middle of stays a 502:
		// it may have been applied.
		w.Header()["Retry-After"] = retryAfter
		status, msg = http.StatusServiceUnavailable, "The homeserver is starting; try again shortly"
	}
	p.metrics.proxyErrors.WithLabelValues(kind).Inc()
	p.log.Warn("proxy error", "upstream", p.target.Redacted(), "method", r.Method, "path", r.URL.Path, "status", status, "kind", kind, "err", err)
	writeMatrixError(w, corsClientAPI, status, codeUnknown, msg)
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// connectionLost reports errors of a connection the upstream dropped.
func connectionLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

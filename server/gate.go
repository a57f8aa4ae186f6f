package server

import (
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// upstreamGate is what stands between a client and an upstream, the
// homeserver or a service of routes:, before anything is dialled: what the
// edge can answer without asking (a preflight, a homeserver that is
// restarting, a body over the limit) is answered here, so that none of it
// takes an upstream connection.
type upstreamGate struct {
	// maxBody caps request bodies, in bytes.
	maxBody int64
	// ready reports whether the supervised upstream can answer; nil: always.
	ready func() bool
	// bodyIdle ends a request whose body stops arriving for this long;
	// bodyMinRate one that trickles (bytes a second, 0 for none).
	bodyIdle    time.Duration
	bodyMinRate int64
	// buffers lend the 413 drain and the body's copy to disk their
	// buffer; budget holds request bodies until they are whole.
	buffers *bufferPool
	budget  *bufferBudget
	metrics *metrics
	log     *slog.Logger
	// homeserver: the upstream is the homeserver, whose CORS preflights the
	// edge answers; a service of routes: answers its own.
	homeserver bool
	// streamRate is the requests a second one HTTP/2 or HTTP/3 connection
	// may send on (streamBucket), h2_max_streams.
	streamRate float64
}

// retryAfter is the Retry-After of a 503 while the homeserver starts;
// retrySoon that of a 429 to a connection over its stream rate.
var (
	retryAfter = []string{"5"}
	retrySoon  = []string{"1"}
)

// wrap answers what the edge can answer itself (CORS preflights, a
// homeserver that is not ready, bodies over the limit), waits for a body to
// start, and forwards the rest to next.
func (g *upstreamGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && g.homeserver {
			// Browsers preflight every authenticated client request; the
			// answer never depends on the homeserver, so it is not asked.
			setCORS(w.Header(), corsClientAPI)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.ProtoMajor >= 2 {
			if b := streamsOf(r.Context()); b != nil && !b.take(time.Now(), 2*g.streamRate, g.streamRate) {
				w.Header()["Retry-After"] = retrySoon
				writeMatrixError(w, corsClientAPI, http.StatusTooManyRequests, codeLimited, "Too many requests on this connection; slow down")
				return
			}
		}
		if g.ready != nil && !g.ready() {
			// Answer at once: dialling a homeserver that is restarting
			// would hang the client until the dial times out.
			w.Header()["Retry-After"] = retryAfter
			writeMatrixError(w, corsClientAPI, http.StatusServiceUnavailable, codeUnknown, "The homeserver is starting; try again shortly")
			return
		}
		if r.ContentLength > g.maxBody {
			// Refused before the homeserver sees a byte of the body: an
			// oversized upload costs neither bandwidth to Dendrite nor its
			// disk.
			refuseTooLarge(w, r, g.buffers)
			return
		}
		if r.ContentLength < 0 {
			// Chunked: the size is known only while reading, so reading
			// stops at the limit, 413.
			r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
		}
		if r.ContentLength != 0 {
			body := g.bufferBody(w, r)
			if body == nil {
				return
			}
			defer body.release()
			// The homeserver is sent the body whole, with its length:
			// a chunked upload becomes a sized one.
			r.Body, r.ContentLength, r.TransferEncoding = body, body.size, nil
			// The client had its 100 Continue when its body was read;
			// the homeserver need not be asked (its own 100 would reach
			// the client as a second one).
			r.Header.Del("Expect")
		}
		next.ServeHTTP(w, r)
	})
}

// bufferBody reads r's body whole into the edge's buffers (in memory, or
// a temporary file) before anything is dialled, as nginx's
// proxy_request_buffering does: an upload, however slow, holds no upstream
// connection and no slot while it arrives, and the homeserver receives it
// at its own speed once it is complete. It answers the client and returns
// nil when the body cannot be had: a stall (408), a broken body (400), one
// over max_body (413), or no room in the buffers' budget (503).
//
// When the budget is spent, the answer is 503 with Retry-After at once,
// not a wait: the budget is held by uploads that are arriving at their
// clients' speed, which a wait of seconds rarely outlasts, and a client
// kept waiting would go on sending into a connection nobody reads; a 503
// is what the upstream cap (upstream_wait) answers too, which clients
// already retry.
func (g *upstreamGate) bufferBody(w http.ResponseWriter, r *http.Request) *bufferedBody {
	b, err := newBufferedBody(g.budget, r.ContentLength)
	if err != nil {
		g.refuseBuffer(w, r, false, err)
		return nil
	}
	body := startBody(w, r, g.bodyIdle, g.bodyMinRate)
	if body == nil {
		b.release()
		g.metrics.proxyErrors.WithLabelValues("client_body").Inc()
		return nil
	}
	buf := g.buffers.Get()
	err = b.fill(body, buf)
	g.buffers.Put(buf)
	if err == nil {
		return b
	}
	b.release()
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		g.metrics.proxyErrors.WithLabelValues("too_large").Inc()
		closeAfter(w, r)
		writeMatrixError(w, corsClientAPI, http.StatusRequestEntityTooLarge, codeTooLarge, "Request body too large")
	case errors.Is(err, errNoBufferSpace):
		g.refuseBuffer(w, r, true, err)
	default:
		// The client's body broke (a bad chunk, a stall, a cut): nothing
		// was sent on, and the answer blames the client.
		g.metrics.proxyErrors.WithLabelValues("client_body").Inc()
		g.log.Debug("request body", "path", r.URL.Path, "err", err)
		writeBodyError(w, r, err)
	}
	return nil
}

// refuseBuffer answers 503 to a body the buffers have no room for; started
// says whether its reading had begun.
func (g *upstreamGate) refuseBuffer(w http.ResponseWriter, r *http.Request, started bool, err error) {
	g.metrics.proxyErrors.WithLabelValues("buffers").Inc()
	g.log.Warn("no room to buffer a request body; answered 503", "path", r.URL.Path, "length", r.ContentLength,
		"memory", g.budget.memory.held.Load(), "disk", g.budget.disk.held.Load(), "err", err)
	w.Header()["Retry-After"] = retryAfter
	refuseBody(w, r, g.buffers, started, http.StatusServiceUnavailable, codeUnknown, "The server is busy; try again shortly")
}

package server

import (
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
	// buffers lend the 413 drain its buffer.
	buffers *bufferPool
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
			// stops at the limit and the proxy's error handler says 413.
			r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
		}
		if r.ContentLength != 0 {
			if r = startBody(w, r, g.bodyIdle, g.bodyMinRate); r == nil {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// matrixRoutes are the Matrix API paths an edge host forwards upstream.
type matrixRoutes struct {
	// client and federation are the upstream proxies; edgeClient and
	// edgeFederation wrap them with what the edge answers itself.
	client, federation         http.Handler
	edgeClient, edgeFederation http.Handler
	// maxBody caps request bodies, in bytes.
	maxBody int64
	// trusted proxies' X-Forwarded-For is believed when deciding who the
	// client is; exposeAdmin lists who may reach admin paths.
	trusted, exposeAdmin netList
	// ready reports whether the supervised upstream can answer; nil: always.
	ready func() bool
	// bodyIdle ends a request whose body stops arriving for this long.
	bodyIdle time.Duration
	// buffers lend the 413 drain its buffer.
	buffers *bufferPool
	// plain: a service of routes:, not the homeserver: CORS preflights go
	// to it rather than being answered here.
	plain bool
}

// retryAfter is the Retry-After of a 503 while the homeserver starts.
var retryAfter = []string{"5"}

func (m *matrixRoutes) init() {
	m.edgeClient, m.edgeFederation = m.edge(m.client), m.edge(m.federation)
}

// serveMatrix forwards /_matrix/... without a router: it is the busiest
// path after the documents, and a prefix test is all it needs. Federation
// paths may go to their own upstream.
func (m *matrixRoutes) serveMatrix(w http.ResponseWriter, r *http.Request) {
	if isFederationPath(r.URL.Path) {
		m.edgeFederation.ServeHTTP(w, r)
		return
	}
	m.edgeClient.ServeHTTP(w, r)
}

func isFederationPath(p string) bool {
	return strings.HasPrefix(p, "/_matrix/federation/") || strings.HasPrefix(p, "/_matrix/key/")
}

// mount adds the routes outside /_matrix/ to r; admin paths are refused
// unless the client is in expose_admin.
func (m *matrixRoutes) mount(r chi.Router) {
	r.Handle("/_synapse/client/*", m.edgeClient)
	admin := m.adminOnly(m.edgeClient)
	r.Handle("/_synapse/admin/*", admin)
	r.Handle("/_dendrite/admin/*", admin)
}

// edge answers what the edge can answer itself (CORS preflights, bodies
// over the limit) and forwards the rest.
func (m *matrixRoutes) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && !m.plain {
			// Browsers preflight every authenticated client request; the
			// answer never depends on the homeserver, so it is not asked.
			setCORS(w.Header(), corsClientAPI)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if m.ready != nil && !m.ready() {
			// Answer at once: dialling a homeserver that is restarting
			// would hang the client until the dial times out.
			w.Header()["Retry-After"] = retryAfter
			writeMatrixError(w, corsClientAPI, http.StatusServiceUnavailable, codeUnknown, "The homeserver is starting; try again shortly")
			return
		}
		if r.ContentLength > m.maxBody {
			// Refused before the homeserver sees a byte of the body: an
			// oversized upload costs neither bandwidth to Dendrite nor its
			// disk.
			refuseTooLarge(w, r, m.buffers)
			return
		}
		if r.ContentLength < 0 {
			// Chunked: the size is known only while reading, so reading
			// stops at the limit and the proxy's error handler says 413.
			r.Body = http.MaxBytesReader(w, r.Body, m.maxBody)
		}
		if r.ContentLength != 0 {
			if r = startBody(w, r, m.bodyIdle); r == nil {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// adminOnly lets through only clients listed in expose_admin: the admin
// APIs can create accounts and purge rooms, and most deployments reach them
// from the machine itself or a VPN.
func (m *matrixRoutes) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.exposeAdmin.contains(clientAddr(r, m.trusted)) {
			writeMatrixError(w, corsClientAPI, http.StatusForbidden, codeForbidden, "Admin APIs are not exposed here")
			return
		}
		next.ServeHTTP(w, r)
	})
}

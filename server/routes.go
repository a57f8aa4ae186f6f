package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// matrixRoutes are the Matrix API paths an edge host forwards upstream.
type matrixRoutes struct {
	client, federation http.Handler
	// maxBody caps request bodies, in bytes.
	maxBody int64
	// trusted proxies' X-Forwarded-For is believed when deciding who the
	// client is; exposeAdmin lists who may reach admin paths.
	trusted, exposeAdmin netList
}

// mount adds the Matrix routes to r. Federation paths may go to their own
// upstream; admin paths are refused unless the client is in expose_admin.
func (m *matrixRoutes) mount(r chi.Router) {
	client, federation := m.edge(m.client), m.edge(m.federation)
	r.Handle("/_matrix/federation/*", federation)
	r.Handle("/_matrix/key/*", federation)
	r.Handle("/_matrix/*", client)
	r.Handle("/_synapse/client/*", client)
	admin := m.adminOnly(client)
	r.Handle("/_synapse/admin/*", admin)
	r.Handle("/_dendrite/admin/*", admin)
}

// mountFederation adds only the federation paths: what listen.federation
// (8448) serves.
func (m *matrixRoutes) mountFederation(r chi.Router) {
	federation := m.edge(m.federation)
	r.Handle("/_matrix/federation/*", federation)
	r.Handle("/_matrix/key/*", federation)
}

// edge answers what the edge can answer itself (CORS preflights, bodies
// over the limit) and forwards the rest.
func (m *matrixRoutes) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			// Browsers preflight every authenticated client request; the
			// answer never depends on the homeserver, so it is not asked.
			setCORS(w.Header(), corsClientAPI)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.ContentLength > m.maxBody {
			// Refused before a byte of the body is read: an oversized
			// upload costs neither bandwidth to Dendrite nor its disk.
			writeMatrixError(w, corsClientAPI, http.StatusRequestEntityTooLarge, errTooLarge, "Request body too large")
			return
		}
		if r.ContentLength < 0 {
			// Chunked: the size is known only while reading, so reading
			// stops at the limit and the proxy's error handler says 413.
			r.Body = http.MaxBytesReader(w, r.Body, m.maxBody)
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
			writeMatrixError(w, corsClientAPI, http.StatusForbidden, errForbidden, "Admin APIs are not exposed here")
			return
		}
		next.ServeHTTP(w, r)
	})
}

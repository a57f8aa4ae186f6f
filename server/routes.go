package server

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// matrixRoutes are the Matrix API paths an edge host forwards upstream.
type matrixRoutes struct {
	// client and federation are the upstream proxies; edgeClient and
	// edgeFederation wrap them with what the edge answers itself.
	client, federation         http.Handler
	edgeClient, edgeFederation http.Handler
	// ss is the edge's sliding sync (slidingsync.go); edgeSlidingSync
	// and edgeVersions its two paths behind the gate. ss is nil in a
	// site built without a Server.
	ss                            *slidingSync
	edgeSlidingSync, edgeVersions http.Handler
	// gate answers what the edge answers itself before forwarding.
	gate upstreamGate
	// trusted proxies' X-Forwarded-For is believed when deciding who the
	// client is; exposeAdmin lists who may reach admin paths.
	trusted, exposeAdmin netList
}

func (m *matrixRoutes) init() {
	m.edgeClient, m.edgeFederation = m.gate.wrap(m.client), m.gate.wrap(m.federation)
}

// serveMatrix forwards /_matrix/... without a router: it is the busiest
// path after the documents, and a prefix test is all it needs. Federation
// paths may go to their own upstream.
func (m *matrixRoutes) serveMatrix(w http.ResponseWriter, r *http.Request) {
	if isFederationPath(r.URL.Path) {
		m.edgeFederation.ServeHTTP(w, r)
		return
	}
	if m.ss != nil && m.serveSlidingSync(w, r) {
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

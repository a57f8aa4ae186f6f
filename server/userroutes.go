package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/wellknownd/wellknownd/config"
)

// routeHandlers are the handlers of the configuration's routes:, built
// once per site.
type routeHandlers struct {
	routes   []config.Route
	handlers []http.Handler
}

// newRouteHandlers builds a proxy (with the homeserver's forwarded
// headers, body limit and JSON errors, but no CORS of the edge's) or a
// static directory for each route.
func newRouteHandlers(cfg *config.Config, up upstreamDeps) *routeHandlers {
	rh := &routeHandlers{routes: cfg.Routes}
	trusted := netList(cfg.Upstream.Trusted)
	// A route's service is not supervised: a refused connection is an
	// error, not a restart.
	serviceUp := up
	serviceUp.ready = nil
	for _, rt := range cfg.Routes {
		var h http.Handler
		if rt.Static != "" {
			h = &staticDir{dir: rt.Static, shared: up.static, compressMin: compressMin(cfg.Compression)}
			if rt.Path != "/" {
				h = http.StripPrefix(rt.Path, h)
			}
		} else {
			gate := upstreamGate{maxBody: int64(rt.MaxBody), bodyIdle: up.limits.bodyIdle, bodyMinRate: up.limits.bodyMinRate, buffers: up.buffers, budget: up.budget, metrics: up.metrics, log: up.log, streamRate: float64(up.limits.h2Streams)}
			h = gate.wrap(newUpstreamProxy(rt.Target, serviceUp, trusted, false))
		}
		rh.handlers = append(rh.handlers, h)
	}
	return rh
}

// mount adds the routes that apply to host to r, and returns the one whose
// path is "/", which serves whatever nothing else does (nil if none).
func (rh *routeHandlers) mount(r chi.Router, host string) (fallback http.Handler) {
	for i, rt := range rh.routes {
		if rt.Host != "" && rt.Host != host {
			continue
		}
		if rt.Host == "" && rh.shadowed(rt, host) {
			continue
		}
		if rt.Path == "/" {
			fallback = keepReserved(rh.handlers[i])
			continue
		}
		r.Handle(rt.Path, rh.handlers[i])
		r.Handle(rt.Path+"/*", rh.handlers[i])
	}
	return fallback
}

// shadowed says whether a route without a host overlaps one for host,
// which then wins.
func (rh *routeHandlers) shadowed(rt config.Route, host string) bool {
	for _, o := range rh.routes {
		if o.Host == host && (config.UnderPrefix(rt.Path, o.Path) || config.UnderPrefix(o.Path, rt.Path)) {
			return true
		}
	}
	return false
}

// keepReserved wraps a route whose path is "/", the one route that could
// be handed what is always the homeserver's or the documents'
// (config.ReservedPrefixes: validation refuses them to every other
// route): those paths never reach it, on any host and however they are
// encoded (the decoded path is judged). A host whose Matrix routes did not
// take the request answers 404, as a host without a route would.
func keepReserved(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range config.ReservedPrefixes {
			if config.UnderPrefix(r.URL.Path, p) {
				writeMatrixError(w, corsReadOnly, http.StatusNotFound, codeUnrecognized, "Unrecognized request")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

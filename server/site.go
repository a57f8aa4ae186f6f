package server

import (
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/wellknownd/wellknownd/config"
)

// site is everything one configuration makes of the request path: which
// hosts are answered, the rendered documents, and each host's routes. It is
// immutable once built; a reload builds a new one and swaps it in.
type site struct {
	hosts map[string]*hostRoute
	// wild maps the parent of each wildcard in hosts (example.com for
	// *.example.com) to its route: a name not in hosts that a wildcard
	// covers is served as the wildcard is.
	wild map[string]*hostRoute
	// unknown are the metrics of requests for names not in hosts.
	unknown *hostMetrics
	wk      *wellKnown
	// federation serves listen.federation, for a name in hosts: the
	// federation API only, or with listen.federation_client_api what the
	// https listener serves.
	federation func(http.ResponseWriter, *http.Request, *hostRoute)
	// logRequests is log.requests.
	logRequests bool
	// hsts is the Strict-Transport-Security header value for HTTPS answers
	// to the names in hosts, built once: every answer shares it (its
	// capacity is its length, so an append copies); nil sends none.
	hsts []string
	// compressMin is compression.min_length; 0 when compression is off.
	compressMin int
	// compressWellKnown: a discovery document is long enough to compress.
	// They rarely are, and then their requests, the hottest path, carry
	// no compression state at all.
	compressWellKnown bool
}

// hostRoute is how one name in hosts is served.
type hostRoute struct {
	metrics *hostMetrics
	// cors is the Access-Control-Allow-Methods this host advertises.
	cors corsMethods
	// matrix forwards /_matrix/ upstream; nil on a host that does not
	// serve the Matrix APIs.
	matrix *matrixRoutes
	// next serves everything else.
	next http.Handler
}

// newSite builds the site for a validated configuration.
func newSite(cfg *config.Config, up upstreamDeps, m *metrics) *site {
	mr := newMatrixRoutes(cfg.Upstream, up)
	s := &site{
		unknown:     m.forHost(hostUnknown),
		logRequests: cfg.Log.Requests,
		compressMin: compressMin(cfg.Compression),
		hosts:       make(map[string]*hostRoute, len(cfg.Hosts)),
		wild:        map[string]*hostRoute{},
		wk:          newWellKnown(cfg.Documents, cfg.Delegation.MaxAge),
	}
	if v := cfg.TLS.HSTSHeader(); v != "" {
		s.hsts = []string{v}
	}
	for _, d := range []*document{s.wk.server, s.wk.client, s.wk.support} {
		if d != nil && s.compressMin > 0 && len(d.body) >= s.compressMin {
			s.compressWellKnown = true
		}
	}
	s.federation = func(w http.ResponseWriter, r *http.Request, _ *hostRoute) {
		if !isFederationPath(r.URL.Path) {
			writeMatrixError(w, corsClientAPI, http.StatusNotFound, codeUnrecognized, "Only the federation API is served on this port")
			return
		}
		mr.edgeFederation.ServeHTTP(w, r)
	}
	if cfg.Listen.FederationClientAPI {
		// A client that logged in with a base_url on the federation port
		// (Dendrite's 8448 served both APIs) keeps it for as long as its
		// login lasts: it must find everything there that it finds on 443.
		s.federation = s.serve
	}
	base := cfg.BaseHost()
	// The base domain carries the Matrix APIs too when a client or server
	// is pointed at it: m.server or base_url names it.
	baseServesMatrix := base == cfg.DelegatedHost() || base == cfg.ClientHost()
	routes := newRouteHandlers(cfg, up)
	// Names that only routes use serve nothing else.
	routeOnly := map[string]bool{}
	for _, rt := range cfg.Routes {
		if h := rt.Host; h != "" && h != base && h != cfg.DelegatedHost() && h != cfg.ClientHost() {
			routeOnly[h] = true
		}
	}
	// A route's host that a wildcard covers is not in hosts itself, but
	// gets a route of its own.
	names := slices.Clone(cfg.Hosts)
	for _, rt := range cfg.Routes {
		if rt.Host != "" && !slices.ContainsFunc(names, func(h string) bool { return strings.EqualFold(h, rt.Host) }) {
			names = append(names, rt.Host)
		}
	}
	for _, h := range names {
		h = strings.ToLower(h)
		hr := &hostRoute{cors: corsReadOnly, metrics: m.forHost(h)}
		if config.IsWildcard(h) {
			s.wild[h[2:]] = hr
		}
		r := chi.NewRouter()
		fallbackRoute := routes.mount(r, h)
		if routeOnly[h] {
			r.NotFound(func(w http.ResponseWriter, r *http.Request) {
				writeMatrixError(w, corsReadOnly, http.StatusNotFound, codeNotFound, "Not found")
			})
			if fallbackRoute != nil {
				r.NotFound(fallbackRoute.ServeHTTP)
				r.MethodNotAllowed(fallbackRoute.ServeHTTP)
			}
			hr.next = r
			s.hosts[h] = hr
			continue
		}
		if h != base || baseServesMatrix {
			hr.cors = corsClientAPI
			hr.matrix = mr
			mr.mount(r)
		}
		if fallbackRoute != nil {
			r.NotFound(fallbackRoute.ServeHTTP)
			r.MethodNotAllowed(fallbackRoute.ServeHTTP)
		} else if h == base {
			fallback := baseDomainHandler(cfg.BaseDomain, up)
			r.NotFound(fallback.ServeHTTP)
			r.MethodNotAllowed(fallback.ServeHTTP)
		} else {
			r.NotFound(func(w http.ResponseWriter, r *http.Request) {
				writeMatrixError(w, hr.cors, http.StatusNotFound, codeUnrecognized, "Unrecognized request")
			})
		}
		hr.next = r
		s.hosts[h] = hr
	}
	return s
}

func newMatrixRoutes(u config.Upstream, up upstreamDeps) *matrixRoutes {
	m := &matrixRoutes{trusted: u.Trusted, exposeAdmin: u.Admin,
		gate: upstreamGate{maxBody: int64(u.MaxBody), ready: up.ready, bodyIdle: up.limits.bodyIdle, bodyMinRate: up.limits.bodyMinRate, buffers: up.buffers, budget: up.budget, metrics: up.metrics, log: up.log, homeserver: true,
			streamRate: float64(up.limits.h2Streams)}}
	m.client = newUpstreamProxy(u.Target, up, m.trusted, true)
	m.federation = m.client
	if u.FederationTarget != u.Target {
		m.federation = newUpstreamProxy(u.FederationTarget, up, m.trusted, true)
	}
	m.init()
	m.initSlidingSync(up.slidingSync, newUpstreamProxy(u.Target, up, m.trusted, true))
	return m
}

// lookup finds the route of a Host header: its own, else that of a
// wildcard in hosts that covers it; nil for a name hosts does not cover.
func (s *site) lookup(host string) *hostRoute {
	h := hostOnly(host)
	if hr := s.hosts[h]; hr != nil || len(s.wild) == 0 {
		return hr
	}
	// A wildcard stands for one whole label, never for "*" itself.
	if i := strings.IndexByte(h, '.'); i > 0 && h[:i] != "*" {
		return s.wild[h[i+1:]]
	}
	return nil
}

// badRequest says what makes a request unfit to route, or "". Both are
// ways past a check: a Host with a port that is not a port
// ("matrix.example.com:evil") or brackets around a name is not the name it
// resembles; and dot-segments ("/_matrix/../_synapse/admin", also as
// %2e%2e) would be resolved by the homeserver's router after the edge had
// judged the path by its prefix.
func badRequest(r *http.Request) string {
	if !validHost(r.Host) {
		return "Malformed Host header"
	}
	if hasDotSegment(r.URL.Path) {
		return "Paths with . or .. segments are not served"
	}
	return ""
}

// validHost accepts name, name:port, [IPv6] and [IPv6]:port, with a
// decimal port.
func validHost(h string) bool {
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		if a, err := netip.ParseAddr(h[1:end]); err != nil || !a.Is6() {
			return false
		}
		name, port = "", h[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i:]
	}
	if strings.ContainsAny(name, "[]") {
		return false
	}
	if port != "" {
		port = port[1:]
		if len(port) > 5 {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
	}
	return true
}

// hasDotSegment reports whether a (decoded) path has a "." or ".."
// segment.
func hasDotSegment(p string) bool {
	if !strings.Contains(p, "/.") {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// serve answers a request on the main listeners (http with tls off, and
// https). The discovery documents are served before any router runs: they
// are the hottest path and the same on every host; /_matrix/ next.
func (s *site) serve(w http.ResponseWriter, r *http.Request, hr *hostRoute) {
	if hr == nil {
		misdirected(w)
		return
	}
	if s.serveWellKnown(w, r, hr) {
		return
	}
	if hr.matrix != nil && strings.HasPrefix(r.URL.Path, "/_matrix/") {
		hr.matrix.serveMatrix(w, r)
		return
	}
	hr.next.ServeHTTP(w, r)
}

// misdirected answers a request for a name not in hosts. Never guess:
// answering (or proxying) for a name that is not ours would let anyone
// point their domain at this server.
func misdirected(w http.ResponseWriter) {
	writeMatrixError(w, corsReadOnly, http.StatusMisdirectedRequest, codeUnrecognized, "This server does not serve that host name")
}

// serveWellKnown serves the request if it is for a discovery document.
func (s *site) serveWellKnown(w http.ResponseWriter, r *http.Request, hr *hostRoute) bool {
	if !strings.HasPrefix(r.URL.Path, wellKnownPrefix) {
		return false
	}
	s.wk.serve(w, r, hr.cors)
	return true
}

// hostOnly returns the Host header's name without port or trailing dot, in
// lower case. It allocates only when the name has upper-case letters.
func hostOnly(hostport string) string {
	h := hostport
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// baseDomainHandler serves the base domain outside /.well-known/matrix/:
// a redirect, a proxy to the project's web site, or 404.
func baseDomainHandler(b config.BaseDomain, up upstreamDeps) http.Handler {
	switch {
	case b.RedirectURL != nil:
		return redirectHandler(b.RedirectURL)
	case b.ProxyURL != nil:
		return newWebProxy(b.ProxyURL, up)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeMatrixError(w, corsReadOnly, http.StatusNotFound, codeNotFound, "Not found")
	})
}

// redirectHandler sends every request to target, with the request's path
// appended to target's path and its query kept: the nginx idiom
// "return 308 https://www.example.com$request_uri".
func redirectHandler(target *url.URL) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := *target
		if r.URL.Path != "/" || u.Path == "" {
			u.Path = path.Join("/", u.Path, r.URL.Path)
			if strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(u.Path, "/") {
				u.Path += "/"
			}
		}
		u.RawPath = ""
		u.RawQuery = r.URL.RawQuery
		http.Redirect(w, r, u.String(), http.StatusPermanentRedirect)
	})
}

func compressMin(c config.Compression) int {
	if !c.Enabled {
		return 0
	}
	return max(int(c.MinLength), 1)
}

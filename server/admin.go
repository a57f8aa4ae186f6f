package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/wellknownd/wellknownd/certs"
	"github.com/wellknownd/wellknownd/supervise"
)

// adminHandler serves the admin listener: operational endpoints that must
// never be reachable from the public listeners.
func (s *Server) adminHandler() http.Handler {
	r := chi.NewRouter()
	r.Use(localOnly)
	s.probes(r)
	r.Handle("/metrics", s.m.handler())
	// POST /reload re-reads the configuration file, as SIGHUP does; the
	// answer says whether it was applied, and if not, why.
	r.Post("/reload", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.opts.reloader == nil {
			http.Error(w, "reload is not available in this process", http.StatusNotImplemented)
			return
		}
		if err := s.opts.reloader(r.Context()); err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			w.Write([]byte(err.Error() + "\n"))
			return
		}
		w.Write([]byte("reloaded\n"))
	})
	// /status is the supervised stack's state; read-only, and only here:
	// nothing about supervision is reachable from the public listeners.
	r.Get("/status", func(w http.ResponseWriter, r *http.Request) {
		doc := struct {
			UpstreamReady bool               `json:"upstream_ready"`
			Supervised    []supervise.Status `json:"supervised"`
			// TLSStorage is where certificates are kept and whether it
			// answers; absent for tls.mode files and off.
			TLSStorage *certs.StorageStatus `json:"tls_storage,omitempty"`
			// SelfCheck is the last self-check (docs/self-check.md);
			// absent while it is off or the server does not run.
			SelfCheck *selfCheckStatus `json:"self_check,omitempty"`
		}{UpstreamReady: s.upstreamReady(), Supervised: []supervise.Status{}, SelfCheck: s.checks.status()}
		if s.sup != nil {
			doc.Supervised = s.sup.Status()
		}
		if st, ok := s.storageStatus(); ok {
			doc.TLSStorage = &st
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(doc)
	})
	return r
}

// metricsHandler serves listen.metrics: GET /metrics and the health
// probes, nothing else, so that it may face a network (a Prometheus, a
// load balancer) without exposing reload or the stack's state.
func (s *Server) metricsHandler() http.Handler {
	r := chi.NewRouter()
	r.Get("/metrics", s.m.handler().ServeHTTP)
	s.probes(r)
	return r
}

// probes adds /healthz and /readyz, which the admin listener and
// listen.metrics (for a load balancer's health checks) both serve.
func (s *Server) probes(r chi.Router) {
	// /healthz answers while the process serves requests at all: a
	// liveness probe, which must not fail because Dendrite is restarting.
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
		// Still 200: a full listener is load, not a dead process, and a
		// restart would drop every connection. But say so.
		if s.conns.full() {
			fmt.Fprintf(w, "connection limit reached: %d of %d connections open on the public listeners\n", s.conns.open(), cap(s.conns.slots))
		}
	})
	// /readyz says whether traffic can be sent here: listeners up, a
	// certificate for every host, the upstream ready.
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if why := s.notReady(); len(why) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: " + strings.Join(why, "; ") + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
}

// upstreamReady: every supervised entry ready or, with nothing
// supervised, the proxy's last connection to the upstream succeeded.
func (s *Server) upstreamReady() bool {
	if s.sup != nil {
		return s.sup.Ready()
	}
	return s.m.upstreamUp.Load()
}

// notReady lists why the daemon should not get traffic; empty when it
// should.
func (s *Server) notReady() []string {
	var why []string
	if !s.serving.Load() {
		why = append(why, "listeners are not serving")
	}
	if src := s.Certificates(); src != nil {
		for _, st := range src.Status() {
			if st.NotAfter.IsZero() {
				why = append(why, "no certificate yet for "+st.Name)
			}
		}
	}
	if !s.upstreamReady() {
		why = append(why, "the homeserver is not ready")
	}
	return why
}

// localOnly guards the admin listener against the browsers of the machine
// it runs on. It has no authentication: being on loopback is its
// protection, and a web page can reach loopback two ways. By DNS rebinding
// (a name of the attacker's that resolves to 127.0.0.1) it can read
// /status and /metrics: so only a Host that is an IP address or a
// localhost name is answered, never another DNS name. By a plain form or
// fetch it can send a POST /reload: so a state-changing request that
// carries an Origin must come from the admin listener's own.
func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := hostOnly(r.Host)
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
			http.Error(w, "the admin listener answers only to IP addresses and localhost", http.StatusMisdirectedRequest)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && r.Method != http.MethodGet && r.Method != http.MethodHead && o != "http://"+r.Host {
			http.Error(w, "cross-origin requests are refused", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

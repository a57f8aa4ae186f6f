package server

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/wellknownd/wellknownd/server/supervise"
)

// adminHandler serves the admin listener: operational endpoints that must
// never be reachable from the public listeners.
func (s *Server) adminHandler() http.Handler {
	r := chi.NewRouter()
	// /healthz answers while the process serves requests at all.
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	// /status is the supervised stack's state; read-only, and only here:
	// nothing about supervision is reachable from the public listeners.
	r.Get("/status", func(w http.ResponseWriter, r *http.Request) {
		doc := struct {
			UpstreamReady bool               `json:"upstream_ready"`
			Supervised    []supervise.Status `json:"supervised"`
		}{UpstreamReady: true, Supervised: []supervise.Status{}}
		if s.sup != nil {
			doc.UpstreamReady, doc.Supervised = s.sup.Ready(), s.sup.Status()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(doc)
	})
	return r
}

package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"
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
	return r
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wellknownd/wellknownd/server/config"
)

// Server is the running edge: its listeners and the site they serve.
type Server struct {
	log *slog.Logger
	cfg *config.Config
	up  upstreamDeps
	// site is swapped whole on reload; requests load it once each.
	site atomic.Pointer[site]
}

// New builds a server for a validated configuration. It renders the
// documents and builds the routes, but does not listen yet.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{log: log, cfg: cfg, up: newUpstreamDeps(log)}
	st, err := newSite(cfg, s.up)
	if err != nil {
		return nil, err
	}
	s.site.Store(st)
	return s, nil
}

// ServeHTTP serves the current site.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.site.Load().ServeHTTP(w, r)
}

// listener is one configured listening socket and what it serves.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

// Run listens on every configured address and serves until ctx is done,
// then stops accepting, waits up to shutdown_timeout for in-flight requests
// and returns. It returns early if a listener cannot be opened or fails.
func (s *Server) Run(ctx context.Context) error {
	lns, err := s.listen()
	if err != nil {
		return err
	}
	errc := make(chan error, len(lns))
	var wg sync.WaitGroup
	for _, l := range lns {
		s.log.Info("listening", "listener", l.name, "addr", l.ln.Addr().String())
		wg.Go(func() {
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("listener %s on %s: %w", l.name, l.ln.Addr(), err)
			}
		})
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.shutdown(lns)
	wg.Wait()
	return runErr
}

func (s *Server) shutdown(lns []listener) {
	timeout := s.cfg.ShutdownTimeout.D()
	s.log.Info("shutting down", "drain_timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range lns {
		wg.Go(func() {
			if err := l.srv.Shutdown(ctx); err != nil {
				s.log.Warn("requests still running after the drain timeout were cut", "listener", l.name, "err", err)
				l.srv.Close()
			}
		})
	}
	wg.Wait()
	s.up.transport.CloseIdleConnections()
}

// listen opens every configured listener, or none: a half-started daemon
// that holds :80 but not :443 helps nobody.
func (s *Server) listen() ([]listener, error) {
	type want struct {
		name, addr string
		h          http.Handler
	}
	l := s.cfg.Listen
	wants := []want{{"http", l.HTTP, s}, {"admin", l.Admin, s.adminHandler()}}
	var lns []listener
	for _, w := range wants {
		if w.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", w.addr)
		if err != nil {
			for _, o := range lns {
				o.ln.Close()
			}
			return nil, fmt.Errorf("listen.%s: %w", w.name, err)
		}
		lns = append(lns, listener{name: w.name, ln: ln, srv: s.httpServer(w.h)})
	}
	return lns, nil
}

// httpServer sets the timeouts an Internet-facing server needs. There is no
// ReadTimeout or WriteTimeout: a media upload and a /sync long-poll may
// legitimately take minutes, and they are bounded per request instead.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

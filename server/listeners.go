package server

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wellknownd/wellknownd/config"
)

// listen opens every configured listener, or none: a half-started daemon
// that holds :80 but not :443 helps nobody.
func (s *Server) listen() ([]listener, error) {
	l := s.config().Listen
	wants := []struct{ name, addr string }{{"http", l.HTTP}, {"admin", l.Admin}, {"metrics", l.Metrics}}
	if s.config().TLS.Mode != config.TLSOff {
		wants = append(wants, struct{ name, addr string }{"https", l.HTTPS}, struct{ name, addr string }{"federation", l.Federation})
	}
	var lns []listener
	for _, w := range wants {
		if w.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", w.addr)
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("listen.%s: %w", w.name, err)
		}
		capped := w.name != "admin" && w.name != "metrics"
		if capped {
			// The admin and metrics listeners are not capped: they must
			// answer when the public ones are full.
			ln = s.conns.wrap(ln)
		}
		lns = append(lns, listener{name: w.name, ln: ln, capped: capped})
	}
	return lns, nil
}

func closeAll(lns []listener) {
	for _, l := range lns {
		l.ln.Close()
	}
}

// httpServer sets the timeouts an Internet-facing server needs. There is no
// ReadTimeout or WriteTimeout: a media upload and a /sync long-poll may
// legitimately take minutes, and they are bounded per request instead. On
// a capped listener the connection limiter bounds TLS handshakes, request
// headers and HTTP/1 idleness (sweepHeaders), and each write
// (send_timeout); the others keep net/http's ReadHeaderTimeout.
func (s *Server) httpServer(h http.Handler, capped bool) *http.Server {
	rht := headerTimeout
	if capped {
		rht = 0
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: rht,
		IdleTimeout:       cmp.Or(s.opts.idleTimeout, 120*time.Second),
		MaxHeaderBytes:    64 << 10,
		// One HTTP/2 connection must not be a way around the connection
		// limit: its streams are requests, each may hold an upstream slot.
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: s.up.limits.h2Streams},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// What the connection limiter needs to evict waiting connections
		// first (a no-op on the admin and metrics listeners).
		ConnState:   connState,
		ConnContext: connContext,
	}
}

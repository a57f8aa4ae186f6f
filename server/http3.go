package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// HTTP/3 over QUIC on the UDP ports of the TLS listeners (https and
// federation): the same handler, the same certificates (the certificate
// source's GetCertificate, so renewals reach it as they reach TCP), and an
// Alt-Svc header on the HTTP/1 and HTTP/2 answers that tells browsers it
// is there. Clients on lossy mobile networks gain most: no head-of-line
// blocking between streams, and connections that survive a change of
// network.

// quicIdle bounds a QUIC connection without traffic, as IdleTimeout does
// for TCP. The server sends a PING every quicKeepAlive while a connection
// is open: many home routers and mobile carriers forget a UDP mapping after
// 30 s of silence, which a /sync long-poll (30 s and more with nothing
// sent) would otherwise reach; a client that has gone stops acknowledging
// the PINGs and is dropped at quicIdle.
const (
	quicIdle      = 2 * time.Minute
	quicKeepAlive = 15 * time.Second
)

// h3Listener is the UDP twin of one TLS listener.
type h3Listener struct {
	name string
	pc   net.PacketConn
	// tr is the QUIC transport on pc, once serving.
	tr  *quic.Transport
	srv *http3.Server
}

// listenHTTP3 opens a UDP socket on the address and port of each TLS
// listener; all or none.
func (s *Server) listenHTTP3(lns []listener) ([]h3Listener, error) {
	if !s.config().Listen.HTTP3 {
		return nil, nil
	}
	var out []h3Listener
	for _, l := range lns {
		if l.name != "https" && l.name != "federation" {
			continue
		}
		pc, err := net.ListenPacket("udp", l.ln.Addr().String())
		if err != nil {
			for _, o := range out {
				o.pc.Close()
			}
			return nil, fmt.Errorf("listen.%s (HTTP/3, UDP): %w", l.name, err)
		}
		out = append(out, h3Listener{name: l.name, pc: pc})
	}
	return out, nil
}

// serveHTTP3 starts the HTTP/3 servers for the TLS listeners whose UDP
// sockets listenHTTP3 opened.
func (s *Server) serveHTTP3(h3s []h3Listener, lns []listener, errc chan<- error) {
	tcp := map[string]*listener{}
	for i := range lns {
		tcp[lns[i].name] = &lns[i]
	}
	// One cap for both UDP sockets, as one for the TCP listeners.
	ql := newQUICLimiter(cap(s.conns.slots), s.m)
	for i := range h3s {
		h := &h3s[i]
		l := tcp[h.name]
		tlsConf := http3.ConfigureTLSConfig(l.srv.TLSConfig.Clone())
		quicConf := &quic.Config{
			MaxIdleTimeout:     quicIdle,
			KeepAlivePeriod:    quicKeepAlive,
			MaxIncomingStreams: int64(s.up.limits.h2Streams),
			Allow0RTT:          false, // replayable requests are not worth one round trip
		}
		h.tr = ql.transport(h.pc)
		ln, err := h.tr.Listen(tlsConf, quicConf)
		if err != nil {
			errc <- fmt.Errorf("listener %s (HTTP/3) on %s: %w", h.name, h.pc.LocalAddr(), err)
			continue
		}
		h.srv = &http3.Server{Handler: ql.track(l.srv.Handler), TLSConfig: tlsConf, QUICConfig: quicConf,
			MaxHeaderBytes: l.srv.MaxHeaderBytes, IdleTimeout: l.srv.IdleTimeout}
		s.log.Info("listening", "listener", h.name, "addr", h.pc.LocalAddr().String(), "protocol", "h3")
		go func() {
			if err := h.srv.ServeListener(ql.listener(ln)); err != nil && err != http.ErrServerClosed && err != quic.ErrServerClosed {
				errc <- fmt.Errorf("listener %s (HTTP/3) on %s: %w", h.name, h.pc.LocalAddr(), err)
			}
		}()
	}
}

// shutdownHTTP3 lets in-flight HTTP/3 requests finish within ctx, then
// closes the sockets.
func shutdownHTTP3(ctx context.Context, h3s []h3Listener) {
	for _, h := range h3s {
		if h.srv != nil {
			if err := h.srv.Shutdown(ctx); err != nil {
				h.srv.Close()
			}
		}
		if h.tr != nil {
			// Closes its listener and whatever connection is left; the
			// socket is not the transport's to close.
			h.tr.Close()
		}
		h.pc.Close()
	}
}

// altSvc advertises HTTP/3 on port in the answers of a TCP listener.
func altSvc(next http.Handler, port int) http.Handler {
	v := []string{`h3=":` + strconv.Itoa(port) + `"; ma=86400`}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor < 3 {
			w.Header()["Alt-Svc"] = v
		}
		next.ServeHTTP(w, r)
	})
}

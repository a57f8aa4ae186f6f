package server

import (
	"github.com/wellknownd/wellknownd/certs"
	"github.com/wellknownd/wellknownd/config"
)

// The certificates of the TLS listeners: which source tls.mode builds,
// and the one in force.

// Certificates is the certificate source while Run runs, else nil.
func (s *Server) Certificates() certs.Source {
	if p := s.certs.Load(); p != nil {
		return *p
	}
	return nil
}

// newCertificates builds the source tls.mode names (nil when TLS is off),
// told where the listeners answer ACME challenges, and makes it the one
// in force.
func (s *Server) newCertificates(lns []listener) (certs.Source, error) {
	if s.config().TLS.Mode == config.TLSOff {
		return nil, nil
	}
	opts := certs.Options{
		TLS: s.config().TLS, Hosts: s.config().Hosts, Log: s.log.With("component", "certs"),
		DNSProvider: s.opts.dnsProvider, PollInterval: s.opts.pollInterval, RenewCheckInterval: s.opts.renewCheck, DisableARI: s.opts.renewCheck != 0,
		OnEvent: func(event string) {
			s.m.certEvents.WithLabelValues(event).Inc()
			if event == "obtained" || event == "renewed" {
				// A new certificate is served: check it as the world sees it.
				s.checks.Trigger()
			}
		},
	}
	for _, l := range lns {
		switch l.name {
		case "http":
			opts.HTTPAddr = l.ln.Addr().String()
		case "https":
			opts.TLSAddr = l.ln.Addr().String()
		}
	}
	src, err := certs.New(opts)
	if err != nil {
		return nil, err
	}
	s.certs.Store(&src)
	return src, nil
}

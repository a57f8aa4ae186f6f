package server

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wellknownd/wellknownd/fedcheck"
)

// selfCheck runs "wellknownd check" against this daemon once it is ready,
// with the server name and the delegated host resolved to its own
// listeners: it finds what this machine can find of a broken deployment
// (a certificate for the wrong name, keys for the wrong server) without
// waiting for a remote server to fail. Reachability from the Internet is
// "wellknownd check" run from elsewhere.
func (s *Server) selfCheck(ctx context.Context, httpsAddr, fedAddr string) {
	deadline := time.Now().Add(2 * time.Minute)
	for len(s.notReady()) > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	cfg := s.config()
	base, deleg := cfg.Name, cfg.Delegation.Delegated
	if httpsAddr == "" {
		return
	}
	resolve := map[string]string{net.JoinHostPort(base.Host, "443"): httpsAddr}
	port := deleg.Port
	if port == 0 {
		port = 8448
	}
	target := httpsAddr
	if port == 8448 && fedAddr != "" {
		target = fedAddr
	}
	resolve[net.JoinHostPort(deleg.Host, strconv.Itoa(port))] = target
	resolve[net.JoinHostPort(deleg.Host, "443")] = httpsAddr
	opts := fedcheck.Options{Resolve: resolve, Timeout: 10 * time.Second}
	if src := s.Certificates(); src != nil {
		opts.Roots = src.Roots()
	}
	report := fedcheck.RunName(ctx, base, opts)
	var failed []string
	for _, c := range report.Checks {
		if c.Skipped {
			continue
		}
		s.m.selfCheck.With(prometheus.Labels{"check": c.Name}).Set(bool01(c.OK))
		if !c.OK {
			failed = append(failed, c.Name+": "+c.Cause)
			s.log.Warn("self-check: failed", "check", c.Name, "cause", c.Cause, "fix", c.Fix)
		}
	}
	if len(failed) == 0 {
		s.log.Info("self-check: every check passed", "checks", len(report.Checks))
		return
	}
	s.log.Warn("self-check: some checks failed", "failed", len(failed), "summary", strings.Join(failed, "; "))
}

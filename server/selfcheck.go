package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wellknownd/wellknownd/config"
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
	// Each host:port the documents name goes to the listener that has
	// that port; one that no listener has is connected to as a remote
	// server would (DNS), and must turn out to be this edge, through a
	// port mapping or a load balancer.
	at := listenerAt(cfg.Listen, httpsAddr, fedAddr)
	resolve := map[string]string{net.JoinHostPort(base.Host, "443"): httpsAddr}
	port := deleg.Port
	if port == 0 {
		port = 8448
	}
	fedDest := net.JoinHostPort(deleg.Host, strconv.Itoa(port))
	remote := at(port) == ""
	if !remote {
		resolve[fedDest] = at(port)
	}
	if _, set := resolve[net.JoinHostPort(deleg.Host, "443")]; !set {
		resolve[net.JoinHostPort(deleg.Host, "443")] = httpsAddr
	}
	if u := cfg.Delegation.BaseURL; u != nil {
		p := 443
		if n, err := strconv.Atoi(u.Port()); err == nil {
			p = n
		}
		if addr := at(p); addr != "" {
			resolve[net.JoinHostPort(u.Hostname(), strconv.Itoa(p))] = addr
		}
	}
	opts := fedcheck.Options{Resolve: resolve, Timeout: 10 * time.Second}
	if src := s.Certificates(); src != nil {
		opts.Roots = src.Roots()
	}
	report := fedcheck.RunName(ctx, base, opts)
	if remote {
		report.Checks = append(report.Checks, thisEdgeAt(ctx, fedDest, deleg.Host, httpsAddr, opts))
	}
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

// listenerAt returns the address of the listener that serves a port the
// documents name, "" when none does. 443 and 8448 are the https and
// federation listeners wherever they listen (a listener elsewhere is
// behind a mapping of the standard port); another port is the listener
// configured on it. With a port chosen at start (":0"), which listener a
// public port reaches cannot be told: https, as a remote server would use
// it.
func listenerAt(l config.Listen, httpsAddr, fedAddr string) func(port int) string {
	hp, fp := configuredPort(l.HTTPS), configuredPort(l.Federation)
	return func(port int) string {
		switch {
		case port == 443 && hp >= 0:
			return httpsAddr
		case port == 8448 && fp >= 0 && fedAddr != "":
			return fedAddr
		case hp > 0 && port == hp:
			return httpsAddr
		case fp > 0 && port == fp && fedAddr != "":
			return fedAddr
		case hp == 0 || fp == 0:
			return httpsAddr
		}
		return ""
	}
}

// configuredPort is a listen address's port: 0 when chosen at start, -1
// when the listener is off.
func configuredPort(addr string) int {
	if addr == "" {
		return -1
	}
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// thisEdgeAt connects to dest as a remote server would and checks that
// this edge answered there: the certificate served for host is the one
// this edge serves for it at ownAddr.
func thisEdgeAt(ctx context.Context, dest, host, ownAddr string, opts fedcheck.Options) fedcheck.Check {
	name := "this edge at " + dest
	fix := "m.server names a port that no listener of this edge has: send it here (a port mapping or a load balancer), or name 443 or listen.federation's port"
	leaf := func(addr string) ([32]byte, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: opts.Timeout}, Config: &tls.Config{ServerName: host, RootCAs: opts.Roots}}
		ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return [32]byte{}, err
		}
		defer c.Close()
		return sha256.Sum256(c.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw), nil
	}
	own, err := leaf(ownAddr)
	if err != nil {
		return fedcheck.Check{Name: name, Cause: fmt.Sprintf("this edge's own certificate for %s: %v", host, err), Fix: fix}
	}
	there, err := leaf(dest)
	switch {
	case err != nil:
		return fedcheck.Check{Name: name, Cause: "nothing serves TLS for " + host + " there: " + err.Error(), Fix: fix}
	case there != own:
		return fedcheck.Check{Name: name, Cause: "another server answers there: its certificate for " + host + " is not this edge's", Fix: fix}
	}
	return fedcheck.Check{Name: name, OK: true, Detail: "this edge answers there (through a port mapping or a load balancer)"}
}

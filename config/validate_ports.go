package config

import (
	"net"
	"strconv"
	"strings"
)

// validate_ports.go checks that what the documents promise is served where
// they promise it: a server name with a port is never delegated, and every
// port that m.server or base_url names should be one of this edge's
// listeners that serves what the document sends there.

// validateServerNamePort refuses a delegation that no server reads: the
// spec's resolution stops at an explicit port (or an IP literal) and
// connects there, without /.well-known/matrix/server.
func (v *validator) validateServerNamePort() {
	c := v.cfg
	n, d := c.Name, c.Delegation.Delegated
	if n.Host == "" || d.Host == "" || (n.Port == 0 && !n.IP.IsValid()) {
		return
	}
	if strings.EqualFold(n.Host, d.Host) && n.Port == d.Port {
		return
	}
	what := "an explicit port"
	if n.Port == 0 {
		what = "an IP address"
	}
	v.errf("server_name", "%q has %s, so it is never delegated: remote servers connect to it directly and never read /.well-known/matrix/server, and delegation.server %q would be dead weight while federation goes to %s. The server name cannot change (it is in every user ID): set delegation.server to %q",
		c.ServerName, what, c.Delegation.Server, c.ServerName, c.ServerName)
}

// validateServedPorts warns when m.server or base_url names a port that no
// listener of this edge serves for that document's traffic. It is a
// warning: a port mapping or a load balancer in front may send that port
// to one of the listeners.
func (v *validator) validateServedPorts() {
	c := v.cfg
	if (c.TLS.Mode != TLSACME && c.TLS.Mode != TLSFiles && c.TLS.Mode != TLSInternal) || (c.Listen.HTTPS == "" && c.Listen.Federation == "") {
		// With tls.mode off, plain HTTP is behind whatever terminates TLS,
		// whose ports are not this file's; the other cases are errors of
		// their own.
		return
	}
	https, httpsKnown := listenPort(c.Listen.HTTPS)
	fed, fedKnown := listenPort(c.Listen.Federation)
	if !httpsKnown || !fedKnown {
		return
	}
	listeners := func() string {
		return "listen.https is " + strconv.Quote(c.Listen.HTTPS) + ", listen.federation " + strconv.Quote(c.Listen.Federation)
	}
	if dh := c.DelegatedHost(); dh != "" && HostEntry(c.Hosts, dh) != "" {
		port := c.Delegation.Delegated.Port
		if port == 0 {
			port = 8448
		}
		// Both TLS listeners serve the federation API.
		if port != https && port != fed {
			v.warnf("delegation.server", "names port %d, which no listener of this edge serves (%s): remote servers connect to %s:%d; fine only if a port mapping or a load balancer sends that port here",
				port, listeners(), dh, port)
		}
	}
	if ch := c.ClientHost(); ch != "" && HostEntry(c.Hosts, ch) != "" {
		port := 443
		if p, err := strconv.Atoi(c.Delegation.BaseURL.Port()); err == nil {
			port = p
		}
		switch {
		case port == https && https != 0:
		case port == fed && c.Listen.FederationClientAPI:
		case port == fed:
			v.warnf("delegation.client_base_url", "names port %d, which is listen.federation, and that serves the federation API only: every client that logged in with this base_url gets 404 there. Set listen.federation_client_api: true", port)
		default:
			v.warnf("delegation.client_base_url", "names port %d, which no listener of this edge serves (%s): clients connect to %s:%d; fine only if a port mapping or a load balancer sends that port here",
				port, listeners(), ch, port)
		}
	}
}

// listenPort is the port a listen address binds: 0 when it is off ("").
// known is false for a port chosen at start (":0") or an address that does
// not parse (reported elsewhere): which port serves then cannot be told.
func listenPort(addr string) (port int, known bool) {
	if addr == "" {
		return 0, true
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(p)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

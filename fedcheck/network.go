package fedcheck

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// How the checks reach the network: the system's resolver and dialer,
// unless Options replace them (the self-check of a test, whose names
// point at loopback listeners).

// dial connects to addr (host:port): through Options.Dial when set; a
// host name is looked up first (Options.LookupIP), each address tried in
// turn, as a remote server would.
func (c *checker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	dial := c.opts.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: c.opts.Timeout}
		dial = d.DialContext
	}
	if _, err := netip.ParseAddr(host); err == nil || c.opts.LookupIP == nil {
		return dial(ctx, network, addr)
	}
	ips, err := c.lookupHost(ctx, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var first error
	for _, ip := range ips {
		conn, err := dial(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		first = cmpErr(first, err)
	}
	if first == nil {
		first = &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("no address for %s", host)}
	}
	return nil, first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// dialTLS connects to addr and completes a TLS handshake with conf.
func (c *checker) dialTLS(ctx context.Context, addr string, conf *tls.Config) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	raw, err := c.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, conf)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// lookupFamily returns host's addresses of one family: network "ip4" (A
// records) or "ip6" (AAAA). A name that has none of that family is no
// error: nil, nil.
func (c *checker) lookupFamily(ctx context.Context, network, host string) ([]netip.Addr, error) {
	var ips []netip.Addr
	var err error
	if c.opts.LookupIP != nil {
		ips, err = c.opts.LookupIP(ctx, network, host)
	} else {
		ips, err = c.resolver.LookupNetIP(ctx, network, host)
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if (network == "ip4") == ip.Is4() {
			out = append(out, ip)
		}
	}
	return out, nil
}

// lookupHost returns host's addresses of both families, IPv4 first.
func (c *checker) lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	v4, err4 := c.lookupFamily(ctx, "ip4", host)
	v6, err6 := c.lookupFamily(ctx, "ip6", host)
	all := append(v4, v6...)
	if len(all) == 0 {
		if err := cmpErr(err4, err6); err != nil {
			return nil, err
		}
		return nil, &net.DNSError{Err: "no A or AAAA record", Name: host, IsNotFound: true}
	}
	return all, nil
}

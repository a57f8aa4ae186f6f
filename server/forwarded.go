package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// netList is a set of CIDRs: trusted proxies, or who may reach admin paths.
type netList []netip.Prefix

func (l netList) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address of the TCP peer: the only one that cannot be
// forged by a header.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// clientAddr is who sent the request. It is the peer, unless the peer is a
// trusted proxy: then X-Forwarded-For is read from the right, skipping
// trusted hops, and the first untrusted address is the client. Reading from
// the left would let a client choose its own address by sending the header.
//
// Trust fails closed: a hop that is not a bare IP address ("unknown", an
// obfuscated name, "6.6.6.6:4711", an empty one) makes the client unknown,
// the zero Addr, which no list contains. Returning the last trusted hop
// instead would let anyone behind the proxy pass as the proxy itself.
func clientAddr(r *http.Request, trusted netList) netip.Addr {
	peer := peerAddr(r)
	if !trusted.contains(peer) {
		return peer
	}
	client := peer
	xff := r.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return netip.Addr{}
			}
			client = a.Unmap()
			if !trusted.contains(client) {
				return client
			}
		}
	}
	return client
}

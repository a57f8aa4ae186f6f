// Package dnstest runs DNS servers on loopback for tests, and resolvers
// and clients that use them instead of the machine's: no test looks a name
// up beyond this machine.
package dnstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/miekg/dns"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// nxDomain answers every question with NXDOMAIN.
var nxDomain = dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeNameError)
	w.WriteMsg(m)
})

// StartNXDomain runs, until stop is called, a DNS server on loopback that
// knows no name: SRV and address lookups fail at once, as for a domain
// without such records. Its sockets are open when it returns, so a
// TestMain can point net.DefaultResolver at it before any test runs.
func StartNXDomain() (addr string, stop func(), err error) {
	// The kernel picks a free UDP port; the same number over TCP may be
	// taken meanwhile (another package's tests run beside these), so a few
	// ports are tried.
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return "", nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return "", nil, err
	}
	udp := &dns.Server{PacketConn: pc, Handler: nxDomain}
	tcp := &dns.Server{Listener: ln, Handler: nxDomain}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	return pc.LocalAddr().String(), func() { udp.Shutdown(); tcp.Shutdown() }, nil
}

// Serve runs h over UDP and TCP on a free loopback port until the test
// ends, and returns its address.
func Serve(t testing.TB, h dns.Handler) string {
	t.Helper()
	addr := freeport.Addr(t)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: addr, Net: network, Handler: h}
		go srv.ListenAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	wait.TCP(t, addr)
	return addr
}

// Resolver is a Go resolver that asks only the DNS server at addr.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
}

// PinnedClient is an HTTP client that trusts only roots and connects
// every request to addr, whatever the URL's host: what a remote peer does
// once DNS points the name at this machine.
func PinnedClient(roots *x509.CertPool, addr string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// RunIsolated is a TestMain body: it points net.DefaultResolver at a DNS
// server on loopback that knows no name before any test starts (so nothing
// races with the change), runs the tests and returns their exit code. The
// tests' example.com and friends are then never looked up beyond this
// machine; names in /etc/hosts still resolve.
func RunIsolated(m *testing.M) int {
	addr, stop, err := StartNXDomain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test DNS server:", err)
		return 1
	}
	defer stop()
	net.DefaultResolver = Resolver(addr)
	return m.Run()
}

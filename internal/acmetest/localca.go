package acmetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wellknownd/wellknownd/internal/freeport"
)

// LocalCA is a throwaway CA for servers that stand in for misconfigured
// ones: a certificate for the wrong name, a server without CORS.
type LocalCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewLocalCA makes a root valid for a day.
func NewLocalCA(t testing.TB) *LocalCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "acmetest local CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &LocalCA{cert: cert, key: key}
}

// PEM is the root, for a -ca-file.
func (ca *LocalCA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// Issue makes a leaf for names.
func (ca *LocalCA) Issue(t testing.TB, names ...string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Serve runs h over TLS with a certificate for names, on loopback.
func (ca *LocalCA) Serve(t testing.TB, h http.Handler, names ...string) string {
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, names...)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// nxDomain answers every question with NXDOMAIN.
var nxDomain = dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeNameError)
	w.WriteMsg(m)
})

// StartNXDomain runs, until stop is called, a DNS server on loopback that
// knows no name: SRV and address lookups fail at once, as for a domain
// without such records. Its sockets are open when it returns, so a
// TestMain can point net.DefaultResolver at it before any test runs (and
// tests never look names up beyond this machine).
func StartNXDomain() (addr string, stop func(), err error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return "", nil, err
	}
	udp := &dns.Server{PacketConn: pc, Handler: nxDomain}
	tcp := &dns.Server{Listener: ln, Handler: nxDomain}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	return pc.LocalAddr().String(), func() { udp.Shutdown(); tcp.Shutdown() }, nil
}

// serveDNS runs h over UDP and TCP on a free loopback port until the test ends.
func serveDNS(t testing.TB, h dns.Handler) string {
	addr := freeport.Addr(t)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: addr, Net: network, Handler: h}
		go srv.ListenAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	waitTCP(t, addr)
	return addr
}

// Resolver is a Go resolver that asks only the DNS server at addr.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
}

// RootPEM is Pebble's issuing root, for a -ca-file.
func (c *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.ca.GetRootCert(0).Cert.Raw})
}

package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/acmetest"
	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

var acmeHosts = []string{"example.com", "matrix.example.com"}

// acmeConfig is the edge in tls.mode acme against ca, by challenges (the
// items of a YAML list), resolving names through ca's DNS server; dns are
// further fields of tls.dns.
func acmeConfig(ca *acmetest.CA, httpPort, tlsPort int, storage, challenges string, dns ...string) string {
	return edgeconf.New(
		edgeconf.Listen(fmt.Sprintf("127.0.0.1:%d", httpPort), fmt.Sprintf("127.0.0.1:%d", tlsPort), "", ""),
		edgeconf.ACME(ca.DirectoryURL, ca.APIRootFile, storage,
			"challenges: ["+challenges+"]",
			"dns: {"+strings.Join(append(dns, fmt.Sprintf("resolvers: [%q]", ca.ResolverAddr)), ", ")+"}"),
		edgeconf.Upstream("http://127.0.0.1:1"))
}

func TestACMEObtainHTTP01(t *testing.T)    { testACMEObtain(t, "http-01") }
func TestACMEObtainTLSALPN01(t *testing.T) { testACMEObtain(t, "tls-alpn-01") }

func testACMEObtain(t *testing.T, challenge string) {
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.Start(t, httpPort, tlsPort)
	startEdge(t, acmeConfig(ca, httpPort, tlsPort, t.TempDir(), challenge), onListeners)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	for _, h := range acmeHosts {
		leaf := waitCert(t, tlsAddr, h, ca.Roots())
		if leaf.VerifyHostname(h) != nil {
			t.Fatalf("certificate for %s names %v", h, leaf.DNSNames)
		}
	}
	// No certificate for a name that is not in hosts: no on-demand issuance.
	if _, err := handshake(tlsAddr, "other.example.net", ca.Roots()); err == nil {
		t.Fatal("a certificate was served for a name not in hosts")
	}
	// And the documents come over the verified connection.
	c := dnstest.PinnedClient(ca.Roots(), tlsAddr)
	resp, err := c.Get("https://example.com/.well-known/matrix/server")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"m.server":"matrix.example.com:443"}` {
		t.Fatalf("over https: %s", b)
	}
	// Plain HTTP redirects to https, but still answers the documents.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/_matrix/client/versions?x=1", httpPort), nil)
	req.Host = "matrix.example.com"
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := fmt.Sprintf("https://matrix.example.com:%d/_matrix/client/versions?x=1", tlsPort); resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Fatalf("http: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	req, _ = http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/.well-known/matrix/client", httpPort), nil)
	req.Host = "example.com"
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("well-known over http: %d", resp.StatusCode)
	}
}

// TestACMERenewRestartAndOutage: a forced renewal reaches the live listener
// without dropping an open connection; a CA outage at renewal time leaves
// the current certificate serving; a restart with the CA off serves the
// stored certificate.
func TestACMERenewRestartAndOutage(t *testing.T) {
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.Start(t, httpPort, tlsPort)
	storage := t.TempDir()
	cfg := acmeConfig(ca, httpPort, tlsPort, storage, "http-01, tls-alpn-01")
	edge := startEdge(t, cfg, onListeners)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	waitCert(t, tlsAddr, "example.com", ca.Roots())
	first := waitCert(t, tlsAddr, "matrix.example.com", ca.Roots())

	// A keep-alive connection opened before the renewal.
	conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "example.com", RootCAs: ca.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	get := func() string {
		fmt.Fprintf(conn, "GET /.well-known/matrix/server HTTP/1.1\r\nHost: example.com\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("keep-alive connection: %v", err)
		}
		return string(buf[:n])
	}
	if !strings.HasPrefix(get(), "HTTP/1.1 200") {
		t.Fatal("first request on the kept connection failed")
	}
	if err := edge.srv.Certificates().Renew(context.Background()); err != nil {
		t.Fatalf("forced renewal: %v", err)
	}
	renewed := waitCert(t, tlsAddr, "matrix.example.com", ca.Roots())
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("new handshakes still see serial %s after renewal", first.SerialNumber)
	}
	if !strings.HasPrefix(get(), "HTTP/1.1 200") {
		t.Fatal("the connection opened before the renewal was dropped")
	}

	// The CA goes down; renewal fails; the renewed certificate stays.
	ca.Stop()
	if err := edge.srv.Certificates().Renew(context.Background()); err == nil {
		t.Fatal("renewal succeeded with the CA down")
	}
	still, err := handshake(tlsAddr, "matrix.example.com", ca.Roots())
	if err != nil || still.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("after a failed renewal: %v, serial %v (want %s)", err, still, renewed.SerialNumber)
	}
	edge.stop()

	// Restart with the CA still off: the stored certificate is served.
	startEdge(t, cfg, onListeners)
	restarted := waitCert(t, tlsAddr, "matrix.example.com", ca.Roots())
	if restarted.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("after restart serial %s, want the stored %s", restarted.SerialNumber, renewed.SerialNumber)
	}
}

package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/acmetest"
	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

var acmeHosts = []string{"example.com", "matrix.example.com"}

func acmeConfig(ca *acmetest.CA, httpPort, tlsPort int, storage, challenges string) string {
	return fmt.Sprintf(`server_name: example.com
delegation:
  server: matrix.example.com:443
  client_base_url: https://matrix.example.com
hosts: [example.com, matrix.example.com]
listen: {http: "127.0.0.1:%d", https: "127.0.0.1:%d", federation: "", admin: ""}
tls:
  mode: acme
  email: admin@example.com
  ca: %s
  ca_root: %s
  storage: %s
  challenges: [%s]
  dns: {resolvers: ["%s"]}
upstream: {url: "http://127.0.0.1:1"}
`, httpPort, tlsPort, ca.DirectoryURL, ca.APIRootFile, storage, challenges, ca.ResolverAddr)
}

// runEdge starts a Server on cfgYAML and stops it when the test ends.
func runEdge(t testing.TB, cfgYAML string, opts ...Option) (*Server, func()) {
	t.Helper()
	cfg, problems := config.Parse("acme.yaml", []byte(cfgYAML))
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatalf("config: %v", errs)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("server did not stop")
		}
	}
	t.Cleanup(stop)
	return srv, stop
}

// handshake connects to addr with SNI name, trusting only roots, and
// returns the verified leaf.
func handshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 3 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitCert waits until addr serves a certificate for name that verifies
// against roots, and returns it.
func waitCert(t testing.TB, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	wait.Until(t, "a valid certificate for "+name+" on "+addr, 60*time.Second, func() (err error) {
		leaf, err = handshake(addr, name, roots)
		return err
	})
	return leaf
}

func TestACMEObtainHTTP01(t *testing.T)    { testACMEObtain(t, "http-01") }
func TestACMEObtainTLSALPN01(t *testing.T) { testACMEObtain(t, "tls-alpn-01") }

func testACMEObtain(t *testing.T, challenge string) {
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.Start(t, httpPort, tlsPort)
	runEdge(t, acmeConfig(ca, httpPort, tlsPort, t.TempDir(), challenge))
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

func TestACMEObtainDNS01(t *testing.T) {
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.Start(t, httpPort, tlsPort)
	provider := ca.Provider()
	// The config names Cloudflare, as a user's would; the test's DNS server
	// stands in for its API through the same libdns interface.
	token := t.TempDir() + "/token"
	os.WriteFile(token, []byte("unused"), 0o600)
	cfg := strings.Replace(acmeConfig(ca, httpPort, tlsPort, t.TempDir(), "dns-01"), "dns: {", "dns: {provider: cloudflare, api_token_file: "+token+", ", 1)
	runEdge(t, cfg, WithDNSProvider(provider))
	for _, h := range acmeHosts {
		waitCert(t, fmt.Sprintf("127.0.0.1:%d", tlsPort), h, ca.Roots())
	}
	if n := provider.TXTWrites(); n < len(acmeHosts) {
		t.Fatalf("dns-01 wrote %d TXT records for %d names", n, len(acmeHosts))
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
	srv, stop := runEdge(t, cfg)
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
	if err := srv.Certificates().Renew(context.Background()); err != nil {
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
	if err := srv.Certificates().Renew(context.Background()); err == nil {
		t.Fatal("renewal succeeded with the CA down")
	}
	still, err := handshake(tlsAddr, "matrix.example.com", ca.Roots())
	if err != nil || still.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("after a failed renewal: %v, serial %v (want %s)", err, still, renewed.SerialNumber)
	}
	stop()

	// Restart with the CA still off: the stored certificate is served.
	runEdge(t, cfg)
	restarted := waitCert(t, tlsAddr, "matrix.example.com", ca.Roots())
	if restarted.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("after restart serial %s, want the stored %s", restarted.SerialNumber, renewed.SerialNumber)
	}
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
)

// internalConfig is localhost with the local CA (kept in storage) on every
// listener, changed by opts.
func internalConfig(storage string, opts ...edgeconf.Option) string {
	return edgeconf.New(append([]edgeconf.Option{
		edgeconf.Names("localhost", "localhost:8448", "https://localhost"),
		edgeconf.Hosts("localhost"),
		edgeconf.Listen("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"),
		edgeconf.Internal(storage),
	}, opts...)...)
}

var rootRE = regexp.MustCompile(`root=(\S+)`)

// TestInternalModeCurl is the README's quick start: the printed root is all
// curl needs to verify the served document.
func TestInternalModeCurl(t *testing.T) {
	storage := t.TempDir()
	d := startDaemon(t, internalConfig(storage), "http", "https", "federation")
	m := rootRE.FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("the internal CA's root path was not logged:\n%s", d.stderr)
	}
	root := m[1]
	if !strings.HasPrefix(root, storage) {
		t.Fatalf("root %s is not under storage %s", root, storage)
	}
	_, port, _ := net.SplitHostPort(d.addrs["https"])
	out, err := exec.Command("curl", "-sS", "--fail", "--cacert", root, "https://localhost:"+port+"/.well-known/matrix/client").CombinedOutput()
	if err != nil {
		t.Fatalf("curl --cacert %s: %v\n%s", root, err, out)
	}
	if string(out) != `{"m.homeserver":{"base_url":"https://localhost"}}` {
		t.Fatalf("curl got %s", out)
	}
	// Without the root, curl refuses the certificate.
	if out, err := exec.Command("curl", "-sS", "https://localhost:"+port+"/.well-known/matrix/client").CombinedOutput(); err == nil {
		t.Fatalf("curl trusted the internal CA without --cacert: %s", out)
	}

	// mautrix-go discovers the homeserver over the verified connection.
	pem, _ := os.ReadFile(root)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, d.addrs["https"])
		},
	}}
	wk, err := mautrix.DiscoverClientAPIWithClient(context.Background(), client, "localhost")
	if err != nil || wk == nil || wk.Homeserver.BaseURL != "https://localhost" {
		t.Fatalf("mautrix over TLS: %+v %v", wk, err)
	}

	// The federation port serves the federation API only.
	fed := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	_, fedPort, _ := net.SplitHostPort(d.addrs["federation"])
	resp, err := fed.Get("https://localhost:" + fedPort + "/.well-known/matrix/client")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("federation port served %d for a client document", resp.StatusCode)
	}
	resp, err = fed.Get("https://localhost:" + fedPort + "/_matrix/federation/v1/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 { // no upstream runs in this test
		t.Fatalf("federation path on the federation port: %d, want the proxy's 502", resp.StatusCode)
	}

	// A second start reuses the root instead of minting a new one.
	d.stop()
	d2 := startDaemon(t, internalConfig(storage), "https")
	if m2 := rootRE.FindStringSubmatch(d2.stderr.String()); m2 == nil || m2[1] != root {
		t.Fatalf("second start root %v, want %s", m2, root)
	}
	again, _ := os.ReadFile(root)
	if string(again) != string(pem) {
		t.Fatal("the root changed across restarts")
	}
}

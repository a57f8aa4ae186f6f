package server

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/acmetest"
	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/knottest"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

func TestACMEObtainDNS01(t *testing.T) {
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.Start(t, httpPort, tlsPort)
	provider := ca.Provider()
	// The config names Cloudflare, as a user's would; the test's DNS server
	// stands in for its API through the same libdns interface.
	token := t.TempDir() + "/token"
	os.WriteFile(token, []byte("unused"), 0o600)
	cfg := acmeConfig(ca, httpPort, tlsPort, t.TempDir(), "dns-01", "provider: cloudflare", "api_token_file: "+token)
	startEdge(t, cfg, onListeners, withOptions(WithDNSProvider(provider)))
	for _, h := range acmeHosts {
		waitCert(t, fmt.Sprintf("127.0.0.1:%d", tlsPort), h, ca.Roots())
	}
	if n := provider.TXTWrites(); n < len(acmeHosts) {
		t.Fatalf("dns-01 wrote %d TXT records for %d names", n, len(acmeHosts))
	}
}

// TestACMEObtainRFC2136Wildcard obtains example.test and *.example.test by
// dns-01 through provider rfc2136: the edge sends TSIG-signed updates to
// Knot, and Pebble's validation authority reads the records from that
// same Knot. The wildcard certificate then serves every name it covers,
// those in hosts' routes included, and nothing beyond it.
func TestACMEObtainRFC2136Wildcard(t *testing.T) {
	knot := knottest.Start(t, "example.test")
	// The two certificates' challenges share a record name; when they
	// overlap the second waits for the first and then this gap (lego's
	// default for RFC 2136 is 60 s).
	t.Setenv("DNSUPDATE_SEQUENCE_INTERVAL", "1")
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.StartOptions(t, httpPort, tlsPort, acmetest.Options{VADNS: knot.Addr})
	seen := make(chan string, 10)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The edge's own readiness probes come with the upstream's address
		// as Host; only clients' requests are of interest.
		if !strings.HasPrefix(r.Host, "127.0.0.1:") {
			seen <- r.Host + " " + r.URL.Path
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"versions":["v1.11"]}`)
	}))
	t.Cleanup(upstream.Close)
	element := t.TempDir()
	os.WriteFile(filepath.Join(element, "index.html"), []byte("<title>Element</title>"), 0o644)
	cfg := edgeconf.New(
		edgeconf.Names("example.test", "matrix.example.test:443", "https://matrix.example.test"),
		edgeconf.Hosts("example.test", "*.example.test"),
		edgeconf.Listen(fmt.Sprintf("127.0.0.1:%d", httpPort), fmt.Sprintf("127.0.0.1:%d", tlsPort), "", ""),
		edgeconf.ACME(ca.DirectoryURL, ca.APIRootFile, t.TempDir(),
			"challenges: [dns-01]",
			"dns:",
			"  provider: rfc2136",
			fmt.Sprintf("  rfc2136: {server: %q, tsig_key_file: %q}", knot.Addr, knot.KeyFile),
			fmt.Sprintf("  resolvers: [%q]", knot.Addr)),
		edgeconf.Upstream(upstream.URL),
	) + fmt.Sprintf("routes:\n  - {host: element.example.test, static: %q}\n", element)
	startEdge(t, cfg, onListeners)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort)

	base := waitCert(t, tlsAddr, "example.test", ca.Roots())
	if !slices.Equal(base.DNSNames, []string{"example.test"}) {
		t.Fatalf("certificate for example.test names %v", base.DNSNames)
	}
	wild := waitCert(t, tlsAddr, "matrix.example.test", ca.Roots())
	if !slices.Equal(wild.DNSNames, []string{"*.example.test"}) {
		t.Fatalf("certificate for matrix.example.test names %v, want the wildcard", wild.DNSNames)
	}
	for _, name := range []string{"element.example.test", "anything.example.test"} {
		leaf, err := handshake(tlsAddr, name, ca.Roots())
		if err != nil || leaf.SerialNumber.Cmp(wild.SerialNumber) != 0 {
			t.Fatalf("%s: err %v; want the one wildcard certificate", name, err)
		}
	}
	// A wildcard covers one label: a.b.example.test gets no certificate.
	if _, err := handshake(tlsAddr, "a.b.example.test", ca.Roots()); err == nil {
		t.Fatal("a certificate was served for a.b.example.test")
	}
	if n := ca.NewOrders(); n != 2 {
		t.Errorf("%d orders, want 2: one for example.test, one for *.example.test", n)
	}
	// The records are deleted once the CA has validated them.
	wait.Until(t, "the challenge records gone from Knot", 30*time.Second, func() error {
		if got := knot.TXT(t, "_acme-challenge.example.test"); len(got) > 0 {
			return fmt.Errorf("still there: %v", got)
		}
		return nil
	})

	c := dnstest.PinnedClient(ca.Roots(), tlsAddr)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The delegated name, covered only by the wildcard, serves the Matrix
	// APIs.
	// (The edge adds sliding sync to /versions: the homeserver's answer
	// is in it, not all of it.)
	if code, body := get("https://matrix.example.test/_matrix/client/versions"); code != 200 || !strings.Contains(body, `"versions":["v1.11"]`) {
		t.Fatalf("client API on matrix.example.test: %d %s", code, body)
	}
	if got := <-seen; got != "matrix.example.test /_matrix/client/versions" {
		t.Fatalf("upstream saw %q", got)
	}
	// A route's host under the wildcard serves its route.
	if code, body := get("https://element.example.test/"); code != 200 || body != "<title>Element</title>" {
		t.Fatalf("element.example.test: %d %s", code, body)
	}
	if code, body := get("https://example.test/.well-known/matrix/server"); code != 200 || body != `{"m.server":"matrix.example.test:443"}` {
		t.Fatalf("documents: %d %s", code, body)
	}
	// A name the wildcard does not cover is misdirected, on plain HTTP too.
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/_matrix/client/versions", httpPort), nil)
	req.Host = "a.b.example.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("a.b.example.test over http: %d, want 421", resp.StatusCode)
	}
}

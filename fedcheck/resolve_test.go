package fedcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
	"github.com/wellknownd/wellknownd/internal/testing/localca"
)

// TestMain keeps every name lookup here (ours and gomatrixserverlib's) on
// this machine: SRV lookups fail at once instead of leaving it.
func TestMain(m *testing.M) { os.Exit(dnstest.RunIsolated(m)) }

// TestResolutionAgreesWithGomatrixserverlib: for the same inputs, the
// checker's resolution and gomatrixserverlib's (Dendrite's own resolver)
// find the same destinations, Host headers and TLS names.
func TestResolutionAgreesWithGomatrixserverlib(t *testing.T) {
	local := localca.New(t)
	docs := map[string]string{
		"example.com":      `{"m.server":"matrix.example.com:443"}`,
		"noport.example":   `{"m.server":"matrix.example.com"}`,
		"ipdeleg.example":  `{"m.server":"[::1]:8448"}`,
		"ip4deleg.example": `{"m.server":"127.0.0.1"}`,
	}
	names := []string{"example.com", "noport.example", "ipdeleg.example", "ip4deleg.example", "none.example"}
	wk := local.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs[hostOnlyTest(r.Host)]
		if !ok || r.URL.Path != "/.well-known/matrix/server" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(doc))
	}), names...)
	// gomatrixserverlib fetches over http.DefaultTransport, which points at
	// this test's server, and looks SRV records up with net.DefaultResolver,
	// which TestMain pointed at a DNS server that knows no name.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(local.PEM())
	savedTransport := http.DefaultTransport
	http.DefaultTransport = &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, wk)
		},
	}
	t.Cleanup(func() { http.DefaultTransport = savedTransport })

	resolve := map[string]string{}
	for _, n := range names {
		resolve[n+":443"] = wk
	}
	opts := Options{Resolve: resolve, Roots: pool, Resolver: net.DefaultResolver, Timeout: 5 * time.Second}
	inputs := append([]string{"1.2.3.4", "1.2.3.4:1234", "[::1]", "[2001:db8::1]:8448", "example.com:1234", "matrix.example.com:443"}, names...)
	for _, in := range inputs {
		theirs, err := fclient.ResolveServer(context.Background(), spec.ServerName(in))
		if err != nil {
			t.Fatalf("gomatrixserverlib ResolveServer(%s): %v", in, err)
		}
		ours, err := resolveServer(context.Background(), in, opts)
		if err != nil {
			t.Fatalf("Resolve(%s): %v", in, err)
		}
		var a, b []string
		for _, r := range theirs {
			a = append(a, fmt.Sprintf("%s host=%s tls=%s", r.Destination, r.Host, r.TLSServerName))
		}
		for _, r := range ours {
			b = append(b, fmt.Sprintf("%s host=%s tls=%s", r.Destination, r.Host, r.TLSServerName))
		}
		if strings.Join(a, "; ") != strings.Join(b, "; ") {
			t.Errorf("%s:\n gomatrixserverlib: %s\n wellknownd check:  %s", in, strings.Join(a, "; "), strings.Join(b, "; "))
		}
	}
}

func hostOnlyTest(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

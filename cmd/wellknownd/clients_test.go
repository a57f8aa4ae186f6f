package main

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
)

// plainTransport sends every request, whatever its URL, to addr over plain
// HTTP with the URL's host in Host: what a client on the Internet sends to
// https://example.com, minus the TLS that tls.mode off does not have.
func plainTransport(addr string) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.URL.Scheme = "http"
		r.Host = r.URL.Host
		return (&http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			},
		}).RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestMautrixClientDiscovery: mautrix-go, as a Matrix client, discovers the
// homeserver from the served client document.
func TestMautrixClientDiscovery(t *testing.T) {
	d := startDaemon(t, exampleConfig, "http")
	wk, err := mautrix.DiscoverClientAPIWithClient(context.Background(), &http.Client{Transport: plainTransport(d.addrs["http"])}, "example.com")
	if err != nil {
		t.Fatalf("mautrix discovery: %v", err)
	}
	if wk == nil {
		t.Fatal("mautrix found no client document")
	}
	if wk.Homeserver.BaseURL != "https://matrix.example.com" || wk.IdentityServer.BaseURL != "https://vector.im" {
		t.Fatalf("mautrix read %+v", wk)
	}
}

// TestGomatrixserverlibWellKnown: gomatrixserverlib, the library Dendrite
// resolves server names with, reads the served server document. It fetches
// over http.DefaultTransport, so that is what the test points at the daemon.
func TestGomatrixserverlibWellKnown(t *testing.T) {
	d := startDaemon(t, exampleConfig, "http")
	saved := http.DefaultTransport
	http.DefaultTransport = plainTransport(d.addrs["http"])
	t.Cleanup(func() { http.DefaultTransport = saved })

	before := time.Now().Unix()
	res, err := fclient.LookupWellKnown(context.Background(), spec.ServerName("example.com"))
	if err != nil {
		t.Fatalf("LookupWellKnown: %v", err)
	}
	if res.NewAddress != "matrix.example.com:443" {
		t.Fatalf("m.server = %q", res.NewAddress)
	}
	// max_age 2h in the config: the remote server caches it that long.
	if exp := res.CacheExpiresAt - before; exp < 7200 || exp > 7202 {
		t.Fatalf("cache lifetime %ds, want 7200", exp)
	}

	// A host this daemon does not serve yields no delegation, as a 421
	// must: gomatrixserverlib treats any non-200 as "no well-known".
	if _, err := fclient.LookupWellKnown(context.Background(), spec.ServerName("other.example.net")); err == nil {
		t.Fatal("LookupWellKnown succeeded for a host not in hosts")
	}
}

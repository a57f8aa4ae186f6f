// Package acmetest runs Let's Encrypt's test CA, Pebble, in-process for
// tests, with the DNS its validation authority asks (challtestsrv: every
// name resolves to 127.0.0.1, TXT records are what the test puts there) and
// a libdns provider that writes them.
// Certificates are really issued: challenges are really validated against
// the listeners under test.
package acmetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/libdns/libdns"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/localca"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// CA is a running Pebble.
type CA struct {
	// DirectoryURL is the ACME directory, for tls.ca.
	DirectoryURL string
	// APIRootFile is a PEM file of the root that signed Pebble's own HTTPS
	// certificate, for tls.ca_root.
	APIRootFile string
	// DNS is the DNS server Pebble's validation authority asks.
	DNS *challtestsrv.ChallSrv
	// ResolverAddr is the DNS server for the ACME client (tls.dns.resolvers):
	// authoritative for every zone, with the TXT records written to DNS.
	ResolverAddr string

	ca  *ca.CAImpl
	srv *httptest.Server

	// orders counts new-order requests.
	orders atomic.Int64
	// gate, when set, holds challenge responses until it is closed; caught
	// is closed when the first one arrives.
	gateMu sync.Mutex
	gate   chan struct{}
	caught chan struct{}
}

// Start runs Pebble. Its validation authority connects to 127.0.0.1 at
// httpPort for HTTP-01 and tlsPort for TLS-ALPN-01: the ports of the
// listeners under test.
func Start(t testing.TB, httpPort, tlsPort int) *CA {
	t.Helper()
	return StartValidity(t, httpPort, tlsPort, 0)
}

// StartValidity is Start with certificates valid for validity (0: Pebble's
// default, 90 days), for renewal tests.
func StartValidity(t testing.TB, httpPort, tlsPort int, validity time.Duration) *CA {
	t.Helper()
	return StartOptions(t, httpPort, tlsPort, Options{Validity: validity})
}

// Options change what StartOptions runs.
type Options struct {
	// Validity is how long certificates are valid; 0: Pebble's default,
	// 90 days.
	Validity time.Duration
	// VADNS, host:port, is the DNS server the validation authority asks
	// instead of the in-memory one: a real nameserver the test runs, so
	// that dns-01 is validated against what a provider wrote there.
	VADNS string
}

// StartOptions is Start with options.
func StartOptions(t testing.TB, httpPort, tlsPort int, o Options) *CA {
	t.Helper()
	validity := o.Validity
	// Read by the constructors: no random validation sleeps, no bad-nonce
	// injection, and no authorization reuse, so a renewal re-validates.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", log.LstdFlags)
	}

	dnsAddr := freeport.Addr(t)
	dns, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{dnsAddr}, Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	dns.SetDefaultDNSIPv4("127.0.0.1")
	dns.SetDefaultDNSIPv6("")
	dns.Run()
	t.Cleanup(dns.Shutdown)
	wait.TCP(t, dnsAddr)

	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default", ValidityPeriod: uint64(validity.Seconds())}})
	vaDNS := dnsAddr
	if o.VADNS != "" {
		vaDNS = o.VADNS
	}
	validator := va.New(logger, httpPort, tlsPort, false, vaDNS, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 3, 5)

	// Pebble's bundled API certificate expires in 2027: its HTTPS
	// certificate comes from a throwaway root instead.
	apiCA := localca.New(t)
	rootFile := filepath.Join(t.TempDir(), "pebble-api-root.pem")
	if err := os.WriteFile(rootFile, apiCA.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &CA{}
	srv := httptest.NewUnstartedServer(c.watch(front.Handler()))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{apiCA.Issue(t, "localhost", "127.0.0.1")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c.DirectoryURL, c.APIRootFile, c.DNS, c.ca, c.srv = srv.URL+wfe.DirectoryPath, rootFile, dns, authority, srv
	c.ResolverAddr = c.startZoneServer(t)
	return c
}

// Stop switches the CA off: its address refuses connections from now on.
// watch counts new orders and holds challenge responses while a gate is
// set.
func (c *CA) watch(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch {
			case r.URL.Path == "/order-plz":
				c.orders.Add(1)
			case strings.HasPrefix(r.URL.Path, "/chalZ/"):
				c.gateMu.Lock()
				gate, caught := c.gate, c.caught
				c.gateMu.Unlock()
				if gate != nil {
					select {
					case <-caught:
					default:
						close(caught)
					}
					select {
					case <-gate:
					case <-r.Context().Done():
						return
					}
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// NewOrders is how many orders clients have placed.
func (c *CA) NewOrders() int { return int(c.orders.Load()) }

// HoldChallenges makes the CA hold every challenge response (the request
// that starts a validation) until release is called: the moment an order
// is in flight. caught is closed when the first one arrives.
func (c *CA) HoldChallenges() (caught <-chan struct{}, release func()) {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	gate, ch := make(chan struct{}), make(chan struct{})
	c.gate, c.caught = gate, ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			c.gateMu.Lock()
			c.gate = nil
			c.gateMu.Unlock()
			close(gate)
		})
	}
}

func (c *CA) Stop() {
	c.srv.CloseClientConnections()
	c.srv.Close()
}

// Roots is a pool holding only the root that issues Pebble's certificates:
// what a client that trusts this CA, and nothing else, trusts.
func (c *CA) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.ca.GetRootCert(0).Cert)
	return p
}

// Provider is a libdns provider backed by the test's DNS server: the same
// interface certmagic drives Cloudflare's through.
func (c *CA) Provider() *Provider { return &Provider{dns: c.DNS} }

// Provider implements libdns.RecordAppender and libdns.RecordDeleter.
type Provider struct {
	dns *challtestsrv.ChallSrv
	mu  sync.Mutex
	// Appended counts TXT records written, so a test can tell dns-01 was used.
	Appended int
}

func (p *Provider) AppendRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range recs {
		rr := r.RR()
		p.dns.AddDNSTXTRecord(libdns.AbsoluteName(rr.Name, zone), rr.Data)
		p.Appended++
	}
	return recs, nil
}

func (p *Provider) DeleteRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range recs {
		p.dns.DeleteDNSTXTRecord(libdns.AbsoluteName(r.RR().Name, zone))
	}
	return recs, nil
}

// TXTWrites is how many TXT records the provider wrote.
func (p *Provider) TXTWrites() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Appended
}

// RootPEM is Pebble's issuing root, for a -ca-file.
func (c *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.ca.GetRootCert(0).Cert.Raw})
}

// Package certs provides the certificates of wellknownd's TLS listeners:
// from an ACME CA through certmagic, from files on disk, or from a local CA.
// Whatever the source, certificates are swapped into running listeners
// without a restart, and their state is reported per name.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wellknownd/wellknownd/config"
)

// Source is where a TLS listener's certificates come from.
type Source interface {
	// TLSConfig is the configuration for every TLS listener. For ACME it
	// keeps acme-tls/1 among the protocols, so TLS-ALPN-01 can be answered
	// by the running listener for the life of the process.
	TLSConfig() *tls.Config
	// HTTPHandler wraps the plain-HTTP listener's handler; for ACME it
	// answers HTTP-01 challenges before anything else sees the request.
	HTTPHandler(next http.Handler) http.Handler
	// Start obtains or loads the certificates and keeps them fresh until
	// ctx ends. It must be called once the listeners accept connections:
	// ACME challenges are answered by them.
	Start(ctx context.Context) error
	// Renew replaces every certificate now, whatever its age.
	Renew(ctx context.Context) error
	// SetHosts changes the names certificates are kept for (a reload):
	// new names are obtained, dropped ones forgotten. A new name that
	// cannot be obtained now is an error, and is retried with backoff.
	SetHosts(ctx context.Context, hosts []string) error
	// Status is the state of each host's certificate.
	Status() []Status
	// Roots verify the certificates served: the local CA's root for mode
	// internal, nil (the system's) otherwise.
	Roots() *x509.CertPool
	// Stop ends background work.
	Stop()
}

// Status is the certificate currently served for one name.
type Status struct {
	Name string
	// NotAfter is zero when there is no certificate for Name yet.
	NotAfter time.Time
	// NotBefore is when the certificate served was issued: the last
	// renewal, as far as the certificate itself can tell.
	NotBefore time.Time
	Issuer    string
}

// Options are what a Source needs besides the TLS section of the config.
type Options struct {
	TLS   config.TLS
	Hosts []string
	// HTTPAddr and TLSAddr are the bound addresses of listen.http and
	// listen.https ("" when off). certmagic is told these ports so that it
	// finds them taken and leaves challenges to the running listeners,
	// instead of binding :80 or :443 itself.
	HTTPAddr, TLSAddr string
	Log               *slog.Logger
	// DNSProvider, when set, is used for dns-01 instead of the provider
	// named in the config: how tests bring a DNS server of their own.
	DNSProvider certmagic.DNSProvider
	// PollInterval is how often mode files checks its files; default 5s.
	PollInterval time.Duration
	// RenewCheckInterval is how often managed certificates are checked for
	// renewal (and for a renewal another edge stored); default certmagic's.
	RenewCheckInterval time.Duration
	// DisableARI renews by lifetime alone, ignoring the CA's ACME Renewal
	// Information: for tests whose certificates live minutes.
	DisableARI bool
	// OnEvent, when set, is told of each certificate obtained, renewed or
	// failed ("obtained", "renewed", "failed"), for metrics.
	OnEvent func(event string)
}

// New builds the Source for opts.TLS.Mode. It fails fast on what can be
// known before listening: unreadable files, unwritable storage.
func New(opts Options) (Source, error) {
	switch opts.TLS.Mode {
	case config.TLSFiles:
		return newFiles(opts)
	case config.TLSACME:
		return newACME(opts)
	case config.TLSInternal:
		return newInternal(opts)
	}
	return nil, fmt.Errorf("tls.mode %q has no certificates", opts.TLS.Mode)
}

// baseTLSConfig is what every TLS listener shares: TLS 1.2 at least (as
// Mozilla's "intermediate" profile), HTTP/2 and HTTP/1.1.
func baseTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
	}
}

package server

import (
	"context"
	"time"

	"github.com/caddyserver/certmagic"
)

// Option changes how a Server is built; tests use them.
type Option func(*options)

type options struct {
	dnsProvider  certmagic.DNSProvider
	pollInterval time.Duration
	version      string
	reloader     func(context.Context) error
	onServing    func()
	// probeInterval replaces probeInterval, for tests.
	probeInterval time.Duration
	renewCheck    time.Duration
	// selfCheckNet replaces the self-check's network (tests).
	selfCheckNet *selfCheckNet
	// selfCheckReadyWait replaces how long the first self-check waits
	// for the edge to be ready (tests).
	selfCheckReadyWait time.Duration
	// headerTimeout replaces headerTimeout (tests).
	headerTimeout time.Duration
	// idleTimeout replaces the 120 s keep-alive idle timeout (tests).
	idleTimeout time.Duration
}

// WithSelfCheckReadyWait sets how long the first self-check waits for the
// edge to be ready before it reports what is not (default 2 minutes).
func WithSelfCheckReadyWait(d time.Duration) Option {
	return func(o *options) { o.selfCheckReadyWait = d }
}

// WithProbeInterval sets how often an unsupervised upstream is probed.
func WithProbeInterval(d time.Duration) Option {
	return func(o *options) { o.probeInterval = d }
}

// WithOnServing is called once the listeners accept, certificates and
// supervision have started: the moment to tell systemd READY=1.
func WithOnServing(f func()) Option {
	return func(o *options) { o.onServing = f }
}

// WithReloader gives the admin listener's POST /reload the function that
// re-reads the configuration and calls Reload: the same one SIGHUP runs.
func WithReloader(f func(context.Context) error) Option {
	return func(o *options) { o.reloader = f }
}

// WithVersion sets the version wellknownd_build_info reports.
func WithVersion(v string) Option {
	return func(o *options) { o.version = v }
}

// WithDNSProvider makes dns-01 use p instead of the configured provider.
func WithDNSProvider(p certmagic.DNSProvider) Option {
	return func(o *options) { o.dnsProvider = p }
}

// WithFilePollInterval sets how often tls.mode files checks its files.
func WithFilePollInterval(d time.Duration) Option {
	return func(o *options) { o.pollInterval = d }
}

// WithShortLivedCertificates checks managed certificates for renewal every
// checkEvery (certmagic's default is 10 minutes) and renews them by their
// lifetime alone (the last third), for tests with certificates that live
// minutes: ACME Renewal Information would suggest a window as long as such
// a certificate's whole life, with a time picked in it at random.
func WithShortLivedCertificates(checkEvery time.Duration) Option {
	return func(o *options) { o.renewCheck = checkEvery }
}

// withHeaderTimeout replaces headerTimeout, what a client has for a TLS
// handshake and a request's headers (tests).
func withHeaderTimeout(d time.Duration) Option {
	return func(o *options) { o.headerTimeout = d }
}

// withIdleTimeout replaces the keep-alive idle timeout (tests).
func withIdleTimeout(d time.Duration) Option {
	return func(o *options) { o.idleTimeout = d }
}

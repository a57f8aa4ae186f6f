package certs

import (
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/certmagic"

	"github.com/wellknownd/wellknownd/config"
)

// caURLs are the directories of the CAs the config may name.
var caURLs = map[string]string{
	"letsencrypt":         certmagic.LetsEncryptProductionCA,
	"letsencrypt-staging": certmagic.LetsEncryptStagingCA,
	"zerossl":             certmagic.ZeroSSLProductionCA,
}

func newACME(opts Options) (Source, error) {
	t := opts.TLS
	st, err := openStorage(opts)
	if err != nil {
		return nil, err
	}
	m := newManaged(opts, st)
	m.async = true
	tmpl := certmagic.ACMEIssuer{
		Email:                   t.Email,
		Agreed:                  true, // config validation requires email or tls.agree
		DisableHTTPChallenge:    !slices.Contains(t.Challenges, config.ChallengeHTTP01),
		DisableTLSALPNChallenge: !slices.Contains(t.Challenges, config.ChallengeTLSALPN01),
		Logger:                  zapToSlog(opts.Log),
	}
	// Point certmagic at the ports the listeners hold, so that its solvers
	// find them taken and trust the listeners to answer.
	httpHost, httpPort := addrPort(opts.HTTPAddr)
	tlsHost, tlsPort := addrPort(opts.TLSAddr)
	tmpl.AltHTTPPort, tmpl.AltTLSALPNPort = httpPort, tlsPort
	tmpl.ListenHost = httpHost
	if tmpl.ListenHost == "" {
		tmpl.ListenHost = tlsHost
	}
	if t.CARoot != "" {
		pem, err := os.ReadFile(t.CARoot)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_root: %w", err)
		}
		tmpl.TrustedRoots = x509.NewCertPool()
		if !tmpl.TrustedRoots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_root %s holds no PEM certificate", t.CARoot)
		}
	}
	// dnsManager is nil without dns-01, and for a provider that cannot
	// write ZeroSSL's CNAME record.
	dnsManager := func() *certmagic.DNSManager { return nil }
	if slices.Contains(t.Challenges, config.ChallengeDNS01) {
		d, err := newDNS01(t.DNS, opts.DNSProvider, opts.Log)
		if err != nil {
			return nil, err
		}
		tmpl.DNS01Solver = d.solver
		if d.manager != nil {
			dnsManager = d.manager
		}
	}
	if t.CA == "zerossl" {
		if m.zerossl, err = zeroSSL(m, t, tmpl, dnsManager()); err != nil {
			return nil, err
		}
		m.magic.Issuers = []certmagic.Issuer{m.zerossl}
		return m, nil
	}
	tmpl.CA = t.CA
	if u, ok := caURLs[t.CA]; ok {
		tmpl.CA = u
	}
	m.acme = certmagic.NewACMEIssuer(m.magic, tmpl)
	m.magic.Issuers = []certmagic.Issuer{m.acme}
	if t.CA == "letsencrypt" && t.ZeroSSLAPIKeyFile != "" {
		// When Let's Encrypt fails (an outage, a rate limit), certmagic
		// tries the next issuer.
		if m.zerossl, err = zeroSSL(m, t, tmpl, dnsManager()); err != nil {
			return nil, err
		}
		m.magic.Issuers = append(m.magic.Issuers, m.zerossl)
	}
	return m, nil
}

// zeroSSL builds the ZeroSSL API issuer. It validates a name by a file
// over HTTP on the port the HTTP listener holds (so its own solver finds
// the port taken and leaves the answer to HTTPHandler, through storage) or,
// when http-01 is not among the challenges, by a CNAME record through the
// dns-01 provider.
func zeroSSL(m *managed, t config.TLS, acme certmagic.ACMEIssuer, dns *certmagic.DNSManager) (*certmagic.ZeroSSLIssuer, error) {
	key, err := os.ReadFile(t.ZeroSSLAPIKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.zerossl_api_key_file: %w", err)
	}
	zs := &certmagic.ZeroSSLIssuer{
		APIKey:      strings.TrimSpace(string(key)),
		Storage:     m.magic.Storage,
		ListenHost:  acme.ListenHost,
		AltHTTPPort: acme.AltHTTPPort,
		Logger:      zapToSlog(m.log),
	}
	if acme.DisableHTTPChallenge {
		zs.CNAMEValidation = dns
	}
	return zs, nil
}

package certs

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/gandiv5"
	"github.com/go-acme/lego/v5/providers/dns/hetzner"
	"github.com/go-acme/lego/v5/providers/dns/ovh"
	"github.com/libdns/cloudflare"
	"github.com/mholt/acmez/v3"

	"github.com/wellknownd/wellknownd/config"
)

// dnsSolver is how this edge answers dns-01: by a libdns provider through
// certmagic's own solver (cloudflare, and the tests' in-memory DNS), or by
// one of lego's providers through legoSolver.
type dnsSolver struct {
	solver acmez.Solver
	// manager is certmagic's DNSManager over the libdns provider, for
	// ZeroSSL's CNAME validation; nil for a lego provider, which can
	// write only the ACME TXT record.
	manager func() *certmagic.DNSManager
}

// newDNS01 builds the dns-01 solver for tls.dns. testProvider, when not
// nil, replaces the configured provider (tests).
func newDNS01(d config.DNS, testProvider certmagic.DNSProvider, log *slog.Logger) (dnsSolver, error) {
	secrets, err := d.Secrets(os.Getenv)
	if err != nil && testProvider == nil {
		return dnsSolver{}, err
	}
	if testProvider != nil || d.Provider == "cloudflare" {
		p := testProvider
		if p == nil {
			p = &cloudflare.Provider{APIToken: secrets["CLOUDFLARE_DNS_API_TOKEN"]}
		}
		// Each caller gets its own manager: certmagic's DNSManager holds
		// its own lock and records.
		manager := func() *certmagic.DNSManager {
			return &certmagic.DNSManager{DNSProvider: p, Resolvers: d.Resolvers, Logger: zapToSlog(log)}
		}
		return dnsSolver{solver: &certmagic.DNS01Solver{DNSManager: *manager()}, manager: manager}, nil
	}
	p, err := legoProvider(d, secrets)
	if err != nil {
		return dnsSolver{}, fmt.Errorf("tls.dns.provider %s: %w", d.Provider, err)
	}
	return dnsSolver{solver: newLegoSolver(p, d.Resolvers, log)}, nil
}

// legoProvider builds the lego provider tls.dns names. Every secret comes
// from secrets (files and the environment, gathered by config.DNS.Secrets);
// lego reads only its tuning variables (TTL, propagation timeout) from
// the environment itself.
func legoProvider(d config.DNS, secrets map[string]string) (challenge.Provider, error) {
	switch d.Provider {
	case "rfc2136":
		key, err := config.ReadTSIGKey(d.RFC2136.TSIGKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.dns.rfc2136.tsig_key_file: %w", err)
		}
		return newRFC2136Provider(d.RFC2136, key)
	case "route53":
		return route53Provider(d, secrets)
	case "digitalocean":
		c := digitalocean.NewDefaultConfig()
		c.AuthToken = secrets["DO_AUTH_TOKEN"]
		return digitalocean.NewDNSProviderConfig(c)
	case "hetzner":
		c := hetzner.NewDefaultConfig()
		c.APIToken = secrets["HETZNER_API_TOKEN"]
		return hetzner.NewDNSProviderConfig(c)
	case "gandi":
		c := gandiv5.NewDefaultConfig()
		c.PersonalAccessToken = secrets["GANDIV5_PERSONAL_ACCESS_TOKEN"]
		return gandiv5.NewDNSProviderConfig(c)
	case "ovh":
		c := ovh.NewDefaultConfig()
		c.APIEndpoint = d.OVH.Endpoint
		if c.APIEndpoint == "" {
			c.APIEndpoint = cmp.Or(os.Getenv("OVH_ENDPOINT"), "ovh-eu")
		}
		if id := secrets["OVH_CLIENT_ID"]; id != "" {
			c.OAuth2Config = &ovh.OAuth2Config{ClientID: id, ClientSecret: secrets["OVH_CLIENT_SECRET"]}
		} else {
			c.ApplicationKey, c.ApplicationSecret, c.ConsumerKey = secrets["OVH_APPLICATION_KEY"], secrets["OVH_APPLICATION_SECRET"], secrets["OVH_CONSUMER_KEY"]
		}
		return ovh.NewDNSProviderConfig(c)
	}
	return nil, fmt.Errorf("%q is not supported; valid: %s", d.Provider, strings.Join(config.DNSProviders(), ", "))
}

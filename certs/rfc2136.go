package certs

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/platform/env"
	"github.com/miekg/dns"

	"github.com/wellknownd/wellknownd/config"
)

// rfc2136Provider writes the dns-01 record with TSIG-signed RFC 2136
// updates, for legoSolver: what lego's dnsupdate provider does with a
// TSIG key, and reading the same tuning variables (DNSUPDATE_TTL,
// DNSUPDATE_PROPAGATION_TIMEOUT, …, or their RFC2136_ names).
//
// Why not lego's provider: it links GSS-TSIG (Kerberos, through
// bodgit/tsig and gokrb5), which wellknownd's configuration cannot ask
// for, and whose package initialisation cost every process, DNS-01 or
// not, about 0.8 MB of RSS. The DNS messages are miekg/dns's, which
// certmagic links anyway.
type rfc2136Provider struct {
	server string
	zone   string
	key    config.TSIGKey
	// algorithm is the key's, as miekg/dns names it.
	algorithm string

	ttl                          int
	dnsTimeout                   time.Duration
	propagation, polling, spacer time.Duration
}

func newRFC2136Provider(r config.RFC2136, key config.TSIGKey) (*rfc2136Provider, error) {
	alg, ok := tsigAlgorithms[key.Algorithm]
	if !ok {
		return nil, fmt.Errorf("TSIG algorithm %q is not one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512", key.Algorithm)
	}
	server := r.Server
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	key.Name = dns.CanonicalName(key.Name)
	return &rfc2136Provider{
		server: server, key: key, algorithm: alg,
		zone:        r.Zone,
		ttl:         rfc2136Env("TTL", dns01.DefaultTTL, strconv.Atoi),
		dnsTimeout:  rfc2136Env("DNS_TIMEOUT", 10*time.Second, env.ParseSecond),
		propagation: rfc2136Env("PROPAGATION_TIMEOUT", dns01.DefaultPropagationTimeout, env.ParseSecond),
		polling:     rfc2136Env("POLLING_INTERVAL", dns01.DefaultPollingInterval, env.ParseSecond),
		spacer:      rfc2136Env("SEQUENCE_INTERVAL", dns01.DefaultPropagationTimeout, env.ParseSecond),
	}, nil
}

var tsigAlgorithms = map[string]string{
	"hmac-sha1": dns.HmacSHA1, "hmac-sha224": dns.HmacSHA224, "hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384, "hmac-sha512": dns.HmacSHA512,
}

// rfc2136Env reads DNSUPDATE_<name>, or RFC2136_<name>, as lego does.
func rfc2136Env[T any](name string, def T, parse func(string) (T, error)) T {
	return env.GetOneWithFallback("DNSUPDATE_"+name, def, parse, "RFC2136_"+name)
}

// Timeout is how long legoSolver waits for the record to appear, and how
// often it looks.
func (p *rfc2136Provider) Timeout() (timeout, interval time.Duration) {
	return p.propagation, p.polling
}

// Sequential: an update replaces the name's record set, so two challenges
// of one name (example.com and *.example.com) take turns, this far apart.
func (p *rfc2136Provider) Sequential() time.Duration { return p.spacer }

func (p *rfc2136Provider) Present(ctx context.Context, domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	if err := p.update(ctx, true, info.EffectiveFQDN, info.Value); err != nil {
		return fmt.Errorf("rfc2136: writing %s: %w", info.EffectiveFQDN, err)
	}
	return nil
}

func (p *rfc2136Provider) CleanUp(ctx context.Context, domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
	if err := p.update(ctx, false, info.EffectiveFQDN, info.Value); err != nil {
		return fmt.Errorf("rfc2136: removing %s: %w", info.EffectiveFQDN, err)
	}
	return nil
}

// update writes (replacing the record set) or removes the TXT record fqdn
// with value, in one signed message.
func (p *rfc2136Provider) update(ctx context.Context, write bool, fqdn, value string) error {
	zone, err := p.findZone(ctx, fqdn)
	if err != nil {
		return err
	}
	rrs := []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: uint32(p.ttl)},
		Txt: []string{value},
	}}
	m := new(dns.Msg).SetUpdate(zone)
	if write {
		m.RemoveRRset(rrs)
		m.Insert(rrs)
	} else {
		m.Remove(rrs)
	}
	m.SetTsig(p.key.Name, p.algorithm, 300, time.Now().Unix())
	c := &dns.Client{Timeout: p.dnsTimeout, TsigSecret: map[string]string{p.key.Name: p.key.Secret}}
	reply, _, err := c.ExchangeContext(ctx, m, p.server)
	if err != nil {
		return fmt.Errorf("update of zone %s at %s: %w", zone, p.server, err)
	}
	if reply.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("update of zone %s: %s answered %s", zone, p.server, dns.RcodeToString[reply.Rcode])
	}
	return nil
}

// findZone is tls.dns.rfc2136.zone when fqdn is in it, or else the zone
// the server says holds fqdn (its SOA).
func (p *rfc2136Provider) findZone(ctx context.Context, fqdn string) (string, error) {
	if p.zone == "" {
		return dns01.DefaultClient().FindZoneByFqdnCustom(ctx, fqdn, []string{p.server})
	}
	z := dns.Fqdn(p.zone)
	if slices.Contains(slices.Collect(dns01.DomainsSeq(fqdn)), z) {
		return z, nil
	}
	return "", fmt.Errorf("%s is not in tls.dns.rfc2136.zone %s", fqdn, p.zone)
}

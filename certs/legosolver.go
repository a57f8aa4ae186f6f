package certs

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

// legoSolver answers dns-01 for certmagic (an acmez.Solver and Waiter)
// through a lego DNS provider's Present and CleanUp. That gives certmagic
// lego's providers, the DNS layer Traefik uses, without changing anything
// else in how certificates are obtained.
type legoSolver struct {
	provider  challenge.Provider
	resolvers []string
	log       *slog.Logger
	// lookup finds a zone's nameservers and their addresses when no
	// resolvers are configured: net.DefaultResolver, which a test points
	// at its own nameserver.
	lookup *net.Resolver
	// nsPort is the port the zone's nameservers are asked on: 53, or a
	// test nameserver's.
	nsPort string

	mu sync.Mutex
	// held maps a challenge record's name to the challenge that holds it.
	// example.com and *.example.com are validated by TXT records of the
	// same name, _acme-challenge.example.com, and certmagic obtains them
	// as two orders that may run at once. Some lego providers (RFC 2136
	// among them) replace the whole record set when they present, so the
	// second order would delete the first one's record before the CA
	// looked. One challenge at a time per name keeps both valid.
	held map[string]*hold
	// gap is how long a name stays held after its challenge is cleaned
	// up, for a provider that asks for it (lego's Sequential: RFC 2136,
	// 60 s by default, DNSUPDATE_SEQUENCE_INTERVAL): a CA that cached the
	// first record set until its TTL ran out would not see the second.
	gap time.Duration
}

// sequential is lego's optional interface of a provider whose challenges
// must not overlap.
type sequential interface{ Sequential() time.Duration }

type hold struct {
	token string
	done  chan struct{}
}

func newLegoSolver(p challenge.Provider, resolvers []string, log *slog.Logger) *legoSolver {
	if len(resolvers) > 0 {
		// lego finds zones and follows CNAMEs with a DNS client of its own
		// that is shared by the whole process; point it at the resolvers
		// the config names. One process serves one config, so this is
		// that config's setting.
		dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: resolvers}))
	}
	s := &legoSolver{provider: p, resolvers: resolvers, log: log, lookup: net.DefaultResolver, nsPort: "53", held: map[string]*hold{}}
	if seq, ok := p.(sequential); ok {
		s.gap = seq.Sequential()
	}
	return s
}

// Present writes the challenge's TXT record once no other challenge holds
// its name.
func (s *legoSolver) Present(ctx context.Context, chal acme.Challenge) error {
	name := strings.ToLower(chal.DNS01TXTRecordName())
	if err := s.acquire(ctx, name, chal.Token); err != nil {
		return err
	}
	if err := s.provider.Present(ctx, chal.Identifier.Value, chal.Token, chal.KeyAuthorization); err != nil {
		s.release(name, chal.Token) // after the gap too: the write may have half happened
		return fmt.Errorf("writing the dns-01 record for %s: %w", chal.Identifier.Value, err)
	}
	s.log.Info("dns-01: record written", "name", name)
	return nil
}

// CleanUp deletes the record and lets the next challenge of its name go.
func (s *legoSolver) CleanUp(ctx context.Context, chal acme.Challenge) error {
	name := strings.ToLower(chal.DNS01TXTRecordName())
	defer s.release(name, chal.Token)
	if err := s.provider.CleanUp(ctx, chal.Identifier.Value, chal.Token, chal.KeyAuthorization); err != nil {
		return fmt.Errorf("deleting the dns-01 record for %s: %w", chal.Identifier.Value, err)
	}
	return nil
}

func (s *legoSolver) acquire(ctx context.Context, name, token string) error {
	for {
		s.mu.Lock()
		h := s.held[name]
		if h == nil {
			s.held[name] = &hold{token: token, done: make(chan struct{})}
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		s.log.Info("dns-01: waiting for another challenge of the same name to finish", "name", name, "then", s.gap)
		select {
		case <-h.done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s, which another challenge holds: %w", name, ctx.Err())
		}
	}
}

// release frees name, after the provider's gap, if token's challenge holds
// it: a CleanUp after a failed Present must not free another challenge's
// hold.
func (s *legoSolver) release(name, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[name]
	if h == nil || h.token != token {
		return
	}
	h.token = "" // released: no later release may free it again
	if s.gap <= 0 {
		delete(s.held, name)
		close(h.done)
		return
	}
	time.AfterFunc(s.gap, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.held, name)
		close(h.done)
	})
}

// Wait returns once the record can be seen: at every resolver the config
// names, or else at every authoritative nameserver of its zone, so that
// the CA, asking any of them, finds it. It gives up after the provider's
// propagation timeout (lego's default: 60 s, polled every 2 s).
func (s *legoSolver) Wait(ctx context.Context, chal acme.Challenge) error {
	info := dns01.GetChallengeInfo(ctx, chal.Identifier.Value, chal.KeyAuthorization)
	timeout, interval := dns01.DefaultPropagationTimeout, dns01.DefaultPollingInterval
	if pt, ok := s.provider.(challenge.ProviderTimeout); ok {
		timeout, interval = pt.Timeout()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	servers, recursive := s.resolvers, true
	if len(servers) == 0 {
		var err error
		if servers, err = s.authoritativeServers(ctx, info.EffectiveFQDN); err != nil {
			return fmt.Errorf("dns-01 propagation check for %s: %w", info.EffectiveFQDN, err)
		}
		recursive = false
	}
	var missing []string
	for {
		missing = missing[:0]
		for _, srv := range servers {
			if ok, err := hasTXT(ctx, srv, info.EffectiveFQDN, info.Value, recursive); !ok {
				missing = append(missing, srv)
				if err != nil {
					s.log.Debug("dns-01: propagation query failed", "server", srv, "name", info.EffectiveFQDN, "error", err)
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dns-01: the TXT record %s was not seen at %s within %s", info.EffectiveFQDN, strings.Join(missing, ", "), timeout)
		case <-time.After(interval):
		}
	}
}

// authoritativeServers are the addresses of the nameservers of the zone
// fqdn is in.
func (s *legoSolver) authoritativeServers(ctx context.Context, fqdn string) ([]string, error) {
	zone, err := dns01.DefaultClient().FindZoneByFqdn(ctx, fqdn)
	if err != nil {
		return nil, err
	}
	nss, err := s.lookup.LookupNS(ctx, zone)
	if err != nil {
		return nil, fmt.Errorf("nameservers of %s: %w", zone, err)
	}
	var out []string
	for _, ns := range nss {
		addrs, err := s.lookup.LookupHost(ctx, ns.Host)
		if err != nil {
			return nil, fmt.Errorf("nameserver %s of %s: %w", ns.Host, zone, err)
		}
		for _, a := range addrs {
			out = append(out, net.JoinHostPort(a, s.nsPort))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no nameserver", zone)
	}
	slices.Sort(out)
	return out, nil
}

// hasTXT asks server whether fqdn has a TXT record of value.
func hasTXT(ctx context.Context, server, fqdn, value string, recursive bool) (bool, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(fqdn), dns.TypeTXT)
	m.RecursionDesired = recursive
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return false, err
	}
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok && strings.Join(txt.Txt, "") == value {
			return true, nil
		}
	}
	return false, nil
}

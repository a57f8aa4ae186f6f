// Package fedcheck tests a Matrix server as a remote homeserver and a
// client would: it resolves the server name as the spec says (well-known,
// SRV, 8448), checks every address it finds (TLS, certificate, signing keys,
// version), checks client discovery (CORS, base_url, versions), and says in
// plain words what is wrong and how to fix it.
package fedcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/wellknownd/wellknownd/delegation"
)

// Options tune a check run.
type Options struct {
	// Resolve maps host:port to the address to connect to instead, like
	// curl's --resolve: test a server before DNS points at it.
	Resolve map[string]string
	// Roots verify certificates; nil means the system's.
	Roots *x509.CertPool
	// Resolver answers SRV and address lookups; nil means the system's.
	Resolver *net.Resolver
	// Timeout bounds each request; default 10s.
	Timeout time.Duration
	// Origin is sent on client requests, as a web client would.
	Origin string
	// LookupIP, when set, answers address lookups instead of Resolver:
	// network is "ip4" (A records) or "ip6" (AAAA). The self-check of a
	// test points names at its loopback listeners with it.
	LookupIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// Dial, when set, makes every connection (after Resolve): the
	// self-check of a test maps public ports to its listeners' with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Notary, when set, is a server name whose key server (notary) is
	// asked what it knows of the checked server's signing keys.
	Notary delegation.ServerName
	// EncodedPath, when set, returns a fresh federation path with an
	// encoded slash (%2F) that the checked server answers with the request
	// URI it received (RunByFamily only: the edge's self-check, which sees
	// its own requests arrive).
	EncodedPath func() string
	// Documents, when set, are the discovery documents the server name's
	// host should serve, by name (server, client, support), byte for byte:
	// RunByFamily fetches these over each address and compares. Nil: the
	// server and client documents, any JSON.
	Documents map[string][]byte
}

// Check is one line of the report.
type Check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Skipped: nothing to check (no support document published).
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Cause and Fix explain a failure in plain words.
	Cause string `json:"cause,omitempty"`
	Fix   string `json:"fix,omitempty"`
}

// Report is everything a run found; its JSON carries what the Matrix
// federation tester reports, and the checks.
type Report struct {
	ServerName        string                       `json:"ServerName"`
	WellKnownResult   WellKnownResult              `json:"WellKnownResult"`
	DNSResult         DNSResult                    `json:"DNSResult"`
	Targets           []Target                     `json:"Targets"`
	ConnectionReports map[string]*ConnectionReport `json:"ConnectionReports"`
	ConnectionErrors  map[string]string            `json:"ConnectionErrors"`
	Version           *Version                     `json:"Version,omitempty"`
	FederationOK      bool                         `json:"FederationOK"`
	ClientOK          bool                         `json:"ClientOK"`
	Checks            []Check                      `json:"Checks"`
}

// OK reports whether every check passed (skipped ones do not fail).
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK && !c.Skipped {
			return false
		}
	}
	return true
}

type checker struct {
	opts     Options
	resolver *net.Resolver
	report   *Report
}

// Run checks serverName, as a person typed it, and returns the report; it
// never stops at the first failure.
func Run(ctx context.Context, serverName string, opts Options) *Report {
	c := newChecker(serverName, opts)
	name, err := delegation.ParseServerName(serverName)
	if err != nil {
		c.fail("server name", "", "the server name "+err.Error(), "use the part after the colon in your user IDs, e.g. example.com")
		return c.report
	}
	return c.run(ctx, name)
}

// RunName checks a server name already parsed (the edge's own, by its
// configuration) and returns the report.
func RunName(ctx context.Context, name delegation.ServerName, opts Options) *Report {
	return newChecker(name.String(), opts).run(ctx, name)
}

func newChecker(serverName string, opts Options) *checker {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Origin == "" {
		opts.Origin = "https://app.element.io"
	}
	c := &checker{opts: opts, resolver: opts.Resolver, report: &Report{
		ServerName:        serverName,
		ConnectionReports: map[string]*ConnectionReport{},
		ConnectionErrors:  map[string]string{},
		DNSResult:         DNSResult{Addrs: map[string][]string{}},
	}}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	return c
}

func (c *checker) run(ctx context.Context, name delegation.ServerName) *Report {
	r := c.report
	c.pass("server name", name.String())
	r.Targets = c.resolve(ctx, name)
	fedOK := len(r.Targets) > 0
	for _, t := range r.Targets {
		if !c.checkTarget(ctx, name, t) {
			fedOK = false
		}
	}
	r.FederationOK = fedOK && r.WellKnownResult.Result != resultInvalid
	r.ClientOK = c.checkClient(ctx, name)
	return r
}

func (c *checker) pass(name, detail string) {
	c.report.Checks = append(c.report.Checks, Check{Name: name, OK: true, Detail: detail})
}

func (c *checker) skip(name, detail string) {
	c.report.Checks = append(c.report.Checks, Check{Name: name, Skipped: true, Detail: detail})
}

func (c *checker) fail(name, detail, cause, fix string) {
	c.report.Checks = append(c.report.Checks, Check{Name: name, Detail: detail, Cause: cause, Fix: fix})
}

// httpClient connects as the checks need: -resolve overrides, the
// configured roots, no environment proxy.
func (c *checker) httpClient(insecure bool) *http.Client {
	return &http.Client{
		Timeout: c.opts.Timeout,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if a, ok := c.opts.Resolve[addr]; ok {
					addr = a
				}
				return c.dial(ctx, network, addr)
			},
			TLSClientConfig:     &tls.Config{RootCAs: c.opts.Roots, InsecureSkipVerify: insecure},
			TLSHandshakeTimeout: c.opts.Timeout,
			DisableKeepAlives:   true,
		},
	}
}

// resolveServer runs only the resolution of serverName (well-known, SRV,
// defaults) and returns where federation traffic would go.
func resolveServer(ctx context.Context, serverName string, opts Options) ([]Target, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	c := &checker{opts: opts, resolver: opts.Resolver, report: &Report{DNSResult: DNSResult{Addrs: map[string][]string{}}}}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	name, err := delegation.ParseServerName(serverName)
	if err != nil {
		return nil, err
	}
	return c.resolve(ctx, name), nil
}

package fedcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
)

// families are the address families a remote server may come from: each
// is checked on its own, since a server that has only one uses only it.
var families = []struct{ network, name, record string }{
	{"ip4", "IPv4", "A"},
	{"ip6", "IPv6", "AAAA"},
}

// RunByFamily checks name as the world reaches it, each address family on
// its own: the A and AAAA records of the server name's host and of every
// host federation traffic goes to; over each family, the discovery
// documents, the certificate as a remote server validates it and the
// signing keys, each address dialled separately; then client discovery,
// and the notary and the encoded path when Options ask for them.
//
// Check names do not carry addresses (they are metric labels and keep
// their verdict's history): the addresses are in Detail and Cause. A
// family with no record is skipped ("no IPv6"), not failed; a host with no
// record of either family fails, as does a lookup that errs.
func RunByFamily(ctx context.Context, name delegation.ServerName, opts Options) *Report {
	c := newChecker(name.String(), opts)
	r := c.report
	looked := map[string]map[string][]string{}
	records := func(host, port string) map[string][]string {
		if m, ok := looked[host+":"+port]; ok {
			return m
		}
		m := c.records(ctx, host, port)
		looked[host+":"+port] = m
		return m
	}
	base := records(name.Host, "443")
	for _, f := range families {
		c.documentsOver(ctx, name, f.name, base[f.network])
	}
	r.Targets = c.resolve(ctx, name)
	fedOK := len(r.Targets) > 0
	var keys json.RawMessage
	for _, f := range families {
		var at []targetAddr
		for _, t := range r.Targets {
			host, port, _ := net.SplitHostPort(t.Destination)
			for _, a := range records(host, port)[f.network] {
				at = append(at, targetAddr{t, a})
			}
		}
		ok, k := c.federationOver(ctx, name, f.name, at)
		fedOK = fedOK && ok
		if keys == nil {
			keys = k
		}
	}
	r.FederationOK = fedOK && r.WellKnownResult.Result != resultInvalid
	r.ClientOK = c.checkClient(ctx, name)
	if opts.Notary.Host != "" {
		c.checkNotary(ctx, name, keys)
	}
	return r
}

type targetAddr struct {
	t    Target
	addr string
}

// records checks host's A and AAAA records, one check each, and returns
// the addresses to dial (host:port, after Options.Resolve) by network.
func (c *checker) records(ctx context.Context, host, port string) map[string][]string {
	out := map[string][]string{}
	if a, ok := c.opts.Resolve[net.JoinHostPort(host, port)]; ok {
		ip, err := netip.ParseAddr(hostOf(a))
		network := "ip4"
		if err == nil && ip.Unmap().Is6() {
			network = "ip6"
		}
		out[network] = []string{a}
		return out
	}
	type found struct {
		ips []netip.Addr
		err error
	}
	var got [2]found
	if ip, err := netip.ParseAddr(host); err == nil {
		i := 0
		if ip.Unmap().Is6() {
			i = 1
		}
		got[i].ips = []netip.Addr{ip.Unmap()}
	} else {
		for i, f := range families {
			got[i].ips, got[i].err = c.lookupFamily(ctx, f.network, host)
		}
	}
	none := len(got[0].ips) == 0 && len(got[1].ips) == 0 && got[0].err == nil && got[1].err == nil
	for i, f := range families {
		check := f.record + " records of " + host
		g := got[i]
		switch {
		case g.err != nil:
			c.fail(check, "", "looking them up failed: "+g.err.Error(),
				"make sure the name's DNS servers answer (a lapsed domain or a broken DNSSEC signature fails like this)")
		case none:
			c.fail(check, "", "the name has no A or AAAA record: no server can reach "+host,
				"add an A record (and an AAAA record if the machine has IPv6) for "+host)
		case len(g.ips) == 0:
			c.skip(check, "no "+f.name+": servers that have only "+f.name+" cannot reach "+host)
		default:
			var s []string
			for _, ip := range g.ips {
				s = append(s, ip.String())
				out[f.network] = append(out[f.network], net.JoinHostPort(ip.String(), port))
			}
			c.pass(check, strings.Join(s, ", "))
		}
	}
	return out
}

// documentsOver fetches the server and client documents from each of the
// base domain's addresses of one family, as remote servers and clients of
// that family do.
func (c *checker) documentsOver(ctx context.Context, name delegation.ServerName, family string, addrs []string) {
	check := "documents over " + family
	if len(addrs) == 0 {
		c.skip(check, "no "+family+" address for "+name.Host)
		return
	}
	want := c.opts.Documents
	if want == nil {
		want = map[string][]byte{"server": nil, "client": nil}
	}
	docs := slices.Sorted(maps.Keys(want))
	var problems []string
	for _, a := range addrs {
		for _, doc := range docs {
			if p := c.documentAt(ctx, name.Host, a, doc, want[doc]); p != "" {
				problems = append(problems, fmt.Sprintf("/.well-known/matrix/%s at %s: %s", doc, a, p))
			}
		}
	}
	if len(problems) > 0 {
		c.fail(check, "", strings.Join(problems, "; "),
			"make "+name.Host+" answer over "+family+" on port 443 (firewall, port forwarding, the AAAA or A record) with a certificate for it, or remove the record that points elsewhere")
		return
	}
	c.pass(check, strings.Join(docs, ", ")+" from "+strings.Join(addrs, ", "))
}

// documentAt fetches one document from addr, verifying the certificate
// for host; "" when it is there and is JSON (and is want, when set).
func (c *checker) documentAt(ctx context.Context, host, addr, doc string, want []byte) string {
	client := c.httpClient(false)
	client.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, to string) (net.Conn, error) {
		if to == net.JoinHostPort(host, "443") {
			return c.dial(ctx, network, addr)
		}
		return c.dial(ctx, network, to)
	}
	// Redirects are followed as servers and clients follow them: to
	// wherever they point, through the system's resolution.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/.well-known/matrix/"+doc, nil)
	resp, err := client.Do(req)
	if err != nil {
		return shortErr(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, wellKnownMaxSize))
	if resp.StatusCode != http.StatusOK {
		return "it answered " + resp.Status
	}
	if !json.Valid(body) {
		return "the answer is not JSON"
	}
	if want != nil && !bytes.Equal(body, want) {
		return fmt.Sprintf("another server answers: %.80q is not what this edge serves", body)
	}
	return ""
}

// federationOver checks each federation address of one family: the
// certificate as a remote server validates it, the signing keys, and the
// encoded path. It returns whether all passed, and the keys served.
func (c *checker) federationOver(ctx context.Context, name delegation.ServerName, family string, at []targetAddr) (bool, json.RawMessage) {
	certCheck, keysCheck, pathCheck := "federation certificate over "+family, "federation keys over "+family, "encoded path over "+family
	if len(at) == 0 {
		c.skip(certCheck, "no "+family+" address where federation traffic goes")
		c.skip(keysCheck, "no "+family+" address where federation traffic goes")
		if c.opts.EncodedPath != nil {
			c.skip(pathCheck, "no "+family+" address where federation traffic goes")
		}
		return true, nil
	}
	// Each address through checkAddr, its lines gathered into the
	// family's: a remote server of that family may land on any of them.
	var certFail, keysFail, pathFail, certOK, keysOK []string
	var certFix, keysFix, pathFix string
	var keys json.RawMessage
	for _, ta := range at {
		sub := &checker{opts: c.opts, resolver: c.resolver, report: &Report{ConnectionReports: map[string]*ConnectionReport{}, ConnectionErrors: map[string]string{}}}
		sub.checkAddr(ctx, name, ta.t, ta.addr)
		for k, v := range sub.report.ConnectionReports {
			c.report.ConnectionReports[k] = v
			if keys == nil && len(v.Keys) > 0 {
				keys = v.Keys
			}
		}
		for k, v := range sub.report.ConnectionErrors {
			c.report.ConnectionErrors[k] = v
		}
		reached := true
		for _, ch := range sub.report.Checks {
			switch {
			case strings.HasPrefix(ch.Name, "connection to ") || strings.HasPrefix(ch.Name, "TLS to "):
				reached = false
				certFail = append(certFail, ta.addr+": "+ch.Cause)
				certFix = ch.Fix
			case strings.HasPrefix(ch.Name, "certificate at "):
				if ch.OK {
					certOK = append(certOK, ta.addr+": "+ch.Detail)
				} else {
					certFail = append(certFail, ta.addr+": "+ch.Cause)
					certFix = ch.Fix
				}
			case strings.HasPrefix(ch.Name, "signing keys at "):
				if ch.OK {
					keysOK = append(keysOK, ta.addr+": "+ch.Detail)
				} else {
					keysFail = append(keysFail, ta.addr+": "+ch.Cause)
					keysFix = ch.Fix
				}
			}
		}
		if !reached {
			keysFail = append(keysFail, ta.addr+": not reached")
			keysFix = certFix
		}
		if c.opts.EncodedPath != nil {
			if !reached {
				pathFail = append(pathFail, ta.addr+": not reached")
				pathFix = certFix
			} else if cause, fix := c.encodedPathAt(ctx, ta.t, ta.addr); cause != "" {
				pathFail = append(pathFail, ta.addr+": "+cause)
				pathFix = fix
			}
		}
	}
	verdict := func(check string, fail, ok []string, fix string) bool {
		if len(fail) > 0 {
			c.fail(check, "", strings.Join(fail, "; "), fix)
			return false
		}
		c.pass(check, strings.Join(ok, "; "))
		return true
	}
	ok := verdict(certCheck, certFail, certOK, certFix)
	ok = verdict(keysCheck, keysFail, keysOK, keysFix) && ok
	if c.opts.EncodedPath != nil {
		var addrs []string
		for _, ta := range at {
			addrs = append(addrs, ta.addr)
		}
		ok = verdict(pathCheck, pathFail, []string{"%2F arrived as sent at " + strings.Join(addrs, ", ")}, pathFix) && ok
	}
	return ok, keys
}

// encodedPathAt sends a federation path with an encoded slash to addr and
// compares the request URI the edge reports having received with what
// was sent: a proxy or CDN in front that decodes %2F breaks event IDs
// that contain a slash.
func (c *checker) encodedPathAt(ctx context.Context, t Target, addr string) (cause, fix string) {
	path := c.opts.EncodedPath()
	resp, body, err := c.fedGET(ctx, t, addr, path)
	if err != nil {
		return "GET " + path + " failed: " + shortErr(err), "make sure /_matrix/federation reaches wellknownd"
	}
	var echo struct {
		RequestURI *string `json:"wellknownd_self_check_request_uri"`
	}
	json.Unmarshal(body, &echo)
	switch {
	case echo.RequestURI == nil:
		return "the request did not reach this edge (something else answered " + strconv.Quote(resp.Status) + ")",
			"send " + t.Destination + " straight to wellknownd: a CDN or proxy in front answers federation requests itself"
	case *echo.RequestURI != path:
		return fmt.Sprintf("sent %s, this edge received %s", path, *echo.RequestURI),
			"a proxy or CDN in front decodes %2F: turn its URL normalisation off for /_matrix, or send federation traffic straight to wellknownd"
	}
	return "", ""
}

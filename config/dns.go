package config

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
)

// DNS configures the dns-01 challenge: the DNS service that writes the
// challenge record, its credentials, and where to look for the record.
type DNS struct {
	// Provider names the DNS service that holds the zone: cloudflare,
	// rfc2136 (BIND, Knot, PowerDNS or any server that takes TSIG-signed
	// dynamic updates), route53 (in a binary built with -tags route53: it
	// links the AWS SDK), digitalocean, hetzner, gandi or ovh.
	Provider string `yaml:"provider"`
	// APITokenFile holds the API token of a provider that takes one
	// (cloudflare, digitalocean, hetzner, gandi) and nothing else, kept out
	// of this file. Without it the token comes from credentials_file or the
	// environment.
	APITokenFile string `yaml:"api_token_file"`
	// CredentialsFile holds the provider's secrets as KEY=value lines, under
	// the variable names lego and Traefik use (docs/dns-01.md), e.g. OVH_APPLICATION_KEY=... It is the same file systemd's
	// EnvironmentFile= or compose's env_file would read; a variable missing
	// from it is taken from the environment.
	CredentialsFile string `yaml:"credentials_file"`
	// RFC2136 says where provider rfc2136 sends its updates.
	RFC2136 RFC2136 `yaml:"rfc2136"`
	// Route53 is provider route53's region and zone.
	Route53 Route53 `yaml:"route53"`
	// OVH is provider ovh's API endpoint.
	OVH OVH `yaml:"ovh"`
	// Resolvers are DNS servers (host:port) asked to find the zone and to
	// see the challenge record propagate; default: the system's, and then
	// the zone's own nameservers for the propagation check.
	Resolvers []string `yaml:"resolvers"`
}

// RFC2136 configures DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945).
type RFC2136 struct {
	// Server is the primary nameserver that takes the updates, host:port
	// (port 53 when left out).
	Server string `yaml:"server"`
	// TSIGKeyFile holds the key that signs every update: BIND's format
	// (what tsig-keygen prints) or Knot's (what keymgr -t prints). Updates
	// are never sent unsigned.
	TSIGKeyFile string `yaml:"tsig_key_file"`
	// Zone is the zone to update, e.g. example.com; default: the zone the
	// server answers the SOA of the challenge name with.
	Zone string `yaml:"zone"`
}

// Route53 configures Amazon Route 53. Its credentials come from
// credentials_file (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// optionally AWS_SESSION_TOKEN) or else the AWS SDK's own chain: the
// environment, ~/.aws/credentials ($AWS_SHARED_CREDENTIALS_FILE), an
// instance role.
type Route53 struct {
	// Region is the AWS region of the API; default: $AWS_REGION, else
	// us-east-1. Route 53 itself is global.
	Region string `yaml:"region"`
	// HostedZoneID is the zone to write to; default: the public hosted zone
	// whose name the challenge name ends in.
	HostedZoneID string `yaml:"hosted_zone_id"`
}

// OVH configures OVHcloud's API.
type OVH struct {
	// Endpoint is the API region: ovh-eu, ovh-ca, ovh-us, kimsufi-eu,
	// kimsufi-ca, soyoustart-eu, soyoustart-ca, or an https:// URL.
	// Default: $OVH_ENDPOINT, else ovh-eu.
	Endpoint string `yaml:"endpoint"`
}

// dnsProvider is what validation knows of a DNS provider's credentials.
type dnsProvider struct {
	// token is the variable api_token_file stands in for; "" when the
	// provider takes no single token.
	token string
	// vars are the variables credentials_file may set.
	vars []string
	// anyOf lists sets of variables, one of which must be complete; empty
	// when the provider has a way of its own to find credentials.
	anyOf [][]string
}

// dnsProviders are the DNS services dns-01 can use. The variable names are
// lego's, so a Traefik user's env file works unchanged.
var dnsProviders = map[string]dnsProvider{
	"cloudflare":   tokenProvider("CLOUDFLARE_DNS_API_TOKEN"),
	"digitalocean": tokenProvider("DO_AUTH_TOKEN"),
	"hetzner":      tokenProvider("HETZNER_API_TOKEN"),
	"gandi":        tokenProvider("GANDIV5_PERSONAL_ACCESS_TOKEN"),
	"ovh": {
		vars: []string{"OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY", "OVH_CLIENT_ID", "OVH_CLIENT_SECRET"},
		anyOf: [][]string{
			{"OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"},
			{"OVH_CLIENT_ID", "OVH_CLIENT_SECRET"},
		},
	},
	// The AWS SDK finds credentials by itself when none are given.
	"route53": {vars: []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}},
	// Its secret is the TSIG key file.
	"rfc2136": {},
}

func tokenProvider(name string) dnsProvider {
	return dnsProvider{token: name, vars: []string{name}, anyOf: [][]string{{name}}}
}

// DNSProviders are the names tls.dns.provider accepts, sorted.
func DNSProviders() []string {
	names := make([]string, 0, len(dnsProviders))
	for n := range dnsProviders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// DNSSecretVariables are the names of every provider's credential
// variables, sorted: what supervised processes do not inherit.
func DNSSecretVariables() []string {
	var out []string
	for _, p := range dnsProviders {
		for _, v := range p.vars {
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Secrets gathers the provider's credentials: api_token_file, then
// credentials_file, then getenv for whatever neither set (getenv is
// os.Getenv outside tests). Each error names the field and, for a bad
// line, the file and line.
func (d DNS) Secrets(getenv func(string) string) (map[string]string, error) {
	p, ok := dnsProviders[d.Provider]
	if !ok {
		return nil, &fieldError{"tls.dns.provider", fmt.Sprintf("%q is not supported", d.Provider)}
	}
	if d.APITokenFile != "" && p.token == "" {
		return nil, &fieldError{"tls.dns.api_token_file", fmt.Sprintf("provider %s takes no API token; see tls.dns.credentials_file", d.Provider)}
	}
	if d.CredentialsFile != "" && len(p.vars) == 0 {
		return nil, &fieldError{"tls.dns.credentials_file", fmt.Sprintf("provider %s takes no credentials file; its secret is tls.dns.rfc2136.tsig_key_file", d.Provider)}
	}
	out := map[string]string{}
	if d.CredentialsFile != "" {
		vals, err := readCredentials(d.CredentialsFile, p.vars)
		if err != nil {
			return nil, &fieldError{"tls.dns.credentials_file", err.Error()}
		}
		out = vals
	}
	if d.APITokenFile != "" {
		b, err := os.ReadFile(d.APITokenFile)
		if err != nil {
			return nil, &fieldError{"tls.dns.api_token_file", "cannot be read: " + unwrapPathError(err).Error()}
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, &fieldError{"tls.dns.api_token_file", d.APITokenFile + " is empty"}
		}
		out[p.token] = tok
	}
	for _, v := range p.vars {
		if _, set := out[v]; !set {
			if val := strings.TrimSpace(getenv(v)); val != "" {
				out[v] = val
			}
		}
	}
	if len(p.anyOf) == 0 {
		return out, nil
	}
	for _, set := range p.anyOf {
		if !slices.ContainsFunc(set, func(v string) bool { return out[v] == "" }) {
			return out, nil
		}
	}
	var want []string
	for _, set := range p.anyOf {
		want = append(want, strings.Join(set, " + "))
	}
	field, where := "tls.dns.credentials_file", "it or the environment"
	if p.token != "" {
		field, where = "tls.dns.api_token_file", "it (the token alone), tls.dns.credentials_file or the environment"
	}
	return nil, &fieldError{field, fmt.Sprintf("provider %s has no credentials: put %s in %s", d.Provider, strings.Join(want, ", or "), where)}
}

// readCredentials parses KEY=value lines: blank lines and # comments are
// skipped, an "export " prefix and quotes around the value are allowed. A
// key the provider does not know is an error, so that a misspelt name is
// not silently ignored.
func readCredentials(path string, known []string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("%s:%d: not a KEY=value line", path, n)
		}
		if !slices.Contains(known, key) {
			return nil, fmt.Errorf("%s:%d: %s is not a variable of this provider; known: %s", path, n, key, strings.Join(known, ", "))
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		out[key] = val
	}
	return out, nil
}

// TSIGKey is a TSIG key: its name, HMAC algorithm and base64 secret.
type TSIGKey struct {
	Name, Algorithm, Secret string
}

// tsigAlgorithms are the HMACs RFC 8945 recommends and both BIND and Knot
// accept; HMAC-MD5 is left out.
var tsigAlgorithms = []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}

// ReadTSIGKey reads a TSIG key file in BIND's format
//
//	key "name" { algorithm hmac-sha256; secret "base64"; };
//
// or Knot's (keymgr -t)
//
//	key:
//	  - id: name
//	    algorithm: hmac-sha256
//	    secret: base64
//
// It fails unless the file has exactly one key with all three parts: a key
// read wrongly must not turn into updates sent unsigned.
func ReadTSIGKey(path string) (TSIGKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return TSIGKey{}, unwrapPathError(err)
	}
	var k TSIGKey
	var keys int
	unquote := func(s string) string { return strings.Trim(strings.TrimSpace(s), `";`) }
	// BIND's format puts statements on one line or several; splitting on
	// braces and semicolons turns both into a list of statements.
	text := string(data)
	if strings.Contains(text, "{") {
		text = strings.NewReplacer("{", "\n", "}", "\n", ";", "\n").Replace(text)
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || strings.HasPrefix(line, "//") {
			continue
		}
		line = strings.TrimPrefix(line, "- ")
		word, rest, _ := strings.Cut(line, " ")
		if w, r, ok := strings.Cut(line, ":"); ok && !strings.Contains(w, " ") {
			word, rest = w, r // Knot: "id: name"
		}
		switch word {
		case "key":
			if unquote(rest) != "" {
				keys++
				k.Name = unquote(rest)
			}
		case "id":
			keys++
			k.Name = unquote(rest)
		case "algorithm":
			k.Algorithm = strings.ToLower(unquote(rest))
		case "secret":
			k.Secret = unquote(rest)
		}
	}
	switch {
	case keys == 0 || k.Name == "":
		return k, fmt.Errorf("%s holds no TSIG key (key \"name\" { algorithm ...; secret \"...\"; };)", path)
	case keys > 1:
		return k, fmt.Errorf("%s holds %d keys; give the one for updates alone", path, keys)
	case k.Algorithm == "":
		return k, fmt.Errorf("%s: key %s has no algorithm", path, k.Name)
	case !slices.Contains(tsigAlgorithms, k.Algorithm):
		return k, fmt.Errorf("%s: key %s: algorithm %q is not one of %s", path, k.Name, k.Algorithm, strings.Join(tsigAlgorithms, ", "))
	case k.Secret == "":
		return k, fmt.Errorf("%s: key %s has no secret", path, k.Name)
	}
	if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil {
		return k, fmt.Errorf("%s: key %s: the secret is not base64: %v", path, k.Name, err)
	}
	return k, nil
}

// validateDNS checks tls.dns when dns-01 is among the challenges, and
// that its fields are not set for nothing.
func (v *validator) validateDNS(dns01 bool) {
	d := v.cfg.TLS.DNS
	if !dns01 {
		if d.Provider != "" {
			v.warnf("tls.dns.provider", "is set, but dns-01 is not in tls.challenges; it is not used")
		}
		return
	}
	if d.Provider == "" {
		v.errf("tls.dns.provider", "is required for dns-01; valid: %s", strings.Join(DNSProviders(), ", "))
		return
	}
	if _, ok := dnsProviders[d.Provider]; !ok {
		v.errf("tls.dns.provider", "%q is not a supported DNS provider; valid: %s", d.Provider, strings.Join(DNSProviders(), ", "))
		return
	}
	if d.Provider == "route53" && !route53Built {
		v.errf("tls.dns.provider", "%s", ErrRoute53NotBuilt.msg)
		return
	}
	for i, r := range d.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			v.errf("tls.dns.resolvers["+strconv.Itoa(i)+"]", "%q is not host:port: %v", r, err)
		}
	}
	v.unusedDNSSection(d.Provider != "rfc2136" && d.RFC2136 != RFC2136{}, "tls.dns.rfc2136")
	v.unusedDNSSection(d.Provider != "route53" && d.Route53 != Route53{}, "tls.dns.route53")
	v.unusedDNSSection(d.Provider != "ovh" && d.OVH != OVH{}, "tls.dns.ovh")
	switch d.Provider {
	case "rfc2136":
		v.validateRFC2136(d.RFC2136)
	case "ovh":
		if e := d.OVH.Endpoint; e != "" && !strings.HasPrefix(e, "https://") && !slices.Contains(ovhEndpoints, e) {
			v.errf("tls.dns.ovh.endpoint", "%q is neither %s nor an https:// URL", e, strings.Join(ovhEndpoints, ", "))
		}
	}
	if _, err := d.Secrets(os.Getenv); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			v.errf(fe.field, "%s", fe.msg)
		} else {
			v.errf("tls.dns", "%s", err)
		}
	}
}

// fieldError is an error about one config field.
type fieldError struct{ field, msg string }

// ErrRoute53NotBuilt is what a binary built without the route53 tag says of
// provider route53. The AWS SDK it needs would cost every process, DNS-01 or
// not, about 5 MB of memory and 8 MB of binary, so it is linked only on
// request.
var ErrRoute53NotBuilt = &fieldError{"tls.dns.provider", "route53 is not in this build of wellknownd: it needs the AWS SDK, " +
	"which is linked only when asked for (go build -tags route53 ./cmd/wellknownd, or the image's --build-arg TAGS=route53); see docs/dns-01.md"}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// ovhEndpoints are the API regions OVH's client library names.
var ovhEndpoints = []string{"ovh-eu", "ovh-ca", "ovh-us", "kimsufi-eu", "kimsufi-ca", "soyoustart-eu", "soyoustart-ca"}

func (v *validator) unusedDNSSection(unused bool, field string) {
	if unused {
		v.errf(field, "is set, but tls.dns.provider is %s", v.cfg.TLS.DNS.Provider)
	}
}

func (v *validator) validateRFC2136(r RFC2136) {
	if r.Server == "" {
		v.errf("tls.dns.rfc2136.server", "is required with provider rfc2136: the primary nameserver taking updates, host:port")
	} else if host, _, err := net.SplitHostPort(r.Server); err != nil && !strings.Contains(err.Error(), "missing port") {
		v.errf("tls.dns.rfc2136.server", "%q is not host or host:port: %v", r.Server, err)
	} else if err == nil && host == "" {
		v.errf("tls.dns.rfc2136.server", "%q has no host", r.Server)
	}
	if r.TSIGKeyFile == "" {
		v.errf("tls.dns.rfc2136.tsig_key_file", "is required with provider rfc2136: updates are only sent signed (tsig-keygen or keymgr -t makes a key)")
	} else if _, err := ReadTSIGKey(r.TSIGKeyFile); err != nil {
		v.errf("tls.dns.rfc2136.tsig_key_file", "%s", err)
	}
	if r.Zone != "" {
		if _, err := delegation.ParseHostname(strings.TrimSuffix(r.Zone, ".")); err != nil {
			v.errf("tls.dns.rfc2136.zone", "%q %s", r.Zone, err)
		}
	}
}
